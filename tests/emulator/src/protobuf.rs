//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into the
//! same `serde_json::Value` the JSON path produces.
//!
//! kubectl's typed clients (`kubectl create namespace|configmap|secret|deployment|service`) send
//! protobuf. A body is the magic `k8s\0` followed by a `runtime.Unknown` envelope
//! (`typeMeta = 1 {apiVersion = 1, kind = 2}`, `raw = 2`, `contentEncoding = 3`,
//! `contentType = 4`); `raw` is the object's message. The object is decoded by a hand-written
//! table of message descriptors whose field numbers are those of Kubernetes' `generated.proto`
//! files. Go's JSON encoding is mirrored: zero scalars are dropped unless the Go field is a
//! pointer or has no `omitempty`; structs that are present appear (as `{}` when empty).
//!
//! Anything the table does not describe (a kind, a field number) is refused with 415 naming the
//! message and field, never dropped; malformed input is a 400.

use crate::error::ApiError;
use serde_json::{Map, Value};

/// The protobuf media type of Kubernetes' API machinery.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// The kinds this decoder accepts, as `(apiVersion, kind)`.
pub const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
];

/// Decodes a protobuf request body into the JSON object it stands for (`apiVersion` and `kind`
/// included). Malformed input is a 400; a kind, field or encoding the decoder does not know is a
/// 415 that says to send JSON.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("protobuf body does not start with the k8s\\0 magic"))?;
    let mut r = Reader::new(rest);
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) =
        (String::new(), String::new(), &[]);
    while !r.done() {
        let (num, wt) = r.key()?;
        match num {
            1 => {
                let mut t = Reader::new(r.bytes(wt, "Unknown.typeMeta")?);
                while !t.done() {
                    let (n, w) = t.key()?;
                    match n {
                        1 => api_version = t.string(w, "TypeMeta.apiVersion")?,
                        2 => kind = t.string(w, "TypeMeta.kind")?,
                        other => return Err(unknown_field("TypeMeta", other)),
                    }
                }
            }
            2 => raw = r.bytes(wt, "Unknown.raw")?,
            3 => {
                let enc = r.string(wt, "Unknown.contentEncoding")?;
                if !enc.is_empty() {
                    return Err(unsupported(format!(
                        "protobuf content encoding {enc:?} is not supported by kube-emulator; send JSON"
                    )));
                }
            }
            4 => {
                r.string(wt, "Unknown.contentType")?;
            }
            other => return Err(unknown_field("Unknown", other)),
        }
    }
    let msg = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "ConfigMap") => &CONFIG_MAP,
        ("v1", "Secret") => &SECRET,
        ("v1", "Service") => &SERVICE,
        ("v1", "Pod") => &POD,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        ("authentication.k8s.io/v1", "TokenRequest") => &TOKEN_REQUEST,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => &SELF_SUBJECT_ACCESS_REVIEW,
        _ => {
            return Err(unsupported(format!(
                "protobuf bodies of kind {kind:?} (apiVersion {api_version:?}) are not supported by kube-emulator; send JSON"
            )))
        }
    };
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    obj.extend(decode_message(msg, raw)?);
    Ok(Value::Object(obj))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("protobuf decode error: {}", message.into()))
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(415, "UnsupportedMediaType", message)
}

fn unknown_field(message: &str, num: u64) -> ApiError {
    unsupported(format!(
        "protobuf field {num} of message {message} is not supported by kube-emulator; send JSON"
    ))
}

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

