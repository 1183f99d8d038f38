//! Runs any number of simulation seeds, or replays one with its trace.
//!
//! ```text
//! cargo run -p ringraft-tests --release --bin sim -- --seeds 100000 [--start 0] [--threads 2]
//! cargo run -p ringraft-tests --release --bin sim -- --seed 1234 --trace
//! cargo run -p ringraft-tests --release --bin sim -- --seeds 1000 --mutation VoteWithoutLogCheck
//! cargo run -p ringraft-tests --release --bin sim -- --seeds 1000 --profile snapshot
//! cargo run -p ringraft-tests --release --bin sim -- soak --seeds 200000 --start 1000000 \
//!     --threads 2 [--keep sim-soak]  # every failing seed's report to sim-soak/seed-N.txt
//! ```
//! Prints seeds and failures per profile; exits non-zero if any seed fails, and every failure
//! prints its seed and replay command. `soak` differs only in its defaults: seeds from
//! 1,000,000 (beyond every range the tests use), and the failing seeds' reports, with the
//! whole kept trace tail, written to `sim-soak/`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ringraft::raft::Mutation;
use ringraft_tests::sim::params::{Profile, SimParams};
use ringraft_tests::sim::runner::{report, report_lines, run_seed, Totals};
use ringraft_tests::sim::SimOptions;

/// Seeds slower than this (wall clock) are reported, to keep the default budget honest.
const SLOW_SEED_MILLIS: u128 = 2_000;
/// First seed of a soak unless `--start` says otherwise.
const SOAK_START: u64 = 1_000_000;
/// Seeds between two progress lines of a run.
const PROGRESS_SEEDS: u64 = 10_000;

struct Args {
    start: u64,
    seeds: u64,
    threads: u64,
    one: Option<u64>,
    /// Directory that receives one report (reason, trace tail, replay command) per failing seed.
    keep: Option<std::path::PathBuf>,
    options: SimOptions,
}

/// Seeds run and failed with one profile.
#[derive(Clone, Debug, Default)]
struct ProfileCount {
    seeds: u64,
    failed: Vec<u64>,
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
        "ConfirmReadyAcrossRewrite" => Mutation::ConfirmReadyAcrossRewrite,
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
    let mut it = std::env::args().skip(1).peekable();
    if it.peek().map(String::as_str) == Some("soak") {
        it.next();
        args.start = SOAK_START;
        args.seeds = 10_000;
        args.keep = Some("sim-soak".into());
    }
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
            "--profile" => {
                let name = value("--profile");
                let profile = Profile::from_name(&name).unwrap_or_else(|| {
                    let names: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
                    panic!("unknown profile {name}; profiles: {names:?}")
                });
                args.options.profile = Some(profile);
            }
            other => {
                panic!("unknown argument {other}; see the doc comment of tests/src/bin/sim.rs")
            }
        }
    }
    args
}

/// The replay command of a failing seed with this run's options.
fn sim_replay(seed: u64, options: &SimOptions) -> String {
    let mut s = format!("cargo run -p ringraft-tests --release --bin sim -- --seed {seed} --trace");
    if let Some(m) = options.mutation {
        s.push_str(&format!(" --mutation {m:?}"));
    }
    if let Some(p) = options.profile {
        s.push_str(&format!(" --profile {p}"));
    }
    s
}

/// Shared state of the worker threads.
struct Run {
    next: AtomicU64,
    end: u64,
    done: AtomicU64,
    totals: Mutex<Totals>,
    profiles: Mutex<BTreeMap<Profile, ProfileCount>>,
    options: SimOptions,
    keep: Option<std::path::PathBuf>,
    started: Instant,
}

impl Run {
    fn work(&self) {
        loop {
            let seed = self.next.fetch_add(1, Ordering::Relaxed);
            if seed >= self.end {
                break;
            }
            self.one(seed);
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            if done.is_multiple_of(PROGRESS_SEEDS) {
                eprintln!("{done} seeds done in {:.1?}", self.started.elapsed());
            }
        }
    }

    fn one(&self, seed: u64) {
        let profile = SimParams::from_seed_with(seed, self.options.profile).profile;
        let t = Instant::now();
        let result = run_seed(seed, self.options.clone());
        let ms = t.elapsed().as_millis();
        if ms > SLOW_SEED_MILLIS {
            eprintln!("slow seed {seed}: {ms} ms");
        }
        let failed = match result {
            Ok(stats) => {
                self.totals
                    .lock()
                    .expect("no worker panics holding the lock")
                    .add(&stats);
                false
            }
            Err(f) => {
                eprintln!("{}  or: {}", report(&f), sim_replay(seed, &self.options));
                if let Some(dir) = &self.keep {
                    let path = dir.join(format!("seed-{seed}.txt"));
                    let text = format!(
                        "profile {profile}\n{}  or: {}\n",
                        report_lines(&f, usize::MAX),
                        sim_replay(seed, &self.options)
                    );
                    if let Err(e) = std::fs::write(&path, text) {
                        eprintln!("cannot write {path:?}: {e}");
                    }
                }
                true
            }
        };
        let mut profiles = self
            .profiles
            .lock()
            .expect("no worker panics holding the lock");
        let count = profiles.entry(profile).or_default();
        count.seeds += 1;
        if failed {
            count.failed.push(seed);
        }
    }
}

fn main() {
    let args = parse_args();
    if let Some(seed) = args.one {
        let profile = SimParams::from_seed_with(seed, args.options.profile).profile;
        eprintln!("seed {seed}: profile {profile}");
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
    let run = Arc::new(Run {
        next: AtomicU64::new(args.start),
        end: args.start + args.seeds,
        done: AtomicU64::new(0),
        totals: Mutex::new(Totals::default()),
        profiles: Mutex::new(BTreeMap::new()),
        options: args.options.clone(),
        keep: args.keep.clone(),
        started: Instant::now(),
    });
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let run = run.clone();
            std::thread::spawn(move || run.work())
        })
        .collect();
    for w in workers {
        w.join().expect("worker threads catch seed panics");
    }
    let totals = run.totals.lock().expect("workers are done");
    let profiles = run.profiles.lock().expect("workers are done");
    let mut failed: Vec<u64> = profiles.values().flat_map(|c| c.failed.clone()).collect();
    failed.sort_unstable();
    println!(
        "{} seeds from {} in {:.1?} on {} threads: {} failed {:?}",
        args.seeds,
        args.start,
        run.started.elapsed(),
        args.threads,
        failed.len(),
        failed
    );
    for (profile, count) in profiles.iter() {
        let mut seeds = count.failed.clone();
        seeds.sort_unstable();
        println!(
            "  {:<9} {:>7} seeds, {:>5} failed {seeds:?}",
            profile.name(),
            count.seeds,
            seeds.len()
        );
    }
    println!("{totals:?}");
    if let Some(dir) = &args.keep {
        if !failed.is_empty() {
            println!("reports of the failing seeds are in {}", dir.display());
        }
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
