//! Terminal output: colour policy, tables and trees.

pub mod color;
pub mod output;
pub mod progress;
pub mod table;
pub mod tree;

/// A decision's action as written on the wire and in history (`advance`, `hold`, `rollback`,
/// `complete`).
pub fn action_name(action: policy_sdk::Action) -> &'static str {
    use policy_sdk::Action;
    match action {
        Action::Advance => "advance",
        Action::Hold => "hold",
        Action::Rollback => "rollback",
        Action::Complete => "complete",
    }
}

#[cfg(test)]
mod tests {
    use policy_sdk::Action;

    #[test]
    fn action_names_are_the_wire_names() {
        for action in [
            Action::Advance,
            Action::Hold,
            Action::Rollback,
            Action::Complete,
        ] {
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                super::action_name(action)
            );
        }
    }
}
