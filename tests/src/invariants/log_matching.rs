//! Log matching: two logs with an entry of the same index and term hold the same entry there
//! and agree on everything before it (Raft paper figure 3).
//!
//! Checked incrementally: every entry written anywhere is registered under `(index, term)` with
//! its digest and the term of its predecessor in that log. Two registrations of one key must
//! agree on both; by induction on the index that makes the whole prefixes equal.

use std::collections::BTreeMap;

use super::{violation, ClusterView, Invariant, Observation, Violation};

/// What was first seen at an `(index, term)`.
#[derive(Clone, Copy)]
struct Seen {
    digest: u64,
    prev_term: Option<u64>,
    node: u64,
}

/// Registry of entries by `(index, term)`.
#[derive(Default)]
pub struct LogMatching {
    seen: BTreeMap<(u64, u64), Seen>,
}

impl Invariant for LogMatching {
    fn name(&self) -> &'static str {
        "log matching"
    }

    fn check(&mut self, view: &ClusterView<'_>) -> Result<(), Violation> {
        for o in view.observations {
            let Observation::Appended {
                node,
                first_index,
                count,
            } = o
            else {
                continue;
            };
            let Some(n) = view.nodes.get(node) else {
                continue;
            };
            for index in *first_index..first_index + count {
                let Some(entry) = n.log.entry(index) else {
                    continue; // compacted within the same step
                };
                let prev_term = n.log.term_at(index - 1);
                let here = Seen {
                    digest: entry.digest,
                    prev_term,
                    node: *node,
                };
                let first = *self.seen.entry((index, entry.term)).or_insert(here);
                if first.digest != here.digest {
                    return violation(
                        self.name(),
                        format!(
                            "index {index} term {}: node {} holds digest {:x}, node {node} holds {:x}",
                            entry.term, first.node, first.digest, here.digest
                        ),
                    );
                }
                if let (Some(a), Some(b)) = (first.prev_term, prev_term) {
                    if a != b {
                        return violation(
                            self.name(),
                            format!(
                                "index {index} term {} matches on nodes {} and {node} but the \
                                 entries before differ (terms {a} and {b} at index {})",
                                entry.term,
                                first.node,
                                index - 1
                            ),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
