//! The cluster state: objects, the global resourceVersion counter, the watch event history,
//! and every verb's semantics (create, update, patch, apply, delete, list, get).

use crate::error::ApiError;
use crate::fields;
use crate::patch;
use crate::resources::{self, ResourceInfo};
use crate::selector::{FieldSelector, LabelSelector};
use crate::time::now_rfc3339;
use crate::validation::{self, FieldValidation};
use crate::wire;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Identifies a stored object: group, plural resource name, namespace (`""` if cluster-scoped), name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// All stored objects at one point in time, ordered by key.
///
/// A persistent map: cloning it is O(1) and a write to one clone copies only the O(log n) nodes
/// on the path to the changed key, so the audit log can keep the state after every request while
/// the cluster keeps writing.
pub type Objects = imbl::OrdMap<ObjectRef, Arc<Value>>;

/// One change, as sent to watchers.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// Which object.
    pub key: ObjectRef,
    /// The object after the change (before deletion for `DELETED`).
    pub object: Arc<Value>,
}

/// How many past events each resource (group and plural) keeps for watches that resume from a
/// resourceVersion. Older ones answer `410 Gone` and the client lists again, as with a real API
/// server, whose watch cache starts at 100 events per resource and grows under load.
pub const EVENT_HISTORY_PER_RESOURCE: usize = 1_000;

/// The recent events of one resource.
#[derive(Debug, Default)]
struct History {
    events: VecDeque<Arc<WatchEvent>>,
    /// The resourceVersion of the newest event dropped from the window (0: none yet).
    dropped_rv: u64,
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and compute, store nothing.
    pub dry_run: bool,
    /// `fieldManager`.
    pub manager: String,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `force` (server-side apply).
    pub force: bool,
}

/// The patch formats accepted on PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// What a successful write returns: the object and any `Warning` texts.
pub type WriteResult = Result<(Value, Vec<String>), ApiError>;

