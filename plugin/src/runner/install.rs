//! The runner's manifests: ServiceAccount, Role, RoleBinding and Deployment.

use serde_json::{json, Value};

use crate::cluster::rbac;
use crate::labels::{MANAGED_BY, MANAGED_BY_LABEL};

/// The name of every object `runner install` creates, and of the Lease.
pub const NAME: &str = "kubectl-canary-runner";

/// What to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Namespace of the runner (and of the releases it drives).
    pub namespace: String,
    /// Container image with `kubectl-canary` on its PATH.
    pub image: String,
    /// Replicas (one leads; the others stand by).
    pub replicas: u32,
    /// Port of `/healthz`, `/readyz` and `/metrics`.
    pub metrics_port: u16,
}

/// The objects, in apply order.
pub fn manifests(o: &InstallOptions) -> Vec<Value> {
    let labels = json!({
        "app.kubernetes.io/name": NAME,
        MANAGED_BY_LABEL: MANAGED_BY,
    });
    let meta = json!({"name": NAME, "namespace": o.namespace, "labels": labels});
    let service_account = json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta,
    });
    let mut role = rbac::role(NAME, &o.namespace, rbac::RUNNER);
    role["metadata"]["labels"] = labels.clone();
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": o.namespace}],
    });
    let probe = |path: &str| json!({"httpGet": {"path": path, "port": "metrics"}, "periodSeconds": 10, "timeoutSeconds": 2});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": o.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {
                    "labels": labels,
                    // The runner is not part of the mesh it steers.
                    "annotations": {"sidecar.istio.io/inject": "false",
                                    "prometheus.io/scrape": "true",
                                    "prometheus.io/port": o.metrics_port.to_string()},
                },
                "spec": {
                    "serviceAccountName": NAME,
                    // SIGTERM: the decision in flight finishes and the Lease is released.
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "runner",
                        "image": o.image,
                        "args": ["runner", "--namespace", o.namespace,
                                 "--metrics-address", format!("0.0.0.0:{}", o.metrics_port)],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            // A private directory below the emptyDir, which is world-writable (0777): the plugin
                            // refuses a cache directory other users could write.
                            {"name": "KUBECTL_CANARY_CACHE", "value": "/cache/kubectl-canary"},
                        ],
                        "ports": [{"name": "metrics", "containerPort": o.metrics_port}],
                        "livenessProbe": probe("/healthz"),
                        "readinessProbe": probe("/readyz"),
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                    }],
                    "volumes": [{"name": "cache", "emptyDir": {}}],
                },
            },
        },
    });
    vec![service_account, role, binding, deployment]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployment_runs_the_runner_as_its_service_account() {
        let objects = manifests(&InstallOptions {
            namespace: "shop".into(),
            image: "registry.example/kubectl-canary:0.1.0".into(),
            replicas: 2,
            metrics_port: 8080,
        });
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["ServiceAccount", "Role", "RoleBinding", "Deployment"]
        );
        let pod = &objects[3]["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], NAME);
        assert_eq!(
            pod["containers"][0]["args"],
            json!([
                "runner",
                "--namespace",
                "shop",
                "--metrics-address",
                "0.0.0.0:8080"
            ])
        );
        assert_eq!(objects[3]["spec"]["replicas"], 2);
        assert_eq!(objects[2]["subjects"][0]["namespace"], "shop");
        assert_eq!(objects[1]["rules"], rbac::rules_json(rbac::RUNNER));
    }
}
