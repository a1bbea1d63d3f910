//! Creating the canary Deployment by cloning the stable one (seed 001): same pod template, the
//! canary version label on selector and template, the new image, the same replicas.
//!
//! A pure function over JSON so it is tested without a cluster.

use serde_json::{json, Map, Value};

use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL};

/// Annotation naming the Deployment a canary was cloned from.
pub const CLONED_FROM_ANNOTATION: &str = "canary.kubectl.dev/cloned-from";

/// What to clone and how.
#[derive(Debug, Clone)]
pub struct CloneRequest<'a> {
    /// The stable Deployment as read from the cluster.
    pub stable: &'a Value,
    /// The service the Deployment backs (used to pick the container and the name).
    pub service: &'a str,
    /// The version label key (usually `version`).
    pub version_label: &'a str,
    /// The stable version (as in the stable pods' version label).
    pub stable_version: &'a str,
    /// The canary version.
    pub canary_version: &'a str,
    /// The canary image.
    pub image: &'a str,
    /// Replicas for the canary; `None` copies the stable Deployment's.
    pub replicas: Option<i64>,
}

/// Why a Deployment cannot be cloned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloneError {
    /// The stable Deployment lacks a field cloning needs.
    #[error("Deployment {name}: {field} is missing")]
    Missing {
        /// The Deployment's name.
        name: String,
        /// The JSON path of the missing field.
        field: &'static str,
    },
    /// The stable Deployment's selector does not include the version label, so its pods and the
    /// canary's would overlap.
    #[error("Deployment {name}: spec.selector.matchLabels has no {label:?} key, so it would also select the canary's pods; add the version label to the stable Deployment's selector (this needs a re-create) or create the canary Deployment yourself and drop `image` from the spec")]
    SelectorWithoutVersion {
        /// The Deployment's name.
        name: String,
        /// The version label key.
        label: String,
    },
    /// No container could be chosen for the new image.
    #[error("Deployment {name}: cannot tell which container gets the image: none is named {service:?} and there are several ({containers})")]
    AmbiguousContainer {
        /// The Deployment's name.
        name: String,
        /// The service name tried.
        service: String,
        /// The containers present.
        containers: String,
    },
}

/// The name of the canary Deployment: the stable name with its version suffix swapped for the
/// canary's (`reviews-v1` → `reviews-v3`, `voting-app-1-0` → `voting-app-2-0`), otherwise
/// `<stable name>-<canary version slug>`.
pub fn canary_name(stable_name: &str, stable_version: &str, canary_version: &str) -> String {
    let slug = |v: &str| v.to_ascii_lowercase().replace(['.', '_'], "-");
    let (stable_slug, canary_slug) = (slug(stable_version), slug(canary_version));
    for (from, to) in [
        (format!("-{stable_slug}"), format!("-{canary_slug}")),
        (format!("-v{stable_slug}"), format!("-v{canary_slug}")),
    ] {
        if let Some(base) = stable_name.strip_suffix(&from) {
            return format!("{base}{to}");
        }
    }
    let canary_slug = if canary_slug.starts_with(|c: char| c.is_ascii_digit()) {
        format!("v{canary_slug}")
    } else {
        canary_slug
    };
    format!("{stable_name}-{canary_slug}")
}

/// Build the canary Deployment manifest (ready for server-side apply) from the stable one.
pub fn canary_deployment(req: &CloneRequest<'_>) -> Result<Value, CloneError> {
    let stable = req.stable;
    let stable_name = stable
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let missing = |field| CloneError::Missing {
        name: stable_name.clone(),
        field,
    };
    let selector = stable
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .ok_or_else(|| missing("spec.selector.matchLabels"))?;
    if !selector.contains_key(req.version_label) {
        return Err(CloneError::SelectorWithoutVersion {
            name: stable_name,
            label: req.version_label.to_string(),
        });
    }
    let mut template = stable
        .pointer("/spec/template")
        .cloned()
        .ok_or_else(|| missing("spec.template"))?;
    set_label(&mut template, req.version_label, req.canary_version);
    set_image(&mut template, req, &stable_name)?;

    let mut selector = selector.clone();
    selector.insert(
        req.version_label.to_string(),
        Value::String(req.canary_version.to_string()),
    );
    let mut labels = stable
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if labels.contains_key(req.version_label) {
        labels.insert(
            req.version_label.to_string(),
            Value::String(req.canary_version.to_string()),
        );
    }
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());

    let mut spec = Map::new();
    let replicas = req
        .replicas
        .or_else(|| stable.pointer("/spec/replicas").and_then(Value::as_i64))
        .unwrap_or(1);
    spec.insert("replicas".into(), json!(replicas));
    spec.insert("selector".into(), json!({ "matchLabels": selector }));
    spec.insert("template".into(), template);
    // Carry the rollout behaviour over; everything else in spec is template or status-like.
    for key in [
        "strategy",
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        if let Some(v) = stable.pointer(&format!("/spec/{key}")) {
            spec.insert(key.into(), v.clone());
        }
    }

    let mut metadata = Map::new();
    metadata.insert(
        "name".into(),
        json!(canary_name(
            &stable_name,
            req.stable_version,
            req.canary_version
        )),
    );
    if let Some(ns) = stable.pointer("/metadata/namespace") {
        metadata.insert("namespace".into(), ns.clone());
    }
    metadata.insert("labels".into(), Value::Object(labels));
    metadata.insert(
        "annotations".into(),
        json!({ CLONED_FROM_ANNOTATION: stable_name }),
    );
    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": spec,
    }))
}

