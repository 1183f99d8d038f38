//! No acknowledged write is lost: once a client was told its write succeeded, the entry stays
//! durable on a majority of every voter set of the configuration it was committed under. A
//! leader counts an entry toward commit only once it is durable on a majority, and a committed
//! entry is never truncated from a disk (a snapshot that covers it still holds it), so this
//! holds at every step from the acknowledgement on, whatever crashes, elections and membership
//! changes follow. Which configuration that was is not visible from outside the core, so the
//! check passes if any configuration in force before the acknowledgement qualifies (exact
//! without membership changes, weaker with them).
//!
//! Rescanned in full when some durable log shrank; otherwise only the writes acknowledged since
//! the last step are checked.

use std::collections::BTreeSet;

use super::{violation, AckedWrite, ClusterView, Invariant, NodeView, Observation, Violation};

/// Number of acknowledged writes already checked.
#[derive(Default)]
pub struct AckedWritesDurable {
    checked: usize,
}

/// True when `node`'s durable state holds the write.
fn durably_holds(node: &NodeView<'_>, w: &AckedWrite) -> bool {
    let log = node.durable.log;
    if w.index <= log.snapshot_index {
        return true; // snapshots hold committed state only
    }
    log.entry(w.index)
        .is_some_and(|e| e.term == w.term && e.digest == w.digest)
}

/// Checks that a majority of `voters` durably hold `w`.
fn majority_holds(
    view: &ClusterView<'_>,
    voters: &BTreeSet<u64>,
    w: &AckedWrite,
) -> Result<(), String> {
    if voters.is_empty() {
        return Ok(());
    }
    let holders: Vec<u64> = voters
        .iter()
        .copied()
        .filter(|id| view.nodes.get(id).is_some_and(|n| durably_holds(n, w)))
        .collect();
    if holders.len() < voters.len() / 2 + 1 {
        return Err(format!(
            "acknowledged write k{}={} at index {} term {} is durable only on {holders:?} of \
             voters {voters:?}",
            w.key, w.value, w.index, w.term
        ));
    }
    Ok(())
}

impl Invariant for AckedWritesDurable {
    fn name(&self) -> &'static str {
        "acknowledged writes durable"
    }

    fn check(&mut self, view: &ClusterView<'_>) -> Result<(), Violation> {
        let rescan = view
            .observations
            .iter()
            .any(|o| matches!(o, Observation::DurableShrunkOrConfigChanged));
        let from = if rescan { 0 } else { self.checked };
        for w in &view.acked_writes[from..] {
            let mut first_error = None;
            let held = w.configs.iter().any(|c| {
                let halves = [&c.voters, &c.voters_outgoing];
                match halves.iter().try_for_each(|v| majority_holds(view, v, w)) {
                    Ok(()) => true,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        false
                    }
                }
            });
            if !held {
                let e = first_error.unwrap_or_else(|| format!("write {w:?} has no configuration"));
                return violation(self.name(), e);
            }
        }
        self.checked = view.acked_writes.len();
        Ok(())
    }
}
