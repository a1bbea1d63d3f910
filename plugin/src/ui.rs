//! Terminal output: colour policy, tables, trees, and the sanitising of untrusted text.

pub mod color;
pub mod output;
pub mod progress;
pub mod table;
pub mod text;
pub mod tree;
