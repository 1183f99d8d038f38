//! Applying committed entries: the state machine, proposals, membership, reads.

use super::*;

impl<S: StateMachine> Runner<S> {
    /// Applies committed entries: commands in one batch to the state machine, address
    /// announcements to the transport, membership changes through the core.
    pub(super) fn apply(&mut self, entries: &[Entry]) -> Result<(), FatalError> {
        let last = entries
            .last()
            .map(|e| e.index)
            .expect("called with entries");
        let mut commands = Vec::with_capacity(entries.len());
        let mut conf_changed = false;
        for e in entries {
            match e.kind {
                EntryKind::Normal => match e.data.first() {
                    Some(&TAG_COMMAND) => commands.push(Command {
                        index: e.index,
                        term: e.term,
                        data: e.data.slice(1..),
                    }),
                    Some(&TAG_PEER_ADDR) => {
                        if let Some((id, addr)) = storage::parse_peer_addr(&e.data[1..]) {
                            self.learn_peer(id, addr);
                        }
                    }
                    _ => return Err(FatalError::UnknownEntryTag { index: e.index }),
                },
                EntryKind::ConfChange => conf_changed = true,
                EntryKind::Noop => {}
            }
        }
        if !commands.is_empty() {
            let t0 = StdInstant::now();
            let responses = self.sm.apply(&commands);
            let took = t0.elapsed();
            self.metrics.record_apply(took);
            self.state.turn.apply += took;
            self.state.turn.applied += u32::try_from(commands.len()).unwrap_or(u32::MAX);
            assert_eq!(
                responses.len(),
                commands.len(),
                "StateMachine::apply must return one response per command"
            );
            Metrics::inc(
                &self.metrics.counters.entries_applied,
                commands.len() as u64,
            );
            self.state.entries_since_snapshot += commands.len() as u64;
            self.state.bytes_since_snapshot +=
                commands.iter().map(|c| c.data.len() as u64).sum::<u64>();
            self.complete_proposals(&commands, responses);
        }
        let members_before = conf_changed.then(|| self.raw.membership().members());
        self.raw.on_applied(last)?;
        self.applied = last;
        self.fail_overtaken_proposals();
        if let Some(before) = members_before {
            self.after_conf_change(&before);
        }
        self.complete_conf_waiters();
        let t0 = StdInstant::now();
        let r = self.maybe_snapshot();
        self.state.turn.snapshot += t0.elapsed();
        r
    }

    pub(super) fn complete_proposals(&mut self, commands: &[Command], responses: Vec<Bytes>) {
        let mut ok = 0;
        for (c, response) in commands.iter().zip(responses) {
            if let Some(p) = self.state.proposals.remove(&c.index) {
                if p.term == c.term {
                    self.metrics.record_propose(p.at.elapsed());
                    ok += 1;
                    let _ = p.reply.send(Ok(Proposed {
                        index: c.index,
                        response,
                    }));
                } else {
                    let _ = p.reply.send(Err(NodeError::LeadershipLost));
                }
            }
        }
        Metrics::inc(&self.metrics.counters.proposals_applied, ok);
    }

    /// Proposals whose index was applied with another entry were overwritten.
    pub(super) fn fail_overtaken_proposals(&mut self) {
        while let Some(entry) = self.state.proposals.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            let p = entry.remove();
            Metrics::inc(&self.metrics.counters.proposals_failed, 1);
            let _ = p.reply.send(Err(NodeError::LeadershipLost));
        }
    }

    pub(super) fn complete_conf_waiters(&mut self) {
        if self.state.conf_waiters.is_empty() {
            return;
        }
        let joint = self.raw.membership().is_joint();
        let applied = self.applied;
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.state.conf_waiters)
            .into_iter()
            .partition(|(i, _)| *i <= applied && !joint);
        self.state.conf_waiters = keep;
        for (i, reply) in done {
            let _ = reply.send(Ok(i));
        }
    }

    pub(super) fn learn_peer(&mut self, id: NodeId, addr: SocketAddr) {
        if id == self.config.id() {
            return;
        }
        self.peers.insert(id, addr);
        if let Err(e) = self.transport.add_peer(id, addr) {
            tracing::warn!(%id, %addr, error = %e, "cannot add peer");
        }
    }

    /// Disconnects nodes that left the membership.
    pub(super) fn after_conf_change(&mut self, before: &std::collections::BTreeSet<NodeId>) {
        let after = self.raw.membership().members();
        for gone in before.difference(&after) {
            if *gone != self.config.id() {
                self.transport.remove_peer(*gone);
                self.peers.remove(gone);
            }
        }
    }

    pub(super) fn serve_reads(&mut self) {
        while let Some(entry) = self.state.reads_waiting.first_entry() {
            if entry.key().0 > self.applied {
                break;
            }
            let r = entry.remove();
            Metrics::inc(&self.metrics.counters.reads_served, 1);
            (r.f)(Ok((&self.sm, self.applied)));
        }
    }
}
