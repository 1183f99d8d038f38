//! Tests of the linearizability checker: hand-made histories and a property test against the
//! brute-force reference.

use proptest::prelude::*;
use ringraft_tests::linearizability::brute::brute_force_linearizable;
use ringraft_tests::linearizability::{
    check_history, check_key, CheckResult, Input, Operation, Output,
};

fn put(client: u64, key: u64, value: u64, call: u64, ret: u64) -> Operation {
    Operation {
        client,
        key,
        input: Input::Put(value),
        call,
        completion: Some((ret, Output::Put)),
    }
}

fn put_unknown(client: u64, key: u64, value: u64, call: u64) -> Operation {
    Operation {
        client,
        key,
        input: Input::Put(value),
        call,
        completion: None,
    }
}

fn get(client: u64, key: u64, read: Option<u64>, call: u64, ret: u64) -> Operation {
    Operation {
        client,
        key,
        input: Input::Get,
        call,
        completion: Some((ret, Output::Get(read))),
    }
}

fn get_unknown(client: u64, key: u64, call: u64) -> Operation {
    Operation {
        client,
        key,
        input: Input::Get,
        call,
        completion: None,
    }
}

/// Asserts the checker and the brute-force reference both give `expected`.
fn assert_verdict(ops: &[Operation], expected: bool) {
    let fast = check_history(ops);
    assert_eq!(
        fast.is_linearizable(),
        expected,
        "checker verdict {fast:?} for {ops:#?}"
    );
    assert!(!matches!(fast, CheckResult::Undecided { .. }));
    if ops.len() <= 9 {
        assert_eq!(
            brute_force_linearizable(ops),
            expected,
            "brute force for {ops:#?}"
        );
    }
}

#[test]
fn empty_history_is_linearizable() {
    assert_verdict(&[], true);
}

#[test]
fn sequential_read_your_write() {
    assert_verdict(&[put(0, 1, 10, 0, 1), get(0, 1, Some(10), 2, 3)], true);
}

#[test]
fn read_of_never_written_key_sees_none() {
    assert_verdict(
        &[
            get(0, 1, None, 0, 1),
            put(0, 1, 5, 2, 3),
            get(1, 1, Some(5), 4, 5),
        ],
        true,
    );
    assert_verdict(&[put(0, 1, 5, 0, 1), get(1, 1, None, 2, 3)], false);
}

#[test]
fn stale_read_after_completed_write_is_rejected() {
    // put 1 completes, put 2 completes, then a read returns 1: stale.
    let ops = [
        put(0, 1, 1, 0, 1),
        put(0, 1, 2, 2, 3),
        get(1, 1, Some(1), 4, 5),
    ];
    assert_verdict(&ops, false);
}

#[test]
fn concurrent_read_may_see_old_or_new_value() {
    let base = [put(0, 1, 1, 0, 1), put(0, 1, 2, 2, 10)];
    for read in [1, 2] {
        let mut ops = base.to_vec();
        ops.push(get(1, 1, Some(read), 3, 4));
        assert_verdict(&ops, true);
    }
}

#[test]
fn reads_may_not_flip_back() {
    // While put 2 is in flight, one read sees 2, a later read sees 1 again: not linearizable.
    let ops = [
        put(0, 1, 1, 0, 1),
        put(0, 1, 2, 2, 20),
        get(1, 1, Some(2), 3, 4),
        get(2, 1, Some(1), 5, 6),
    ];
    assert_verdict(&ops, false);
}

#[test]
fn lost_write_is_rejected() {
    // An acknowledged write that no later read ever sees, while the value before it is read.
    let ops = [
        put(0, 1, 1, 0, 1),
        put(1, 1, 2, 2, 3),
        get(2, 1, Some(1), 10, 11),
    ];
    assert_verdict(&ops, false);
}

