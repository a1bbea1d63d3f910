//! The kinds the plugin reads and writes, with their REST names, so no discovery round trip is
//! needed for them.

use kube::core::{ApiResource, GroupVersionKind};

/// A kind the plugin knows: its API resource and whether it is namespaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// API group (empty for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name.
    pub plural: &'static str,
}

/// Istio `VirtualService` (networking.istio.io/v1).
pub const VIRTUAL_SERVICE: Kind = Kind {
    group: "networking.istio.io",
    version: "v1",
    kind: "VirtualService",
    plural: "virtualservices",
};
/// Istio `DestinationRule` (networking.istio.io/v1).
pub const DESTINATION_RULE: Kind = Kind {
    group: "networking.istio.io",
    version: "v1",
    kind: "DestinationRule",
    plural: "destinationrules",
};
/// Istio `Gateway` (networking.istio.io/v1).
pub const GATEWAY: Kind = Kind {
    group: "networking.istio.io",
    version: "v1",
    kind: "Gateway",
    plural: "gateways",
};
/// Istio `PeerAuthentication` (security.istio.io/v1).
pub const PEER_AUTHENTICATION: Kind = Kind {
    group: "security.istio.io",
    version: "v1",
    kind: "PeerAuthentication",
    plural: "peerauthentications",
};
/// `ConfigMap` (v1): the release state.
pub const CONFIG_MAP: Kind = Kind {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
};
/// `Deployment` (apps/v1).
pub const DEPLOYMENT: Kind = Kind {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
};
/// `Service` (v1).
pub const SERVICE: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
};
/// `Pod` (v1).
pub const POD: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
};

/// `HorizontalPodAutoscaler` (autoscaling/v2): a cloned canary starts at its minReplicas.
pub const HORIZONTAL_POD_AUTOSCALER: Kind = Kind {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
};

const ALL: [Kind; 9] = [
    VIRTUAL_SERVICE,
    DESTINATION_RULE,
    GATEWAY,
    PEER_AUTHENTICATION,
    CONFIG_MAP,
    DEPLOYMENT,
    SERVICE,
    POD,
    HORIZONTAL_POD_AUTOSCALER,
];

impl Kind {
    /// The `apiVersion` string.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kube-rs dynamic resource.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }

    /// Find the known kind for an object's `apiVersion` and `kind`.
    pub fn lookup(api_version: &str, kind: &str) -> Option<Kind> {
        ALL.into_iter()
            .find(|k| k.kind == kind && k.api_version() == api_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_matches_api_version_and_kind() {
        assert_eq!(
            Kind::lookup("networking.istio.io/v1", "VirtualService"),
            Some(VIRTUAL_SERVICE)
        );
        assert_eq!(Kind::lookup("v1", "ConfigMap"), Some(CONFIG_MAP));
        assert_eq!(
            Kind::lookup("networking.istio.io/v1beta1", "VirtualService"),
            None
        );
        assert_eq!(DEPLOYMENT.api_resource().api_version, "apps/v1");
    }
}
