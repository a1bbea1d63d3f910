//! Service accounts, their tokens, and RBAC enforcement, as kube-apiserver does them.
//!
//! The emulator's own bearer token (the one in its kubeconfig) is a cluster administrator, as
//! `kubernetes-admin` is on a kubeadm cluster: RBAC is not consulted for it. Every other token is
//! issued for a ServiceAccount through the TokenRequest subresource
//! (`POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`, what `kubectl create token` sends)
//! or [`crate::Emulator::service_account_token`], and authenticates as
//! `system:serviceaccount:NS:NAME` with the groups `system:serviceaccounts`,
//! `system:serviceaccounts:NS` and `system:authenticated`. Its requests are authorized by the
//! Roles, RoleBindings, ClusterRoles and ClusterRoleBindings stored in the cluster, with the
//! apiserver's default grants to every authenticated user (discovery, `/version`, `/healthz`,
//! `/openapi`, and creating SelfSubjectAccessReviews, which `kubectl auth can-i` sends).
//! A refusal is the apiserver's 403, worded as it words it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::error::{qualified, ApiError};
use crate::resources::ResourceInfo;

/// The kinds this module serves: ServiceAccounts, the RBAC kinds, SelfSubjectAccessReviews, and
/// (unrelated to authorization, but built in as in Kubernetes) coordination.k8s.io Leases.
pub fn resources() -> Vec<ResourceInfo> {
    let kind =
        |group: &str, kind: &str, plural: &str, namespaced: bool, short: &[&str]| ResourceInfo {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: vec![],
            status_subresource: false,
            storage: true,
            schema: None,
            printer_columns: vec![],
        };
    const RBAC: &str = "rbac.authorization.k8s.io";
    vec![
        kind("", "ServiceAccount", "serviceaccounts", true, &["sa"]),
        kind(RBAC, "Role", "roles", true, &[]),
        kind(RBAC, "RoleBinding", "rolebindings", true, &[]),
        kind(RBAC, "ClusterRole", "clusterroles", false, &[]),
        kind(
            RBAC,
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
        ),
        kind(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
            &[],
        ),
        kind("coordination.k8s.io", "Lease", "leases", true, &[]),
    ]
}

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// The emulator's own token: every request is allowed.
    Admin,
    /// A service account's token.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl User {
    /// The user name the apiserver reports (`system:serviceaccount:NS:NAME`).
    pub fn username(&self) -> String {
        match self {
            User::Admin => "kubernetes-admin".to_string(),
            User::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }

    fn groups(&self) -> Vec<String> {
        match self {
            User::Admin => vec!["system:masters".into(), "system:authenticated".into()],
            User::ServiceAccount { namespace, .. } => vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// One issued token.
#[derive(Debug, Clone)]
struct Issued {
    namespace: String,
    name: String,
    uid: String,
    expires: u64,
}

/// The service-account tokens issued so far (kept in memory: a restarted emulator forgets them,
/// as a rotated signing key would invalidate them).
#[derive(Debug, Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, Issued>>,
    serial: Mutex<u64>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tokens {
    /// Issues a token for the service account `namespace/name` (which must exist in `cluster`),
    /// valid for `seconds`.
    pub fn issue(
        &self,
        cluster: &Cluster,
        namespace: &str,
        name: &str,
        seconds: u64,
    ) -> Result<(String, u64), ApiError> {
        let sa = service_account(cluster, namespace, name)?;
        let serial = {
            let mut s = self.serial.lock().unwrap_or_else(|e| e.into_inner());
            *s += 1;
            *s
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(serial);
        let token = format!(
            "emu-sa-{}{}",
            crate::cluster::safe_chars(nanos ^ serial.rotate_left(29), 20),
            crate::cluster::safe_chars(nanos.rotate_left(13) ^ u64::from(std::process::id()), 20)
        );
        let expires = unix_now() + seconds;
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                token.clone(),
                Issued {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    uid: sa["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                    expires,
                },
            );
        Ok((token, expires))
    }

    /// The service account a token authenticates as: `None` for an unknown or expired token,
    /// or one whose service account was deleted (or deleted and re-created: the uid differs).
    pub fn authenticate(&self, cluster: &Cluster, token: &str) -> Option<User> {
        let issued = self
            .issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()?;
        if issued.expires <= unix_now() {
            return None;
        }
        let sa = service_account(cluster, &issued.namespace, &issued.name).ok()?;
        if sa["metadata"]["uid"].as_str().unwrap_or("") != issued.uid {
            return None;
        }
        Some(User::ServiceAccount {
            namespace: issued.namespace,
            name: issued.name,
        })
    }
}

fn service_account(cluster: &Cluster, namespace: &str, name: &str) -> Result<Value, ApiError> {
    let res = cluster
        .resource_by_kind("", "ServiceAccount")
        .ok_or_else(ApiError::page_not_found)?;
    cluster.get(&res, namespace, name)
}

/// What a request asks to do, in RBAC's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource (`configmaps`); empty for a non-resource path.
    pub resource: String,
    /// Subresource (`status`, `scale`, `token`), or empty.
    pub subresource: String,
    /// Namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// Object name, empty for collections.
    pub name: String,
    /// The URL path of a non-resource request (`/version`).
    pub path: String,
}

impl Attributes {
    fn resource_with_sub(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// Whether RBAC in `cluster` allows `user` to do `attrs`.
pub fn allows(cluster: &Cluster, user: &User, attrs: &Attributes) -> bool {
    if *user == User::Admin {
        return true;
    }
    if attrs.resource.is_empty() {
        // system:discovery, system:public-info-viewer: read-only paths for everyone.
        return attrs.verb == "get";
    }
    if attrs.group == "authorization.k8s.io"
        && attrs.resource == "selfsubjectaccessreviews"
        && attrs.verb == "create"
    {
        // system:basic-user.
        return true;
    }
    let username = user.username();
    let groups = user.groups();
    let binds = |binding: &Value| {
        binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| match s["kind"].as_str().unwrap_or("") {
                "ServiceAccount" => {
                    let User::ServiceAccount { namespace, name } = user else {
                        return false;
                    };
                    s["name"] == name.as_str()
                        && s["namespace"]
                            .as_str()
                            .unwrap_or(binding["metadata"]["namespace"].as_str().unwrap_or(""))
                            == namespace.as_str()
                }
                "User" => s["name"] == username.as_str(),
                "Group" => groups.iter().any(|g| s["name"] == g.as_str()),
                _ => false,
            })
    };
    let list = |kind: &str, ns: Option<&str>| -> Vec<Value> {
        cluster
            .resource_by_kind("rbac.authorization.k8s.io", kind)
            .map(|res| {
                cluster
                    .list(&res, ns, &Default::default(), &Default::default())
                    .0
            })
            .unwrap_or_default()
    };
    let role_rules = |role_ref: &Value, binding_ns: Option<&str>| -> Vec<Value> {
        let name = role_ref["name"].as_str().unwrap_or("");
        let found = match (role_ref["kind"].as_str(), binding_ns) {
            (Some("ClusterRole"), _) => list("ClusterRole", None)
                .into_iter()
                .find(|r| r["metadata"]["name"] == name),
            (Some("Role"), Some(ns)) => list("Role", Some(ns))
                .into_iter()
                .find(|r| r["metadata"]["name"] == name),
            _ => None,
        };
        found
            .and_then(|r| r["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    let mut rules = Vec::new();
    for binding in list("ClusterRoleBinding", None) {
        if binds(&binding) {
            rules.extend(role_rules(&binding["roleRef"], None));
        }
    }
    if !attrs.namespace.is_empty() {
        for binding in list("RoleBinding", Some(&attrs.namespace)) {
            if binds(&binding) {
                rules.extend(role_rules(&binding["roleRef"], Some(&attrs.namespace)));
            }
        }
    }
    rules.iter().any(|rule| rule_allows(rule, attrs))
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let has = |field: &str, wanted: &str| {
        rule[field]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v == "*" || v == wanted)
    };
    let resource = attrs.resource_with_sub();
    let resource_ok = rule["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| {
            r == "*"
                || r == resource
                || (!attrs.subresource.is_empty()
                    && (r == format!("*/{}", attrs.subresource)
                        || r == format!("{}/*", attrs.resource)))
        });
    let names = rule["resourceNames"].as_array().filter(|a| !a.is_empty());
    let name_ok = match names {
        None => true,
        Some(names) => !attrs.name.is_empty() && names.iter().any(|n| n == attrs.name.as_str()),
    };
    has("verbs", &attrs.verb) && has("apiGroups", &attrs.group) && resource_ok && name_ok
}

/// The 403 kube-apiserver answers when RBAC refuses `attrs` to `user`, worded as it words it:
/// `configmaps "x" is forbidden: User "system:serviceaccount:ns:sa" cannot get resource
/// "configmaps" in API group "" in the namespace "ns"`.
pub fn forbidden(user: &User, attrs: &Attributes) -> ApiError {
    let username = user.username();
    if attrs.resource.is_empty() {
        return ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "forbidden: User \"{username}\" cannot {} path \"{}\"",
                attrs.verb, attrs.path
            ),
            details: None,
        };
    }
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", attrs.namespace)
    };
    let why = format!(
        "User \"{username}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        attrs.verb,
        attrs.resource_with_sub(),
        attrs.group
    );
    let what = qualified(&attrs.group, &attrs.resource);
    let message = if attrs.name.is_empty() {
        format!("{what} is forbidden: {why}")
    } else {
        format!("{what} \"{}\" is forbidden: {why}", attrs.name)
    };
    let mut details = json!({"name": attrs.name, "kind": attrs.resource});
    if !attrs.group.is_empty() {
        details["group"] = json!(attrs.group);
    }
    if let (true, Some(d)) = (attrs.name.is_empty(), details.as_object_mut()) {
        d.remove("name");
    }
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(details),
    }
}

/// Authorizes `attrs` for `user`: `Err` is the 403 to answer.
pub fn authorize(cluster: &Cluster, user: &User, attrs: &Attributes) -> Result<(), ApiError> {
    if allows(cluster, user, attrs) {
        Ok(())
    } else {
        Err(forbidden(user, attrs))
    }
}

/// The requests this module answers itself instead of the object store: TokenRequests
/// (`serviceaccounts/NAME/token`) and SelfSubjectAccessReviews. `None`: not one of them.
pub fn special(
    cluster: &Cluster,
    tokens: &Tokens,
    user: &User,
    attrs: &Attributes,
    body: &[u8],
) -> Option<Result<(u16, Value), ApiError>> {
    let parse = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        if body.starts_with(b"k8s\0") {
            // kubectl 1.32+ sends both kinds as protobuf.
            return crate::protobuf::decode(body);
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("json parse error: {e}")))
    };
    match (
        attrs.group.as_str(),
        attrs.resource.as_str(),
        attrs.subresource.as_str(),
    ) {
        ("", "serviceaccounts", "token") if attrs.verb == "create" => {
            Some(parse().and_then(|req| token_request(cluster, tokens, attrs, &req)))
        }
        ("", "serviceaccounts", "token") => {
            Some(Err(ApiError::method_not_allowed(attrs.verb.as_str())))
        }
        ("authorization.k8s.io", "selfsubjectaccessreviews", "") if attrs.verb == "create" => {
            Some(parse().map(|req| (201, access_review(cluster, user, req))))
        }
        ("authorization.k8s.io", "selfsubjectaccessreviews", _) => {
            Some(Err(ApiError::method_not_allowed(attrs.verb.as_str())))
        }
        _ => None,
    }
}

