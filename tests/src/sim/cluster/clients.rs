//! The client workload: unique writes and lease or ReadIndex reads, recorded in the history.

use super::{Event, Phase, Simulation};
use crate::linearizability::{Input, Output};
use crate::sim::client::{Outstanding, ReadKind, Reply, Request};

impl Simulation {
    /// A client starts its next operation.
    pub(super) fn on_client_next(&mut self, c: u64) {
        if matches!(self.phase, Phase::Draining { .. }) {
            return;
        }
        let p = &self.params;
        let key = self.rng_client.below(p.keys);
        let pinned = self.pinned.filter(|_| self.phase == Phase::Faults);
        // While a lease attack runs, clients take roles: a third read from the attacked
        // leader, a third write elsewhere, a third read elsewhere (from the new leader, or
        // through a follower that forwards to it).
        let role = c % 3;
        let writes = match pinned {
            Some(_) => role == 1,
            None => self.rng_client.chance(p.write_percent),
        };
        let request = if writes {
            let value = self.next_value;
            self.next_value += 1;
            Request::Put { key, value }
        } else {
            let kind = if self.rng_client.chance(p.lease_read_percent) {
                ReadKind::Lease
            } else {
                ReadKind::ReadIndex
            };
            Request::Get { key, kind }
        };
        let members: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.member)
            .map(|n| n.id)
            .collect();
        let client = &self.clients[c as usize];
        let random = self.rng_client.chance(p.random_target_percent);
        let target = match (pinned, client.leader_hint) {
            (Some(l), _) if role == 0 => l,
            (Some(l), hint) => {
                let elsewhere: Vec<u64> = members.iter().copied().filter(|m| *m != l).collect();
                match hint {
                    Some(h) if h != l && !random && members.contains(&h) => h,
                    _ if elsewhere.is_empty() => l,
                    _ => *self.rng_client.pick(&elsewhere),
                }
            }
            (None, Some(l)) if !random && members.contains(&l) => l,
            (None, _) => *self.rng_client.pick(&members),
        };
        let input = match request {
            Request::Put { value, .. } => Input::Put(value),
            Request::Get { .. } => Input::Get,
        };
        let handle = self.history.invoke(c, key, input, self.now);
        let client = &mut self.clients[c as usize];
        let seq = client.next_seq;
        client.next_seq += 1;
        client.outstanding = Some(Outstanding {
            seq,
            handle,
            target,
            request,
        });
        self.stats.ops += 1;
        self.trace_line(format!("client {c} #{seq} -> n{target} {request:?}"));
        if let Some(at) = self.client_link_delay() {
            self.schedule(
                at,
                Event::Request {
                    node: target,
                    client: c,
                    seq,
                    request,
                },
            );
        }
        let timeout = self.now + self.params.client_timeout_nanos;
        self.schedule(timeout, Event::ClientTimeout { client: c, seq });
    }

    /// Delivery time of a client message, `None` if lost. Clients sit outside the partitions.
    fn client_link_delay(&mut self) -> Option<u64> {
        let p = &self.network.params;
        if self.rng_net.chance_ppm(p.loss_ppm) {
            return None;
        }
        Some(
            self.now
                + self
                    .rng_net
                    .range(p.delay_min_nanos, p.delay_max_nanos.max(p.delay_min_nanos)),
        )
    }

    /// A request reaches a node.
    pub(super) fn on_request(&mut self, node: u64, client: u64, seq: u64, request: Request) {
        let read_id = self.next_read_id;
        self.next_read_id += 1;
        let now = self.now;
        let mut refused = None;
        self.with_node(node, None, |n, _| {
            refused = n.request(client, seq, request, read_id, now)
        });
        if let Some(reply) = refused {
            self.send_reply(client, seq, reply);
        }
    }

    /// A node answers a client over the (lossy) client link.
    pub(super) fn send_reply(&mut self, client: u64, seq: u64, reply: Reply) {
        if let Some(at) = self.client_link_delay() {
            self.schedule(at, Event::Reply { client, seq, reply });
        }
    }

    /// An answer reaches its client.
    pub(super) fn on_reply(&mut self, c: u64, seq: u64, reply: Reply) {
        let client = &mut self.clients[c as usize];
        let Some(out) = client.outstanding.filter(|o| o.seq == seq) else {
            return; // answer to an operation the client gave up on: its outcome stays unknown
        };
        client.outstanding = None;
        match reply {
            Reply::PutOk => {
                client.leader_hint = Some(out.target);
                self.history.complete(out.handle, Output::Put, self.now);
            }
            Reply::GetOk(v) => {
                self.history.complete(out.handle, Output::Get(v), self.now);
                self.stats.reads_ok += 1;
            }
            Reply::Refused { leader_hint } => {
                client.leader_hint = leader_hint;
                self.history.discard(out.handle);
            }
        }
        self.trace_line(format!("client {c} #{seq} <- {reply:?}"));
        self.next_op_later(c);
    }

    /// The client stops waiting: the outcome is unknown.
    pub(super) fn on_client_timeout(&mut self, c: u64, seq: u64) {
        let client = &mut self.clients[c as usize];
        if client.outstanding.is_some_and(|o| o.seq == seq) {
            client.outstanding = None;
            client.leader_hint = None;
            self.stats.unknown += 1;
            self.trace_line(format!("client {c} #{seq} times out: outcome unknown"));
            self.next_op_later(c);
        }
    }

    fn next_op_later(&mut self, c: u64) {
        let (lo, hi) = self.params.think_nanos;
        let at = self.now + self.rng_client.range(lo, hi);
        self.schedule(at, Event::ClientNext { client: c });
    }
}