const VARINT: u8 = 0;
const LEN: u8 = 2;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }

    /// A field key: `(field number, wire type)`.
    fn key(&mut self) -> Result<(u64, u8), ApiError> {
        let k = self.varint()?;
        let num = k >> 3;
        if num == 0 {
            return Err(bad("field number 0"));
        }
        Ok((num, (k & 7) as u8))
    }

    fn expect(wt: u8, want: u8, what: &str) -> Result<(), ApiError> {
        if wt == want {
            Ok(())
        } else {
            Err(bad(format!(
                "{what}: wire type {wt} where {want} was expected"
            )))
        }
    }

    fn bytes(&mut self, wt: u8, what: &str) -> Result<&'a [u8], ApiError> {
        Self::expect(wt, LEN, what)?;
        let len = usize::try_from(self.varint()?).map_err(|_| bad("length overflow"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad(format!("{what}: truncated (length {len})")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn string(&mut self, wt: u8, what: &str) -> Result<String, ApiError> {
        let b = self.bytes(wt, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad(format!("{what}: invalid UTF-8")))
    }
}

// ---------------------------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------------------------

/// What a field holds.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    I32,
    I64,
    /// `bytes`, shown as base64 in JSON.
    Bytes,
    /// `bytes` holding a JSON document (`FieldsV1.Raw`).
    Json,
    Msg(&'static Msg),
}

/// How often a field occurs.
#[derive(Clone, Copy, PartialEq)]
enum Card {
    One,
    Repeated,
    /// A `map<string, T>`: entries are messages `{key = 1; value = 2}`.
    Map,
}

/// How a decoded message becomes JSON.
#[derive(Clone, Copy, PartialEq)]
enum Conv {
    /// An object with a member per field.
    Object,
    /// `metav1.Time {seconds = 1, nanos = 2}`: RFC 3339 string, `null` when zero.
    Time,
    /// `intstr.IntOrString {type = 1, intVal = 2, strVal = 3}`: a number or a string.
    IntOrString,
    /// `resource.Quantity {string = 1}`: the string.
    Quantity,
    /// `metav1.FieldsV1 {Raw = 1}`: the JSON document in `Raw`.
    FieldsV1,
}

#[derive(Clone, Copy)]
struct F {
    num: u64,
    name: &'static str,
    ty: Ty,
    card: Card,
    /// Keep zero values: the Go field is a pointer or its JSON tag has no `omitempty`.
    keep_zero: bool,
}

impl F {
    const fn keep(mut self) -> F {
        self.keep_zero = true;
        self
    }
}

const fn one(num: u64, name: &'static str, ty: Ty) -> F {
    F {
        num,
        name,
        ty,
        card: Card::One,
        keep_zero: false,
    }
}

const fn rep(num: u64, name: &'static str, ty: Ty) -> F {
    F {
        num,
        name,
        ty,
        card: Card::Repeated,
        keep_zero: false,
    }
}

const fn map(num: u64, name: &'static str, ty: Ty) -> F {
    F {
        num,
        name,
        ty,
        card: Card::Map,
        keep_zero: false,
    }
}

struct Msg {
    name: &'static str,
    conv: Conv,
    fields: &'static [F],
}

use Ty::{Bool, Bytes, Json, Str, I32, I64};

// --- k8s.io.apimachinery ---------------------------------------------------------------------

static TIME: Msg = Msg {
    name: "Time",
    conv: Conv::Time,
    fields: &[one(1, "seconds", I64).keep(), one(2, "nanos", I32).keep()],
};

static INT_OR_STRING: Msg = Msg {
    name: "IntOrString",
    conv: Conv::IntOrString,
    fields: &[
        one(1, "type", I64).keep(),
        one(2, "intVal", I32).keep(),
        one(3, "strVal", Str).keep(),
    ],
};

static QUANTITY: Msg = Msg {
    name: "Quantity",
    conv: Conv::Quantity,
    fields: &[one(1, "string", Str).keep()],
};

static FIELDS_V1: Msg = Msg {
    name: "FieldsV1",
    conv: Conv::FieldsV1,
    fields: &[one(1, "Raw", Json).keep()],
};

static OWNER_REFERENCE: Msg = Msg {
    name: "OwnerReference",
    conv: Conv::Object,
    fields: &[
        one(5, "apiVersion", Str).keep(),
        one(1, "kind", Str).keep(),
        one(3, "name", Str).keep(),
        one(4, "uid", Str).keep(),
        one(6, "controller", Bool).keep(),
        one(7, "blockOwnerDeletion", Bool).keep(),
    ],
};

static MANAGED_FIELDS_ENTRY: Msg = Msg {
    name: "ManagedFieldsEntry",
    conv: Conv::Object,
    fields: &[
        one(1, "manager", Str),
        one(2, "operation", Str),
        one(3, "apiVersion", Str),
        one(4, "time", Ty::Msg(&TIME)),
        one(6, "fieldsType", Str),
        one(7, "fieldsV1", Ty::Msg(&FIELDS_V1)),
        one(8, "subresource", Str),
    ],
};

static OBJECT_META: Msg = Msg {
    name: "ObjectMeta",
    conv: Conv::Object,
    fields: &[
        one(1, "name", Str),
        one(2, "generateName", Str),
        one(3, "namespace", Str),
        one(4, "selfLink", Str),
        one(5, "uid", Str),
        one(6, "resourceVersion", Str),
        one(7, "generation", I64),
        one(8, "creationTimestamp", Ty::Msg(&TIME)),
        one(9, "deletionTimestamp", Ty::Msg(&TIME)),
        one(10, "deletionGracePeriodSeconds", I64).keep(),
        map(11, "labels", Str),
        map(12, "annotations", Str),
        rep(13, "ownerReferences", Ty::Msg(&OWNER_REFERENCE)),
        rep(14, "finalizers", Str),
        rep(17, "managedFields", Ty::Msg(&MANAGED_FIELDS_ENTRY)),
    ],
};

static LABEL_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "LabelSelectorRequirement",
    conv: Conv::Object,
    fields: &[
        one(1, "key", Str).keep(),
        one(2, "operator", Str).keep(),
        rep(3, "values", Str),
    ],
};

static LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    conv: Conv::Object,
    fields: &[
        map(1, "matchLabels", Str),
        rep(2, "matchExpressions", Ty::Msg(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

// --- k8s.io.api.core.v1 ----------------------------------------------------------------------

static NAMESPACE_SPEC: Msg = Msg {
    name: "NamespaceSpec",
    conv: Conv::Object,
    fields: &[rep(1, "finalizers", Str)],
};

static NAMESPACE_STATUS: Msg = Msg {
    name: "NamespaceStatus",
    conv: Conv::Object,
    fields: &[one(1, "phase", Str)],
};

static NAMESPACE: Msg = Msg {
    name: "Namespace",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(2, "spec", Ty::Msg(&NAMESPACE_SPEC)),
        one(3, "status", Ty::Msg(&NAMESPACE_STATUS)),
    ],
};

// `kubectl create token` (TokenRequest) and `kubectl auth can-i` (SelfSubjectAccessReview),
// see the `rbac` module; clients send an empty `status`, which the server overwrites.
static TOKEN_REQUEST: Msg = Msg {
    name: "TokenRequest",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(2, "spec", Ty::Msg(&TOKEN_REQUEST_SPEC)),
        one(3, "status", Ty::Msg(&TOKEN_REQUEST_STATUS)),
    ],
};

static TOKEN_REQUEST_STATUS: Msg = Msg {
    name: "TokenRequestStatus",
    conv: Conv::Object,
    fields: &[
        one(1, "token", Str),
        one(2, "expirationTimestamp", Ty::Msg(&TIME)),
    ],
};

static TOKEN_REQUEST_SPEC: Msg = Msg {
    name: "TokenRequestSpec",
    conv: Conv::Object,
    fields: &[
        rep(1, "audiences", Str),
        one(4, "expirationSeconds", I64).keep(),
        one(3, "boundObjectRef", Ty::Msg(&BOUND_OBJECT_REFERENCE)),
    ],
};

static BOUND_OBJECT_REFERENCE: Msg = Msg {
    name: "BoundObjectReference",
    conv: Conv::Object,
    fields: &[
        one(1, "kind", Str),
        one(2, "apiVersion", Str),
        one(3, "name", Str),
        one(4, "uid", Str),
    ],
};

static SELF_SUBJECT_ACCESS_REVIEW: Msg = Msg {
    name: "SelfSubjectAccessReview",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(2, "spec", Ty::Msg(&SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
        one(3, "status", Ty::Msg(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
};

static SUBJECT_ACCESS_REVIEW_STATUS: Msg = Msg {
    name: "SubjectAccessReviewStatus",
    conv: Conv::Object,
    fields: &[
        one(1, "allowed", Bool),
        one(4, "denied", Bool),
        one(2, "reason", Str),
        one(3, "evaluationError", Str),
    ],
};

static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Msg = Msg {
    name: "SelfSubjectAccessReviewSpec",
    conv: Conv::Object,
    fields: &[
        one(1, "resourceAttributes", Ty::Msg(&RESOURCE_ATTRIBUTES)),
        one(
            2,
            "nonResourceAttributes",
            Ty::Msg(&NON_RESOURCE_ATTRIBUTES),
        ),
    ],
};

static RESOURCE_ATTRIBUTES: Msg = Msg {
    name: "ResourceAttributes",
    conv: Conv::Object,
    fields: &[
        one(1, "namespace", Str),
        one(2, "verb", Str),
        one(3, "group", Str),
        one(4, "version", Str),
        one(5, "resource", Str),
        one(6, "subresource", Str),
        one(7, "name", Str),
    ],
};

static NON_RESOURCE_ATTRIBUTES: Msg = Msg {
    name: "NonResourceAttributes",
    conv: Conv::Object,
    fields: &[one(1, "path", Str), one(2, "verb", Str)],
};

static CONFIG_MAP: Msg = Msg {
    name: "ConfigMap",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(4, "immutable", Bool).keep(),
        map(2, "data", Str),
        map(3, "binaryData", Bytes),
    ],
};

static SECRET: Msg = Msg {
    name: "Secret",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(5, "immutable", Bool).keep(),
        map(2, "data", Bytes),
        map(4, "stringData", Str),
        one(3, "type", Str),
    ],
};

static SERVICE_PORT: Msg = Msg {
    name: "ServicePort",
    conv: Conv::Object,
    fields: &[
        one(1, "name", Str),
        one(2, "protocol", Str),
        one(6, "appProtocol", Str).keep(),
        one(3, "port", I32).keep(),
        one(4, "targetPort", Ty::Msg(&INT_OR_STRING)),
        one(5, "nodePort", I32),
    ],
};

static SERVICE_SPEC: Msg = Msg {
    name: "ServiceSpec",
    conv: Conv::Object,
    fields: &[
        rep(1, "ports", Ty::Msg(&SERVICE_PORT)),
        map(2, "selector", Str),
        one(3, "clusterIP", Str),
        rep(18, "clusterIPs", Str),
        one(4, "type", Str),
        rep(5, "externalIPs", Str),
        one(7, "sessionAffinity", Str),
        one(8, "loadBalancerIP", Str),
        rep(9, "loadBalancerSourceRanges", Str),
        one(10, "externalName", Str),
        one(11, "externalTrafficPolicy", Str),
        one(12, "healthCheckNodePort", I32),
        one(13, "publishNotReadyAddresses", Bool),
        // 14 sessionAffinityConfig: not described
        rep(19, "ipFamilies", Str),
        one(17, "ipFamilyPolicy", Str).keep(),
        one(20, "allocateLoadBalancerNodePorts", Bool).keep(),
        one(21, "loadBalancerClass", Str).keep(),
        one(22, "internalTrafficPolicy", Str).keep(),
        one(23, "trafficDistribution", Str).keep(),
    ],
};

static LOAD_BALANCER_STATUS: Msg = Msg {
    name: "LoadBalancerStatus",
    conv: Conv::Object,
    // 1 ingress: not described
    fields: &[],
};

static SERVICE_STATUS: Msg = Msg {
    name: "ServiceStatus",
    conv: Conv::Object,
    // 2 conditions: not described
    fields: &[one(1, "loadBalancer", Ty::Msg(&LOAD_BALANCER_STATUS))],
};

static SERVICE: Msg = Msg {
    name: "Service",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(2, "spec", Ty::Msg(&SERVICE_SPEC)),
        one(3, "status", Ty::Msg(&SERVICE_STATUS)),
    ],
};

static CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    conv: Conv::Object,
    fields: &[
        one(1, "name", Str),
        one(2, "hostPort", I32),
        one(3, "containerPort", I32).keep(),
        one(4, "protocol", Str),
        one(5, "hostIP", Str),
    ],
};

static ENV_VAR: Msg = Msg {
    name: "EnvVar",
    conv: Conv::Object,
    // 3 valueFrom: not described
    fields: &[one(1, "name", Str).keep(), one(2, "value", Str)],
};

static RESOURCE_CLAIM: Msg = Msg {
    name: "ResourceClaim",
    conv: Conv::Object,
    fields: &[one(1, "name", Str).keep(), one(2, "request", Str)],
};

static RESOURCE_REQUIREMENTS: Msg = Msg {
    name: "ResourceRequirements",
    conv: Conv::Object,
    fields: &[
        map(1, "limits", Ty::Msg(&QUANTITY)),
        map(2, "requests", Ty::Msg(&QUANTITY)),
        rep(3, "claims", Ty::Msg(&RESOURCE_CLAIM)),
    ],
};

static CONTAINER: Msg = Msg {
    name: "Container",
    conv: Conv::Object,
    // not described: 9 volumeMounts, 10 livenessProbe, 11 readinessProbe, 12 lifecycle,
    // 15 securityContext, 19 envFrom, 21 volumeDevices, 22 startupProbe, 23 resizePolicy,
    // 25 restartPolicyRules
    fields: &[
        one(1, "name", Str).keep(),
        one(2, "image", Str),
        rep(3, "command", Str),
        rep(4, "args", Str),
        one(5, "workingDir", Str),
        rep(6, "ports", Ty::Msg(&CONTAINER_PORT)),
        rep(7, "env", Ty::Msg(&ENV_VAR)),
        one(8, "resources", Ty::Msg(&RESOURCE_REQUIREMENTS)),
        one(24, "restartPolicy", Str).keep(),
        one(13, "terminationMessagePath", Str),
        one(20, "terminationMessagePolicy", Str),
        one(14, "imagePullPolicy", Str),
        one(16, "stdin", Bool),
        one(17, "stdinOnce", Bool),
        one(18, "tty", Bool),
    ],
};

static LOCAL_OBJECT_REFERENCE: Msg = Msg {
    name: "LocalObjectReference",
    conv: Conv::Object,
    fields: &[one(1, "name", Str)],
};

static POD_SPEC: Msg = Msg {
    name: "PodSpec",
    conv: Conv::Object,
    // not described: 1 volumes, 14 securityContext, 18 affinity, 22 tolerations, 23 hostAliases,
    // 26 dnsConfig, 28 readinessGates, 33 topologySpreadConstraints, 34 ephemeralContainers,
    // 36 os, 38 schedulingGates, 39 resourceClaims, 43 schedulingGroup, 44 evictionResponders
    fields: &[
        rep(20, "initContainers", Ty::Msg(&CONTAINER)),
        rep(2, "containers", Ty::Msg(&CONTAINER)),
        one(3, "restartPolicy", Str),
        one(4, "terminationGracePeriodSeconds", I64).keep(),
        one(5, "activeDeadlineSeconds", I64).keep(),
        one(6, "dnsPolicy", Str),
        map(7, "nodeSelector", Str),
        one(8, "serviceAccountName", Str),
        one(9, "serviceAccount", Str),
        one(21, "automountServiceAccountToken", Bool).keep(),
        one(10, "nodeName", Str),
        one(11, "hostNetwork", Bool),
        one(12, "hostPID", Bool),
        one(13, "hostIPC", Bool),
        one(27, "shareProcessNamespace", Bool).keep(),
        rep(15, "imagePullSecrets", Ty::Msg(&LOCAL_OBJECT_REFERENCE)),
        one(16, "hostname", Str),
        one(17, "subdomain", Str),
        one(19, "schedulerName", Str),
        one(24, "priorityClassName", Str),
        one(25, "priority", I32).keep(),
        one(29, "runtimeClassName", Str).keep(),
        one(30, "enableServiceLinks", Bool).keep(),
        one(31, "preemptionPolicy", Str).keep(),
        map(32, "overhead", Ty::Msg(&QUANTITY)),
        one(35, "setHostnameAsFQDN", Bool).keep(),
        one(37, "hostUsers", Bool).keep(),
        one(40, "resources", Ty::Msg(&RESOURCE_REQUIREMENTS)),
        one(41, "hostnameOverride", Str).keep(),
    ],
};

static POD_TEMPLATE_SPEC: Msg = Msg {
    name: "PodTemplateSpec",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(2, "spec", Ty::Msg(&POD_SPEC)),
    ],
};

static POD_STATUS: Msg = Msg {
    name: "PodStatus",
    conv: Conv::Object,
    // not described: 2 conditions, 8/10/13 container statuses, 12 podIPs, 15 resourceClaimStatuses,
    // 16 hostIPs, 18 extendedResourceClaimStatus, 19 allocatedResources, 20 resources, 21, 22
    fields: &[
        one(17, "observedGeneration", I64),
        one(1, "phase", Str),
        one(3, "message", Str),
        one(4, "reason", Str),
        one(11, "nominatedNodeName", Str),
        one(5, "hostIP", Str),
        one(6, "podIP", Str),
        one(7, "startTime", Ty::Msg(&TIME)),
        one(9, "qosClass", Str),
        one(14, "resize", Str),
    ],
};

static POD: Msg = Msg {
    name: "Pod",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(2, "spec", Ty::Msg(&POD_SPEC)),
        one(3, "status", Ty::Msg(&POD_STATUS)),
    ],
};

