//! Built-in behaviour beyond storage: defaulting, the emulated kubelet (pods run and are ready),
//! a minimal Deployment controller, cascading deletion and CRD registration.

use crate::cluster::{safe_chars, Cluster, ObjectRef};
use crate::resources::ResourceInfo;
use crate::time::now_rfc3339;
use serde_json::{json, Value};
use std::sync::Arc;

const MANAGER: &str = "kube-controller-manager";

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        if m.get(key).is_none_or(|v| v.is_null()) {
            m.insert(key.into(), value);
        }
    }
}

/// Applies the apiserver's defaults for built-in kinds (a useful subset).
pub fn default_object(cluster: &mut Cluster, res: &ResourceInfo, obj: &mut Value, creating: bool) {
    if res.is_custom() {
        return;
    }
    match (res.group.as_str(), res.kind.as_str()) {
        ("apps", "Deployment") => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                return;
            }
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("", "Pod") => {
            default_pod_spec(&mut obj["spec"]);
            if creating && obj["spec"].is_object() {
                set_default(&mut obj["spec"], "nodeName", json!("emulated-node"));
            }
            if creating {
                let ip = format!("10.244.0.{}", cluster.resource_version() % 250 + 2);
                obj["status"] = running_pod_status(&obj["spec"], &ip);
            }
        }
        ("", "Service") => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                obj["spec"] = json!({});
            }
            let spec = &mut obj["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            if creating && spec["type"] != "ExternalName" && spec["clusterIP"].is_null() {
                let n = cluster.resource_version() + 1;
                let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
                if p["targetPort"].is_null() {
                    p["targetPort"] = p["port"].clone();
                }
            }
        }
        ("", "Namespace") => {
            set_default(obj, "spec", json!({"finalizers": ["kubernetes"]}));
            obj["status"] = json!({"phase": "Active"});
            let name = obj["metadata"]["name"].clone();
            if let Some(labels) = obj["metadata"]
                .as_object_mut()
                .map(|m| m.entry("labels").or_insert(json!({})))
            {
                set_default(labels, "kubernetes.io/metadata.name", name);
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let names = obj["spec"]["names"].clone();
            let mut accepted = names.clone();
            set_default(
                &mut accepted,
                "singular",
                json!(names["kind"].as_str().unwrap_or("").to_lowercase()),
            );
            set_default(
                &mut accepted,
                "listKind",
                json!(format!("{}List", names["kind"].as_str().unwrap_or(""))),
            );
            set_default(
                &mut obj["spec"]["names"],
                "singular",
                accepted["singular"].clone(),
            );
            set_default(
                &mut obj["spec"]["names"],
                "listKind",
                accepted["listKind"].clone(),
            );
            let now = now_rfc3339();
            let stored: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect();
            obj["status"] = json!({
                "acceptedNames": accepted,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
                ],
                "storedVersions": stored,
            });
        }
        _ => {}
    }
}

fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    for c in spec["containers"].as_array_mut().into_iter().flatten() {
        set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
        set_default(c, "terminationMessagePolicy", json!("File"));
        let latest = c["image"].as_str().is_some_and(|i| {
            !i.rsplit('/').next().unwrap_or("").contains(':') || i.ends_with(":latest")
        });
        set_default(
            c,
            "imagePullPolicy",
            json!(if latest { "Always" } else { "IfNotPresent" }),
        );
        set_default(c, "resources", json!({}));
        for p in c["ports"].as_array_mut().into_iter().flatten() {
            set_default(p, "protocol", json!("TCP"));
        }
    }
}

/// The status the emulated kubelet reports: Running and Ready.
fn running_pod_status(spec: &Value, ip: &str) -> Value {
    let now = now_rfc3339();
    let statuses: Vec<Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true, "started": true,
                   "restartCount": 0, "state": {"running": {"startedAt": now}}})
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    json!({
        "phase": "Running",
        "conditions": [cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "hostIP": "10.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "qosClass": "BestEffort",
        "containerStatuses": statuses,
    })
}

/// Runs after every stored write.
pub fn after_write(cluster: &mut Cluster, res: &ResourceInfo, key: &ObjectRef, obj: &Arc<Value>) {
    match (res.group.as_str(), res.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => cluster.refresh_resources(),
        ("apps", "Deployment") => reconcile_deployment(cluster, key, obj),
        _ => {}
    }
}

