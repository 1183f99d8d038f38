//! `ringraft-bench`: the load generator. With no arguments it starts a 3-node ringraft
//! cluster (`ringraft serve` processes on loopback, fsync on), drives it with 256 clients
//! writing 256 B values for 2 s of warmup and 20 s measured, and prints the report.
//! `ringraft-bench --help` lists the options; docs/benchmarks.md explains every figure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ringraft_bench::loadgen::compare::{self as cmp, CompareSpec};
use ringraft_bench::loadgen::driver::Endpoints;
use ringraft_bench::loadgen::engines::{Engine, RunSpec};
use ringraft_bench::loadgen::redis_benchmark::{RbSpec, REQUESTS_DEFAULT, REQUESTS_MIN};
use ringraft_bench::loadgen::report::RunReport;
use ringraft_bench::loadgen::run::{self, Options};
use ringraft_bench::loadgen::servers::{Launch, System};
use ringraft_bench::loadgen::sweep::{self, SweepSpec, CLIENTS_DEFAULT};
use ringraft_bench::loadgen::wire::Protocol;
use ringraft_bench::loadgen::workload::{parse_duration, Durability, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "ringraft-bench",
    version,
    about = "Load generator for ringraft, with side-by-side runs against etcd and Redis",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One run (the default when no subcommand is given).
    Run(RunArgs),
    /// ringraft, etcd and a durable Redis (and ringraft in memory against openraft's
    /// minimal benchmark) with the same workload, interleaved, >= 3 repetitions each; a
    /// table of medians and ratios.
    Compare(CompareArgs),
    /// Each engine at each client count (1, 4, 16, 64, 256 by default): sweep.json plus
    /// throughput.svg and latency.svg (p50 and p99) in --out.
    Sweep(SweepArgs),
}

/// Phases of a single run: the README's main job.
const RUN_PHASES: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(20));
/// Phases of each run of `compare` and `sweep`, which make many runs.
const MULTI_PHASES: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5));

#[derive(Args, Debug, Clone)]
struct SweepArgs {
    /// Engines to sweep, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Engine::Ringraft, Engine::Etcd, Engine::Redis])]
    engines: Vec<Engine>,
    /// Client counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = CLIENTS_DEFAULT)]
    clients_list: Vec<usize>,
    /// Directory for sweep.json, throughput.svg and latency.svg.
    #[arg(long, default_value = "ringraft-bench-sweep")]
    out: PathBuf,
    /// Runs per engine and client count (at least 3; the charts show the median and the
    /// smallest and largest run).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[command(flatten)]
    shared: SharedArgs,
    #[command(flatten)]
    load: WorkloadArgs,
}

#[derive(Args, Debug, Clone)]
struct CompareArgs {
    /// Engines to compare, comma-separated, in the order of the first repetition.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Engine::ALL)]
    engines: Vec<Engine>,
    /// Repetitions of every engine (at least 3).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Skip measuring the fdatasync + loopback floor.
    #[arg(long)]
    no_floor: bool,
    /// Also run `redis-benchmark -t set,get -P 16 -c 50 -d 256` against a `ringraft
    /// cluster` once per repetition (the first target: SET against etcd's writes/s
    /// from the same repetitions, GET against 1,000,000/s). `--engines etcd
    /// --redis-benchmark` measures that target alone.
    #[arg(long)]
    redis_benchmark: bool,
    /// redis-benchmark's `-n` (requests per test).
    #[arg(long, default_value_t = REQUESTS_DEFAULT, value_parser = clap::value_parser!(u64).range(REQUESTS_MIN..))]
    rb_requests: u64,
    /// `--election-timeout MIN-MAX` (ms) for that `ringraft cluster`.
    #[arg(long)]
    rb_election_timeout: Option<String>,
    #[command(flatten)]
    shared: SharedArgs,
    #[command(flatten)]
    load: WorkloadArgs,
}

/// The workload's parameters.
#[derive(Args, Debug, Clone)]
struct WorkloadArgs {
    /// Client connections, each a closed loop.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Requests each client keeps in flight.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Bytes per written value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Percentage of operations that are reads (GET of a key the client saw acknowledged).
    #[arg(long, default_value_t = 0)]
    reads: u8,
    /// Time before measuring starts (20s, 1.5s, 500ms) [default: 2s; compare and sweep: 1s].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Length of the measured phase [default: 20s; compare and sweep: 5s per run].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop measuring after this many operations, if sooner.
    #[arg(long)]
    ops: Option<u64>,
}

impl WorkloadArgs {
    /// The workload, with `phases` = (warmup, duration) where the flags are absent.
    fn workload(&self, phases: (Duration, Duration)) -> Workload {
        Workload {
            clients: self.clients,
            pipeline: self.pipeline,
            value_bytes: self.value_bytes,
            read_percent: self.reads,
            warmup: self.warmup.unwrap_or(phases.0),
            duration: self.duration.unwrap_or(phases.1),
            ops_max: self.ops,
        }
    }
}

/// Where the servers come from and how the run is reported.
#[derive(Args, Debug, Clone)]
struct SystemArgs {
    /// Nodes of the local cluster (default 3; Redis is always 1).
    #[arg(long)]
    nodes: Option<usize>,
    /// Fsync before acknowledging (`fsync`) or not (`none`, experiments only).
    #[arg(long, value_enum, default_value_t = Durability::Fsync)]
    durability: Durability,
    /// Skip measuring the fdatasync + loopback floor.
    #[arg(long)]
    no_floor: bool,
    #[command(flatten)]
    shared: SharedArgs,
}

