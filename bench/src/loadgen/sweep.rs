//! `ringraft-bench sweep`: each engine at each client count, [`REPS_MIN`] or more runs per
//! point (engines interleaved within a client count, each repetition starting at a different
//! engine), written as `sweep.json` with two SVG charts next to it: throughput against
//! clients, and write p50 and p99 against clients, one line per engine through the medians
//! with a bar from the smallest to the largest run (plotters).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use super::compare::{median, range, REPS_MAX, REPS_MIN};
use super::engines::{self, Engine, Outcome, RunSpec};
use super::latency::format_us;
use super::machine::Machine;
use super::report::RunReport;
use super::run::RunError;
use super::workload::{Workload, CLIENTS_MAX};

/// The client counts a sweep uses unless told otherwise.
pub const CLIENTS_DEFAULT: [usize; 5] = [1, 4, 16, 64, 256];
/// Most client counts one sweep takes (each is a run of every engine).
pub const POINTS_MAX: usize = 32;
/// Chart size, pixels.
const CHART_PX: (u32, u32) = (900, 560);

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// Engines, in the order of the first client count.
    pub engines: Vec<Engine>,
    /// Client counts, ascending.
    pub clients: Vec<usize>,
    /// Runs per engine and client count, [`REPS_MIN`] to [`REPS_MAX`].
    pub reps: usize,
    /// Every run's parameters (the workload's `clients` is replaced per point).
    pub run: RunSpec,
    /// Where `sweep.json`, `throughput.svg` and `latency.svg` go (created if missing).
    pub out_dir: PathBuf,
}

/// One engine at one client count, over its repetitions.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    /// The engine.
    pub engine: Engine,
    /// Client connections.
    pub clients: usize,
    /// Runs that finished (of the sweep's `reps`).
    pub runs: usize,
    /// Median operations per second, if any run finished.
    pub ops_s: Option<f64>,
    /// Smallest and largest run's operations per second.
    pub ops_s_range: Option<(f64, f64)>,
    /// Median of the runs' write p50, microseconds.
    pub p50_us: Option<f64>,
    /// Smallest and largest run's write p50.
    pub p50_us_range: Option<(f64, f64)>,
    /// Median of the runs' write p99, microseconds.
    pub p99_us: Option<f64>,
    /// Smallest and largest run's write p99.
    pub p99_us_range: Option<(f64, f64)>,
    /// Errors over all runs.
    pub errors: u64,
    /// Why no run finished, if none did.
    pub not_run: Option<String>,
    /// Runs that failed: their messages.
    pub failures: Vec<String>,
    /// Every finished run's full report.
    pub reports: Vec<RunReport>,
}

/// The sweep's result (`sweep.json`).
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    /// The workload (its `clients` is the last point's).
    pub workload: Workload,
    /// Client counts swept.
    pub clients: Vec<usize>,
    /// Runs per engine and client count.
    pub reps: usize,
    /// Where it ran.
    pub machine: Machine,
    /// What durability each engine ran with.
    pub durability: String,
    /// Every point, in the order run.
    pub points: Vec<SweepPoint>,
    /// The files written.
    pub files: Vec<PathBuf>,
}

/// A sweep that could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// A workload parameter is out of range.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The client counts are empty, too many, or out of range.
    #[error("--clients-list: {0}")]
    Clients(String),
    /// An output file could not be written.
    #[error("write {path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

fn check_clients(clients: &[usize]) -> Result<(), SweepError> {
    if clients.is_empty() || clients.len() > POINTS_MAX {
        return Err(SweepError::Clients(format!(
            "give 1 to {POINTS_MAX} client counts, got {}",
            clients.len()
        )));
    }
    if let Some(c) = clients.iter().find(|c| !(1..=CLIENTS_MAX).contains(*c)) {
        return Err(SweepError::Clients(format!(
            "each count must be between 1 and {CLIENTS_MAX}, got {c}"
        )));
    }
    Ok(())
}

