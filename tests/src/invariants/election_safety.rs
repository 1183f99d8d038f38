//! Election safety: at most one leader per term (Raft paper figure 3).

use std::collections::BTreeMap;

use super::{violation, ClusterView, Invariant, Observation, RoleView, Violation};

/// Remembers the leader of every term ever seen.
#[derive(Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<u64, u64>,
}

impl Invariant for ElectionSafety {
    fn name(&self) -> &'static str {
        "election safety"
    }

    fn check(&mut self, view: &ClusterView<'_>) -> Result<(), Violation> {
        let reported = view.observations.iter().filter_map(|o| match o {
            Observation::BecameLeader { node, term } => Some((*node, *term)),
            _ => None,
        });
        // Also the roles in force, in case a role change was not reported as an observation.
        let current = view
            .nodes
            .values()
            .filter(|n| n.alive && n.role == RoleView::Leader)
            .map(|n| (n.id, n.term));
        for (node, term) in reported.chain(current) {
            let first = *self.leaders.entry(term).or_insert(node);
            if first != node {
                return violation(
                    self.name(),
                    format!("nodes {first} and {node} are both leaders of term {term}"),
                );
            }
        }
        Ok(())
    }
}