#[test]
fn unknown_write_may_take_effect_much_later() {
    // The put timed out at the client; its effect shows up long after, which is allowed.
    let ops = [
        put(0, 1, 1, 0, 1),
        put_unknown(1, 1, 2, 2),
        get(2, 1, Some(1), 10, 11),
        get(2, 1, Some(2), 50, 51),
        get(3, 1, Some(2), 60, 61),
    ];
    assert_verdict(&ops, true);
}

#[test]
fn unknown_write_may_never_take_effect() {
    let ops = [
        put(0, 1, 1, 0, 1),
        put_unknown(1, 1, 2, 2),
        get(2, 1, Some(1), 50, 51),
    ];
    assert_verdict(&ops, true);
}

#[test]
fn unknown_write_cannot_take_effect_before_invoked() {
    let ops = [get(0, 1, Some(2), 0, 1), put_unknown(1, 1, 2, 5)];
    assert_verdict(&ops, false);
}

#[test]
fn unknown_write_takes_effect_once() {
    // After the unknown put is seen, a later acknowledged write overwrites it; it cannot come
    // back afterwards.
    let ops = [
        put_unknown(0, 1, 2, 0),
        get(1, 1, Some(2), 5, 6),
        put(1, 1, 3, 7, 8),
        get(1, 1, Some(2), 9, 10),
    ];
    assert_verdict(&ops, false);
}

#[test]
fn unknown_read_is_ignored() {
    let ops = [
        put(0, 1, 1, 0, 1),
        get_unknown(1, 1, 2),
        get(2, 1, Some(1), 3, 4),
    ];
    assert_verdict(&ops, true);
}

#[test]
fn keys_are_checked_independently() {
    let ops = [
        put(0, 1, 1, 0, 1),
        put(0, 2, 7, 0, 1),
        get(1, 2, Some(7), 2, 3),
        get(1, 1, Some(1), 2, 3),
        get(1, 1, Some(7), 4, 5),
    ];
    match check_history(&ops) {
        CheckResult::NotLinearizable(v) => {
            assert_eq!(v.key, 1, "key 1 read a value only written to key 2");
            assert!(v.to_string().contains("not linearizable"));
        }
        other => panic!("expected a violation on key 1, got {other:?}"),
    }
}

#[test]
fn calls_and_returns_at_the_same_instant_are_concurrent() {
    // The get is invoked at the same time the put returns: either order is allowed.
    assert_verdict(&[put(0, 1, 1, 0, 5), get(1, 1, None, 5, 6)], true);
}

#[test]
fn long_history_checks_quickly_and_finds_a_late_violation() {
    // 300 ops per key on 3 keys: overlapping writers and readers over a real sequential run.
    let mut ops = Vec::new();
    for key in 0..3u64 {
        let mut value = None;
        for i in 0..300u64 {
            let t = i * 10;
            if i % 3 == 0 {
                value = Some(key * 1000 + i);
                ops.push(put(i % 5, key, key * 1000 + i, t, t + 25));
            } else {
                // Reads overlap the last write, reading the value in force when they began.
                let before = if i % 3 == 1 {
                    value
                } else {
                    Some(key * 1000 + i - 2)
                };
                ops.push(get(i % 5, key, before, t + 1, t + 3));
            }
        }
    }
    assert!(check_history(&ops).is_linearizable());
    // A stale read at the very end on one key.
    ops.push(get(9, 2, Some(2000), 100_000, 100_001));
    let start = std::time::Instant::now();
    match check_history(&ops) {
        CheckResult::NotLinearizable(v) => assert_eq!(v.key, 2),
        other => panic!("expected a violation, got {other:?}"),
    }
    // A generous bound: the checker is memoized, a blow-up takes minutes, not seconds.
    assert!(
        start.elapsed().as_secs() < 30,
        "checker too slow: {:?}",
        start.elapsed()
    );
}

