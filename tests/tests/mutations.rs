//! The simulation catches every rule breaker the core offers (engine feature `mutations`):
//! for each, some seed of the default budget must fail an invariant or the linearizability
//! check. Each test reports the seed that caught it and what broke.

use ringraft::raft::Mutation;
use ringraft_tests::sim::runner::{env_u64, run_seed, DEFAULT_SEEDS};
use ringraft_tests::sim::SimOptions;

/// Runs seeds from `SIM_SEED_START` (default 0) until one fails; panics if none of the
/// budget's seeds does.
fn assert_caught(mutation: Mutation) {
    let count = env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let start = env_u64("SIM_SEED_START").unwrap_or(0);
    let options = SimOptions {
        trace: false,
        mutation: Some(mutation),
    };
    for seed in start..start + count {
        if let Err(f) = run_seed(seed, options.clone()) {
            let first_line = f.reason.lines().next().unwrap_or_default().to_string();
            eprintln!(
                "{mutation:?} caught by seed {seed} ({} seeds tried): {first_line}",
                seed - start + 1
            );
            eprintln!(
                "  replay: cargo run -p ringraft-tests --bin sim -- --seed {seed} --trace --mutation {mutation:?}"
            );
            assert!(!f.reason.is_empty(), "a failure always says what broke");
            return;
        }
    }
    panic!(
        "{mutation:?} went undetected by seeds {start}..{}",
        start + count
    );
}

#[test]
fn catches_count_old_term_toward_commit() {
    assert_caught(Mutation::CountOldTermTowardCommit);
}

#[test]
fn catches_vote_without_log_check() {
    assert_caught(Mutation::VoteWithoutLogCheck);
}

#[test]
fn catches_lease_read_before_noop_commit() {
    assert_caught(Mutation::LeaseReadBeforeNoopCommit);
}

#[test]
fn catches_ack_append_before_persist() {
    assert_caught(Mutation::AckAppendBeforePersist);
}

#[test]
fn catches_follower_read_without_read_index() {
    assert_caught(Mutation::FollowerReadWithoutReadIndex);
}
