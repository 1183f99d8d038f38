//! `ringraft-bench compare`: the same workload against ringraft, etcd and a durable Redis
//! (and, in memory, ringraft against openraft's minimal benchmark shape), interleaved in one
//! invocation: repetition `r` runs every engine once, starting at engine `r mod n` so that no
//! engine always runs first, each run on fresh data directories. The table shows medians over
//! the repetitions and ratios taken per repetition (ringraft's run against the other engine's
//! run of the same repetition), so slow phases of a shared machine hit both sides of a ratio.
//! An engine that is not installed is skipped with a line that says so; it never fails the run.

use std::fmt::Write as _;

use serde::Serialize;

use super::engines::{self, Engine, Outcome, RunSpec};
use super::floor::Floor;
use super::latency::format_us;
use super::machine::Machine;
use super::redis_benchmark::{self as rb, RbOutcome, RbRun, RbSpec};
use super::report::RunReport;
use super::run::{self, RunError};
use super::workload::Workload;

/// Fewest repetitions a comparison makes: fewer cannot show a median that one outlier does
/// not decide.
pub const REPS_MIN: usize = 3;
/// Most repetitions (each is a full run of every engine).
pub const REPS_MAX: usize = 50;

/// The ratios the comparison reports: (numerator, denominator).
pub const PAIRS: [(Engine, Engine); 4] = [
    (Engine::Ringraft, Engine::Etcd),
    (Engine::Ringraft, Engine::EtcdGrpc),
    (Engine::Ringraft, Engine::Redis),
    (Engine::RingraftMemory, Engine::Openraft),
];

/// What to compare.
#[derive(Clone, Debug)]
pub struct CompareSpec {
    /// Engines, in the order of the first repetition.
    pub engines: Vec<Engine>,
    /// Repetitions, at least [`REPS_MIN`].
    pub reps: usize,
    /// What every run gets: the workload, the binary, the data root.
    pub run: RunSpec,
    /// Measure the fdatasync + loopback floor once before the first run.
    pub floor: bool,
    /// Also run redis-benchmark against `ringraft cluster` once per repetition.
    pub redis_benchmark: Option<RbSpec>,
}

/// One engine across the repetitions.
#[derive(Clone, Debug, Serialize)]
pub struct EngineSummary {
    /// The engine.
    pub engine: Engine,
    /// What ran (from the first run's report), or why it did not.
    pub setup: String,
    /// Why the engine was skipped, if it was.
    pub skipped: Option<String>,
    /// Failed repetitions: `(repetition, message)`.
    pub failures: Vec<(usize, String)>,
    /// Each repetition's report (`None` for a failed or skipped one).
    pub runs: Vec<Option<RunReport>>,
    /// Median throughput, operations per second.
    pub ops_s: Option<f64>,
    /// Median of the runs' write p50, microseconds.
    pub p50_us: Option<f64>,
    /// Median of the runs' write p99, microseconds.
    pub p99_us: Option<f64>,
    /// Median CPU microseconds per operation: of the server processes, or of the whole
    /// process for the in-process engines (their clients included).
    pub cpu_us_per_op: Option<f64>,
    /// Errors over all runs.
    pub errors: u64,
}

/// `numerator / denominator`, per repetition, for the repetitions where both ran.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// The engine on top (ringraft's side).
    pub numerator: Engine,
    /// The engine below.
    pub denominator: Engine,
    /// Repetitions where both ran.
    pub paired_reps: usize,
    /// Median over paired repetitions of throughput ratios (above 1: ringraft is faster).
    pub throughput: Option<f64>,
    /// Smallest and largest per-repetition throughput ratio.
    pub throughput_range: Option<(f64, f64)>,
    /// Median of p50 latency ratios (below 1: ringraft answers sooner).
    pub p50: Option<f64>,
    /// Median of p99 latency ratios.
    pub p99: Option<f64>,
}

/// The comparison's report (`--json` prints it as is).
#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    /// Repetitions made.
    pub reps: usize,
    /// The order runs were made in: `rep:engine`.
    pub order: Vec<String>,
    /// The workload of every run.
    pub workload: Workload,
    /// Where it ran.
    pub machine: Machine,
    /// What durability each engine ran with.
    pub durability: String,
    /// The floor, measured once before the first run.
    pub floor: Option<Floor>,
    /// One entry per engine.
    pub engines: Vec<EngineSummary>,
    /// The ratios of [`PAIRS`] whose both sides ran.
    pub ratios: Vec<Ratio>,
    /// redis-benchmark against `ringraft cluster`, if asked for.
    pub redis_benchmark: Option<RbSummary>,
}

