//! Kubernetes-shaped API errors: every failure is answered with a `meta/v1` `Status` object.

use serde_json::{json, Value};

/// An API error as the apiserver reports it (HTTP code, `reason`, message, details).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code (404, 409, 422, ...).
    pub code: u16,
    /// The machine-readable `reason` (`NotFound`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
    /// The `details` object, if any.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A `group`/`kind` pair used in error details; `kind` is the plural resource name for most errors.
fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = json!({ "name": name, "kind": kind });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

/// `pods` or `deployments.apps`: how the apiserver names a resource in messages.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    /// A plain error without details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 `<resource> "<name>" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", qualified(group, plural)),
            details: Some(details(name, group, plural)),
        }
    }

    /// 404 for a path that names no resource.
    pub fn page_not_found() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 `<resource> "<name>" already exists`.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", qualified(group, plural)),
            details: Some(details(name, group, plural)),
        }
    }

    /// 409 on a stale `resourceVersion`, with the apiserver's exact message.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
            details: Some(details(name, group, plural)),
        }
    }

    /// 422 `<Kind>.<group> "<name>" is invalid: <causes>`; each cause is `(field, reason, message)`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[(String, &str, String)]) -> Self {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let list: Vec<String> = causes
            .iter()
            .map(|(field, _, msg)| {
                if field.is_empty() {
                    msg.clone()
                } else {
                    format!("{field}: {msg}")
                }
            })
            .collect();
        let message = if list.len() == 1 {
            format!("{gk} \"{name}\" is invalid: {}", list[0])
        } else {
            format!("{gk} \"{name}\" is invalid: [{}]", list.join(", "))
        };
        let mut d = details(name, group, kind);
        d["causes"] = causes
            .iter()
            .map(|(field, reason, msg)| json!({ "reason": reason, "message": msg, "field": field }))
            .collect();
        ApiError {
            code: 422,
            reason: "Invalid",
            message,
            details: Some(d),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(verb: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({verb})"),
        )
    }

    /// 415 UnsupportedMediaType for a body in `content_type`; `accepted` lists the media types
    /// this endpoint really decodes.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {} (got {content_type:?})",
                accepted.join(", ")
            ),
        )
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large() -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// 410 Gone for a watch from a compacted resourceVersion.
    pub fn gone(rv: u64) -> Self {
        ApiError::new(410, "Expired", format!("too old resource version: {rv}"))
    }

    /// An error from a `Status` object (as built by the schema and webhook modules).
    pub fn from_status(status: &Value) -> Self {
        let reason = match status["reason"].as_str().unwrap_or("") {
            "Invalid" => "Invalid",
            "BadRequest" => "BadRequest",
            "Forbidden" => "Forbidden",
            "Conflict" => "Conflict",
            "NotFound" => "NotFound",
            _ => "InternalError",
        };
        ApiError {
            code: status["code"].as_u64().unwrap_or(500) as u16,
            reason,
            message: status["message"].as_str().unwrap_or("").to_string(),
            details: status.get("details").cloned(),
        }
    }

    /// The `Status` object the server sends for this error.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // `reason` is `omitempty`: a webhook denial carries none.
        if self.reason.is_empty() {
            if let Some(m) = s.as_object_mut() {
                m.remove("reason");
            }
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_message_matches_the_apiserver() {
        let e = ApiError::conflict("apps", "deployments", "web");
        assert_eq!(e.code, 409);
        assert_eq!(
            e.status()["message"],
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(e.status()["details"]["kind"], "deployments");
    }

    #[test]
    fn invalid_lists_each_field() {
        let e = ApiError::invalid(
            "networking.istio.io",
            "VirtualService",
            "vs",
            &[(
                "spec.hosts".into(),
                "FieldValueRequired",
                "Required value".into(),
            )],
        );
        assert_eq!(
            e.message,
            "VirtualService.networking.istio.io \"vs\" is invalid: spec.hosts: Required value"
        );
        assert_eq!(e.status()["details"]["causes"][0]["field"], "spec.hosts");
    }
}
