//! The objects a release wants, computed from its record alone, so that any machine — or a
//! rerun after a crash — arrives at the same objects.

use std::collections::BTreeSet;

use policy_sdk::Phase;
use serde_json::Value;

use super::record::ReleaseRecord;
use crate::cluster::order::ObjectSet;
use crate::istio::{MtlsMode, TlsMode};
use crate::render::{self, RenderError, RenderOptions};
use crate::spec::{self, Release};

/// Render options for `spec` with subsets for `roles`.
pub fn render_options(spec: &Release, roles: &[policy_sdk::Role]) -> RenderOptions {
    let mut opts = RenderOptions {
        subsets: roles.iter().copied().collect::<BTreeSet<_>>(),
        ..RenderOptions::default()
    };
    match spec.spec.mtls {
        Some(spec::MtlsMode::Strict) => opts = opts.strict_mtls(),
        Some(spec::MtlsMode::Permissive) => opts.peer_authentication = Some(MtlsMode::Permissive),
        Some(spec::MtlsMode::Disable) => {
            opts.peer_authentication = Some(MtlsMode::Disable);
            opts.client_tls = Some(TlsMode::Disable);
        }
        None => {}
    }
    for service in &spec.spec.services {
        if !service.hosts.is_empty() {
            opts.gateway_hosts
                .insert(service.name.clone(), service.hosts.clone());
        }
    }
    opts
}

/// Everything the release wants to exist: DestinationRules, VirtualServices and the
/// PeerAuthentication of the stage in force (each stamped with the record's generation), plus the Deployments it creates (cloned canaries;
/// after an `undo`, the restored stable Deployments).
pub fn desired_objects(record: &ReleaseRecord) -> Result<ObjectSet, RenderError> {
    let info = record.spec.release_info();
    let opts = render_options(&record.spec, &record.roles);
    let rendered = render::render(&info, &record.stage, &opts)?;
    let objects = rendered
        .into_values()
        .map(|object| stamped(object, record.generation));
    let (mut set, _) = ObjectSet::from_objects(objects);
    set.deployments.extend(record.created_deployments.clone());
    if record.phase != Phase::Finalized {
        if let Some(snapshot) = &record.snapshot {
            // Restored stable Deployments are the user's, not ours: stamped so the apply
            // claims them (`Op::Claim`), which fences them against a stale finalize.
            set.deployments
                .extend(snapshot.deployments.iter().map(|(name, deployment)| {
                    (name.clone(), stamped(deployment.clone(), record.generation))
                }));
        }
    }
    Ok(set)
}

/// `object` with the release generation annotation set to `generation`.
fn stamped(mut object: Value, generation: u64) -> Value {
    crate::cluster::order::stamp(&mut object, generation);
    object
}

/// Deployments to delete to reach the record's state (finalize's old versions).
pub fn deployments_to_delete(record: &ReleaseRecord) -> Vec<String> {
    if record.phase == Phase::Finalized {
        record.delete_deployments.clone()
    } else {
        Vec::new()
    }
}
