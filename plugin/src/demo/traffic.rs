//! Simulated traffic through a release's call chain: where N requests of each kind of client
//! land, hop by hop, with Istio's routing as the simulator reproduces it.
//!
//! Each request enters at the entry service (through its gateway, with the client's headers);
//! every hop then calls the next service over the mesh with the caller's pod labels as source
//! labels (and without the client's headers, as services usually do not forward cookies). So a
//! tester that lands on a canary stays on canaries only if chaining rules say so.

use std::collections::BTreeMap;

use policy_sdk::ReleaseInfo;

use crate::sim::{spread, GatewayRef, Outcome, Request, RouteTable, SimError};

/// A kind of client: a name, request headers, and its share of the requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Shown in the output (`users`, `testers`).
    pub name: String,
    /// Headers it sends (lower-case names; cookies in `cookie`).
    pub headers: BTreeMap<String, String>,
    /// Relative frequency.
    pub share: u64,
}

/// Where a group of requests went: the version at each hop, or the failure that stopped them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path {
    /// `(service, version)` per hop reached.
    pub hops: Vec<(String, String)>,
    /// `404`/`503` when the chain broke, with the reason.
    pub failure: Option<String>,
}

/// Requests per client and path.
pub type Landing = BTreeMap<(String, Path), u64>;

/// Send `n` requests, split between `clients` by share, into `chain` (service names in call
/// order; the first is entered from outside) and tally where they land.
pub fn walk(
    table: &RouteTable,
    release: &ReleaseInfo,
    chain: &[String],
    clients: &[Client],
    n: u64,
) -> Result<Landing, SimError> {
    let shares: Vec<u64> = clients.iter().map(|c| c.share).collect();
    let mut landing = Landing::new();
    for (client, count) in clients.iter().zip(spread(&shares, n)) {
        if count == 0 {
            continue;
        }
        let Some(entry) = chain.first() else { continue };
        let mut request = Request::new(entry.clone()).namespace(release.namespace.clone());
        let gateway = release
            .services
            .iter()
            .find(|s| &s.name == entry)
            .and_then(|s| s.gateways.first());
        if let Some(gw) = gateway {
            request = request.gateway(GatewayRef::parse(gw));
        } else {
            request = request.source_label("app", "client");
        }
        for (name, value) in &client.headers {
            request = request.header(name, value.clone());
        }
        hop(
            table,
            release,
            chain,
            0,
            request,
            count,
            Vec::new(),
            &client.name,
            &mut landing,
        )?;
    }
    Ok(landing)
}