/// The first target: SET at least this many times etcd's writes/s in the same run.
pub const RB_SET_OVER_ETCD_TARGET: f64 = 10.0;
/// The first target: GET (lease reads) at least this many per second.
pub const RB_GET_TARGET_RPS: f64 = 1_000_000.0;

/// redis-benchmark against `ringraft cluster` across the repetitions, next to etcd.
#[derive(Clone, Debug, Serialize)]
pub struct RbSummary {
    /// The redis-benchmark command line (without `-h`/`-p`).
    pub command: String,
    /// What it ran against.
    pub setup: String,
    /// Why it was skipped, if it was.
    pub skipped: Option<String>,
    /// Failed repetitions: `(repetition, message)`.
    pub failures: Vec<(usize, String)>,
    /// Each repetition's result.
    pub runs: Vec<Option<RbRun>>,
    /// Median SET requests/s, and the smallest and largest run.
    pub set_rps: Option<f64>,
    /// Smallest and largest SET rate.
    pub set_rps_range: Option<(f64, f64)>,
    /// Median GET requests/s.
    pub get_rps: Option<f64>,
    /// Smallest and largest GET rate.
    pub get_rps_range: Option<(f64, f64)>,
    /// Median over repetitions where both ran of SET/s divided by etcd's writes/s.
    pub set_over_etcd: Option<f64>,
    /// Smallest and largest per-repetition SET/etcd ratio.
    pub set_over_etcd_range: Option<(f64, f64)>,
    /// Repetitions where both redis-benchmark and etcd ran.
    pub paired_reps: usize,
    /// The etcd engine the SET rate is divided by (`etcd-grpc` if it ran, else `etcd`).
    pub etcd_engine: Option<Engine>,
}

/// The durability of every engine, as the report states it.
pub const DURABILITY: &str = "ringraft, etcd and redis: fsync before every acknowledgement \
    (ringraft fdatasync per group commit, etcd's default, redis appendonly yes + appendfsync \
    always); ringraft-memory and openraft: in memory, no fsync";

/// Runs the comparison. `say` gets one line per run and per skip (for stderr).
///
/// # Errors
/// A workload out of range, or the floor could not be measured. Engines that fail are
/// reported in the result, not returned.
pub fn compare(spec: &CompareSpec, say: &mut dyn FnMut(&str)) -> Result<CompareReport, RunError> {
    spec.run.workload.validate()?;
    if !(REPS_MIN..=REPS_MAX).contains(&spec.reps) {
        return Err(RunError::Reps {
            min: REPS_MIN,
            max: REPS_MAX,
            got: spec.reps,
        });
    }
    let floor = run::measure_floor(spec.floor, &spec.run.data_root)?;
    let mut summaries: Vec<EngineSummary> = spec
        .engines
        .iter()
        .map(|e| EngineSummary::empty(*e, spec.reps))
        .collect();
    let mut order = Vec::new();
    let mut rb_summary = spec
        .redis_benchmark
        .as_ref()
        .map(|r| RbSummary::empty(r, spec.reps));
    // redis-benchmark takes the slot after the engines in the rotation.
    let n = spec.engines.len() + usize::from(rb_summary.is_some());
    for rep in 0..spec.reps {
        for k in 0..n {
            let slot = (rep + k) % n;
            let Some(s) = summaries.get_mut(slot) else {
                let (Some(r), Some(rs)) = (&mut rb_summary, &spec.redis_benchmark) else {
                    continue;
                };
                if r.skipped.is_none() {
                    order.push(format!("{}:redis-benchmark", rep + 1));
                    r.record(rep, rb::run_once(rs), spec.reps, say);
                }
                continue;
            };
            if s.skipped.is_some() {
                continue;
            }
            order.push(format!("{}:{}", rep + 1, s.engine.name()));
            let outcome = engines::run_once(s.engine, &spec.run);
            record(s, rep, outcome, spec.reps, say);
        }
    }
    for s in &mut summaries {
        s.finish();
    }
    if let Some(r) = &mut rb_summary {
        // Against etcd over gRPC when it ran (the gateway costs etcd throughput: see
        // docs/benchmarks.md), else against etcd through its gateway.
        let ran = |e: Engine| {
            summaries
                .iter()
                .find(|s| s.engine == e && s.ops_s.is_some())
        };
        r.finish(ran(Engine::EtcdGrpc).or_else(|| ran(Engine::Etcd)));
    }
    let ratios = PAIRS
        .iter()
        .filter_map(|(a, b)| ratio(&summaries, *a, *b))
        .collect();
    Ok(CompareReport {
        reps: spec.reps,
        order,
        workload: spec.run.workload.clone(),
        machine: Machine::describe(&spec.run.data_root),
        durability: DURABILITY.into(),
        floor,
        engines: summaries,
        ratios,
        redis_benchmark: rb_summary,
    })
}

