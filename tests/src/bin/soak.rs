//! Randomized fault runs against clusters of real `ringraft serve` processes (issue 10).
//!
//! ```text
//! cargo build -p ringraft --bin ringraft && \
//! cargo run -p ringraft-tests --bin soak -- --runs 10 --fault-secs 20 [--start 1] \
//!     [--max-secs 3600] [--keep soak-failures]
//! cargo run -p ringraft-tests --bin soak -- --seed 17          # one run, its seed
//! ```
//!
//! Run `i` uses seed `start + i`: the seed picks the cluster size (3 or 5), one time in three a
//! node whose clocks run 0.995-1.005 times real time (libfaketime, if installed), the clients' keys
//! and mix, and the fault schedule (`ringraft_tests::process::schedule`): faults held for
//! 150-2000 ms, each healed and followed by acknowledged operations, for `--fault-secs`; then
//! the run's checks (linearizable history, no acknowledged write lost, replicas and WALs that
//! agree, no unexpected exit or panic). A failing run's directory (node logs, data
//! directories, `history.txt`, `report.txt` with the error and the schedule) is moved to
//! `--keep/<name>-seed-<seed>/` and the next run starts. Stops after `--runs` runs or when
//! `--max-secs` have passed (checked before each run); exits 1 if a run failed, 2 on bad
//! arguments, 0 otherwise, and prints a SKIPPED line (exit 0) without a `ringraft` binary
//! (`$RINGRAFT_BIN`, or next to this binary).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringraft_tests::process::run::{self, RunError, RunOptions};
use ringraft_tests::process::schedule::{run_faults, Plan};
use ringraft_tests::process::tools;
use ringraft_tests::rng::Rng;

/// Seconds of faults per run by default: the issue's 20 s minimum.
const FAULT_SECS_DEFAULT: u64 = 20;

#[derive(Debug)]
struct Args {
    start: u64,
    runs: u64,
    fault_secs: u64,
    max_secs: u64,
    keep: PathBuf,
}

fn usage(why: &str) -> ! {
    eprintln!("soak: {why}; see the doc comment of tests/src/bin/soak.rs");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        start: 1,
        runs: 1,
        fault_secs: FAULT_SECS_DEFAULT,
        max_secs: u64::MAX,
        keep: PathBuf::from("soak-failures"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        let mut num = || -> u64 {
            let v = value();
            v.parse()
                .unwrap_or_else(|_| usage(&format!("not a number: {v}")))
        };
        match a.as_str() {
            "--start" => args.start = num(),
            "--runs" => args.runs = num(),
            "--seed" => {
                args.start = num();
                args.runs = 1;
            }
            "--fault-secs" => args.fault_secs = num(),
            "--max-secs" => args.max_secs = num(),
            "--keep" => args.keep = PathBuf::from(value()),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args
}

/// How a run that was not failed went.
#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    /// Below [`run::RATE_MIN_OPS_PER_SEC`] before its first fault: it proves little.
    invalid: bool,
    /// Faults after which the next write took longer than [`run::heal_to_write_bound`].
    heals_over_bound: u64,
}

/// One run of `seed`: `Ok(Some(_))` passed, `Ok(None)` skipped; a failure is kept on disk.
fn one_run(seed: u64, args: &Args) -> Result<Option<Outcome>, (RunError, Option<PathBuf>)> {
    let plan = Plan::new(seed);
    let mut opts = RunOptions::new(&format!("soak{}n", plan.nodes), plan.nodes, seed);
    // The clients' net is the fault phase plus the tests' net: far beyond any run, so that a
    // slow machine never stops them before the run's last progress check (the run stops them).
    opts.run_max = Duration::from_secs(args.fault_secs) + run::RUN_MAX_DEFAULT;
    let skew = plan.skew.and_then(|(node, rate)| {
        let lib = tools::libfaketime()?;
        Some((node, tools::clock_rate_env(&lib, rate)))
    });
    let started = run::start(opts, |spec| {
        if let Some((node, env)) = skew {
            spec.env.insert(node, env);
        }
        Ok(())
    });
    let Some(mut run) = started.map_err(|e| (e, None))? else {
        return Ok(None);
    };
    let mut outcome = Outcome {
        invalid: !run.valid(),
        heals_over_bound: 0,
    };
    run.say(&format!("plan {plan:?}"));
    // The schedule's own stream, apart from the clients' and the plan's.
    let mut rng = Rng::new(seed ^ 0x5eed_fa17_5eed_fa17);
    let mut log = Vec::new();
    let result = run_faults(
        &mut run,
        &mut rng,
        Duration::from_secs(args.fault_secs),
        &mut log,
    )
    .and_then(|done| {
        outcome.heals_over_bound = done.heals_over_bound;
        run.say(&format!(
            "{} faults in {:.1} s; longest from a heal to the next write {} ms, {} of them over \
             the issue's {} ms bound",
            done.faults,
            run.elapsed().as_secs_f64(),
            done.heal_to_write_max.as_millis(),
            done.heals_over_bound,
            run::heal_to_write_bound().as_millis()
        ));
        run.finish(&[])
    });
    match result {
        Ok(s) => {
            run.say(&format!(
                "passed: {} writes acknowledged, {} unknown, {} reads; applied {}",
                s.counts.writes_acked, s.counts.writes_unknown, s.counts.reads_ok, s.applied
            ));
            Ok(Some(outcome))
        }
        Err(e) => {
            let notes = format!("plan {plan:?}\nschedule:\n{}", log.join("\n"));
            let kept = run.keep(&args.keep, &e, &notes).ok();
            Err((e, kept))
        }
    }
}

fn main() {
    let args = parse_args();
    let started = Instant::now();
    let (mut passed, mut failed) = (0u64, Vec::new());
    let (mut invalid, mut over_bound) = (Vec::new(), 0u64);
    for seed in args.start..args.start.saturating_add(args.runs) {
        if started.elapsed() >= Duration::from_secs(args.max_secs) {
            println!(
                "soak: --max-secs {} reached before seed {seed}",
                args.max_secs
            );
            break;
        }
        match one_run(seed, &args) {
            Ok(Some(o)) => {
                passed += 1;
                if o.invalid {
                    invalid.push(seed);
                }
                over_bound += o.heals_over_bound;
            }
            Ok(None) => return,
            Err((e, kept)) => {
                let at = kept.map_or_else(|| "not kept".into(), |p| p.display().to_string());
                println!("soak: FAILED {e}\n  kept in {at}\n  replay: soak --seed {seed}");
                failed.push(seed);
            }
        }
    }
    println!(
        "soak: {passed} passed, {} failed {failed:?}, {:.0} s; {} INVALID (below {} ops/s \
         before the first fault: they prove little) {invalid:?}; {over_bound} heals over the \
         {} ms heal-to-write bound",
        failed.len(),
        started.elapsed().as_secs_f64(),
        invalid.len(),
        run::RATE_MIN_OPS_PER_SEC,
        run::heal_to_write_bound().as_millis()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