// --- k8s.io.api.apps.v1 ----------------------------------------------------------------------

static ROLLING_UPDATE_DEPLOYMENT: Msg = Msg {
    name: "RollingUpdateDeployment",
    conv: Conv::Object,
    fields: &[
        one(1, "maxUnavailable", Ty::Msg(&INT_OR_STRING)),
        one(2, "maxSurge", Ty::Msg(&INT_OR_STRING)),
    ],
};

static DEPLOYMENT_STRATEGY: Msg = Msg {
    name: "DeploymentStrategy",
    conv: Conv::Object,
    fields: &[
        one(1, "type", Str),
        one(2, "rollingUpdate", Ty::Msg(&ROLLING_UPDATE_DEPLOYMENT)),
    ],
};

static DEPLOYMENT_SPEC: Msg = Msg {
    name: "DeploymentSpec",
    conv: Conv::Object,
    fields: &[
        one(1, "replicas", I32).keep(),
        one(2, "selector", Ty::Msg(&LABEL_SELECTOR)),
        one(3, "template", Ty::Msg(&POD_TEMPLATE_SPEC)),
        one(4, "strategy", Ty::Msg(&DEPLOYMENT_STRATEGY)),
        one(5, "minReadySeconds", I32),
        one(6, "revisionHistoryLimit", I32).keep(),
        one(7, "paused", Bool),
        one(9, "progressDeadlineSeconds", I32).keep(),
    ],
};

