//! `ringraft-bench sweep`: each engine at each client count (one run per point, engines
//! interleaved within a client count, starting at a different engine each time), written as
//! `sweep.json` with two SVG charts next to it: throughput against clients, and write p50 and
//! p99 against clients, one line per engine (plotters).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use super::engines::{self, Engine, Outcome};
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
    /// Every other workload parameter (its `clients` is replaced per point).
    pub workload: Workload,
    /// The `ringraft` binary (`None`: next to this executable).
    pub ringraft_bin: Option<PathBuf>,
    /// Root of the data directories.
    pub data_root: PathBuf,
    /// Where `sweep.json`, `throughput.svg` and `latency.svg` go (created if missing).
    pub out_dir: PathBuf,
    /// Draw a progress line during each run.
    pub progress: bool,
}

/// One engine at one client count.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    /// The engine.
    pub engine: Engine,
    /// Client connections.
    pub clients: usize,
    /// Operations per second, if it ran.
    pub ops_s: Option<f64>,
    /// Write p50, microseconds.
    pub p50_us: Option<f64>,
    /// Write p99, microseconds.
    pub p99_us: Option<f64>,
    /// Errors in the run.
    pub errors: u64,
    /// Why it did not run, if it did not.
    pub not_run: Option<String>,
    /// The run's full report.
    pub report: Option<RunReport>,
}

/// The sweep's result (`sweep.json`).
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    /// The workload (its `clients` is the last point's).
    pub workload: Workload,
    /// Client counts swept.
    pub clients: Vec<usize>,
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
    spec.workload.validate().map_err(RunError::from)?;
    let mut clients = spec.clients.clone();
    clients.sort_unstable();
    clients.dedup();
    let mut skipped: Vec<(Engine, String)> = Vec::new();
    let mut points = Vec::new();
    let n = spec.engines.len();
    for (i, c) in clients.iter().enumerate() {
        for k in 0..n {
            let engine = spec.engines[(i + k) % n];
            let run_spec = engines::RunSpec {
                workload: Workload {
                    clients: *c,
                    ..spec.workload.clone()
                },
                ringraft_bin: spec.ringraft_bin.clone(),
                data_root: spec.data_root.clone(),
                progress: spec.progress,
            };
            let outcome = match skipped.iter().find(|(e, _)| *e == engine) {
                Some((_, why)) => Outcome::Skipped(why.clone()),
                None => engines::run_once(engine, &run_spec),
            };
            let point = point(engine, *c, outcome, &mut skipped, say);
            points.push(point);
        }
    }
    let mut report = SweepReport {
        workload: Workload {
            clients: clients.last().copied().unwrap_or(1),
            ..spec.workload.clone()
        },
        clients,
        machine: Machine::describe(&spec.data_root),
        durability: super::compare::DURABILITY.into(),
        points,
        files: Vec::new(),
    };
    write_files(spec, &mut report)?;
    Ok(report)
}

fn point(
    engine: Engine,
    clients: usize,
    outcome: Outcome,
    skipped: &mut Vec<(Engine, String)>,
    say: &mut dyn FnMut(&str),
) -> SweepPoint {
    let mut p = SweepPoint {
        engine,
        clients,
        ops_s: None,
        p50_us: None,
        p99_us: None,
        errors: 0,
        not_run: None,
        report: None,
    };
    let name = engine.name();
    match outcome {
        Outcome::Ran(r) => {
            p.ops_s = Some(r.throughput_ops_s);
            p.p50_us = r.write_latency.map(|l| l.p50_us);
            p.p99_us = r.write_latency.map(|l| l.p99_us);
            p.errors = r.errors;
            say(&format!(
                "sweep: {name} at {clients} clients: {:.0} ops/s, write p50 {}, {} errors",
                r.throughput_ops_s,
                p.p50_us.map_or_else(|| "-".into(), format_us),
                r.errors
            ));
            p.report = Some(*r);
        }
        Outcome::Skipped(why) => {
            if !skipped.iter().any(|(e, _)| *e == engine) {
                say(&format!("sweep: skipping {name}: {why}"));
                skipped.push((engine, why.clone()));
            }
            p.not_run = Some(format!("skipped: {why}"));
        }
        Outcome::Failed(why) => {
            say(&format!("sweep: {name} at {clients} clients failed: {why}"));
            p.not_run = Some(format!("failed: {why}"));
        }
    }
    p
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

/// One engine's points that ran: (clients, ops/s, p50 us, p99 us).
struct Series {
    name: &'static str,
    points: Vec<(f64, f64, f64, f64)>,
}

fn series(engines: &[Engine], points: &[SweepPoint]) -> Vec<Series> {
    engines
        .iter()
        .map(|e| Series {
            name: e.name(),
            points: points
                .iter()
                .filter(|p| p.engine == *e)
                .filter_map(|p| Some((p.clients as f64, p.ops_s?, p.p50_us?, p.p99_us?)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn x_range(series: &[Series]) -> (f64, f64) {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let max = xs.fold(1.0f64, f64::max);
    // A log axis needs a span: one client alone still gets 1 to 2.
    (1.0, (max * 1.5).max(2.0))
}

fn plot_throughput(path: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    let root = SVGBackend::new(path, CHART_PX).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (x0, x1) = x_range(series);
    let y1 = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc("writes/s")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    legend_and_present(&mut chart, &root)
}

fn plot_latency(path: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    let root = SVGBackend::new(path, CHART_PX).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (x0, x1) = x_range(series);
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.2, p.3]));
    let (lo, hi) = ys.fold((f64::MAX, 1.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (y0, y1) = ((lo * 0.7).clamp(0.1, hi), hi * 1.5);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc("microseconds")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let p50: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.2)).collect();
        let p99: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.3)).collect();
        chart
            .draw_series(LineSeries::new(p50.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("{} p50 / p99", s.name))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(LineSeries::new(p99.clone(), color.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(p50.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                p99.into_iter()
                    .map(|p| TriangleMarker::new(p, 5, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    legend_and_present(&mut chart, &root)
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
            "ringraft-bench sweep: clients {:?}, pipeline {}, {} B values, {:.1} s warmup + \
             {:.1} s measured per point",
            self.clients,
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
        let _ = writeln!(s, "\n| engine | clients | ops/s | p50 | p99 | errors |");
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
        let mut points: Vec<&SweepPoint> = self.points.iter().collect();
        points.sort_by_key(|p| (p.engine.name(), p.clients));
        for p in points {
            let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "-".into(), f);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                p.engine.name(),
                p.clients,
                p.not_run
                    .clone()
                    .unwrap_or_else(|| cell(p.ops_s, &|v| format!("{v:.0}"))),
                cell(p.p50_us, &format_us),
                cell(p.p99_us, &format_us),
                p.errors
            );
        }
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        let _ = writeln!(s, "\nwrote {}", files.join(", "));
        s
    }
}
