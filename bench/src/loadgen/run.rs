//! One measured run from start to report: measure the floor, start the system (or take the
//! given endpoints), drive the workload with a progress line, stop the system.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::driver::{self, Endpoints};
use super::floor::Floor;
use super::machine::Machine;
use super::report::{Context, RunReport};
use super::servers::{self, Launch, LaunchError};
use super::workload::{Durability, Workload, WorkloadError};

/// A run that could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A workload parameter is out of range.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// The system did not start.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// A repetition count out of range.
    #[error("--reps must be between {min} and {max}, got {got}")]
    Reps {
        /// Fewest.
        min: usize,
        /// Most.
        max: usize,
        /// Given.
        got: usize,
    },
    /// Measuring the floor or building the runtime failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Options shared by every run of one invocation.
#[derive(Clone, Debug)]
pub struct Options {
    /// Measure the fdatasync + loopback floor before the run.
    pub floor: bool,
    /// Draw the progress line (on stderr, only if it is a terminal).
    pub progress: bool,
}

/// Where the servers keep their data: `--data-root`, else the system's temporary directory.
#[must_use]
pub fn data_root(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(std::env::temp_dir, Path::to_path_buf)
}

/// Starts `launch.system`, runs `workload` against it and stops it.
///
/// # Errors
/// See [`RunError`].
pub fn run_started(
    launch: &Launch,
    workload: &Workload,
    options: &Options,
) -> Result<RunReport, RunError> {
    workload.validate()?;
    let floor = measure_floor(options.floor, &launch.data_root)?;
    let running = servers::start(launch)?;
    let machine = Machine::describe(running.data_dir());
    let stats = drive(&running.endpoints, workload, &running.watched(), options)?;
    let nodes = running.endpoints.addrs.len();
    let ctx = Context {
        system: launch.system.name().into(),
        setup: running.description.clone(),
        nodes,
        durability: launch.durability,
        machine,
        floor,
    };
    drop(running);
    Ok(RunReport::new(ctx, workload, &stats))
}

/// Runs `workload` against servers the bench did not start (`--endpoints`); `durability`
/// is what the caller says they do, reported as given.
///
/// # Errors
/// See [`RunError`].
pub fn run_endpoints(
    endpoints: &Endpoints,
    durability: Durability,
    data_root: &Path,
    workload: &Workload,
    options: &Options,
) -> Result<RunReport, RunError> {
    workload.validate()?;
    let floor = measure_floor(options.floor, data_root)?;
    let stats = drive(endpoints, workload, &[], options)?;
    let addrs: Vec<String> = endpoints.addrs.iter().map(ToString::to_string).collect();
    let ctx = Context {
        system: "endpoints".into(),
        setup: format!(
            "running servers at {} ({:?})",
            addrs.join(", "),
            endpoints.protocol
        ),
        nodes: endpoints.addrs.len(),
        durability,
        machine: Machine::describe(data_root),
        floor,
    };
    Ok(RunReport::new(ctx, workload, &stats))
}

/// Measures the fdatasync + loopback floor in `dir`, if `enabled`.
///
/// # Errors
/// The directory or the measurement failed.
pub fn measure_floor(enabled: bool, dir: &Path) -> Result<Option<Floor>, RunError> {
    if !enabled {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).map_err(|source| RunError::Io {
        what: "create the data root",
        source,
    })?;
    Floor::measure(dir)
        .map(Some)
        .map_err(|source| RunError::Io {
            what: "measure the fdatasync and loopback floor",
            source,
        })
}

fn drive(
    endpoints: &Endpoints,
    workload: &Workload,
    watched: &[driver::Watched],
    options: &Options,
) -> Result<driver::RunStats, RunError> {
    let bar = if options.progress {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let total = workload.duration.as_secs_f64();
    let mut progress = |phase: &str, secs: f64, ops: u64| {
        let rate = if secs > 0.0 { ops as f64 / secs } else { 0.0 };
        bar.set_message(match phase {
            "warmup" => format!("warmup {secs:.1}/{:.1} s", workload.warmup.as_secs_f64()),
            _ => format!("{phase} {secs:.1}/{total:.1} s  {ops} ops  {rate:.0} ops/s"),
        });
    };
    let stats = driver::run(endpoints, workload, watched, &mut progress).map_err(|source| {
        RunError::Io {
            what: "build the client runtime",
            source,
        }
    })?;
    bar.finish_and_clear();
    Ok(stats)
}