#[test]
fn many_unknown_writes_stay_tractable() {
    // 40 unknown writes and 200 reads of their values, the pattern of a lossy run.
    let mut ops = Vec::new();
    for i in 0..40u64 {
        ops.push(put_unknown(i, 0, i + 1, i * 100));
        for j in 0..5u64 {
            ops.push(get(
                100 + j,
                0,
                Some(i + 1),
                i * 100 + 10 + j * 10,
                i * 100 + 15 + j * 10,
            ));
        }
    }
    let result = check_key(0, &ops, 1_000_000);
    assert!(result.is_linearizable(), "{result:?}");
}

// ---- property test against the brute-force reference ----

/// A random small history: random intervals, with outputs either random or taken from a real
/// sequential execution at random linearization points (so both verdicts are well covered).
fn arb_history() -> impl Strategy<Value = Vec<Operation>> {
    let op = (
        0u64..2,
        0u64..3,
        0u64..12,
        0u64..6,
        0u64..4,
        0u64..10,
        any::<bool>(),
    );
    (prop::collection::vec(op, 0..8), any::<bool>()).prop_map(|(raw, realistic)| {
        let mut ops: Vec<Operation> = Vec::new();
        let mut points: Vec<(u64, usize)> = Vec::new();
        for (i, (key, kind, call, len, val, point, unknown)) in raw.into_iter().enumerate() {
            let ret = call + len;
            let input = if kind == 0 {
                Input::Get
            } else {
                Input::Put(val + 1)
            };
            let output = match input {
                Input::Get => Output::Get((val > 0).then_some(val)),
                Input::Put(_) => Output::Put,
            };
            let completion = (!unknown || kind == 0 && i % 2 == 0).then_some((ret, output));
            ops.push(Operation {
                client: i as u64,
                key,
                input,
                call,
                completion,
            });
            points.push((call + point.min(len), i));
        }
        if realistic {
            // Rewrite read outputs from a sequential run at the chosen points.
            points.sort();
            let mut regs = std::collections::BTreeMap::new();
            for (_, i) in points {
                match ops[i].input {
                    Input::Put(v) => {
                        regs.insert(ops[i].key, v);
                    }
                    Input::Get => {
                        if let Some((ret, _)) = ops[i].completion {
                            let read = regs.get(&ops[i].key).copied();
                            ops[i].completion = Some((ret, Output::Get(read)));
                        }
                    }
                }
            }
        }
        ops
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn checker_agrees_with_brute_force(ops in arb_history()) {
        let fast = check_history(&ops);
        let undecided = matches!(fast, CheckResult::Undecided { .. });
        prop_assert!(!undecided, "checker gave up");
        prop_assert_eq!(fast.is_linearizable(), brute_force_linearizable(&ops), "{:#?}", ops);
    }
}

#[test]
fn property_generator_covers_both_verdicts() {
    // Guards the property test against a generator that only ever yields one verdict.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut yes, mut no) = (0, 0);
    for _ in 0..500 {
        let ops = arb_history()
            .new_tree(&mut runner)
            .expect("generate")
            .current();
        if brute_force_linearizable(&ops) {
            yes += 1;
        } else {
            no += 1;
        }
    }
    assert!(yes > 50 && no > 50, "linearizable {yes}, not {no}");
}

#[test]
fn many_unobserved_unknown_writes_stay_tractable() {
    // 60 timed-out writes nobody ever read, interleaved with acknowledged writes and reads:
    // without pruning, each would be concurrent with the rest of the history.
    let mut ops = Vec::new();
    for i in 0..60u64 {
        let t = i * 100;
        ops.push(put_unknown(i % 4, 0, 1000 + i, t));
        ops.push(put(5, 0, i + 1, t + 10, t + 20));
        ops.push(get(6, 0, Some(i + 1), t + 30, t + 40));
    }
    assert!(check_key(0, &ops, 1_000_000).is_linearizable());
    // A read of an old value at the end is still caught.
    ops.push(get(7, 0, Some(3), 10_000, 10_001));
    assert!(!check_key(0, &ops, 1_000_000).is_linearizable());
}