fn set_label(template: &mut Value, key: &str, value: &str) {
    let labels = template
        .as_object_mut()
        .and_then(|t| {
            t.entry("metadata")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        })
        .and_then(|m| {
            m.entry("labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        });
    if let Some(labels) = labels {
        labels.insert(key.to_string(), Value::String(value.to_string()));
    }
}

fn set_image(
    template: &mut Value,
    req: &CloneRequest<'_>,
    stable_name: &str,
) -> Result<(), CloneError> {
    let containers = template
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| CloneError::Missing {
            name: stable_name.to_string(),
            field: "spec.template.spec.containers",
        })?;
    let index = if containers.len() == 1 {
        0
    } else {
        containers
            .iter()
            .position(|c| c.get("name").and_then(Value::as_str) == Some(req.service))
            .ok_or_else(|| CloneError::AmbiguousContainer {
                name: stable_name.to_string(),
                service: req.service.to_string(),
                containers: containers
                    .iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?
    };
    if let Some(container) = containers[index].as_object_mut() {
        container.insert("image".into(), Value::String(req.image.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nginx_v1() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx-v1", "namespace": "demo", "uid": "x", "resourceVersion": "7",
                         "labels": {"app": "nginx", "version": "v1"},
                         "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "nginx", "version": "v1"}},
                     "strategy": {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": {"app": "nginx", "version": "v1"}},
                                  "spec": {"containers": [
                                      {"name": "nginx", "image": "nginx:1.14", "ports": [{"containerPort": 80}]},
                                      {"name": "log-shipper", "image": "fluent-bit:2"}]}}},
            "status": {"readyReplicas": 3}
        })
    }

    fn request(stable: &Value) -> CloneRequest<'_> {
        CloneRequest {
            stable,
            service: "nginx",
            version_label: "version",
            stable_version: "v1",
            canary_version: "v2",
            image: "nginx:1.15",
            replicas: None,
        }
    }

    #[test]
    fn clone_swaps_version_and_image_and_keeps_the_rest() {
        let stable = nginx_v1();
        let canary = canary_deployment(&request(&stable)).unwrap();
        assert_eq!(canary["metadata"]["name"], "nginx-v2");
        assert_eq!(canary["metadata"]["namespace"], "demo");
        assert_eq!(canary["metadata"]["labels"]["version"], "v2");
        assert_eq!(
            canary["metadata"]["annotations"][CLONED_FROM_ANNOTATION],
            "nginx-v1"
        );
        assert!(canary["metadata"].get("uid").is_none());
        assert!(canary["metadata"].get("resourceVersion").is_none());
        assert!(canary.get("status").is_none());
        assert_eq!(canary["spec"]["replicas"], 3);
        assert_eq!(canary["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(
            canary["spec"]["selector"]["matchLabels"],
            json!({"app": "nginx", "version": "v2"})
        );
        let template = &canary["spec"]["template"];
        assert_eq!(template["metadata"]["labels"]["version"], "v2");
        assert_eq!(template["spec"]["containers"][0]["image"], "nginx:1.15");
        assert_eq!(
            template["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
        assert_eq!(template["spec"]["containers"][1]["image"], "fluent-bit:2");
    }

    #[test]
    fn replicas_override_wins() {
        let stable = nginx_v1();
        let mut req = request(&stable);
        req.replicas = Some(1);
        assert_eq!(canary_deployment(&req).unwrap()["spec"]["replicas"], 1);
    }

    #[test]
    fn selector_without_version_label_is_refused() {
        let mut stable = nginx_v1();
        stable["spec"]["selector"]["matchLabels"] = json!({"app": "nginx"});
        let err = canary_deployment(&request(&stable)).unwrap_err();
        assert!(
            matches!(err, CloneError::SelectorWithoutVersion { .. }),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("would also select the canary's pods"));
    }

    #[test]
    fn several_containers_none_named_after_the_service_is_ambiguous() {
        let mut stable = nginx_v1();
        stable["spec"]["template"]["spec"]["containers"][0]["name"] = json!("web");
        let err = canary_deployment(&request(&stable)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment nginx-v1: cannot tell which container gets the image: none is named \"nginx\" and there are several (web, log-shipper)"
        );
    }

    #[test]
    fn canary_names_follow_the_stable_naming() {
        assert_eq!(canary_name("reviews-v1", "v1", "v3"), "reviews-v3");
        assert_eq!(
            canary_name("voting-app-1-0", "1.0", "2.0"),
            "voting-app-2-0"
        );
        assert_eq!(
            canary_name("analytics-v1-0", "1.0", "2.0"),
            "analytics-v2-0"
        );
        assert_eq!(canary_name("nginx", "1.14", "1.15"), "nginx-v1-15");
        assert_eq!(canary_name("web", "stable", "next"), "web-next");
    }
}
