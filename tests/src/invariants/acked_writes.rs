//! No acknowledged write is lost: once a client was told its write succeeded, the entry is
//! durable on enough nodes that every quorum of every configuration in use contains a copy
//! (so no crash pattern within the fault model and no election can lose it).
//!
//! Rescanned in full when durable state shrank or membership changed; otherwise only the
//! writes acknowledged since the last step are checked.

use super::{violation, AckedWrite, ClusterView, Invariant, NodeView, Observation, Violation};
use std::collections::BTreeSet;

/// Number of acknowledged writes already checked.
#[derive(Default)]
pub struct AckedWritesDurable {
    checked: usize,
}

/// True when `node`'s durable state holds the write.
fn durably_holds(node: &NodeView, w: &AckedWrite) -> bool {
    let log = &node.durable.log;
    if w.index <= log.snapshot_index {
        return true; // snapshots hold committed state only
    }
    log.entry(w.index)
        .is_some_and(|e| e.term == w.term && e.digest == w.digest)
}

/// Checks that every quorum of `voters` contains a durable holder of `w`.
fn every_quorum_holds(
    view: &ClusterView,
    voters: &BTreeSet<u64>,
    w: &AckedWrite,
) -> Result<(), String> {
    if voters.is_empty() {
        return Ok(());
    }
    let holders = voters
        .iter()
        .filter(|id| view.nodes.get(id).is_some_and(|n| durably_holds(n, w)))
        .count();
    let quorum = voters.len() / 2 + 1;
    let missing = voters.len() - holders;
    if missing >= quorum {
        return Err(format!(
            "acknowledged write k{}={} at index {} term {} is durable on only {holders} of voters \
             {voters:?}: a quorum without it exists",
            w.key, w.value, w.index, w.term
        ));
    }
    Ok(())
}

impl Invariant for AckedWritesDurable {
    fn name(&self) -> &'static str {
        "acknowledged writes durable"
    }

    fn check(&mut self, view: &ClusterView) -> Result<(), Violation> {
        let rescan = view.observations.iter().any(|o| {
            matches!(
                o,
                Observation::DurableShrunkOrConfigChanged | Observation::Crashed { .. }
            )
        });
        let from = if rescan { 0 } else { self.checked };
        let mut configs: Vec<&BTreeSet<u64>> = Vec::new();
        for n in view.nodes.values().filter(|n| n.member) {
            for set in [&n.config.voters, &n.config.voters_outgoing] {
                if !configs.contains(&set) {
                    configs.push(set);
                }
            }
        }
        for w in &view.acked_writes[from..] {
            for voters in &configs {
                if let Err(e) = every_quorum_holds(view, voters, w) {
                    return violation(self.name(), e);
                }
            }
        }
        self.checked = view.acked_writes.len();
        Ok(())
    }
}