fn record(
    s: &mut EngineSummary,
    rep: usize,
    outcome: Outcome,
    reps: usize,
    say: &mut dyn FnMut(&str),
) {
    let name = s.engine.name();
    match outcome {
        Outcome::Ran(report) => {
            let p50 = report
                .write_latency
                .as_ref()
                .map_or_else(|| "-".into(), |l| format_us(l.p50_us));
            say(&format!(
                "compare: rep {}/{reps} {name}: {:.0} ops/s, write p50 {p50}, {} errors",
                rep + 1,
                report.throughput_ops_s,
                report.errors
            ));
            if s.setup.is_empty() {
                s.setup.clone_from(&report.setup);
            }
            s.runs[rep] = Some(*report);
        }
        Outcome::Skipped(why) => {
            say(&format!("compare: skipping {name}: {why}"));
            s.setup = format!("skipped: {why}");
            s.skipped = Some(why);
        }
        Outcome::Failed(why) => {
            say(&format!(
                "compare: rep {}/{reps} {name} failed: {why}",
                rep + 1
            ));
            s.failures.push((rep + 1, why));
        }
    }
}

/// The smallest and largest of `v`; `None` if empty.
#[must_use]
pub fn range(v: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    v.fold(None, |acc: Option<(f64, f64)>, x| {
        Some(acc.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x))))
    })
}

/// The median of `v` (the mean of the middle two for an even count); `None` if empty.
#[must_use]
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// CPU microseconds per operation of one run: the servers' if the report has them, else the
/// whole process's (in-process engines).
fn cpu_us_per_op(r: &RunReport) -> Option<f64> {
    let ops = r.writes + r.reads + r.misses;
    r.server_cpu_us_per_op.or_else(|| {
        (ops > 0).then(|| r.cpu.iter().map(|c| c.cpu_s).sum::<f64>() * 1e6 / ops as f64)
    })
}

impl EngineSummary {
    fn empty(engine: Engine, reps: usize) -> Self {
        Self {
            engine,
            setup: String::new(),
            skipped: None,
            failures: Vec::new(),
            runs: vec![None; reps],
            ops_s: None,
            p50_us: None,
            p99_us: None,
            cpu_us_per_op: None,
            errors: 0,
        }
    }

    fn ran(&self) -> impl Iterator<Item = &RunReport> {
        self.runs.iter().flatten()
    }

    fn finish(&mut self) {
        self.ops_s = median(self.ran().map(|r| r.throughput_ops_s).collect());
        self.p50_us = median(
            self.ran()
                .filter_map(|r| Some(r.write_latency?.p50_us))
                .collect(),
        );
        self.p99_us = median(
            self.ran()
                .filter_map(|r| Some(r.write_latency?.p99_us))
                .collect(),
        );
        self.cpu_us_per_op = median(self.ran().filter_map(cpu_us_per_op).collect());
        self.errors = self.ran().map(|r| r.errors).sum();
        if self.setup.is_empty() {
            self.setup = "every repetition failed".into();
        }
    }
}

