//! `ringraft-bench`: the load generator. With no arguments it starts a 3-node ringraft
//! cluster (`ringraft serve` processes on loopback, fsync on), drives it with 256 clients
//! writing 256 B values for 2 s of warmup and 20 s measured, and prints the report.
//! `ringraft-bench --help` lists the options; docs/benchmarks.md explains every figure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ringraft_bench::loadgen::driver::Endpoints;
use ringraft_bench::loadgen::report::RunReport;
use ringraft_bench::loadgen::run::{self, Options};
use ringraft_bench::loadgen::servers::{Launch, System};
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
    /// Time before measuring starts (20s, 1.5s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Length of the measured phase.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop measuring after this many operations, if sooner.
    #[arg(long)]
    ops: Option<u64>,
}

impl WorkloadArgs {
    fn workload(&self) -> Workload {
        Workload {
            clients: self.clients,
            pipeline: self.pipeline,
            value_bytes: self.value_bytes,
            read_percent: self.reads,
            warmup: self.warmup,
            duration: self.duration,
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
    /// The `ringraft` binary (default: next to this executable).
    #[arg(long)]
    ringraft_bin: Option<PathBuf>,
    /// Directory for the servers' temporary data directories and the fdatasync floor
    /// (default: $TMPDIR or /tmp).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Skip measuring the fdatasync + loopback floor.
    #[arg(long)]
    no_floor: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
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
            ringraft_bin: self.ringraft_bin.clone(),
            data_root: run::data_root(self.data_root.as_deref()),
        }
    }

    fn options(&self) -> Options {
        Options {
            floor: !self.no_floor,
            progress: !self.quiet,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => single(&cli.run),
        Some(Command::Run(args)) => single(&args),
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
    let workload = args.load.workload();
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
        let root = run::data_root(args.sys.data_root.as_deref());
        run::run_endpoints(&endpoints, args.sys.durability, &root, &workload, &options)?
    };
    print(args.sys.json, &report, &report.to_text())?;
    Ok(finished(&report))
}