static DEPLOYMENT_STATUS: Msg = Msg {
    name: "DeploymentStatus",
    conv: Conv::Object,
    // not described: 6 conditions
    fields: &[
        one(1, "observedGeneration", I64),
        one(2, "replicas", I32),
        one(3, "updatedReplicas", I32),
        one(7, "readyReplicas", I32),
        one(4, "availableReplicas", I32),
        one(5, "unavailableReplicas", I32),
        one(9, "terminatingReplicas", I32).keep(),
        one(8, "collisionCount", I32).keep(),
    ],
};

static DEPLOYMENT: Msg = Msg {
    name: "Deployment",
    conv: Conv::Object,
    fields: &[
        one(1, "metadata", Ty::Msg(&OBJECT_META)),
        one(2, "spec", Ty::Msg(&DEPLOYMENT_SPEC)),
        one(3, "status", Ty::Msg(&DEPLOYMENT_STATUS)),
    ],
};

// ---------------------------------------------------------------------------------------------
// Decoding by descriptor
// ---------------------------------------------------------------------------------------------

fn decode_message(msg: &'static Msg, buf: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, wt) = r.key()?;
        let f = msg
            .fields
            .iter()
            .find(|f| f.num == num)
            .ok_or_else(|| unknown_field(msg.name, num))?;
        let what = format!("{}.{}", msg.name, f.name);
        match f.card {
            Card::One => {
                let v = value(f.ty, wt, &mut r, &what)?;
                out.insert(f.name.into(), v);
            }
            Card::Repeated => {
                let list = out
                    .entry(f.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(list) = list else {
                    return Err(bad(format!("{what}: not a list")));
                };
                if wt == LEN && matches!(f.ty, Bool | I32 | I64) {
                    // packed
                    let mut p = Reader::new(r.bytes(wt, &what)?);
                    while !p.done() {
                        list.push(value(f.ty, VARINT, &mut p, &what)?);
                    }
                } else {
                    list.push(value(f.ty, wt, &mut r, &what)?);
                }
            }
            Card::Map => {
                let mut e = Reader::new(r.bytes(wt, &what)?);
                let (mut key, mut val) = (String::new(), None);
                while !e.done() {
                    let (n, w) = e.key()?;
                    match n {
                        1 => key = e.string(w, &format!("{what} key"))?,
                        2 => val = Some(value(f.ty, w, &mut e, &format!("{what}[{key}]"))?),
                        other => return Err(unknown_field(&format!("{what} entry"), other)),
                    }
                }
                let val = match val {
                    Some(v) => v,
                    None => zero_value(f.ty)?,
                };
                let entries = out
                    .entry(f.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(entries) = entries else {
                    return Err(bad(format!("{what}: not a map")));
                };
                entries.insert(key, val);
            }
        }
    }
    // Go's encoding/json drops zero scalars of `omitempty` fields.
    for f in msg.fields {
        if f.card == Card::One && !f.keep_zero && out.get(f.name).is_some_and(is_zero_scalar) {
            out.remove(f.name);
        }
    }
    Ok(out)
}

fn is_zero_scalar(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// The value of a map entry whose `value` field is absent (proto3 map semantics).
fn zero_value(ty: Ty) -> Result<Value, ApiError> {
    Ok(match ty {
        Ty::Msg(m) => convert(m, Map::new())?,
        Str | Bytes => Value::String(String::new()),
        Json => Value::Null,
        Bool => Value::Bool(false),
        I32 | I64 => Value::from(0),
    })
}

fn value(ty: Ty, wt: u8, r: &mut Reader<'_>, what: &str) -> Result<Value, ApiError> {
    Ok(match ty {
        Str => Value::String(r.string(wt, what)?),
        Bytes => Value::String(crate::tls::base64(r.bytes(wt, what)?)),
        Json => serde_json::from_slice(r.bytes(wt, what)?)
            .map_err(|e| bad(format!("{what}: invalid JSON: {e}")))?,
        Bool => {
            Reader::expect(wt, VARINT, what)?;
            Value::Bool(r.varint()? != 0)
        }
        // int32 negatives are sign-extended to 64 bits on the wire; keep the low 32 bits.
        I32 => {
            Reader::expect(wt, VARINT, what)?;
            Value::from(r.varint()? as i32)
        }
        I64 => {
            Reader::expect(wt, VARINT, what)?;
            Value::from(r.varint()? as i64)
        }
        Ty::Msg(m) => convert(m, decode_message(m, r.bytes(wt, what)?)?)?,
    })
}

fn convert(m: &'static Msg, fields: Map<String, Value>) -> Result<Value, ApiError> {
    let int = |k: &str| fields.get(k).and_then(Value::as_i64).unwrap_or(0);
    let string = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(match m.conv {
        Conv::Object => Value::Object(fields),
        Conv::Time => {
            let secs = int("seconds");
            if secs == 0 && int("nanos") == 0 {
                Value::Null
            } else {
                let secs = u64::try_from(secs)
                    .map_err(|_| bad(format!("Time before 1970 ({secs} seconds)")))?;
                Value::String(crate::time::format_unix(secs))
            }
        }
        Conv::IntOrString => match int("type") {
            0 => Value::from(int("intVal")),
            1 => Value::String(string("strVal")),
            t => return Err(bad(format!("IntOrString type {t}"))),
        },
        Conv::Quantity => Value::String(string("string")),
        Conv::FieldsV1 => fields.get("Raw").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A tiny protobuf writer for the tests.
    #[derive(Default)]
    struct W(Vec<u8>);

    impl W {
        fn varint(mut self, mut v: u64) -> Self {
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    self.0.push(b);
                    return self;
                }
                self.0.push(b | 0x80);
            }
        }
        fn key(self, num: u64, wt: u8) -> Self {
            self.varint(num << 3 | u64::from(wt))
        }
        fn int(self, num: u64, v: i64) -> Self {
            self.key(num, VARINT).varint(v as u64)
        }
        fn bytes(self, num: u64, b: &[u8]) -> Self {
            let mut w = self.key(num, LEN).varint(b.len() as u64);
            w.0.extend_from_slice(b);
            w
        }
        fn str(self, num: u64, s: &str) -> Self {
            self.bytes(num, s.as_bytes())
        }
        fn msg(self, num: u64, m: W) -> Self {
            self.bytes(num, &m.0)
        }
        fn entry(self, num: u64, k: &str, v: &str) -> Self {
            self.msg(num, W::default().str(1, k).str(2, v))
        }
    }

    fn envelope(api_version: &str, kind: &str, raw: &W) -> Vec<u8> {
        let w = W::default()
            .msg(1, W::default().str(1, api_version).str(2, kind))
            .bytes(2, &raw.0)
            .str(3, "")
            .str(4, "");
        let mut out = MAGIC.to_vec();
        out.extend(w.0);
        out
    }

    fn meta(name: &str) -> W {
        W::default()
            .str(1, name)
            .str(2, "")
            .str(3, "")
            .int(7, 0)
            .msg(8, W::default())
    }

    #[test]
    fn every_listed_kind_decodes() {
        for (api_version, kind) in KINDS {
            let v = decode(&envelope(
                api_version,
                kind,
                &W::default().msg(1, meta("x")),
            ))
            .unwrap();
            assert_eq!(v["kind"], *kind);
            assert_eq!(v["metadata"]["name"], "x");
        }
    }

    #[test]
    fn varints_of_every_length() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let w = W::default().varint(v);
            assert_eq!(Reader::new(&w.0).varint().unwrap(), v);
        }
        assert_eq!(Reader::new(&[0x80; 11]).varint().unwrap_err().code, 400);
    }

    #[test]
    fn configmap_with_maps_and_bytes() {
        let raw = W::default()
            .msg(1, meta("c").entry(11, "app", "x"))
            .entry(2, "a", "b")
            .entry(2, "empty", "")
            .msg(3, W::default().str(1, "bin").bytes(2, &[0, 1, 2, 255]));
        let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "creationTimestamp": null, "labels": {"app": "x"}},
                "data": {"a": "b", "empty": ""},
                "binaryData": {"bin": "AAEC/w=="},
            })
        );
    }

    #[test]
    fn nested_deployment_with_negative_ints_and_int_or_string() {
        let container = W::default()
            .str(1, "web")
            .str(2, "nginx")
            .msg(6, W::default().int(3, 80).str(4, "TCP").int(2, 0))
            .msg(
                8,
                W::default().msg(
                    1,
                    W::default()
                        .str(1, "cpu")
                        .msg(2, W::default().str(1, "500m")),
                ),
            )
            .int(16, 0);
        let spec = W::default()
            .int(1, 0)
            .msg(2, W::default().entry(1, "app", "web"))
            .msg(
                3,
                W::default()
                    .msg(1, meta(""))
                    .msg(2, W::default().msg(2, container).str(3, "").int(11, 0)),
            )
            .msg(
                4,
                W::default().str(1, "RollingUpdate").msg(
                    2,
                    W::default()
                        .msg(1, W::default().int(1, 1).str(3, "25%"))
                        .msg(2, W::default().int(1, 0).int(2, 2)),
                ),
            )
            .int(6, -1)
            .int(5, 0);
        let status = W::default().int(1, -5).int(2, 0);
        let raw = W::default().msg(1, meta("web")).msg(2, spec).msg(3, status);
        let v = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "creationTimestamp": null},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"creationTimestamp": null},
                        "spec": {"containers": [{
                            "name": "web", "image": "nginx",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "500m"}},
                        }]},
                    },
                    "strategy": {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 2}},
                    "revisionHistoryLimit": -1,
                },
                "status": {"observedGeneration": -5},
            })
        );
    }

    #[test]
    fn times_and_managed_fields() {
        let raw = W::default().msg(
            1,
            W::default()
                .str(1, "n")
                .msg(8, W::default().int(1, 1_700_000_000).int(2, 5))
                .msg(
                    17,
                    W::default()
                        .str(1, "kubectl")
                        .msg(7, W::default().bytes(1, br#"{"f:data":{}}"#)),
                ),
        );
        let v = decode(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(
            v["metadata"]["managedFields"],
            json!([{"manager": "kubectl", "fieldsV1": {"f:data": {}}}])
        );
    }

    #[test]
    fn unknown_fields_kinds_and_encodings_are_refused_with_415() {
        let raw = W::default()
            .msg(1, meta("p"))
            .msg(2, W::default().msg(18, W::default()));
        let e = decode(&envelope("v1", "Pod", &raw)).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(
            e.message.contains("field 18 of message PodSpec") && e.message.contains("send JSON"),
            "{}",
            e.message
        );
        let e = decode(&envelope("v1", "Endpoints", &W::default())).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("Endpoints"), "{}", e.message);
        let mut gz = envelope("v1", "Secret", &W::default());
        gz.extend(W::default().str(3, "gzip").0);
        assert_eq!(decode(&gz).unwrap_err().code, 415);
    }

    #[test]
    fn malformed_input_is_a_400() {
        // every cut inside the envelope's last field (raw) is a truncation
        let raw = W::default().msg(1, meta("c")).entry(2, "a", "b");
        let head = W::default().msg(1, W::default().str(1, "v1").str(2, "ConfigMap"));
        let start = MAGIC.len() + head.0.len();
        let mut full = MAGIC.to_vec();
        full.extend(head.bytes(2, &raw.0).0);
        for cut in start + 1..full.len() {
            let e = decode(&full[..cut]).expect_err("truncated input must fail");
            assert_eq!(e.code, 400, "cut at {cut}: {}", e.message);
        }
        // a truncated object inside a well-formed envelope
        let cut = W(raw.0[..raw.0.len() - 1].to_vec());
        let e = decode(&envelope("v1", "ConfigMap", &cut)).unwrap_err();
        assert_eq!(e.code, 400, "{}", e.message);
        assert!(e.message.contains("truncated"), "{}", e.message);
        assert_eq!(decode(b"{\"kind\":\"x\"}").unwrap_err().code, 400);
        // a string field sent as a varint
        let raw = W::default().msg(1, W::default().int(1, 3));
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &raw)).unwrap_err().code,
            400
        );
    }
}
