//! Progress and in-flight window state transitions.

use proptest::prelude::*;

use crate::raft::tracker::{Inflights, Progress, ProgressState};
use crate::raft::types::LogIndex;

fn pr(next: u64) -> Progress {
    Progress::new(LogIndex(next), 3, 1000)
}

#[test]
fn probe_sends_one_at_a_time_then_replicates() {
    let mut p = pr(5);
    assert!(!p.is_paused());
    p.on_sent(LogIndex(6), 10, true);
    assert!(p.is_paused(), "probe waits for an answer");
    assert_eq!(p.next, LogIndex(5), "probe does not advance next");
    assert!(p.maybe_update(LogIndex(6)));
    p.become_replicate();
    assert_eq!(p.next, LogIndex(7));
    assert_eq!(p.state, ProgressState::Replicate);
}

#[test]
fn replicate_pipelines_until_window_full() {
    let mut p = pr(1);
    p.become_replicate();
    for last in [3u64, 6, 9] {
        assert!(!p.is_paused());
        p.on_sent(LogIndex(last), 10, true);
        assert_eq!(p.next, LogIndex(last + 1), "next advances optimistically");
    }
    assert!(p.is_paused(), "3 messages in flight");
    assert!(p.maybe_update(LogIndex(6)));
    assert!(!p.is_paused(), "ack frees the first two");
    assert_eq!(p.inflights.count(), 1);
}

#[test]
fn rejection_in_replicate_falls_back_to_probe() {
    let mut p = pr(1);
    p.maybe_update(LogIndex(4));
    p.become_replicate();
    p.on_sent(LogIndex(8), 10, true);
    assert!(
        !p.maybe_decr_to(LogIndex(3), LogIndex(0)),
        "stale: below match"
    );
    assert!(p.maybe_decr_to(LogIndex(6), LogIndex(5)));
    assert_eq!(p.state, ProgressState::Probe);
    assert_eq!(p.next, LogIndex(5));
}

#[test]
fn probe_rejection_uses_hint_and_ignores_stale() {
    let mut p = pr(10);
    assert!(
        !p.maybe_decr_to(LogIndex(5), LogIndex(2)),
        "not the probe in flight"
    );
    assert!(p.maybe_decr_to(LogIndex(9), LogIndex(3)));
    assert_eq!(p.next, LogIndex(4));
}

#[test]
fn snapshot_state_pauses_and_resumes_after_pending() {
    let mut p = pr(2);
    p.become_snapshot(LogIndex(10));
    assert!(p.is_paused());
    assert_eq!(p.next, LogIndex(11));
    p.become_probe();
    assert_eq!(p.next, LogIndex(11), "probe from the snapshot on");
}

#[test]
#[should_panic(expected = "no send into a full window")]
fn inflights_refuse_overflow() {
    let mut i = Inflights::new(1, 100);
    i.add(1, 1);
    i.add(2, 1);
}

#[test]
fn inflights_bound_bytes() {
    let mut i = Inflights::new(10, 100);
    i.add(1, 60);
    assert!(!i.full());
    i.add(2, 60);
    assert!(i.full(), "bytes over the bound");
    i.free_to(1);
    assert!(!i.full());
    assert_eq!(i.bytes(), 60);
}

proptest! {
    /// Any sequence of sends, acks and rejections keeps match < next and the window bounds.
    #[test]
    fn progress_invariants_hold(ops in prop::collection::vec((0u8..4, 0u64..40), 1..200)) {
        let mut p = pr(1);
        let mut last_sent = 0u64;
        for (op, x) in ops {
            match op {
                0 if !p.is_paused() && p.state != ProgressState::Snapshot(LogIndex(0)) => {
                    if matches!(p.state, ProgressState::Snapshot(_)) { continue; }
                    let last = p.next.0.max(last_sent + 1) + x % 4;
                    if p.state == ProgressState::Replicate && last <= last_sent { continue; }
                    p.on_sent(LogIndex(last), 10, true);
                    last_sent = last_sent.max(last);
                }
                1 => { p.maybe_update(LogIndex(x.min(last_sent))); }
                2 => { p.maybe_decr_to(LogIndex(x), LogIndex(x / 2)); }
                3 if p.state == ProgressState::Probe && p.match_index.0 > 0 => p.become_replicate(),
                _ => {}
            }
            prop_assert!(p.match_index < p.next);
            prop_assert!(p.inflights.count() <= 3);
        }
    }
}