/// Runs the sweep and writes its files. `say` gets one line per run.
///
/// # Errors
/// See [`SweepError`]; engines that fail or are missing are recorded in the points.
pub fn sweep(spec: &SweepSpec, say: &mut dyn FnMut(&str)) -> Result<SweepReport, SweepError> {
    check_clients(&spec.clients)?;
    spec.run.workload.validate().map_err(RunError::from)?;
    if !(REPS_MIN..=REPS_MAX).contains(&spec.reps) {
        return Err(RunError::Reps {
            min: REPS_MIN,
            max: REPS_MAX,
            got: spec.reps,
        }
        .into());
    }
    let mut clients = spec.clients.clone();
    clients.sort_unstable();
    clients.dedup();
    let mut skipped: Vec<(Engine, String)> = Vec::new();
    let mut points = Vec::new();
    let n = spec.engines.len();
    for (i, c) in clients.iter().enumerate() {
        let run_spec = RunSpec {
            workload: Workload {
                clients: *c,
                ..spec.run.workload.clone()
            },
            ..spec.run.clone()
        };
        let mut at_count: Vec<SweepPoint> = spec
            .engines
            .iter()
            .map(|e| SweepPoint::empty(*e, *c))
            .collect();
        for rep in 0..spec.reps {
            // Rotate the starting engine by count and repetition so that no engine always
            // runs first (on a warm or a cold machine).
            for k in 0..n {
                let slot = (i * spec.reps + rep + k) % n;
                let engine = spec.engines[slot];
                let outcome = match skipped.iter().find(|(e, _)| *e == engine) {
                    Some((_, why)) => Outcome::Skipped(why.clone()),
                    None => engines::run_once(engine, &run_spec),
                };
                at_count[slot].add(outcome, &mut skipped, say);
            }
        }
        for mut p in at_count {
            p.finish();
            points.push(p);
        }
    }
    let mut report = SweepReport {
        workload: Workload {
            clients: clients.last().copied().unwrap_or(1),
            ..spec.run.workload.clone()
        },
        clients,
        reps: spec.reps,
        machine: Machine::describe(&spec.run.data_root),
        durability: super::compare::DURABILITY.into(),
        points,
        files: Vec::new(),
    };
    write_files(spec, &mut report)?;
    Ok(report)
}

impl SweepPoint {
    fn empty(engine: Engine, clients: usize) -> Self {
        SweepPoint {
            engine,
            clients,
            runs: 0,
            ops_s: None,
            ops_s_range: None,
            p50_us: None,
            p50_us_range: None,
            p99_us: None,
            p99_us_range: None,
            errors: 0,
            not_run: None,
            failures: Vec::new(),
            reports: Vec::new(),
        }
    }

    fn add(
        &mut self,
        outcome: Outcome,
        skipped: &mut Vec<(Engine, String)>,
        say: &mut dyn FnMut(&str),
    ) {
        let (name, clients) = (self.engine.name(), self.clients);
        match outcome {
            Outcome::Ran(r) => {
                say(&format!(
                    "sweep: {name} at {clients} clients, run {}: {:.0} ops/s, write p50 {}, {} \
                     errors",
                    self.reports.len() + 1,
                    r.throughput_ops_s,
                    r.write_latency
                        .map_or_else(|| "-".into(), |l| format_us(l.p50_us)),
                    r.errors
                ));
                self.reports.push(*r);
            }
            Outcome::Skipped(why) => {
                if !skipped.iter().any(|(e, _)| *e == self.engine) {
                    say(&format!("sweep: skipping {name}: {why}"));
                    skipped.push((self.engine, why.clone()));
                }
                self.not_run = Some(format!("skipped: {why}"));
            }
            Outcome::Failed(why) => {
                say(&format!("sweep: {name} at {clients} clients failed: {why}"));
                self.failures.push(why);
            }
        }
    }

