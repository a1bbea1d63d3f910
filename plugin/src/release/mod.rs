//! A release and its life cycle: the record kept in the cluster, the objects it wants, and the
//! engine that moves it from stage to stage.

pub mod record;
pub mod view;
