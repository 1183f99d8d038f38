//! The simulated network: loss, duplication, delay (hence reordering) and partitions.
//!
//! The network only decides the fate of each message (dropped, or delivered at some true
//! times); the simulator keeps the messages in its event queue. Partitions are checked both
//! when a message is sent and when it would be delivered, so a partition also cuts messages
//! already in flight.

use std::collections::{BTreeMap, BTreeSet};

use crate::rng::Rng;

/// Fault parameters of the network, drawn from the seed.
#[derive(Clone, Debug)]
pub struct NetParams {
    /// Probability that a message is lost, in ppm.
    pub loss_ppm: u64,
    /// Probability that a delivered message is delivered a second time, in ppm.
    pub duplicate_ppm: u64,
    /// Smallest one-way delay, in nanoseconds.
    pub delay_min_nanos: u64,
    /// Largest one-way delay; messages with different delays overtake each other.
    pub delay_max_nanos: u64,
    /// Probability that a message gets a long delay (up to `delay_long_nanos`), in ppm.
    pub delay_long_ppm: u64,
    /// Longest delay of a delayed message (a message stuck in a queue somewhere).
    pub delay_long_nanos: u64,
}

/// Connectivity between nodes and the random fate of messages.
#[derive(Clone, Debug)]
pub struct Network {
    /// The current parameters (the simulator turns faults off for the liveness phase).
    pub params: NetParams,
    /// Directed links that are cut: `(from, to)`.
    blocked: BTreeSet<(u64, u64)>,
    /// Directed links that are slow: `(from, to)` to the true time the slowdown started and
    /// the most it adds to a message's delay (a congested queue: messages still arrive,
    /// late, and a cut of the other direction does not drop them).
    slow: BTreeMap<(u64, u64), (u64, u64)>,
}

impl Network {
    /// A fully connected network with the given fault parameters.
    pub fn new(params: NetParams) -> Self {
        Network {
            params,
            blocked: BTreeSet::new(),
            slow: BTreeMap::new(),
        }
    }

    /// True when messages from `from` currently reach `to`.
    pub fn connected(&self, from: u64, to: u64) -> bool {
        from == to || !self.blocked.contains(&(from, to))
    }

    /// True when some link is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Cuts the links between two groups in both directions.
    pub fn partition_symmetric(&mut self, side_a: &[u64], side_b: &[u64]) {
        for a in side_a {
            for b in side_b {
                self.blocked.insert((*a, *b));
                self.blocked.insert((*b, *a));
            }
        }
    }

    /// Cuts one direction of a link.
    pub fn cut_one_way(&mut self, from: u64, to: u64) {
        if from != to {
            self.blocked.insert((from, to));
        }
    }

    /// Restores one direction of a link.
    pub fn restore_one_way(&mut self, from: u64, to: u64) {
        self.blocked.remove(&(from, to));
    }

    /// Cuts every link to and from `node` (a node isolated from all others).
    pub fn isolate(&mut self, node: u64, all: &[u64]) {
        self.partition_symmetric(&[node], all);
        self.blocked.remove(&(node, node));
    }

    /// Slows the link from `from` to `to` from `now` until the next heal: a message sent
    /// `t` after `now` is delayed by `min(t / 2, extra_nanos)` more. The queue builds up at
    /// half the rate of time, so arrivals keep coming, spaced at most 1.5 times as far apart
    /// as their sends: a sudden jump would open a silence as long as the jump, and the
    /// receiver's CheckQuorum would notice that rather than late messages.
    pub fn slow_one_way(&mut self, from: u64, to: u64, now: u64, extra_nanos: u64) {
        if from != to {
            self.slow.insert((from, to), (now, extra_nanos));
        }
    }

    /// The delay the slow link `from -> to` (if any) adds to a message sent at `now`.
    fn slowdown(&self, from: u64, to: u64, now: u64) -> u64 {
        self.slow
            .get(&(from, to))
            .map_or(0, |(since, max)| (now.saturating_sub(*since) / 2).min(*max))
    }

    /// Restores every link, slow ones included.
    pub fn heal(&mut self) {
        self.blocked.clear();
        self.slow.clear();
    }

    /// The cut links, for traces.
    pub fn blocked_links(&self) -> &BTreeSet<(u64, u64)> {
        &self.blocked
    }

    /// Decides the fate of one message sent at `now`: the true times at which copies of it
    /// arrive (empty when it is lost or the link is cut).
    pub fn route(&self, rng: &mut Rng, from: u64, to: u64, now: u64) -> Vec<u64> {
        if !self.connected(from, to) || rng.chance_ppm(self.params.loss_ppm) {
            return Vec::new();
        }
        let sent = now + self.slowdown(from, to, now);
        let mut arrivals = vec![sent + self.delay(rng)];
        if rng.chance_ppm(self.params.duplicate_ppm) {
            arrivals.push(sent + self.delay(rng));
        }
        arrivals
    }

    fn delay(&self, rng: &mut Rng) -> u64 {
        let p = &self.params;
        if rng.chance_ppm(p.delay_long_ppm) {
            rng.range(p.delay_min_nanos, p.delay_long_nanos.max(p.delay_min_nanos))
        } else {
            rng.range(p.delay_min_nanos, p.delay_max_nanos.max(p.delay_min_nanos))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{NetParams, Network};
    use crate::rng::Rng;

    fn fixed_delay(nanos: u64) -> NetParams {
        NetParams {
            loss_ppm: 0,
            duplicate_ppm: 0,
            delay_min_nanos: nanos,
            delay_max_nanos: nanos,
            delay_long_ppm: 0,
            delay_long_nanos: nanos,
        }
    }

    #[test]
    fn slow_link_builds_up_at_half_rate_caps_and_heals() {
        let mut net = Network::new(fixed_delay(1_000));
        let mut rng = Rng::new(7);
        net.slow_one_way(1, 2, 10_000, 50_000);
        // Before and at the start nothing is added; then half the elapsed time, up to the cap.
        for (sent, extra) in [
            (5_000, 0),
            (10_000, 0),
            (30_000, 10_000),
            (110_000, 50_000),
            (900_000, 50_000),
        ] {
            assert_eq!(net.route(&mut rng, 1, 2, sent), vec![sent + 1_000 + extra]);
        }
        // Only that direction is slow; cutting the other one leaves it delivering.
        net.cut_one_way(2, 1);
        assert!(net.route(&mut rng, 2, 1, 200_000).is_empty());
        assert_eq!(net.route(&mut rng, 1, 2, 200_000), vec![251_000]);
        net.heal();
        assert_eq!(net.route(&mut rng, 1, 2, 200_000), vec![201_000]);
        assert_eq!(net.route(&mut rng, 2, 1, 200_000), vec![201_000]);
    }
}