/// The emulated cluster's state machine.
pub struct Cluster {
    objects: Objects,
    /// Each stored object's serialised fields ([`wire::fields_json`]), written when it is stored.
    json: HashMap<ObjectRef, Bytes>,
    rv: u64,
    resources: Vec<ResourceInfo>,
    history: HashMap<(String, String), History>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    serial: u64,
    seed: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no confusables).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` characters of Kubernetes' safe alphabet derived from `x`.
pub fn safe_chars(mut x: u64, n: usize) -> String {
    (0..n)
        .map(|_| {
            let c = ALPHANUMS[(x % ALPHANUMS.len() as u64) as usize] as char;
            x = splitmix(x);
            c
        })
        .collect()
}

impl Cluster {
    /// An empty cluster with the default namespaces.
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        let (tx, _) = broadcast::channel(4096);
        let mut c = Cluster {
            objects: Objects::new(),
            json: HashMap::new(),
            rv: 0,
            resources: resources::builtins(),
            history: HashMap::new(),
            tx,
            serial: 0,
            seed,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let res = c.resource_by_kind("", "Namespace").expect("builtin");
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let opts = WriteOptions {
                manager: "kube-apiserver".into(),
                ..Default::default()
            };
            let _ = c.create(&res, "", obj, &opts);
        }
        c
    }

    /// Every stored object (a cheap shared snapshot, O(1)).
    pub fn snapshot(&self) -> Objects {
        self.objects.clone()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The served resources (built-ins and CRD-defined).
    pub fn resources(&self) -> &[ResourceInfo] {
        &self.resources
    }

    /// Subscribes to future watch events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }

    /// Events of resource `group`/`plural` after `rv`, or `Err` (410 Gone) if its history (the
    /// last [`EVENT_HISTORY_PER_RESOURCE`] events) no longer reaches back that far.
    pub fn events_since(
        &self,
        group: &str,
        plural: &str,
        rv: u64,
    ) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
        let Some(h) = self.history.get(&(group.to_string(), plural.to_string())) else {
            return Ok(vec![]);
        };
        if rv < h.dropped_rv {
            return Err(ApiError::gone(rv));
        }
        Ok(h.events.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Finds a served resource by group, version and plural name.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Finds a served resource by group and kind (the storage version for CRDs).
    pub fn resource_by_kind(&self, group: &str, kind: &str) -> Option<ResourceInfo> {
        let mut found = self
            .resources
            .iter()
            .filter(|r| r.group == group && r.kind == kind);
        let first = found.next()?.clone();
        Some(found.find(|r| r.storage).cloned().unwrap_or(first))
    }

    /// Finds a served resource by `apiVersion` and kind.
    pub fn resource_for(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    fn key(res: &ResourceInfo, ns: &str, name: &str) -> ObjectRef {
        ObjectRef {
            group: res.group.clone(),
            plural: res.plural.clone(),
            namespace: if res.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// The object as served under `res` (apiVersion and kind set).
    pub fn present(res: &ResourceInfo, obj: &Value) -> Value {
        let mut o = obj.clone();
        if let Some(m) = o.as_object_mut() {
            m.insert("apiVersion".into(), json!(res.api_version()));
            m.insert("kind".into(), json!(res.kind));
        }
        o
    }

    /// Reads one object.
    pub fn get(&self, res: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(res, ns, name))
            .map(|o| Self::present(res, o))
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))
    }

    /// Lists objects (all namespaces when `ns` is None) matching the selectors; returns the items
    /// (copies, as served under `res`) and the list's resourceVersion.
    pub fn list(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let (items, rv) = self.list_stored(res, ns, labels, fields);
        (items.iter().map(|o| Self::present(res, o)).collect(), rv)
    }

    /// Like [`Cluster::list`], but the items are the stored objects themselves (shared, not
    /// copied; their `apiVersion` is the storage version's: serve them with
    /// [`crate::wire::Served`]).
    pub fn list_stored(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Arc<Value>>, u64) {
        let items = self
            .matching(res, ns, labels, fields)
            .map(|(_, o)| o.clone())
            .collect();
        (items, self.rv)
    }

    /// Like [`Cluster::list_stored`], but each item is the stored object's serialised fields
    /// ([`crate::wire::fields_json`], kept since the object was stored), for
    /// [`crate::wire::List`].
    pub fn list_json(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Bytes>, u64) {
        let items = self
            .matching(res, ns, labels, fields)
            .map(|(k, o)| {
                self.json
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| wire::fields_json(o))
            })
            .collect();
        (items, self.rv)
    }

    /// The stored objects of `res` (in `ns`, or all namespaces) that match the selectors.
    fn matching<'a>(
        &'a self,
        res: &'a ResourceInfo,
        ns: Option<&'a str>,
        labels: &'a LabelSelector,
        fields: &'a FieldSelector,
    ) -> impl Iterator<Item = (&'a ObjectRef, &'a Arc<Value>)> + 'a {
        let lo = ObjectRef {
            group: res.group.clone(),
            plural: res.plural.clone(),
            namespace: ns.unwrap_or("").to_string(),
            name: String::new(),
        };
        self.objects
            .range(lo..)
            .take_while(move |(k, _)| {
                k.group == res.group
                    && k.plural == res.plural
                    && ns.is_none_or(|n| k.namespace == n)
            })
            .filter(move |(_, o)| labels.matches(o) && fields.matches(o))
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        splitmix(self.seed ^ self.serial)
    }

    fn new_uid(&mut self) -> String {
        let a = self.next_serial();
        let b = self.next_serial();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn emit(&mut self, kind: &'static str, key: ObjectRef, object: Arc<Value>) {
        let ev = Arc::new(WatchEvent {
            rv: self.rv,
            kind,
            key,
            object,
        });
        let h = self
            .history
            .entry((ev.key.group.clone(), ev.key.plural.clone()))
            .or_default();
        h.events.push_back(ev.clone());
        if h.events.len() > EVENT_HISTORY_PER_RESOURCE {
            if let Some(old) = h.events.pop_front() {
                h.dropped_rv = old.rv;
            }
        }
        let _ = self.tx.send(ev);
    }

    fn check_namespace(&self, res: &ResourceInfo, ns: &str) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        if ns.is_empty() {
            return Err(ApiError::bad_request(
                "the server could not find the requested resource: a namespace is required",
            ));
        }
        let key = ObjectRef {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        if self.objects.contains_key(&key) {
            Ok(())
        } else {
            Err(ApiError::not_found("", "namespaces", ns))
        }
    }

    /// Creates an object (`POST`).
    pub fn create(
        &mut self,
        res: &ResourceInfo,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> WriteResult {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        }
        if obj["metadata"]["name"].as_str().unwrap_or("").is_empty() {
            match obj["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    let suffix = safe_chars(self.next_serial(), 5);
                    obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &res.group,
                        &res.kind,
                        "",
                        &[(
                            "metadata.name".into(),
                            "FieldValueRequired",
                            "Required value: name or generateName is required".into(),
                        )],
                    ))
                }
            }
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.check_body_namespace(res, ns, &mut obj)?;
        self.check_namespace(res, ns)?;
        let key = Self::key(res, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&res.group, &res.plural, &name));
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("uid");
            m.remove("creationTimestamp");
            m.remove("deletionTimestamp");
        }
        self.commit(res, key, None, obj, "", opts, true)
    }

    fn check_body_namespace(
        &self,
        res: &ResourceInfo,
        ns: &str,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if res.namespaced {
            match obj["metadata"]["namespace"].as_str() {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"))
                }
                _ => obj["metadata"]["namespace"] = json!(ns),
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        Ok(())
    }

    /// Replaces an object (`PUT`), optionally its `status` subresource.
    pub fn update(
        &mut self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        mut obj: Value,
        subresource: &str,
        opts: &WriteOptions,
    ) -> WriteResult {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        }
        match obj["metadata"]["name"].as_str() {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            _ => obj["metadata"]["name"] = json!(name),
        }
        self.check_body_namespace(res, ns, &mut obj)?;
        let key = Self::key(res, ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(&res.group, &res.plural, name));
        };
        match obj["metadata"]["resourceVersion"].as_str() {
            Some(rv) if rv != old["metadata"]["resourceVersion"].as_str().unwrap_or("") => {
                return Err(ApiError::conflict(&res.group, &res.plural, name));
            }
            Some(_) => {}
            None => {
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    name,
                    &[(
                        "metadata.resourceVersion".into(),
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update".into(),
                    )],
                ))
            }
        }
        self.commit(res, key, Some(old), obj, subresource, opts, true)
    }

    /// Patches an object (`PATCH`) with any of the four patch types.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        kind: PatchType,
        body: &Value,
        subresource: &str,
        opts: &WriteOptions,
    ) -> WriteResult {
        let key = Self::key(res, ns, name);
        let old = self.objects.get(&key).cloned();
        if kind == PatchType::Apply {
            return self.apply(res, ns, name, key, old, body, opts);
        }
        let Some(old) = old else {
            return Err(ApiError::not_found(&res.group, &res.plural, name));
        };
        let mut obj = Self::present(res, &old);
        match kind {
            PatchType::Merge => patch::merge_patch(&mut obj, body),
            PatchType::Json => patch::json_patch(&mut obj, body)?,
            PatchType::Strategic => {
                if res.is_custom() {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; use --type merge or json",
                    ));
                }
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "strategic merge patch must be a JSON object",
                    ));
                }
                patch::strategic_merge_patch(res, &mut obj, body)?;
            }
            PatchType::Apply => unreachable!("handled above"),
        }
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the patched object is not a JSON object",
            ));
        }
        if obj["metadata"]["name"].as_str() != Some(name) {
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                name,
                &[(
                    "metadata.name".into(),
                    "FieldValueInvalid",
                    "Invalid value: field is immutable".into(),
                )],
            ));
        }
        match obj["metadata"]["resourceVersion"].as_str() {
            Some(rv) if rv != old["metadata"]["resourceVersion"].as_str().unwrap_or("") => {
                return Err(ApiError::conflict(&res.group, &res.plural, name));
            }
            _ => {}
        }
        self.check_body_namespace(res, ns, &mut obj)?;
        self.commit(res, key, Some(old), obj, subresource, opts, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        key: ObjectRef,
        old: Option<Arc<Value>>,
        body: &Value,
        opts: &WriteOptions,
    ) -> WriteResult {
        if opts.manager.is_empty() || opts.manager.starts_with("kube-emulator-default") {
            return Err(ApiError::bad_request(
                "PATCH requests of type ApplyPatch must have a fieldManager",
            ));
        }
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration is not a YAML or JSON object",
            ));
        }
        if body["apiVersion"].as_str() != Some(&res.api_version())
            || body["kind"].as_str() != Some(&res.kind)
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                body["apiVersion"].as_str().unwrap_or(""),
                res.api_version()
            )));
        }
        match body["metadata"]["name"].as_str() {
            Some(n) if n == name => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "metadata.name in the applied configuration must be {name:?}"
                )))
            }
        }
        let mut applied = body.clone();
        self.check_body_namespace(res, ns, &mut applied)?;
        if let Some(m) = applied["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        if let Some(old) = &old {
            if let Some(rv) = applied["metadata"]["resourceVersion"].as_str() {
                if rv != old["metadata"]["resourceVersion"].as_str().unwrap_or("") {
                    return Err(ApiError::conflict(&res.group, &res.plural, name));
                }
            }
        } else {
            self.check_namespace(res, ns)?;
        }
        let now = now_rfc3339();
        let live = old.as_ref().map(|o| Self::present(res, o));
        let merged = fields::apply(
            res,
            live.as_ref(),
            &applied,
            &opts.manager,
            opts.force,
            &now,
        )?;
        self.commit(res, key, old, merged, "", opts, false)
    }

    /// Common tail of every write: status subresource rules, defaults, validation, generation,
    /// managedFields, resourceVersion, storage and watch event, then the controllers.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        res: &ResourceInfo,
        key: ObjectRef,
        old: Option<Arc<Value>>,
        mut obj: Value,
        subresource: &str,
        opts: &WriteOptions,
        record_fields: bool,
    ) -> WriteResult {
        if !subresource.is_empty() && subresource != "status" {
            return Err(ApiError::page_not_found());
        }
        if subresource == "status" && !res.status_subresource {
            return Err(ApiError::page_not_found());
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        if let Some(old) = &old {
            if subresource == "status" {
                let mut merged = (**old).clone();
                merged["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
                if merged["status"].is_null() {
                    merged.as_object_mut().expect("object").remove("status");
                }
                if let Some(mf) = obj["metadata"].get("managedFields") {
                    merged["metadata"]["managedFields"] = mf.clone();
                }
                obj = merged;
                obj["apiVersion"] = json!(res.api_version());
            } else if res.status_subresource {
                match old.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        obj.as_object_mut().expect("object").remove("status");
                    }
                }
            }
            for f in ["uid", "creationTimestamp"] {
                obj["metadata"][f] = old["metadata"][f].clone();
            }
            if let Some(d) = old["metadata"].get("deletionTimestamp") {
                obj["metadata"]["deletionTimestamp"] = d.clone();
            }
        } else {
            if res.status_subresource {
                obj.as_object_mut().expect("object").remove("status");
            }
            obj["metadata"]["uid"] = json!(self.new_uid());
            obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        }
        crate::controller::default_object(self, res, &mut obj, old.is_none());
        let validated = validation::validate(res, obj, opts.field_validation)?;
        let mut obj = validated.object;
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("selfLink");
            // Typed (built-in) objects drop empty maps (`omitempty`).
            for f in ["labels", "annotations"] {
                if m.get(f)
                    .is_some_and(|v| v.as_object().is_some_and(|o| o.is_empty()) || v.is_null())
                {
                    m.remove(f);
                }
            }
        }
        // generation: bumped when anything outside metadata and status changes.
        let has_generation = res.is_custom()
            || matches!(
                res.kind.as_str(),
                "Deployment" | "Pod" | "CustomResourceDefinition"
            );
        if has_generation {
            let generation = match &old {
                None => 1,
                Some(o) => {
                    let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
                    if spec_part(o) != spec_part(&obj) {
                        g + 1
                    } else {
                        g
                    }
                }
            };
            obj["metadata"]["generation"] = json!(generation);
        }
        if record_fields {
            let manager = if opts.manager.is_empty() {
                "unknown".to_string()
            } else {
                opts.manager.clone()
            };
            let live = old.as_ref().map(|o| Self::present(res, o));
            fields::record_update(
                res,
                live.as_ref(),
                &mut obj,
                &manager,
                subresource,
                &now_rfc3339(),
            );
        }
        if let Some(o) = &old {
            obj["metadata"]["resourceVersion"] = o["metadata"]["resourceVersion"].clone();
            if unchanged(o, &obj) {
                return Ok((Self::present(res, o), validated.warnings));
            }
        }
        if opts.dry_run {
            return Ok((Self::present(res, &obj), validated.warnings));
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let stored = Arc::new(obj);
        self.json.insert(key.clone(), wire::fields_json(&stored));
        self.objects.insert(key.clone(), stored.clone());
        self.emit(
            if old.is_some() { "MODIFIED" } else { "ADDED" },
            key.clone(),
            stored.clone(),
        );
        crate::controller::after_write(self, res, &key, &stored);
        let out = self.objects.get(&key).cloned().unwrap_or(stored);
        Ok((Self::present(res, &out), validated.warnings))
    }

    /// Deletes an object; `propagation` is `Background`, `Foreground` or `Orphan`.
    pub fn delete(
        &mut self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        propagation: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let key = Self::key(res, ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(&res.group, &res.plural, name));
        };
        if opts.dry_run {
            return Ok(Self::present(res, &old));
        }
        self.remove(&key);
        crate::controller::after_delete(self, res, &key, &old, propagation.unwrap_or("Background"));
        Ok(Self::present(res, &old))
    }

    /// Removes a stored object and emits `DELETED` (no cascading).
    pub(crate) fn remove(&mut self, key: &ObjectRef) -> Option<Arc<Value>> {
        let old = self.objects.remove(key)?;
        self.json.remove(key);
        self.rv += 1;
        let mut gone = (*old).clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit("DELETED", key.clone(), Arc::new(gone));
        Some(old)
    }

    /// Writes an object as a controller would (internal, never fails on conflicts).
    pub(crate) fn put_internal(
        &mut self,
        res: &ResourceInfo,
        key: ObjectRef,
        obj: Value,
        subresource: &str,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let old = self.objects.get(&key).cloned();
        let opts = WriteOptions {
            manager: manager.into(),
            field_validation: FieldValidation::Ignore,
            ..Default::default()
        };
        self.commit(res, key, old, obj, subresource, &opts, true)
            .map(|(v, _)| v)
    }

    /// Objects of one resource, raw (as stored).
    pub(crate) fn stored_of(
        &self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
    ) -> Vec<(ObjectRef, Arc<Value>)> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.group == group && k.plural == plural && ns.is_none_or(|n| n == k.namespace)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Rebuilds the served resources from the stored CRDs.
    pub(crate) fn refresh_resources(&mut self) {
        let mut list = resources::builtins();
        for (_, crd) in self.stored_of("apiextensions.k8s.io", "customresourcedefinitions", None) {
            list.extend(resources::from_crd(&crd));
        }
        self.resources = list;
    }

    /// Loads objects (persistence): stores them as-is, keeping their resourceVersions.
    pub(crate) fn load(&mut self, items: Vec<(ObjectRef, Value)>, rv: u64) {
        self.objects = items.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        self.json = self
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), wire::fields_json(v)))
            .collect();
        self.rv = self.rv.max(rv);
        // Watches cannot resume from before the load.
        self.history.clear();
        self.refresh_resources();
    }
}

fn spec_part(o: &Value) -> Value {
    let mut v = o.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

fn unchanged(old: &Value, new: &Value) -> bool {
    let strip = |o: &Value| {
        let mut v = o.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        if let Some(m) = v.as_object_mut() {
            m.remove("apiVersion");
        }
        v
    };
    let same_managers = {
        let a: Vec<_> = fields::entries(old)
            .into_iter()
            .map(|e| (e.manager, e.operation, e.fields))
            .collect();
        let b: Vec<_> = fields::entries(new)
            .into_iter()
            .map(|e| (e.manager, e.operation, e.fields))
            .collect();
        a == b
    };
    same_managers && strip(old) == strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmap(i: usize) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}})
    }

    #[test]
    fn the_watch_history_is_bounded_per_resource() {
        let mut c = Cluster::new();
        let res = c.resource_by_kind("", "ConfigMap").expect("configmaps");
        let opts = WriteOptions {
            manager: "test".into(),
            ..Default::default()
        };
        let start = c.resource_version();
        for i in 0..EVENT_HISTORY_PER_RESOURCE + 5 {
            c.create(&res, "default", configmap(i), &opts)
                .expect("create");
        }
        // The five oldest events are gone: resuming from before them is 410 Gone.
        let gone = c.events_since("", "configmaps", start).unwrap_err();
        assert_eq!(gone.code, 410);
        let kept = c
            .events_since("", "configmaps", start + 5)
            .expect("in the window");
        assert_eq!(kept.len(), EVENT_HISTORY_PER_RESOURCE);
        assert_eq!(kept[0].key.name, "c5");
        // Other resources keep their own history.
        let namespaces = c.events_since("", "namespaces", 0).expect("namespaces");
        assert_eq!(namespaces.len(), 4);
    }

    #[test]
    fn snapshots_do_not_see_later_writes() {
        let mut c = Cluster::new();
        let res = c.resource_by_kind("", "ConfigMap").expect("configmaps");
        let opts = WriteOptions {
            manager: "test".into(),
            ..Default::default()
        };
        c.create(&res, "default", configmap(0), &opts)
            .expect("create");
        let before = c.snapshot();
        c.create(&res, "default", configmap(1), &opts)
            .expect("create");
        c.delete(&res, "default", "c0", None, &opts)
            .expect("delete");
        let key = |name: &str| Cluster::key(&res, "default", name);
        assert!(before.contains_key(&key("c0")) && !before.contains_key(&key("c1")));
        let after = c.snapshot();
        assert!(!after.contains_key(&key("c0")) && after.contains_key(&key("c1")));
    }
}
