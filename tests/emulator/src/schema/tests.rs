//! Unit tests of the schema walker.
