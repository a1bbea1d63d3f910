//! A request to simulate: where it goes, what it carries, who sends it and through which gateway.

use std::collections::BTreeMap;

/// Where a request enters the routing: a sidecar (`mesh`) or an ingress gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GatewayRef {
    /// Sidecar traffic inside the mesh.
    #[default]
    Mesh,
    /// An ingress gateway: `namespace/name`, or a bare `name` (any namespace).
    Named {
        /// The gateway's namespace, when given.
        namespace: Option<String>,
        /// The gateway's name.
        name: String,
    },
}

impl GatewayRef {
    /// Parse `mesh`, `namespace/name` or `name`.
    pub fn parse(text: &str) -> GatewayRef {
        match text.split_once('/') {
            _ if text == crate::istio::MESH_GATEWAY => GatewayRef::Mesh,
            Some((ns, name)) => GatewayRef::Named {
                namespace: Some(ns.to_string()),
                name: name.to_string(),
            },
            None => GatewayRef::Named {
                namespace: None,
                name: text.to_string(),
            },
        }
    }

    /// Whether a gateway reference written in an object of namespace `object_ns` (`mesh`,
    /// `ns/name`, or `name` meaning `object_ns/name`) designates this gateway.
    pub fn is(&self, reference: &str, object_ns: &str) -> bool {
        let other = GatewayRef::parse(reference);
        match (self, other) {
            (GatewayRef::Mesh, GatewayRef::Mesh) => true,
            (
                GatewayRef::Named { namespace, name },
                GatewayRef::Named {
                    namespace: their_ns,
                    name: their_name,
                },
            ) => {
                let their_ns = their_ns.as_deref().unwrap_or(object_ns);
                *name == their_name && namespace.as_deref().is_none_or(|ns| ns == their_ns)
            }
            _ => false,
        }
    }

    /// True for sidecar traffic.
    pub fn is_mesh(&self) -> bool {
        matches!(self, GatewayRef::Mesh)
    }
}

impl std::fmt::Display for GatewayRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayRef::Mesh => f.write_str("mesh"),
            GatewayRef::Named {
                namespace: Some(ns),
                name,
            } => write!(f, "{ns}/{name}"),
            GatewayRef::Named {
                namespace: None,
                name,
            } => f.write_str(name),
        }
    }
}

/// One HTTP request as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The `Host` header without port (`reviews`, `shop.example.com`).
    pub host: String,
    /// The port, when the client sends one in the `Host` header.
    pub port: Option<u16>,
    /// Path and optional query string (`/api/users?id=1`).
    pub path: String,
    /// HTTP method.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Headers by lower-case name; cookies are folded into `cookie` as browsers send them.
    pub headers: BTreeMap<String, String>,
    /// Where the request enters: `mesh` or a gateway.
    pub gateway: GatewayRef,
    /// Labels of the calling workload (mesh traffic).
    pub source_labels: BTreeMap<String, String>,
    /// Namespace of the calling workload (mesh traffic).
    pub source_namespace: Option<String>,
    /// The namespace short hosts are resolved in (the caller's); `None` resolves them in each
    /// VirtualService's own namespace.
    pub namespace: Option<String>,
}

impl Request {
    /// `GET http://<host>/` from inside the mesh.
    pub fn new(host: impl Into<String>) -> Self {
        Request {
            host: host.into(),
            port: None,
            path: "/".to_string(),
            method: "GET".to_string(),
            scheme: "http".to_string(),
            headers: BTreeMap::new(),
            gateway: GatewayRef::Mesh,
            source_labels: BTreeMap::new(),
            source_namespace: None,
            namespace: None,
        }
    }

    /// Set the path (and query string).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Set the port of the `Host` header.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Add a header (the name is lower-cased; a repeated header is joined with `,`).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        self.headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
        self
    }

    /// Add a cookie, folded into the `cookie` header as browsers do (`a=1; b=2`).
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        let pair = format!("{name}={value}");
        self.headers
            .entry("cookie".to_string())
            .and_modify(|v| {
                v.push_str("; ");
                v.push_str(&pair);
            })
            .or_insert(pair);
        self
    }

    /// Set the gateway the request enters through.
    pub fn gateway(mut self, gateway: GatewayRef) -> Self {
        self.gateway = gateway;
        self
    }

    /// Add a label of the calling workload.
    pub fn source_label(mut self, key: &str, value: &str) -> Self {
        self.source_labels
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Set the namespace short hosts resolve in.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The `:authority` as sent: host, plus `:port` when the client sent a port.
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// The port the request is addressed to (the scheme's default when none is sent).
    pub fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    /// The path without the query string.
    pub fn uri(&self) -> &str {
        self.path.split_once('?').map_or(&self.path, |(p, _)| p)
    }

    /// Query parameters in order (no percent-decoding; Envoy compares them raw).
    pub fn query_params(&self) -> Vec<(&str, &str)> {
        let Some((_, query)) = self.path.split_once('?') else {
            return vec![];
        };
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect()
    }
}
