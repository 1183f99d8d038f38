//! Requests from the handles.

use super::*;

impl<S: StateMachine> Runner<S> {
    pub(super) fn on_request(&mut self, req: Request<S>) -> Result<(), FatalError> {
        self.state.turn.requests += 1;
        match req {
            Request::Propose {
                data,
                reply,
                permit,
                at,
            } => self.hold_or_propose(data, reply, permit, at),
            Request::Read { mode, f } => {
                let id = ReadId(self.state.next_read);
                self.state.next_read += 1;
                let now = self.now();
                match self.raw.read_index(id, mode, now) {
                    Ok(()) => {
                        let deadline = self.clock.now() + self.config.read_timeout;
                        self.state.reads.insert(id, PendingRead { f, deadline });
                    }
                    Err(e) => f(Err(NodeError::Read(e))),
                }
            }
            Request::ConfChange {
                change,
                announce,
                reply,
            } => self.on_conf_change(&change, announce, reply),
            Request::Transfer { to, reply } => {
                let now = self.now();
                match self.raw.transfer_leadership(to, now) {
                    Ok(()) => {
                        // The core abandons a transfer after an election timeout.
                        let ticks = self.config.raft.election_ticks_max * 2;
                        let wait = Duration::from_nanos(self.config.raft.tick_nanos * ticks);
                        self.state.transfer = Some((to, self.clock.now() + wait, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Request::Snapshot { reply } => {
                if self.state.snapshot_writing.is_some() {
                    // Answered when the snapshot being written completes.
                    self.state.snapshot_waiters.push(reply);
                } else {
                    match self.take_snapshot() {
                        Ok(Some(index)) => {
                            let _ = reply.send(Ok(index));
                        }
                        // Answered when the snapshot's WAL work completes.
                        Ok(None) => self.state.snapshot_waiters.push(reply),
                        Err(e) => {
                            let _ = reply.send(Err(NodeError::Snapshot(e.to_string())));
                        }
                    }
                }
            }
            Request::Status { reply } => {
                let _ = reply.send(Ok(self.status()));
            }
        }
        Ok(())
    }

    pub(super) fn on_propose(
        &mut self,
        data: &[u8],
        reply: Reply<Proposed>,
        permit: OwnedSemaphorePermit,
        at: StdInstant,
    ) {
        // The core decides (its role may have changed since the last Ready was handled).
        match self.raw.propose(storage::command_data(TAG_COMMAND, data)) {
            Ok(index) => {
                self.state.wal.on_proposed(data.len() as u64);
                // The entry's term is the current term (no step between the two calls).
                let term = self.raw.term();
                self.state.proposals.insert(
                    index,
                    PendingProposal {
                        term,
                        reply,
                        _permit: permit,
                        at,
                    },
                );
            }
            Err(e) => {
                Metrics::inc(&self.metrics.counters.proposals_failed, 1);
                let _ = reply.send(Err(propose_error(e)));
            }
        }
    }

    pub(super) fn on_conf_change(
        &mut self,
        change: &crate::raft::ConfChange,
        announce: Option<(NodeId, SocketAddr)>,
        reply: Reply<LogIndex>,
    ) {
        // The address is committed before the change, so that every node (including a
        // future leader) can reach the new member once the change applies.
        if let Some((id, addr)) = announce {
            if let Err(e) = self.raw.propose(storage::peer_addr_data(id, addr)) {
                let _ = reply.send(Err(propose_error(e)));
                return;
            }
        }
        match self.raw.propose_conf_change(change) {
            Ok(index) => self.state.conf_waiters.push((index, reply)),
            Err(e) => {
                let _ = reply.send(Err(propose_error(e)));
            }
        }
    }

    pub(crate) fn status(&self) -> NodeStatus {
        let st = self.raw.status();
        let followers = st
            .progress
            .iter()
            .filter(|(id, _)| **id != st.id)
            .map(|(id, p)| {
                let f = FollowerStatus {
                    match_index: p.match_index,
                    next: p.next,
                    state: p.state,
                    lag: st.last_index.0.saturating_sub(p.match_index.0),
                };
                (*id, f)
            })
            .collect();
        NodeStatus {
            id: st.id,
            role: st.role,
            term: st.term,
            leader: st.leader,
            commit: st.commit,
            applied: self.applied,
            durable: st.persisted,
            last_index: st.last_index,
            snapshot_index: self.snapshot_index,
            membership: st.membership,
            followers,
            durability: self.config.durability,
        }
    }
}

pub(super) fn propose_error(e: ProposeError) -> NodeError {
    match e {
        ProposeError::NotLeader { leader } => NodeError::NotLeader { leader },
        ProposeError::ConfChange(e) => NodeError::ConfChange(e),
        e => NodeError::Propose(e),
    }
}

pub(super) fn fail_request<S>(req: Request<S>, e: &NodeError) {
    match req {
        Request::Propose { reply, .. } => {
            let _ = reply.send(Err(e.clone()));
        }
        Request::Read { f, .. } => f(Err(e.clone())),
        Request::ConfChange { reply, .. } | Request::Snapshot { reply } => {
            let _ = reply.send(Err(e.clone()));
        }
        Request::Transfer { reply, .. } => {
            let _ = reply.send(Err(e.clone()));
        }
        Request::Status { reply } => {
            let _ = reply.send(Err(e.clone()));
        }
    }
}
