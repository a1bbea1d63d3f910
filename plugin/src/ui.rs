//! Terminal output: colour policy, tables, trees, and the sanitising of untrusted text.

pub mod color;
pub mod output;
pub mod table;
pub mod text;
pub mod tree;

/// A decision's action as written on the wire and in history (`advance`, `hold`, `rollback`,
/// `complete`). The name is the action's own ([`policy_sdk::Action::as_str`]); this is the
/// commands' short way to it.
pub fn action_name(action: policy_sdk::Action) -> &'static str {
    action.as_str()
}
