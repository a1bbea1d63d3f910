//! Terminal output: colour policy, tables and trees.

pub mod color;
pub mod output;
pub mod table;
pub mod tree;
