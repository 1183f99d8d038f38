//! Running seeds: one with a trace, or many, reporting every failure with its replay command.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::cluster::{Failure, RunStats, SimOptions, Simulation};

/// Seeds run by the default `cargo test` (see docs/testing.md for the budget).
pub const DEFAULT_SEEDS: u64 = 2000;

/// The command that replays `seed` with a step-by-step trace.
pub fn replay_command(seed: u64) -> String {
    format!(
        "SIM_SEED={seed} SIM_TRACE=1 cargo test -p ringraft-tests --test simulation replay -- --nocapture"
    )
}

/// Runs one seed; a panic inside the core or the simulator is reported as a failure of that
/// seed (the hook still prints the panic message and location).
pub fn run_seed(seed: u64, options: SimOptions) -> Result<RunStats, Failure> {
    match catch_unwind(AssertUnwindSafe(|| Simulation::new(seed, options).run())) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "non-string panic".to_string());
            Err(Failure {
                seed,
                reason: format!("panic: {msg}"),
                trace_tail: vec!["(replay the seed with SIM_TRACE=1 for the trace)".to_string()],
            })
        }
    }
}

/// A failure as printed: seed, reason, the end of the trace and the replay command.
pub fn report(f: &Failure) -> String {
    report_lines(f, 60)
}

/// A failure with up to `lines` of its trace tail (every kept line for soak reports).
pub fn report_lines(f: &Failure, lines: usize) -> String {
    let mut s = format!(
        "\n=== simulation seed {} FAILED ===\n{}\n",
        f.seed, f.reason
    );
    s.push_str("--- last trace lines ---\n");
    for line in f.trace_tail.iter().rev().take(lines).rev() {
        s.push_str(line);
        s.push('\n');
    }
    s.push_str(&format!("--- replay with:\n  {}\n", replay_command(f.seed)));
    s
}

/// Reads a `u64` from the environment.
pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Seeds run.
    pub seeds: u64,
    /// Sum of steps.
    pub steps: u64,
    /// Sum of client operations.
    pub ops: u64,
    /// Sum of acknowledged writes.
    pub acked_writes: u64,
    /// Sum of crashes.
    pub crashes: u64,
    /// Sum of elections.
    pub elections: u64,
    /// Sum of snapshot installs.
    pub snapshots_installed: u64,
    /// Sum of snapshot installs over a held, partly unsynced suffix.
    pub snapshots_over_held_suffix: u64,
    /// Sum of membership changes.
    pub conf_changes: u64,
    /// Largest time to liveness, in ticks.
    pub liveness_ticks_max: u64,
    /// Sum of old-term commit advances (see [`RunStats::old_term_commits`]).
    pub old_term_commits: u64,
    /// Seeds with at least one old-term commit advance.
    pub seeds_with_old_term_commits: u64,
}

impl Totals {
    /// Adds one run.
    pub fn add(&mut self, s: &RunStats) {
        self.seeds += 1;
        self.steps += s.steps;
        self.ops += s.ops;
        self.acked_writes += s.acked_writes;
        self.crashes += s.crashes;
        self.elections += s.elections;
        self.snapshots_installed += s.snapshots_installed;
        self.snapshots_over_held_suffix += s.snapshots_over_held_suffix;
        self.conf_changes += s.conf_changes;
        self.liveness_ticks_max = self.liveness_ticks_max.max(s.liveness_ticks);
        self.old_term_commits += s.old_term_commits;
        self.seeds_with_old_term_commits += u64::from(s.old_term_commits > 0);
    }
}

/// Runs the seeds `start + i*stride + offset` for `i` in `0..` while below `start + count`,
/// returning totals and every failure.
pub fn run_seeds(
    start: u64,
    count: u64,
    offset: u64,
    stride: u64,
    options: &SimOptions,
) -> (Totals, Vec<Failure>) {
    let mut totals = Totals::default();
    let mut failures = Vec::new();
    let mut seed = start + offset;
    while seed < start + count {
        match run_seed(seed, options.clone()) {
            Ok(stats) => totals.add(&stats),
            Err(f) => failures.push(f),
        }
        seed += stride;
    }
    (totals, failures)
}
