//! The RBAC rules the plugin's requests need, defined once: `kubectl canary rbac` prints them,
//! `runner install` binds them, and the tests prove them least (every command passes with
//! exactly these, and each verb removed fails the command that needs it).
//!
//! Namespace-scoped on purpose: a release lives in one namespace and needs no cluster rights.

use serde_json::{json, Value};

/// One rule: `verbs` on `resources` of `group`, and which commands send those requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resource (plural).
    pub resource: &'static str,
    /// Verbs, in kubectl's order.
    pub verbs: &'static [&'static str],
    /// What needs them (printed as a comment).
    pub why: &'static str,
}

/// What an operator needs for `start`, `step`, `run` (and `run --detach`), `set-weight`,
/// `promote`, `abort`, `finalize`, `undo`, `get`, `list` and `history`.
pub const OPERATOR: &[Rule] = &[
    Rule {
        group: "",
        resource: "configmaps",
        verbs: &["get", "list", "create", "update"],
        why: "the release state (ConfigMap canary-<release>): read by every command, created by start, updated conditionally by every change; list by `list`",
    },
    Rule {
        group: "",
        resource: "pods",
        verbs: &["list"],
        why: "start checks that pods carry the stable labels; get counts ready pods per subset",
    },
    Rule {
        group: "apps",
        resource: "deployments",
        verbs: &["list", "patch", "delete"],
        why: "start clones the canary Deployment (server-side apply) when the spec sets an image; finalize deletes the old version's Deployments, undo re-creates them",
    },
    Rule {
        group: "networking.istio.io",
        resource: "destinationrules",
        verbs: &["get", "list", "patch"],
        why: "subsets, applied with server-side apply; get checks ownership at start",
    },
    Rule {
        group: "networking.istio.io",
        resource: "virtualservices",
        verbs: &["get", "list", "patch"],
        why: "routes, applied with server-side apply; get checks ownership at start",
    },
    Rule {
        group: "security.istio.io",
        resource: "peerauthentications",
        verbs: &["list", "patch"],
        why: "only for releases with spec.mtls",
    },
];

/// What the in-cluster runner needs: read and update the state of the releases handed to it,
/// watch them, hold its Lease, and apply stages. It never starts, finalizes or deletes.
pub const RUNNER: &[Rule] = &[
    Rule {
        group: "",
        resource: "configmaps",
        verbs: &["get", "list", "watch", "update"],
        why: "the release state: watched to find the releases handed to the runner, updated conditionally by each decision",
    },
    Rule {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        why: "leader election: one replica acts",
    },
    Rule {
        group: "apps",
        resource: "deployments",
        verbs: &["list", "patch"],
        why: "releases whose spec sets a canary image: the cloned canary Deployment is checked and re-applied if it drifted",
    },
    Rule {
        group: "networking.istio.io",
        resource: "destinationrules",
        verbs: &["list", "patch"],
        why: "subsets, applied with server-side apply",
    },
    Rule {
        group: "networking.istio.io",
        resource: "virtualservices",
        verbs: &["list", "patch"],
        why: "routes, applied with server-side apply",
    },
    Rule {
        group: "security.istio.io",
        resource: "peerauthentications",
        verbs: &["list", "patch"],
        why: "only for releases with spec.mtls",
    },
];

/// The `rules` array of a Role (one entry per rule, without the comments).
pub fn rules_json(rules: &[Rule]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| json!({"apiGroups": [r.group], "resources": [r.resource], "verbs": r.verbs}))
            .collect(),
    )
}

/// A Role object named `name` in `namespace` with `rules`.
pub fn role(name: &str, namespace: &str, rules: &[Rule]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {crate::labels::MANAGED_BY_LABEL: crate::labels::MANAGED_BY}},
        "rules": rules_json(rules),
    })
}

/// The Role as commented YAML: each rule says which commands need it.
pub fn role_yaml(name: &str, namespace: &str, rules: &[Rule]) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {}\n  namespace: {}\n  labels:\n    {}: {}\nrules:\n",
        quote(name),
        quote(namespace),
        crate::labels::MANAGED_BY_LABEL,
        crate::labels::MANAGED_BY
    );
    for r in rules {
        out.push_str(&format!(
            "# {}\n- apiGroups: [{}]\n  resources: [{}]\n  verbs: [{}]\n",
            r.why,
            quote(r.group),
            r.resource,
            r.verbs.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commented_yaml_is_the_role() {
        let yaml = role_yaml("kubectl-canary", "shop", OPERATOR);
        let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed, role("kubectl-canary", "shop", OPERATOR));
        let yaml = role_yaml("r", "ns", RUNNER);
        let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed, role("r", "ns", RUNNER));
    }
}
