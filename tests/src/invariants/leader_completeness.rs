//! Leader completeness: an entry committed in some term is in the log of every leader of a
//! higher term (Raft paper figure 3). Also: a committed entry never changes.
//!
//! The committed prefix is learned from every live node's commit index and log mirror, each
//! entry with the term of the node that first reported it committed: that term is at least the
//! term the entry was committed in, so checking only leaders of a higher term is sound. A new
//! leader is checked against everything committed so far; each newly committed entry against
//! every current leader.

use std::collections::BTreeMap;

use super::{
    violation, ClusterView, EntryRecord, Invariant, NodeView, Observation, RoleView, Violation,
};

/// The committed entries known so far.
#[derive(Default)]
pub struct LeaderCompleteness {
    /// index -> (entry, term of the node that first reported it committed, that node).
    committed: BTreeMap<u64, (EntryRecord, u64, u64)>,
    /// Per node: `(incarnation, commit)` already scanned.
    scanned: BTreeMap<u64, (u64, u64)>,
}

impl LeaderCompleteness {
    fn leader_has(
        &self,
        leader: &NodeView<'_>,
        index: u64,
        entry: EntryRecord,
    ) -> Result<(), String> {
        if index <= leader.log.snapshot_index {
            return Ok(()); // covered by its snapshot, which holds only committed entries
        }
        match leader.log.entry(index) {
            Some(e) if e == entry => Ok(()),
            other => Err(format!(
                "leader {} of term {} lacks committed entry {index} (term {}, digest {:x}); it \
                 holds {other:?}",
                leader.id, leader.term, entry.term, entry.digest
            )),
        }
    }
}

impl Invariant for LeaderCompleteness {
    fn name(&self) -> &'static str {
        "leader completeness"
    }

    fn check(&mut self, view: &ClusterView<'_>) -> Result<(), Violation> {
        let mut fresh: Vec<u64> = Vec::new();
        for n in view.nodes.values().filter(|n| n.alive) {
            let (inc, done) = self.scanned.entry(n.id).or_insert((n.incarnation, 0));
            if *inc != n.incarnation {
                *inc = n.incarnation;
                *done = 0;
            }
            let from = (*done).max(n.log.snapshot_index) + 1;
            for index in from..=n.commit.min(n.log.last_index()) {
                let Some(entry) = n.log.entry(index) else {
                    continue;
                };
                match self.committed.get(&index) {
                    Some((first, _, by)) if *first != entry => {
                        return violation(
                            self.name(),
                            format!(
                                "committed entry {index} changed: node {by} committed term {} \
                                 digest {:x}, node {} committed term {} digest {:x}",
                                first.term, first.digest, n.id, entry.term, entry.digest
                            ),
                        );
                    }
                    Some(_) => {}
                    None => {
                        self.committed.insert(index, (entry, n.term, n.id));
                        fresh.push(index);
                    }
                }
            }
            *done = (*done).max(n.commit);
        }
        let leaders: Vec<&NodeView<'_>> = view
            .nodes
            .values()
            .filter(|n| n.alive && n.role == RoleView::Leader)
            .collect();
        let new_leaders: Vec<u64> = view
            .observations
            .iter()
            .filter_map(|o| match o {
                Observation::BecameLeader { node, .. } => Some(*node),
                _ => None,
            })
            .collect();
        for leader in &leaders {
            if new_leaders.contains(&leader.id) {
                // Only entries committed in a lower term bind it: a candidate that wins a stale
                // term after a later leader already committed more is legal (it will learn).
                for (index, (entry, committer_term, _)) in &self.committed {
                    if leader.term > *committer_term {
                        if let Err(e) = self.leader_has(leader, *index, *entry) {
                            return violation(self.name(), e);
                        }
                    }
                }
            }
            for index in &fresh {
                let (entry, committer_term, _) = self.committed[index];
                if leader.term > committer_term {
                    if let Err(e) = self.leader_has(leader, *index, entry) {
                        return violation(self.name(), e);
                    }
                }
            }
        }
        Ok(())
    }
}
