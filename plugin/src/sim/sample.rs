//! Deterministic traffic: spreading N requests over weighted choices without a random source.
//!
//! [`WeightedRoundRobin`] is nginx's smooth weighted round-robin: after `k·total` picks every
//! choice has been picked exactly `k·weight` times, and picks are interleaved (weights 1 and 3 give
//! `B A B B`, not `A B B B`).

use std::collections::BTreeMap;

use super::{Outcome, Request, RouteTable, SimError};

/// Smooth weighted round-robin over indices `0..weights.len()`. Zero weights are never picked;
/// with all weights zero the iterator is empty.
#[derive(Debug, Clone)]
pub struct WeightedRoundRobin {
    weights: Vec<i128>,
    current: Vec<i128>,
    total: i128,
}

impl WeightedRoundRobin {
    /// A scheduler over these weights.
    pub fn new(weights: &[u64]) -> Self {
        let weights: Vec<i128> = weights.iter().map(|&w| i128::from(w)).collect();
        WeightedRoundRobin {
            current: vec![0; weights.len()],
            total: weights.iter().sum(),
            weights,
        }
    }
}

impl Iterator for WeightedRoundRobin {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let mut best = 0;
        for i in 0..self.weights.len() {
            self.current[i] += self.weights[i];
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        Some(best)
    }
}

/// How many of `n` picks go to each weight (smooth weighted round-robin).
pub fn spread(weights: &[u64], n: u64) -> Vec<u64> {
    let mut counts = vec![0; weights.len()];
    for i in WeightedRoundRobin::new(weights).take(n as usize) {
        counts[i] += 1;
    }
    counts
}

/// Where a simulated request ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Reached this host and subset.
    Destination {
        /// Destination host.
        host: String,
        /// Subset, if any.
        subset: Option<String>,
    },
    /// Answered with this status (404 no route, 503 no subset, 301 redirect, 200 direct).
    Status(u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Destination {
                host,
                subset: Some(s),
            } => write!(f, "{host}/{s}"),
            Target::Destination { host, subset: None } => f.write_str(host),
            Target::Status(code) => write!(f, "{code}"),
        }
    }
}

/// Request counts per target.
pub type Tally = BTreeMap<Target, u64>;

/// Send `n` requests drawn from `mix` (each request with its relative frequency) through the
/// table, deterministically: the mix and each rule's destinations are both spread by smooth
/// weighted round-robin, so the same inputs always give the same tally. A destination whose
/// subset is missing counts as 503.
pub fn sample(table: &RouteTable, mix: &[(Request, u64)], n: u64) -> Result<Tally, SimError> {
    let frequencies: Vec<u64> = mix.iter().map(|(_, f)| *f).collect();
    let per_request = spread(&frequencies, n);
    let mut tally = Tally::new();
    for ((request, _), count) in mix.iter().zip(per_request) {
        if count == 0 {
            continue;
        }
        let verdict = table.simulate(request)?;
        let status = match &verdict.outcome {
            Outcome::Route | Outcome::NoSubset { .. } => None,
            Outcome::NoRoute => Some(404),
            Outcome::Redirect => Some(301),
            Outcome::DirectResponse => Some(200),
        };
        if let Some(code) = status {
            *tally.entry(Target::Status(code)).or_default() += count;
            continue;
        }
        let weights: Vec<u64> = verdict.destinations.iter().map(|d| d.weight).collect();
        for (dest, k) in verdict.destinations.iter().zip(spread(&weights, count)) {
            if k == 0 {
                continue;
            }
            let target = if dest.missing.is_some() {
                Target::Status(503)
            } else {
                Target::Destination {
                    host: dest.host.clone(),
                    subset: dest.subset.clone(),
                }
            };
            *tally.entry(target).or_default() += k;
        }
    }
    Ok(tally)
}