fn ratio(summaries: &[EngineSummary], a: Engine, b: Engine) -> Option<Ratio> {
    let find = |e: Engine| summaries.iter().find(|s| s.engine == e);
    let (sa, sb) = (find(a)?, find(b)?);
    let pairs: Vec<(&RunReport, &RunReport)> = sa
        .runs
        .iter()
        .zip(&sb.runs)
        .filter_map(|(x, y)| Some((x.as_ref()?, y.as_ref()?)))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let per = |f: &dyn Fn(&RunReport) -> Option<f64>| -> Vec<f64> {
        pairs
            .iter()
            .filter_map(|(x, y)| {
                let (x, y) = (f(x)?, f(y)?);
                (y > 0.0).then(|| x / y)
            })
            .collect()
    };
    let throughput = per(&|r| Some(r.throughput_ops_s));
    let range = range(throughput.iter().copied());
    Some(Ratio {
        numerator: a,
        denominator: b,
        paired_reps: pairs.len(),
        throughput: median(throughput),
        throughput_range: range,
        p50: median(per(&|r| Some(r.write_latency?.p50_us))),
        p99: median(per(&|r| Some(r.write_latency?.p99_us))),
    })
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

impl CompareReport {
    /// The report for people: context, a table of medians, the ratios, and where ringraft
    /// is slower.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = &self.workload;
        let _ = writeln!(
            s,
            "ringraft-bench compare: {} repetitions, interleaved (repetition r starts at engine r \
             mod n), fresh data directories per run",
            self.reps
        );
        let _ = writeln!(
            s,
            "  workload    {} clients, pipeline {}, {} B values, SET of new keys, {:.1} s warmup \
             + {:.1} s measured per run",
            w.clients,
            w.pipeline,
            w.value_bytes,
            w.warmup.as_secs_f64(),
            w.duration.as_secs_f64()
        );
        let m = &self.machine;
        let _ = writeln!(
            s,
            "  machine     {} CPUs ({}), kernel {}, data on {}",
            m.cpus, m.cpu_model, m.kernel, m.disk
        );
        let _ = writeln!(s, "  durability  {}", self.durability);
        if let Some(f) = &self.floor {
            let _ = writeln!(
                s,
                "  floor       fdatasync p50 {} + loopback RTT p50 {} = {}",
                format_us(f.fdatasync.p50_us),
                format_us(f.loopback_rtt.p50_us),
                format_us(f.write_p50_us())
            );
        }
        self.write_table(&mut s);
        self.write_ratios(&mut s);
        if let Some(r) = &self.redis_benchmark {
            r.write(&mut s);
        }
        s
    }

    fn write_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n| engine | setup | runs | ops/s (median) | p50 | p99 | CPU/op | errors |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        for e in &self.engines {
            let ran = e.runs.iter().flatten().count();
            let _ = writeln!(
                s,
                "| {} | {} | {ran}/{} | {} | {} | {} | {} | {} |",
                e.engine.name(),
                e.setup,
                self.reps,
                opt(e.ops_s, |v| format!("{v:.0}")),
                opt(e.p50_us, format_us),
                opt(e.p99_us, format_us),
                opt(e.cpu_us_per_op, |v| format!("{v:.1} us")),
                e.errors
            );
        }
        let _ = writeln!(
            s,
            "\nCPU/op: server processes for ringraft, etcd and redis; the whole bench process \
             (cluster and clients) for the in-process engines."
        );
    }

    fn write_ratios(&self, s: &mut String) {
        if self.ratios.is_empty() {
            let _ = writeln!(s, "\nno ratio: no pair of engines both ran");
            return;
        }
        let _ = writeln!(s, "\nratios, median over paired repetitions:");
        let mut slower = Vec::new();
        for r in &self.ratios {
            let (a, b) = (r.numerator.name(), r.denominator.name());
            let _ = writeln!(
                s,
                "  {a} / {b}: throughput {} (range {}), p50 {}, p99 {} over {} repetitions",
                opt(r.throughput, |v| format!("{v:.2}x")),
                r.throughput_range
                    .map_or_else(|| "-".into(), |(lo, hi)| format!("{lo:.2}x-{hi:.2}x")),
                opt(r.p50, |v| format!("{v:.2}x")),
                opt(r.p99, |v| format!("{v:.2}x")),
                r.paired_reps
            );
            if let Some(t) = r.throughput.filter(|t| *t < 1.0) {
                slower.push(format!("{a} does {t:.2}x the writes per second of {b}"));
            }
            if let Some(p) = r.p50.filter(|p| *p > 1.0) {
                slower.push(format!("{a}'s median write latency is {p:.2}x {b}'s"));
            }
            if let Some(p) = r.p99.filter(|p| *p > 1.0) {
                slower.push(format!("{a}'s p99 write latency is {p:.2}x {b}'s"));
            }
        }
        if slower.is_empty() {
            let _ = writeln!(s, "where ringraft is slower: nowhere in this run");
        } else {
            let _ = writeln!(s, "where ringraft is slower:");
            for line in slower {
                let _ = writeln!(s, "  - {line}");
            }
        }
    }
}

