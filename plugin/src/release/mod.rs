//! A release and its life cycle: the record kept in the cluster, the objects it wants, and the
//! engine that moves it from stage to stage.

pub mod desired;
pub mod driver;
pub mod engine;
pub mod machine;
pub mod record;
pub mod view;

pub use engine::{Decider, Engine, EngineError, Mode, Outcome, StartOptions};
