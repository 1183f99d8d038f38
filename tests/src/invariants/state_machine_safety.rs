//! State machine safety: no two nodes apply different entries at the same index (Raft paper
//! figure 3), and no node applies beyond its commit index.

use std::collections::BTreeMap;

use super::{violation, ClusterView, Invariant, Observation, Violation};

/// The first entry applied at each index, and by whom.
#[derive(Default)]
pub struct StateMachineSafety {
    applied: BTreeMap<u64, (u64, u64, u64)>,
}

impl Invariant for StateMachineSafety {
    fn name(&self) -> &'static str {
        "state machine safety"
    }

    fn check(&mut self, view: &ClusterView<'_>) -> Result<(), Violation> {
        for o in view.observations {
            if let Observation::Applied {
                node,
                index,
                term,
                digest,
            } = o
            {
                let first = *self
                    .applied
                    .entry(*index)
                    .or_insert((*term, *digest, *node));
                if (first.0, first.1) != (*term, *digest) {
                    return violation(
                        self.name(),
                        format!(
                            "index {index}: node {} applied term {} digest {:x}, node {node} \
                             applied term {term} digest {digest:x}",
                            first.2, first.0, first.1
                        ),
                    );
                }
            }
        }
        for n in view.nodes.values().filter(|n| n.alive) {
            if n.applied > n.commit {
                return violation(
                    self.name(),
                    format!(
                        "node {} applied {} beyond its commit {}",
                        n.id, n.applied, n.commit
                    ),
                );
            }
        }
        Ok(())
    }
}