impl RbSummary {
    fn empty(spec: &RbSpec, reps: usize) -> Self {
        RbSummary {
            command: rb::command_line(spec.requests),
            setup: format!(
                "`ringraft cluster --nodes 3` (one process, fdatasync on, lease reads), \
                 redis-benchmark connected to the leader{}",
                spec.election_timeout
                    .as_ref()
                    .map_or_else(String::new, |t| format!(", --election-timeout {t}"))
            ),
            skipped: None,
            failures: Vec::new(),
            runs: vec![None; reps],
            set_rps: None,
            set_rps_range: None,
            get_rps: None,
            get_rps_range: None,
            set_over_etcd: None,
            set_over_etcd_range: None,
            paired_reps: 0,
            etcd_engine: None,
        }
    }

    fn record(&mut self, rep: usize, outcome: RbOutcome, reps: usize, say: &mut dyn FnMut(&str)) {
        match outcome {
            RbOutcome::Ran(run) => {
                say(&format!(
                    "compare: rep {}/{reps} redis-benchmark: SET {:.0}/s, GET {:.0}/s",
                    rep + 1,
                    run.set_rps,
                    run.get_rps
                ));
                self.runs[rep] = Some(run);
            }
            RbOutcome::Skipped(why) => {
                say(&format!("compare: skipping redis-benchmark: {why}"));
                self.skipped = Some(why);
            }
            RbOutcome::Failed(why) => {
                say(&format!(
                    "compare: rep {}/{reps} redis-benchmark failed: {why}",
                    rep + 1
                ));
                self.failures.push((rep + 1, why));
            }
        }
    }

    fn finish(&mut self, etcd: Option<&EngineSummary>) {
        let ran = || self.runs.iter().flatten();
        self.set_rps = median(ran().map(|r| r.set_rps).collect());
        self.set_rps_range = range(ran().map(|r| r.set_rps));
        self.get_rps = median(ran().map(|r| r.get_rps).collect());
        self.get_rps_range = range(ran().map(|r| r.get_rps));
        let Some(etcd) = etcd else { return };
        self.etcd_engine = Some(etcd.engine);
        // Per repetition, so a slow phase of a shared machine hits both sides of a ratio.
        let ratios: Vec<f64> = self
            .runs
            .iter()
            .zip(&etcd.runs)
            .filter_map(|(r, e)| {
                let (r, e) = (r.as_ref()?, e.as_ref()?);
                (e.throughput_ops_s > 0.0).then(|| r.set_rps / e.throughput_ops_s)
            })
            .collect();
        self.paired_reps = ratios.len();
        self.set_over_etcd_range = range(ratios.iter().copied());
        self.set_over_etcd = median(ratios);
    }

    fn write(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nredis-benchmark: {} against {}",
            self.command, self.setup
        );
        if let Some(why) = &self.skipped {
            let _ = writeln!(s, "  skipped: {why}");
            return;
        }
        let ran = self.runs.iter().flatten().count();
        let spread = |v: Option<f64>, r: Option<(f64, f64)>, unit: &str| match (v, r) {
            (Some(v), Some((lo, hi))) => format!("{v:.0}{unit} (min {lo:.0}, max {hi:.0})"),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "  {ran}/{} runs: SET {}, GET {}",
            self.runs.len(),
            spread(self.set_rps, self.set_rps_range, "/s"),
            spread(self.get_rps, self.get_rps_range, "/s")
        );
        let verdict = |met: bool| if met { "met" } else { "missed" };
        match self.set_over_etcd {
            Some(x) => {
                let (lo, hi) = self.set_over_etcd_range.unwrap_or((x, x));
                let _ = writeln!(
                    s,
                    "  SET / {} writes/s (same repetitions, {} paired): {x:.2}x (range \
                     {lo:.2}x-{hi:.2}x); target >= {RB_SET_OVER_ETCD_TARGET:.0}x: {}",
                    self.etcd_engine.map_or("etcd", Engine::name),
                    self.paired_reps,
                    verdict(x >= RB_SET_OVER_ETCD_TARGET)
                );
            }
            None => {
                let _ = writeln!(s, "  SET / etcd writes/s: - (etcd did not run alongside)");
            }
        }
        if let Some(g) = self.get_rps {
            let _ = writeln!(
                s,
                "  GET target >= {RB_GET_TARGET_RPS:.0}/s (lease reads): {}",
                verdict(g >= RB_GET_TARGET_RPS)
            );
        }
        for (rep, why) in &self.failures {
            let first = why.lines().next().unwrap_or("");
            let _ = writeln!(s, "  repetition {rep} failed: {first}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