#[allow(clippy::too_many_arguments)]
fn hop(
    table: &RouteTable,
    release: &ReleaseInfo,
    chain: &[String],
    index: usize,
    request: Request,
    count: u64,
    hops: Vec<(String, String)>,
    client: &str,
    landing: &mut Landing,
) -> Result<(), SimError> {
    let service = &chain[index];
    let verdict = table.simulate(&request)?;
    let failure = match &verdict.outcome {
        Outcome::Route => None,
        other => Some(other.to_string()),
    };
    if let Some(failure) = failure {
        *landing
            .entry((
                client.to_string(),
                Path {
                    hops,
                    failure: Some(failure),
                },
            ))
            .or_default() += count;
        return Ok(());
    }
    let weights: Vec<u64> = verdict.destinations.iter().map(|d| d.weight).collect();
    for (dest, k) in verdict.destinations.iter().zip(spread(&weights, count)) {
        if k == 0 {
            continue;
        }
        if let Some(missing) = &dest.missing {
            *landing
                .entry((
                    client.to_string(),
                    Path {
                        hops: hops.clone(),
                        failure: Some(format!("503 ({missing})")),
                    },
                ))
                .or_default() += k;
            continue;
        }
        let info = release.services.iter().find(|s| &s.name == service);
        let labels = info.and_then(|s| {
            [&s.stable, &s.canary]
                .into_iter()
                .find(|v| Some(&v.subset) == dest.subset.as_ref())
                .map(|v| v.labels.clone())
        });
        let version = labels
            .as_ref()
            .and_then(|l| {
                l.iter()
                    .find(|(k, _)| k.as_str() != "app")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| dest.subset.clone().unwrap_or_else(|| "?".into()));
        let mut hops = hops.clone();
        hops.push((service.clone(), version));
        if index + 1 == chain.len() {
            *landing
                .entry((
                    client.to_string(),
                    Path {
                        hops,
                        failure: None,
                    },
                ))
                .or_default() += k;
            continue;
        }
        let mut next = Request::new(chain[index + 1].clone()).namespace(release.namespace.clone());
        for (key, value) in labels.unwrap_or_default() {
            next = next.source_label(&key, &value);
        }
        hop(
            table,
            release,
            chain,
            index + 1,
            next,
            k,
            hops,
            client,
            landing,
        )?;
    }
    Ok(())
}

/// The landing as text, one line per client and path, largest first within a client.
pub fn describe(landing: &Landing) -> Vec<String> {
    let mut rows: Vec<(&(String, Path), &u64)> = landing.iter().collect();
    rows.sort_by(|a, b| {
        a.0 .0
            .cmp(&b.0 .0)
            .then(b.1.cmp(a.1))
            .then(a.0 .1.cmp(&b.0 .1))
    });
    rows.into_iter()
        .map(|((client, path), count)| {
            let mut text = path
                .hops
                .iter()
                .map(|(s, v)| format!("{s} {v}"))
                .collect::<Vec<_>>()
                .join(" → ");
            if let Some(failure) = &path.failure {
                if !text.is_empty() {
                    text.push_str(" → ");
                }
                text.push_str(failure);
            }
            format!("{client:<8} {count:>5}  {text}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{self, RenderOptions};

    fn voting() -> (ReleaseInfo, Vec<String>, RenderOptions) {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/voting-app.yaml");
        let spec = crate::spec::load_file(&path).unwrap();
        let chain = spec.spec.services.iter().map(|s| s.name.clone()).collect();
        let roles = [policy_sdk::Role::Stable, policy_sdk::Role::Canary];
        let opts = crate::release::desired::render_options(&spec, &roles);
        (spec.release_info(), chain, opts)
    }

    fn table(info: &ReleaseInfo, stage: &policy_sdk::Stage, opts: &RenderOptions) -> RouteTable {
        RouteTable::new(render::render(info, stage, opts).unwrap()).unwrap()
    }

    fn clients() -> Vec<Client> {
        vec![
            Client {
                name: "users".into(),
                headers: BTreeMap::new(),
                share: 9,
            },
            Client {
                name: "testers".into(),
                headers: BTreeMap::from([("cookie".into(), "session=1; featureflag=on".into())]),
                share: 1,
            },
        ]
    }

    #[test]
    fn baseline_keeps_everyone_on_stable_versions() {
        let (info, chain, opts) = voting();
        let landing = walk(
            &table(&info, &render::baseline_stage(&info), &opts),
            &info,
            &chain,
            &clients(),
            1000,
        )
        .unwrap();
        assert_eq!(
            describe(&landing),
            [
                "testers    100  voting-app 1.0 → voting-analytics 1.1 → voting-storage 1.0",
                "users      900  voting-app 1.0 → voting-analytics 1.1 → voting-storage 1.0",
            ]
        );
    }

    #[test]
    fn final_stage_sends_everyone_to_canaries() {
        let (info, chain, opts) = voting();
        let landing = walk(
            &table(&info, &render::final_stage(&info), &opts),
            &info,
            &chain,
            &clients(),
            1000,
        )
        .unwrap();
        let total: u64 = landing.values().sum();
        assert_eq!(total, 1000);
        assert!(describe(&landing)
            .iter()
            .all(|l| l.ends_with("voting-app 2.0 → voting-analytics 2.0 → voting-storage 2.0")));
    }
}
