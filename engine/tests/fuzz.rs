//! A small seeded random walk over the interaction env: random ticks, proposals, partial
//! deliveries, duplicates, drops, partitions, crashes, snapshots, reads, transfers and
//! membership changes; election safety and the durability invariants (persisted entries are
//! stored, acknowledged entries held) are checked after every step, state machine safety on
//! every apply (inside the env). The whole-cluster simulation in `tests/` goes much further;
//! this catches core regressions early. `RINGRAFT_FUZZ_SEEDS=n` runs seeds below `n`,
//! `RINGRAFT_FUZZ_FIRST=k` starts at seed `k`, `RINGRAFT_FUZZ_TRACE=1` (with `--nocapture`)
//! prints every command and its output.

mod interaction;

use std::collections::BTreeMap;

use interaction::Env;
use ringraft::raft::{NodeId, Role};
use ringraft_wal::util::rng::Rng;

/// `RINGRAFT_FUZZ_MUTATION=count-old-term` (with `--features mutations`) switches a rule off,
/// to see the walk catch it.
fn mutation() -> String {
    std::env::var("RINGRAFT_FUZZ_MUTATION")
        .map(|m| format!(" mutation={m}"))
        .unwrap_or_default()
}

fn leader_of(env: &Env) -> Option<u64> {
    env.nodes
        .iter()
        .find(|(_, n)| n.raw.status().role == Role::Leader)
        .map(|(id, _)| id.0)
}

fn step_command(env: &mut Env, rng: &mut Rng, nodes: u64, prevote: bool, batch: u64) -> String {
    let n = 1 + rng.below(nodes);
    let other = 1 + rng.below(nodes);
    let target = match leader_of(env) {
        Some(l) if rng.below(5) > 0 => l,
        _ => n,
    };
    match rng.below(100) {
        0..=9 => format!("tick {n}"),
        10..=14 => "tick all".to_string(),
        15..=24 => format!("propose {target} v{}", rng.below(1000)),
        25..=29 => format!("ready {n}"),
        30..=32 => format!("persist {n}"),
        // One Ready at a time: completions interleave with later inputs (issue 13 item 4).
        33 | 34 => format!("persist-one {n}"),
        35..=59 => format!("deliver-one {}", rng.below(1000)),
        60..=61 => format!("dup-one {}", rng.below(1000)),
        62..=63 => format!("drop-one {}", rng.below(1000)),
        64 => format!("partition {n} / {other}"),
        65..=67 => "heal".to_string(),
        68 => format!(
            "crash {n} prevote={prevote} batch={batch} inflight=4 entry=64{}",
            mutation()
        ),
        69 | 82..=84 => {
            let applied = env.node(NodeId(n)).raw.status().applied.0;
            format!("snapshot {n} {applied}")
        }
        76 | 85..=87 => {
            let snap = env.node(NodeId(n)).raw.snapshot_index().0;
            format!("compact {n} {snap}")
        }
        70..=72 => format!(
            "read {target} {} {}",
            if rng.below(2) == 0 { "lease" } else { "index" },
            rng.next_u64() % 1_000_000_000
        ),
        73 => format!("transfer {target} {other}"),
        74 => match rng.below(4) {
            0 => format!("propose-conf {target} add-learner {other}"),
            1 => format!("propose-conf {target} promote {other}"),
            2 => format!("propose-conf {target} remove {other}"),
            _ => format!("propose-conf {target} add-voter {other}"),
        },
        // Oversized proposals (the walk's bound is 64 bytes): refused, never stored.
        77 => format!("propose-big {target} {}", 60 + rng.below(10)),
        78 | 79 => forge_append(env, rng, n),
        // The leader probes the follower again: behind a compacted log, with a snapshot,
        // possibly over entries still on their way to its disk (issue 13 item 0).
        80 | 81 => format!("report-unreachable {target} {other}"),
        75 => format!(
            "report-snapshot {target} {other} {}",
            if rng.below(2) == 0 { "ok" } else { "fail" }
        ),
        _ => format!("process {n}"),
    }
}