    fn finish(&mut self) {
        let r = &self.reports;
        let ops = || r.iter().map(|r| r.throughput_ops_s);
        let p50 = || r.iter().filter_map(|r| Some(r.write_latency?.p50_us));
        let p99 = || r.iter().filter_map(|r| Some(r.write_latency?.p99_us));
        self.runs = r.len();
        (self.ops_s, self.ops_s_range) = (median(ops().collect()), range(ops()));
        (self.p50_us, self.p50_us_range) = (median(p50().collect()), range(p50()));
        (self.p99_us, self.p99_us_range) = (median(p99().collect()), range(p99()));
        self.errors = r.iter().map(|r| r.errors).sum();
        if self.runs == 0 && self.not_run.is_none() {
            self.not_run = Some(format!(
                "failed: {}",
                self.failures
                    .first()
                    .map_or("no run finished", String::as_str)
            ));
        }
    }
}

fn write_files(spec: &SweepSpec, report: &mut SweepReport) -> Result<(), SweepError> {
    let out = |path: &Path, message: String| SweepError::Output {
        path: path.to_path_buf(),
        message,
    };
    std::fs::create_dir_all(&spec.out_dir).map_err(|e| out(&spec.out_dir, e.to_string()))?;
    let throughput = spec.out_dir.join("throughput.svg");
    let latency = spec.out_dir.join("latency.svg");
    let json = spec.out_dir.join("sweep.json");
    let series = series(&spec.engines, &report.points);
    let title = |what: &str| {
        format!(
            "{what} vs clients, {} B SET, {} CPUs",
            report.workload.value_bytes, report.machine.cpus
        )
    };
    plot_throughput(&throughput, &title("writes/s"), &series).map_err(|e| out(&throughput, e))?;
    plot_latency(
        &latency,
        &title("write latency p50 (o) and p99 (^)"),
        &series,
    )
    .map_err(|e| out(&latency, e))?;
    report.files = vec![json.clone(), throughput, latency];
    let text = serde_json::to_string_pretty(report)
        .expect("reports serialize: no maps with non-string keys");
    std::fs::write(&json, text).map_err(|e| out(&json, e.to_string()))
}

/// One point of a chart: the median and the smallest and largest run.
#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    lo: f64,
    hi: f64,
}

impl Spread {
    fn of(median: Option<f64>, range: Option<(f64, f64)>) -> Option<Spread> {
        let (lo, hi) = range?;
        Some(Spread {
            median: median?,
            lo,
            hi,
        })
    }
}

/// One engine's points that ran: clients, ops/s, p50 us, p99 us.
struct Series {
    name: &'static str,
    points: Vec<(f64, Spread, Spread, Spread)>,
}

fn series(engines: &[Engine], points: &[SweepPoint]) -> Vec<Series> {
    engines
        .iter()
        .map(|e| Series {
            name: e.name(),
            points: points
                .iter()
                .filter(|p| p.engine == *e)
                .filter_map(|p| {
                    Some((
                        p.clients as f64,
                        Spread::of(p.ops_s, p.ops_s_range)?,
                        Spread::of(p.p50_us, p.p50_us_range)?,
                        Spread::of(p.p99_us, p.p99_us_range)?,
                    ))
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn x_range(series: &[Series]) -> (f64, f64) {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let max = xs.fold(1.0f64, f64::max);
    // A log axis needs a span, and the first and last points room for their markers: from
    // 0.7 of one client to 1.5 times the most.
    (0.7, (max * 1.5).max(2.0))
}

/// A line through the medians, a marker on each, and a bar from the smallest to the largest
/// run.
fn draw_spread<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    pts: &[(f64, Spread)],
    color: RGBAColor,
    width: u32,
    marker: Marker,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let medians: Vec<(f64, f64)> = pts.iter().map(|(x, s)| (*x, s.median)).collect();
    chart
        .draw_series(LineSeries::new(medians.clone(), color.stroke_width(width)))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(pts.iter().map(|(x, s)| {
            ErrorBar::new_vertical(*x, s.lo, s.median, s.hi, color.stroke_width(1), 8)
        }))
        .map_err(|e| e.to_string())?;
    match marker {
        Marker::Circle => chart
            .draw_series(
                medians
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map(|_| ()),
        Marker::Triangle => chart
            .draw_series(
                medians
                    .into_iter()
                    .map(|p| TriangleMarker::new(p, 7, color.filled())),
            )
            .map(|_| ()),
    }
    .map_err(|e| e.to_string())
}

/// The marker on a series' medians: p50 and throughput get circles, p99 triangles.
#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Triangle,
}

fn plot_throughput(path: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    let root = SVGBackend::new(path, CHART_PX).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (x0, x1) = x_range(series);
    let y1 = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.hi))
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc("writes/s (median; bar: min to max)")
        // The log axis's minor lines (2, 3, ... 9 of every decade) crowd into a grey band.
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, Spread)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        draw_spread(&mut chart, &pts, color, 2, Marker::Circle)?;
        legend_entry(&mut chart, s.name.to_string(), color)?;
    }
    legend_and_present(&mut chart, &root)
}