fn token_request(
    cluster: &Cluster,
    tokens: &Tokens,
    attrs: &Attributes,
    req: &Value,
) -> Result<(u16, Value), ApiError> {
    let seconds = req["spec"]["expirationSeconds"].as_u64().unwrap_or(3600);
    if seconds < 600 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            &attrs.name,
            &[(
                "spec.expirationSeconds".into(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: {seconds}: may not specify a duration less than 10 minutes"
                ),
            )],
        ));
    }
    let (token, expires) = tokens.issue(cluster, &attrs.namespace, &attrs.name, seconds)?;
    let audiences = req["spec"]["audiences"]
        .as_array()
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| vec![json!("https://kubernetes.default.svc.cluster.local")]);
    Ok((
        201,
        json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": attrs.name, "namespace": attrs.namespace,
                         "creationTimestamp": crate::time::now_rfc3339()},
            "spec": {"audiences": audiences, "expirationSeconds": seconds,
                     "boundObjectRef": req["spec"]["boundObjectRef"].clone()},
            "status": {"token": token, "expirationTimestamp": crate::time::format_unix(expires)},
        }),
    ))
}

fn access_review(cluster: &Cluster, user: &User, mut review: Value) -> Value {
    let spec = &review["spec"];
    let attrs = if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let s = |k: &str| ra[k].as_str().unwrap_or("").to_string();
        Attributes {
            verb: s("verb"),
            group: s("group"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: s("namespace"),
            name: s("name"),
            path: String::new(),
        }
    } else {
        let nra = &spec["nonResourceAttributes"];
        Attributes {
            verb: nra["verb"].as_str().unwrap_or("").to_string(),
            path: nra["path"].as_str().unwrap_or("").to_string(),
            ..Attributes::default()
        }
    };
    let allowed = allows(cluster, user, &attrs);
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = if allowed {
        json!({"allowed": true, "reason": match user {
            User::Admin => "",
            User::ServiceAccount { .. } => "RBAC: allowed by a binding of the service account",
        }})
    } else {
        json!({"allowed": false})
    };
    review
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa() -> User {
        User::ServiceAccount {
            namespace: "shop".into(),
            name: "canary".into(),
        }
    }

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "shop".into(),
            name: name.into(),
            path: String::new(),
        }
    }

    #[test]
    fn forbidden_is_worded_as_the_apiserver_words_it() {
        let e = forbidden(&sa(), &attrs("get", "", "configmaps", "", "canary-web"));
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "configmaps \"canary-web\" is forbidden: User \"system:serviceaccount:shop:canary\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"shop\""
        );
        let e = forbidden(
            &sa(),
            &attrs("list", "networking.istio.io", "virtualservices", "", ""),
        );
        assert_eq!(
            e.message,
            "virtualservices.networking.istio.io is forbidden: User \"system:serviceaccount:shop:canary\" cannot list resource \"virtualservices\" in API group \"networking.istio.io\" in the namespace \"shop\""
        );
        let e = forbidden(
            &sa(),
            &attrs("patch", "apps", "deployments", "scale", "web"),
        );
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:shop:canary\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"shop\""
        );
        let mut cluster_scoped = attrs("list", "", "namespaces", "", "");
        cluster_scoped.namespace.clear();
        assert_eq!(
            forbidden(&sa(), &cluster_scoped).message,
            "namespaces is forbidden: User \"system:serviceaccount:shop:canary\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        );
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let rule = json!({"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"],
                          "verbs": ["get", "patch"]});
        assert!(rule_allows(
            &rule,
            &attrs("get", "apps", "deployments", "", "web")
        ));
        assert!(rule_allows(
            &rule,
            &attrs("patch", "apps", "deployments", "scale", "web")
        ));
        assert!(!rule_allows(
            &rule,
            &attrs("patch", "apps", "deployments", "status", "web")
        ));
        assert!(!rule_allows(
            &rule,
            &attrs("list", "apps", "deployments", "", "")
        ));
        assert!(!rule_allows(
            &rule,
            &attrs("get", "", "deployments", "", "web")
        ));
        let named = json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"],
                           "resourceNames": ["canary-web"]});
        assert!(rule_allows(
            &named,
            &attrs("update", "", "configmaps", "", "canary-web")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("update", "", "configmaps", "", "other")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("list", "", "configmaps", "", "")
        ));
        let wild = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(rule_allows(
            &wild,
            &attrs("create", "", "serviceaccounts", "token", "x")
        ));
    }
}
