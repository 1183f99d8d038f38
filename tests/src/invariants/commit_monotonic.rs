//! The commit index never goes backwards: not on a running node, not in its durable state, and
//! not across a restart (a restarted node starts from at least its durable commit, which only
//! grows).

use std::collections::BTreeMap;

use super::{violation, ClusterView, Invariant, Violation};

/// Name of this property in reports.
const NAME: &str = "commit monotonic";

/// Highest commit index seen per node, in memory and on disk.
#[derive(Default)]
pub struct CommitMonotonic {
    /// `(incarnation, commit)` last seen while alive.
    live: BTreeMap<u64, (u64, u64)>,
    durable: BTreeMap<u64, u64>,
}

impl Invariant for CommitMonotonic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&mut self, view: &ClusterView<'_>) -> Result<(), Violation> {
        for n in view.nodes.values() {
            let durable = self.durable.entry(n.id).or_insert(0);
            if n.durable.commit < *durable {
                return violation(
                    NAME,
                    format!(
                        "node {} durable commit went back from {} to {}",
                        n.id, durable, n.durable.commit
                    ),
                );
            }
            *durable = n.durable.commit;
            if !n.alive {
                continue;
            }
            if n.commit < n.durable.commit {
                return violation(
                    NAME,
                    format!(
                        "node {} (incarnation {}) has commit {} below its durable commit {}",
                        n.id, n.incarnation, n.commit, n.durable.commit
                    ),
                );
            }
            let (inc, last) = self.live.entry(n.id).or_insert((n.incarnation, 0));
            if *inc == n.incarnation && n.commit < *last {
                return violation(
                    NAME,
                    format!(
                        "node {} commit went back from {} to {}",
                        n.id, last, n.commit
                    ),
                );
            }
            *inc = n.incarnation;
            *last = n.commit;
        }
        Ok(())
    }
}
