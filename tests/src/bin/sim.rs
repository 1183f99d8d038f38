//! Runs any number of simulation seeds, or replays one with its trace.
//!
//! ```text
//! cargo run -p ringraft-tests --release --bin sim -- --seeds 100000 [--start 0] [--threads 2]
//! cargo run -p ringraft-tests --release --bin sim -- --seed 1234 --trace
//! cargo run -p ringraft-tests --release --bin sim -- --seeds 1000 --mutation VoteWithoutLogCheck
//! cargo run -p ringraft-tests --release --bin sim -- --seeds 200000 --start 1000000 \
//!     --threads 1 --keep /tmp/soak    # soak: every failing seed's report to /tmp/soak/
//! ```
//! Exits non-zero if any seed fails; every failure prints its seed and replay command.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ringraft::raft::Mutation;
use ringraft_tests::sim::runner::{report, run_seed, Totals};
use ringraft_tests::sim::{RunStats, SimOptions};

/// Seeds slower than this (wall clock) are reported, to keep the default budget honest.
const SLOW_SEED_MILLIS: u128 = 2_000;

struct Args {
    start: u64,
    seeds: u64,
    threads: u64,
    one: Option<u64>,
    /// Directory that receives one report (reason, trace tail, replay command) per failing seed.
    keep: Option<std::path::PathBuf>,
    options: SimOptions,
}

fn parse_mutation(name: &str) -> Mutation {
    match name {
        "CountOldTermTowardCommit" => Mutation::CountOldTermTowardCommit,
        "VoteWithoutLogCheck" => Mutation::VoteWithoutLogCheck,
        "LeaseReadBeforeNoopCommit" => Mutation::LeaseReadBeforeNoopCommit,
        "AckAppendBeforePersist" => Mutation::AckAppendBeforePersist,
        "LeaseFromReceiveTime" => Mutation::LeaseFromReceiveTime,
        "VoteDespiteLeaderLease" => Mutation::VoteDespiteLeaderLease,
        "SnapshotOverNewerEntries" => Mutation::SnapshotOverNewerEntries,
        "FollowerReadWithoutReadIndex" => Mutation::FollowerReadWithoutReadIndex,
        other => panic!("unknown mutation {other}"),
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        start: 0,
        seeds: 1000,
        threads: 2,
        one: None,
        keep: None,
        options: SimOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        let num = |s: String| -> u64 { s.parse().unwrap_or_else(|_| panic!("not a number: {s}")) };
        match a.as_str() {
            "--start" => args.start = num(value("--start")),
            "--seeds" => args.seeds = num(value("--seeds")),
            "--threads" => args.threads = num(value("--threads")).max(1),
            "--seed" => args.one = Some(num(value("--seed"))),
            "--trace" => args.options.trace = true,
            "--keep" => args.keep = Some(value("--keep").into()),
            "--mutation" => args.options.mutation = Some(parse_mutation(&value("--mutation"))),
            other => {
                panic!("unknown argument {other}; see the doc comment of tests/src/bin/sim.rs")
            }
        }
    }
    args
}

fn main() {
    let args = parse_args();
    if let Some(seed) = args.one {
        match run_seed(seed, args.options) {
            Ok(stats) => println!("seed {seed} passed: {stats:?}"),
            Err(f) => {
                eprintln!("{}", report(&f));
                std::process::exit(1);
            }
        }
        return;
    }
    if let Some(dir) = &args.keep {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {dir:?}: {e}"));
    }
    let next = Arc::new(AtomicU64::new(args.start));
    let end = args.start + args.seeds;
    let totals = Arc::new(Mutex::new(Totals::default()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (next, totals, failed, options, keep) = (
                next.clone(),
                totals.clone(),
                failed.clone(),
                args.options.clone(),
                args.keep.clone(),
            );
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let t = Instant::now();
                let result: Result<RunStats, _> = run_seed(seed, options.clone());
                let ms = t.elapsed().as_millis();
                if ms > SLOW_SEED_MILLIS {
                    eprintln!("slow seed {seed}: {ms} ms");
                }
                match result {
                    Ok(stats) => totals
                        .lock()
                        .expect("no worker panics holding the lock")
                        .add(&stats),
                    Err(f) => {
                        eprintln!("{}", report(&f));
                        if let Some(dir) = &keep {
                            let path = dir.join(format!("seed-{seed}.txt"));
                            if let Err(e) = std::fs::write(&path, report(&f)) {
                                eprintln!("cannot write {path:?}: {e}");
                            }
                        }
                        failed
                            .lock()
                            .expect("no worker panics holding the lock")
                            .push(seed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker threads catch seed panics");
    }
    let totals = totals.lock().expect("workers are done");
    let failed = failed.lock().expect("workers are done");
    println!(
        "{} seeds from {} in {:.1?} on {} threads: {} failed {:?}\n{totals:?}",
        args.seeds,
        args.start,
        started.elapsed(),
        args.threads,
        failed.len(),
        *failed
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