/// A well-framed AppendEntries to (a scratch restart of) `to`, near the end of its stored
/// log, with entries that may skip, repeat or go back in index or term, and a commit that may
/// run past them.
fn forge_append(env: &mut Env, rng: &mut Rng, to: u64) -> String {
    let stored = &env.node(NodeId(to)).stored;
    let last = stored
        .entries
        .last()
        .map_or(stored.snapshot.index.0, |e| e.index.0);
    let prev = last
        .saturating_sub(rng.below(3))
        .max(stored.snapshot.index.0);
    let prev_term = stored
        .entries
        .iter()
        .find(|e| e.index.0 == prev)
        .map_or(stored.snapshot.term.0, |e| e.term.0);
    let term = stored.hard.term.0.max(prev_term) + rng.below(2);
    let commit = stored.hard.commit.0 + rng.below(5);
    let from = 1 + to % 3;
    let mut words = format!("forge-append {to} {from} {term} {prev} {prev_term} {commit}");
    let (mut index, mut entry_term) = (prev + 1, prev_term.max(1));
    for _ in 0..1 + rng.below(3) {
        match rng.below(8) {
            0 => index += 1 + rng.below(2),
            1 => index = index.saturating_sub(1 + rng.below(2)),
            2 => entry_term = entry_term.saturating_sub(1),
            3 => entry_term += 1,
            _ => {}
        }
        words.push_str(&format!(" {index}/{entry_term}"));
        index += 1;
    }
    words
}

/// Returns (highest term with a leader, entries applied) for coverage checks.
fn run_seed(seed: u64, steps: usize) -> (u64, usize) {
    let mut rng = Rng::new(seed);
    let mut env = Env::default();
    let nodes = 3 + rng.below(3);
    let prevote = rng.below(2) == 0;
    let batch = [100, 1 << 20][usize::from(rng.below(2) == 0)];
    env.run(&format!(
        "add-nodes {nodes} voters=1,2,3 prevote={prevote} batch={batch} inflight=4 entry=64{}",
        mutation()
    ));
    let mut leaders: BTreeMap<u64, NodeId> = BTreeMap::new();
    let trace = std::env::var("RINGRAFT_FUZZ_TRACE").is_ok();
    for step in 0..steps {
        let cmd = step_command(&mut env, &mut rng, nodes, prevote, batch);
        for line in cmd.lines() {
            // Snapshots of an index not above the current one are refused: harmless.
            if line.starts_with("snapshot") && line.ends_with(" 0") {
                continue;
            }
            let out = env.run(line);
            if trace {
                eprintln!("{step}: {line}\n{out}");
            }
        }
        if let Err(e) = env.check_durability() {
            panic!("seed {seed} step {step} ({cmd}): {e}");
        }
        for (id, node) in &env.nodes {
            let st = node.raw.status();
            if st.role == Role::Leader {
                let prev = leaders.entry(st.term.0).or_insert(*id);
                assert_eq!(
                    *prev, *id,
                    "seed {seed} step {step}: two leaders in term {}",
                    st.term.0
                );
            }
        }
    }
    let max_term = leaders.keys().last().copied().unwrap_or(0);
    (max_term, env.applied_entries.len())
}

#[test]
fn random_walks_keep_safety() {
    let seeds: u64 = std::env::var("RINGRAFT_FUZZ_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let (mut terms, mut applied) = (0, 0);
    let first: u64 = std::env::var("RINGRAFT_FUZZ_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for seed in first..seeds {
        match std::panic::catch_unwind(|| run_seed(seed, 1500)) {
            Ok((t, a)) => {
                terms += t;
                applied += a;
            }
            Err(e) => {
                eprintln!("failing seed: {seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    // Coverage: the walks elect leaders and commit entries, or they prove nothing.
    let count = seeds - first;
    eprintln!("{count} seeds: {terms} leader terms, {applied} entries applied");
    assert!(
        terms >= count && applied as u64 >= count * 5,
        "{terms} terms, {applied} applied"
    );
}