fn plot_latency(path: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    let root = SVGBackend::new(path, CHART_PX).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (x0, x1) = x_range(series);
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.2.lo, p.3.hi]));
    let (lo, hi) = ys.fold((f64::MAX, 1.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (y0, y1) = ((lo * 0.7).clamp(0.1, hi), hi * 1.5);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc("write latency (median; bar: min to max)")
        .light_line_style(TRANSPARENT)
        .y_labels(12)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format_us(*y))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let p50: Vec<(f64, Spread)> = s.points.iter().map(|p| (p.0, p.2)).collect();
        let p99: Vec<(f64, Spread)> = s.points.iter().map(|p| (p.0, p.3)).collect();
        draw_spread(&mut chart, &p50, color, 2, Marker::Circle)?;
        draw_spread(&mut chart, &p99, color, 1, Marker::Triangle)?;
        legend_entry(&mut chart, format!("{} p50 (o) / p99 (^)", s.name), color)?;
    }
    legend_and_present(&mut chart, &root)
}

/// A legend line for a series drawn in pieces (the legend takes it from an empty series).
fn legend_entry<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    label: String,
    color: RGBAColor,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

fn legend_and_present<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

impl SweepReport {
    /// A table for people: one row per client count, one column pair per engine.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = &self.workload;
        let _ = writeln!(
            s,
            "ringraft-bench sweep: clients {:?}, {} runs per point, pipeline {}, {} B values, \
             {:.1} s warmup + {:.1} s measured per run",
            self.clients,
            self.reps,
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
        let _ = writeln!(
            s,
            "\n| engine | clients | runs | ops/s median (min-max) | p50 median (min-max) | p99 \
             median (min-max) | errors |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
        let mut points: Vec<&SweepPoint> = self.points.iter().collect();
        points.sort_by_key(|p| (p.engine.name(), p.clients));
        for p in points {
            let cell =
                |v: Option<f64>, r: Option<(f64, f64)>, f: &dyn Fn(f64) -> String| match (v, r) {
                    (Some(v), Some((lo, hi))) => format!("{} ({}-{})", f(v), f(lo), f(hi)),
                    _ => "-".into(),
                };
            let ops = p
                .not_run
                .clone()
                .unwrap_or_else(|| cell(p.ops_s, p.ops_s_range, &|v| format!("{v:.0}")));
            let _ = writeln!(
                s,
                "| {} | {} | {}/{} | {ops} | {} | {} | {} |",
                p.engine.name(),
                p.clients,
                p.runs,
                self.reps,
                cell(p.p50_us, p.p50_us_range, &format_us),
                cell(p.p99_us, p.p99_us_range, &format_us),
                p.errors
            );
        }
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        let _ = writeln!(s, "\nwrote {}", files.join(", "));
        s
    }
}