/// Runs after a deletion: cascades to namespaced objects, owned pods, custom resources.
pub fn after_delete(
    cluster: &mut Cluster,
    res: &ResourceInfo,
    key: &ObjectRef,
    old: &Value,
    propagation: &str,
) {
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Namespace") => {
            let doomed: Vec<ObjectRef> = cluster
                .snapshot()
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect();
            for k in doomed {
                cluster.remove(&k);
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let group = old["spec"]["group"].as_str().unwrap_or("").to_string();
            let plural = old["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or("")
                .to_string();
            for (k, _) in cluster.stored_of(&group, &plural, None) {
                cluster.remove(&k);
            }
            cluster.refresh_resources();
        }
        _ => {}
    }
    // Garbage collection of dependents (owner references by uid).
    let uid = old["metadata"]["uid"].as_str().unwrap_or("").to_string();
    if uid.is_empty() {
        return;
    }
    let dependents: Vec<(ObjectRef, Arc<Value>)> = cluster
        .snapshot()
        .iter()
        .filter(|(k, o)| {
            (key.namespace.is_empty() || k.namespace == key.namespace)
                && o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
        })
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (k, o) in dependents {
        if propagation == "Orphan" {
            let Some(dep_res) = cluster
                .resources()
                .iter()
                .find(|r| r.group == k.group && r.plural == k.plural && r.storage)
                .cloned()
            else {
                continue;
            };
            let mut o = (*o).clone();
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != uid.as_str());
            }
            let _ = cluster.put_internal(&dep_res, k, o, "", "kube-controller-manager");
        } else {
            cluster.remove(&k);
        }
    }
    // A deleted pod of a Deployment is replaced.
    if res.kind == "Pod" && res.group.is_empty() {
        if let Some(owner) = old["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["kind"] == "Deployment"))
        {
            let dkey = ObjectRef {
                group: "apps".into(),
                plural: "deployments".into(),
                namespace: key.namespace.clone(),
                name: owner["name"].as_str().unwrap_or("").into(),
            };
            if let Some(d) = cluster.snapshot().get(&dkey).cloned() {
                reconcile_deployment(cluster, &dkey, &d);
            }
        }
    }
}

/// The `pod-template-hash` of a pod template.
pub fn template_hash(template: &Value) -> String {
    // FNV-1a over the canonical JSON, rendered in the safe alphabet like the controller does.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in template.to_string().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    safe_chars(h, 10)
}

/// Makes the Deployment's pods match its template and replicas, then updates its status.
pub fn reconcile_deployment(cluster: &mut Cluster, key: &ObjectRef, deploy: &Value) {
    let Some(pod_res) = cluster.resource_by_kind("", "Pod") else {
        return;
    };
    let Some(dep_res) = cluster.resource_by_kind("apps", "Deployment") else {
        return;
    };
    let uid = deploy["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let template = &deploy["spec"]["template"];
    let hash = template_hash(template);
    let replicas = deploy["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
    let owned: Vec<(ObjectRef, Arc<Value>)> = cluster
        .stored_of("", "pods", Some(&key.namespace))
        .into_iter()
        .filter(|(_, p)| {
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["uid"] == uid.as_str()))
        })
        .collect();
    let (current, stale): (Vec<_>, Vec<_>) = owned
        .into_iter()
        .partition(|(_, p)| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str());
    for (k, _) in &stale {
        cluster.remove(k);
    }
    for (k, _) in current.iter().skip(replicas) {
        cluster.remove(k);
    }
    let mut count = current.len().min(replicas);
    while count < replicas {
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels["pod-template-hash"] = json!(hash);
        let suffix = template_hash(&json!([key.name, hash, cluster.resource_version()]));
        let name = format!("{}-{}-{}", key.name, hash, &suffix[..5]);
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": format!("{}-{}-", key.name, hash),
                "namespace": key.namespace,
                "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": key.name, "uid": uid,
                                     "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": template["spec"].clone(),
        });
        if let Some(a) = template["metadata"].get("annotations") {
            pod["metadata"]["annotations"] = a.clone();
        }
        let pkey = ObjectRef {
            group: String::new(),
            plural: "pods".into(),
            namespace: key.namespace.clone(),
            name,
        };
        if cluster
            .put_internal(&pod_res, pkey, pod, "", MANAGER)
            .is_err()
        {
            break;
        }
        count += 1;
    }
    let Some(latest) = cluster.snapshot().get(key).cloned() else {
        return;
    };
    let now = now_rfc3339();
    let status = json!({
        "observedGeneration": latest["metadata"]["generation"],
        "replicas": count,
        "updatedReplicas": count,
        "readyReplicas": count,
        "availableReplicas": count,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": format!("ReplicaSet \"{}-{}\" has successfully progressed.", key.name, hash), "lastUpdateTime": now, "lastTransitionTime": now}
        ],
    });
    let same = |a: &Value, b: &Value| {
        [
            "observedGeneration",
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ]
        .iter()
        .all(|f| a[f] == b[f])
    };
    if same(&latest["status"], &status) {
        return;
    }
    let mut obj = (*latest).clone();
    obj["status"] = status;
    let _ = cluster.put_internal(&dep_res, key.clone(), obj, "status", MANAGER);
}
