//! `ringraft-bench compare`: the same workload against ringraft, etcd and a durable Redis
//! (and, in memory, ringraft against openraft's minimal benchmark shape), interleaved in one
//! invocation: repetition `r` runs every engine once, starting at engine `r mod n` so that no
//! engine always runs first, each run on fresh data directories. The table shows medians over
//! the repetitions and ratios taken per repetition (ringraft's run against the other engine's
//! run of the same repetition), so slow phases of a shared machine hit both sides of a ratio.
//! An engine that is not installed is skipped with a line that says so; it never fails the run.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::engines::{self, Engine, Outcome};
use super::floor::Floor;
use super::latency::format_us;
use super::machine::Machine;
use super::report::RunReport;
use super::run::{self, RunError};
use super::workload::Workload;

/// Fewest repetitions a comparison makes: fewer cannot show a median that one outlier does
/// not decide.
pub const REPS_MIN: usize = 3;
/// Most repetitions (each is a full run of every engine).
pub const REPS_MAX: usize = 50;

/// The ratios the comparison reports: (numerator, denominator).
pub const PAIRS: [(Engine, Engine); 3] = [
    (Engine::Ringraft, Engine::Etcd),
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
    /// The workload every run gets.
    pub workload: Workload,
    /// The `ringraft` binary (`None`: next to this executable).
    pub ringraft_bin: Option<PathBuf>,
    /// Root of the data directories.
    pub data_root: PathBuf,
    /// Measure the fdatasync + loopback floor once before the first run.
    pub floor: bool,
    /// Draw a progress line during each run.
    pub progress: bool,
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
    spec.workload.validate()?;
    if !(REPS_MIN..=REPS_MAX).contains(&spec.reps) {
        return Err(RunError::Reps {
            min: REPS_MIN,
            max: REPS_MAX,
            got: spec.reps,
        });
    }
    let floor = run::measure_floor(spec.floor, &spec.data_root)?;
    let mut summaries: Vec<EngineSummary> = spec
        .engines
        .iter()
        .map(|e| EngineSummary::empty(*e, spec.reps))
        .collect();
    let mut order = Vec::new();
    let n = spec.engines.len();
    for rep in 0..spec.reps {
        for k in 0..n {
            let s = &mut summaries[(rep + k) % n];
            if s.skipped.is_some() {
                continue;
            }
            order.push(format!("{}:{}", rep + 1, s.engine.name()));
            let outcome = engines::run_once(s.engine, &engines_spec(spec));
            record(s, rep, outcome, spec.reps, say);
        }
    }
    for s in &mut summaries {
        s.finish();
    }
    let ratios = PAIRS
        .iter()
        .filter_map(|(a, b)| ratio(&summaries, *a, *b))
        .collect();
    Ok(CompareReport {
        reps: spec.reps,
        order,
        workload: spec.workload.clone(),
        machine: Machine::describe(&spec.data_root),
        durability: DURABILITY.into(),
        floor,
        engines: summaries,
        ratios,
    })
}

fn engines_spec(spec: &CompareSpec) -> engines::RunSpec {
    engines::RunSpec {
        workload: spec.workload.clone(),
        ringraft_bin: spec.ringraft_bin.clone(),
        data_root: spec.data_root.clone(),
        progress: spec.progress,
    }
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
    let range = throughput
        .iter()
        .copied()
        .fold(None, |acc: Option<(f64, f64)>, t| {
            Some(acc.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))))
        });
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
