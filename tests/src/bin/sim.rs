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
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Parser, Subcommand};
use ringraft::raft::Mutation;
use ringraft_tests::sim::params::{Profile, SimParams};
use ringraft_tests::sim::runner::{report, report_lines, run_seed, Totals};
use ringraft_tests::sim::SimOptions;

/// Seeds slower than this (wall clock) are reported, to keep the default budget honest.
const SLOW_SEED_MILLIS: u128 = 2_000;
/// First seed of a soak unless `--start` says otherwise.
const SOAK_START: u64 = 1_000_000;
/// Seeds of a soak unless `--seeds` says otherwise.
const SOAK_SEEDS: u64 = 10_000;
/// Where a soak keeps failing seeds' reports unless `--keep` says otherwise.
const SOAK_KEEP: &str = "sim-soak";
/// Seeds of a plain run unless `--seeds` says otherwise.
const RUN_SEEDS: u64 = 1000;
/// Seeds between two progress lines of a run.
const PROGRESS_SEEDS: u64 = 10_000;

/// Every mutation the core offers, by the name `--mutation` takes (its `Debug` name, as
/// the replay command prints it).
const MUTATIONS: [Mutation; 10] = [
    Mutation::CountOldTermTowardCommit,
    Mutation::VoteWithoutLogCheck,
    Mutation::LeaseReadBeforeNoopCommit,
    Mutation::AckAppendBeforePersist,
    Mutation::LeaseFromReceiveTime,
    Mutation::VoteDespiteLeaderLease,
    Mutation::SnapshotOverNewerEntries,
    Mutation::FollowerReadWithoutReadIndex,
    Mutation::AcceptOversizedEntries,
    Mutation::ConfirmReadyAcrossRewrite,
];

/// Position of `m` in [`MUTATIONS`]. Exhaustive on purpose: a mutation added to the core does
/// not compile here until the runner can name it (the hand-written parser this replaces had
/// silently lost `AcceptOversizedEntries`). Test-only: clippy and the tests compile it.
#[cfg(test)]
fn mutation_slot(m: Mutation) -> usize {
    match m {
        Mutation::CountOldTermTowardCommit => 0,
        Mutation::VoteWithoutLogCheck => 1,
        Mutation::LeaseReadBeforeNoopCommit => 2,
        Mutation::AckAppendBeforePersist => 3,
        Mutation::LeaseFromReceiveTime => 4,
        Mutation::VoteDespiteLeaderLease => 5,
        Mutation::SnapshotOverNewerEntries => 6,
        Mutation::FollowerReadWithoutReadIndex => 7,
        Mutation::AcceptOversizedEntries => 8,
        Mutation::ConfirmReadyAcrossRewrite => 9,
    }
}

fn parse_mutation(name: &str) -> Result<Mutation, String> {
    MUTATIONS
        .into_iter()
        .find(|m| format!("{m:?}") == name)
        .ok_or_else(|| {
            let names: Vec<String> = MUTATIONS.iter().map(|m| format!("{m:?}")).collect();
            format!("unknown mutation; mutations: {}", names.join(", "))
        })
}

fn parse_profile(name: &str) -> Result<Profile, String> {
    Profile::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
        format!("unknown profile; profiles: {}", names.join(", "))
    })
}

/// Runs simulation seeds in parallel, or replays one seed with its trace. Prints seeds and
/// failures per profile; exits non-zero if any seed fails, and every failure prints its seed
/// and replay command.
#[derive(Parser, Debug)]
#[command(name = "sim", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// A soak: seeds from 1,000,000 (beyond every range the tests use) unless --start says
    /// otherwise, 10,000 of them unless --seeds does, and every failing seed's report (with
    /// the whole kept trace tail) written to sim-soak/ unless --keep names another directory.
    Soak(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// First seed [default: 0; soak: 1000000].
    #[arg(long)]
    start: Option<u64>,
    /// Number of seeds [default: 1000; soak: 10000].
    #[arg(long)]
    seeds: Option<u64>,
    /// Worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    threads: u64,
    /// Replay this one seed instead of a range.
    #[arg(long, conflicts_with_all = ["start", "seeds", "keep"])]
    seed: Option<u64>,
    /// Print the trace of the seed (with --seed).
    #[arg(long)]
    trace: bool,
    /// Directory that receives one report (reason, trace tail, replay command) per failing
    /// seed [soak: sim-soak].
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Switch on one rule breaker of the core (its name, e.g. VoteWithoutLogCheck).
    #[arg(long, value_parser = parse_mutation)]
    mutation: Option<Mutation>,
    /// Run every seed with this fault profile instead of the seed's own.
    #[arg(long, value_parser = parse_profile)]
    profile: Option<Profile>,
}

/// What to run, with the mode's defaults filled in.
struct Args {
    start: u64,
    seeds: u64,
    threads: u64,
    one: Option<u64>,
    /// Directory that receives one report (reason, trace tail, replay command) per failing seed.
    keep: Option<PathBuf>,
    options: SimOptions,
}

/// Seeds run and failed with one profile.
#[derive(Clone, Debug, Default)]
struct ProfileCount {
    seeds: u64,
    failed: Vec<u64>,
}

impl From<Cli> for Args {
    fn from(cli: Cli) -> Args {
        let (run, soak) = match cli.mode {
            Some(Mode::Soak(run)) => (run, true),
            None => (cli.run, false),
        };
        let (start, seeds, keep) = if soak {
            (SOAK_START, SOAK_SEEDS, Some(PathBuf::from(SOAK_KEEP)))
        } else {
            (0, RUN_SEEDS, None)
        };
        Args {
            start: run.start.unwrap_or(start),
            seeds: run.seeds.unwrap_or(seeds),
            threads: run.threads,
            one: run.seed,
            keep: run.keep.or(keep),
            options: SimOptions {
                trace: run.trace,
                mutation: run.mutation,
                profile: run.profile,
            },
        }
    }
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
    keep: Option<PathBuf>,
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
    let args = Args::from(Cli::parse());
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let err = Cli::try_parse_from(["sim", "--help"]).expect_err("help exits");
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn every_mutation_is_listed_once_and_parses_by_name() {
        for (i, m) in MUTATIONS.into_iter().enumerate() {
            assert_eq!(mutation_slot(m), i, "{m:?} listed at its slot");
            assert_eq!(parse_mutation(&format!("{m:?}")), Ok(m));
        }
        assert!(parse_mutation("NoSuchMutation").is_err());
    }

    #[test]
    fn soak_and_run_fill_in_their_own_defaults() {
        let run = Args::from(Cli::parse_from([
            "sim",
            "--seeds",
            "5",
            "--profile",
            "snapshot",
        ]));
        assert_eq!((run.start, run.seeds, run.threads), (0, 5, 2));
        assert!(run.keep.is_none());
        assert_eq!(run.options.profile, Profile::from_name("snapshot"));
        let soak = Args::from(Cli::parse_from(["sim", "soak", "--start", "7"]));
        assert_eq!((soak.start, soak.seeds), (7, SOAK_SEEDS));
        assert_eq!(soak.keep, Some(PathBuf::from(SOAK_KEEP)));
        let one = Args::from(Cli::parse_from(["sim", "--seed", "1234", "--trace"]));
        assert_eq!(one.one, Some(1234));
        assert!(one.options.trace);
        assert!(Cli::try_parse_from(["sim", "--seed", "1", "--seeds", "2"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--threads", "0"]).is_err());
    }
}