/// Flags of every subcommand that starts servers.
#[derive(Args, Debug, Clone)]
struct SharedArgs {
    /// The `ringraft` binary (default: next to this executable).
    #[arg(long)]
    ringraft_bin: Option<PathBuf>,
    /// Directory for the servers' temporary data directories and the fdatasync floor
    /// (default: $TMPDIR or /tmp).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// No progress line (the one-line result of each run still goes to stderr).
    #[arg(long)]
    quiet: bool,
    /// Print the report as JSON instead of text (sweep writes it to --out either way).
    #[arg(long)]
    json: bool,
}

impl SharedArgs {
    /// What each run of `compare` or `sweep` gets.
    fn run_spec(&self, workload: Workload) -> RunSpec {
        RunSpec {
            workload,
            ringraft_bin: self.ringraft_bin.clone(),
            data_root: run::data_root(self.data_root.as_deref()),
            progress: !self.quiet,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// The system to start and drive.
    #[arg(long, value_enum, default_value_t = System::Ringraft)]
    system: System,
    /// Drive running servers at these comma-separated addresses instead of starting any
    /// (they speak the protocol of --system).
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<SocketAddr>,
    #[command(flatten)]
    sys: SystemArgs,
    #[command(flatten)]
    load: WorkloadArgs,
}

impl SystemArgs {
    fn launch(&self, system: System) -> Launch {
        let default_nodes = if system == System::Redis { 1 } else { 3 };
        Launch {
            system,
            nodes: self.nodes.unwrap_or(default_nodes),
            durability: self.durability,
            ringraft_bin: self.shared.ringraft_bin.clone(),
            data_root: run::data_root(self.shared.data_root.as_deref()),
        }
    }

    fn options(&self) -> Options {
        Options {
            floor: !self.no_floor,
            progress: !self.shared.quiet,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => single(&cli.run),
        Some(Command::Run(args)) => single(&args),
        Some(Command::Compare(args)) => compare(&args),
        Some(Command::Sweep(args)) => sweep(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringraft-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Exit code of a finished run: 0 if clean, 1 if it had errors (the report says which).
fn finished(report: &RunReport) -> ExitCode {
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        eprintln!("ringraft-bench: the run had errors or measured nothing (see the report)");
        ExitCode::from(1)
    }
}

fn print<T: serde::Serialize>(json: bool, value: &T, text: &str) -> Result<(), run::RunError> {
    if json {
        let s = serde_json::to_string_pretty(value)
            .expect("reports serialize: no maps with non-string keys");
        println!("{s}");
    } else {
        print!("{text}");
    }
    Ok(())
}

fn single(args: &RunArgs) -> Result<ExitCode, run::RunError> {
    let workload = args.load.workload(RUN_PHASES);
    let options = args.sys.options();
    let report = if args.endpoints.is_empty() {
        run::run_started(&args.sys.launch(args.system), &workload, &options)?
    } else {
        let endpoints = Endpoints {
            addrs: args.endpoints.clone(),
            protocol: match args.system {
                System::Etcd => Protocol::EtcdHttp,
                System::Ringraft | System::Redis => Protocol::Resp,
            },
        };
        let root = run::data_root(args.sys.shared.data_root.as_deref());
        run::run_endpoints(&endpoints, args.sys.durability, &root, &workload, &options)?
    };
    print(args.sys.shared.json, &report, &report.to_text())?;
    Ok(finished(&report))
}

fn compare(args: &CompareArgs) -> Result<ExitCode, run::RunError> {
    let spec = CompareSpec {
        engines: args.engines.clone(),
        reps: args.reps,
        run: args.shared.run_spec(args.load.workload(MULTI_PHASES)),
        floor: !args.no_floor,
        redis_benchmark: args.redis_benchmark.then(|| RbSpec {
            requests: args.rb_requests,
            ringraft_bin: args.shared.ringraft_bin.clone(),
            data_root: run::data_root(args.shared.data_root.as_deref()),
            election_timeout: args.rb_election_timeout.clone(),
        }),
    };
    let report = cmp::compare(&spec, &mut |line| eprintln!("{line}"))?;
    print(args.shared.json, &report, &report.to_text())?;
    // Skipped or failing peers never fail the comparison; only a comparison in which
    // nothing ran does.
    let rb_ran = report
        .redis_benchmark
        .as_ref()
        .is_some_and(|r| r.set_rps.is_some());
    if rb_ran || report.engines.iter().any(|e| e.ops_s.is_some()) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("ringraft-bench: no engine ran");
        Ok(ExitCode::from(1))
    }
}

fn sweep(args: &SweepArgs) -> Result<ExitCode, run::RunError> {
    let spec = SweepSpec {
        engines: args.engines.clone(),
        clients: args.clients_list.clone(),
        reps: args.reps,
        run: args.shared.run_spec(args.load.workload(MULTI_PHASES)),
        out_dir: args.out.clone(),
    };
    let report = match sweep::sweep(&spec, &mut |line| eprintln!("{line}")) {
        Ok(r) => r,
        Err(sweep::SweepError::Run(e)) => return Err(e),
        Err(e) => {
            eprintln!("ringraft-bench: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    print(args.shared.json, &report, &report.to_text())?;
    if report.points.iter().any(|p| p.ops_s.is_some()) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("ringraft-bench: no engine ran");
        Ok(ExitCode::from(1))
    }
}
