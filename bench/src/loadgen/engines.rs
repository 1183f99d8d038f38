//! The engines `compare` and `sweep` run: the three servers [`super::servers`] starts as
//! processes (driven over TCP by [`super::driver`]) and the two clusters that live in this
//! process (driven by [`super::inproc`]).

use std::path::PathBuf;

use serde::Serialize;

use super::inproc;
use super::machine::Machine;
use super::memory::{self, MemoryCluster};
use super::report::{Context, RunReport};
use super::run::{self, Options, RunError};
use super::servers::{Launch, LaunchError, System};
use super::workload::{Durability, Workload};

/// Nodes of every replicated engine in a comparison (Redis is one node).
pub const CLUSTER_NODES: usize = 3;

/// An engine of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// 3 `ringraft serve` processes, fdatasync, RESP clients.
    Ringraft,
    /// 3 etcd members, fsync (etcd's default), HTTP/JSON clients.
    Etcd,
    /// The same etcd cluster through its gRPC API (`etcd-client` crate; needs the
    /// `etcd-grpc` feature): what the HTTP/JSON gateway costs etcd.
    EtcdGrpc,
    /// One redis-server, `appendonly yes`, `appendfsync always`.
    Redis,
    /// 3 ringraft nodes in this process, no fsync, WALs on tmpfs, no-op state machine.
    RingraftMemory,
    /// openraft 0.9.25 with our own in-memory log store, state machine and function-call
    /// network, in the shape of openraft's `benchmarks/minimal`: 3 nodes in this process
    /// (needs the `openraft` feature).
    Openraft,
}

impl Engine {
    /// The name tables and JSON use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Engine::Ringraft => "ringraft",
            Engine::Etcd => "etcd",
            Engine::EtcdGrpc => "etcd-grpc",
            Engine::Redis => "redis",
            Engine::RingraftMemory => "ringraft-memory",
            Engine::Openraft => "openraft",
        }
    }

    /// Every engine, in the comparison's default order.
    pub const ALL: [Engine; 5] = [
        Engine::Ringraft,
        Engine::Etcd,
        Engine::Redis,
        Engine::RingraftMemory,
        Engine::Openraft,
    ];
}

/// What one run of an engine needs.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The workload.
    pub workload: Workload,
    /// The `ringraft` binary (`None`: next to this executable).
    pub ringraft_bin: Option<PathBuf>,
    /// Root of the data directories.
    pub data_root: PathBuf,
    /// Draw a progress line (server engines only).
    pub progress: bool,
}

/// How one run ended.
#[derive(Debug)]
pub enum Outcome {
    /// It ran (errors inside the run are in the report).
    Ran(Box<RunReport>),
    /// The engine cannot run here at all (not installed, not built): skip its other runs.
    Skipped(String),
    /// This run failed; later repetitions try again.
    Failed(String),
}

/// Runs `engine` once on fresh data directories.
#[must_use]
pub fn run_once(engine: Engine, spec: &RunSpec) -> Outcome {
    let system = match engine {
        Engine::Ringraft => System::Ringraft,
        Engine::Etcd => System::Etcd,
        Engine::Redis => System::Redis,
        Engine::RingraftMemory => return ringraft_memory(spec),
        Engine::EtcdGrpc => return etcd_grpc(spec),
        Engine::Openraft => return openraft(spec),
    };
    let launch = Launch {
        system,
        nodes: if system == System::Redis {
            1
        } else {
            CLUSTER_NODES
        },
        durability: Durability::Fsync,
        ringraft_bin: spec.ringraft_bin.clone(),
        data_root: spec.data_root.clone(),
    };
    let options = Options {
        floor: false,
        progress: spec.progress,
    };
    match run::run_started(&launch, &spec.workload, &options) {
        Ok(report) => Outcome::Ran(Box::new(report)),
        Err(RunError::Launch(e @ (LaunchError::NotFound { .. } | LaunchError::Unsupported(_)))) => {
            Outcome::Skipped(e.to_string())
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("build the client runtime: {e}"))
}

/// The workload an in-process run really ran: writes only, one in flight per client.
fn inproc_workload(w: &Workload) -> Workload {
    Workload {
        pipeline: 1,
        read_percent: 0,
        ..w.clone()
    }
}

fn ringraft_memory(spec: &RunSpec) -> Outcome {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return Outcome::Failed(e),
    };
    let root = memory::wal_root(&spec.data_root);
    let cluster = match MemoryCluster::start(CLUSTER_NODES, &root) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let propose = cluster.proposer(spec.workload.value_bytes);
    let stats = inproc::run(
        &rt,
        &spec.workload,
        &propose,
        "ringraft-bench (nodes and clients)",
    );
    let ctx = Context {
        system: Engine::RingraftMemory.name().into(),
        setup: format!(
            "{CLUSTER_NODES} ringraft nodes in this process, no fsync, WALs in {}, in-process \
             transport, no-op state machine",
            root.display()
        ),
        nodes: CLUSTER_NODES,
        durability: Durability::None,
        machine: Machine::describe(&cluster.wal_dir),
        floor: None,
    };
    drop(cluster);
    Outcome::Ran(Box::new(RunReport::new(
        ctx,
        &inproc_workload(&spec.workload),
        &stats,
    )))
}

#[cfg(feature = "openraft")]
fn openraft(spec: &RunSpec) -> Outcome {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return Outcome::Failed(e),
    };
    let cluster = match rt.block_on(super::openraft_peer::Cluster::start(CLUSTER_NODES)) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e),
    };
    let propose = cluster.proposer(spec.workload.value_bytes);
    let stats = inproc::run(
        &rt,
        &spec.workload,
        &propose,
        "ringraft-bench (nodes and clients)",
    );
    let ctx = Context {
        system: Engine::Openraft.name().into(),
        setup: format!(
            "openraft {} with our own in-memory log store, state machine and function-call \
             network, in the shape of openraft's benchmarks/minimal: {CLUSTER_NODES} nodes in \
             this process",
            super::openraft_peer::VERSION
        ),
        nodes: CLUSTER_NODES,
        durability: Durability::None,
        machine: Machine::describe(&spec.data_root),
        floor: None,
    };
    rt.block_on(cluster.shutdown());
    Outcome::Ran(Box::new(RunReport::new(
        ctx,
        &inproc_workload(&spec.workload),
        &stats,
    )))
}

#[cfg(not(feature = "openraft"))]
fn openraft(_spec: &RunSpec) -> Outcome {
    Outcome::Skipped(
        "this ringraft-bench was built without the `openraft` feature (rebuild with \
         `cargo build --release -p ringraft-bench --features openraft`)"
            .into(),
    )
}

#[cfg(feature = "etcd-grpc")]
fn etcd_grpc(spec: &RunSpec) -> Outcome {
    use super::servers;
    let launch = Launch {
        system: System::Etcd,
        nodes: CLUSTER_NODES,
        durability: Durability::Fsync,
        ringraft_bin: None,
        data_root: spec.data_root.clone(),
    };
    let running = match servers::start(&launch) {
        Ok(r) => r,
        Err(e @ (LaunchError::NotFound { .. } | LaunchError::Unsupported(_))) => {
            return Outcome::Skipped(e.to_string())
        }
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return Outcome::Failed(e),
    };
    let endpoints: Vec<String> = running
        .endpoints
        .addrs
        .iter()
        .map(ToString::to_string)
        .collect();
    let connections = spec.workload.clients;
    let clients = match rt.block_on(super::etcd_grpc::Clients::connect(&endpoints, connections)) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e),
    };
    let propose = clients.proposer(spec.workload.value_bytes);
    let watched = running.watched();
    let (before, started) = (cpu_seconds(&watched), std::time::Instant::now());
    let mut stats = inproc::run(&rt, &spec.workload, &propose, "ringraft-bench (clients)");
    add_server_cpu(&mut stats, &watched, &before, started.elapsed());
    let ctx = Context {
        system: Engine::EtcdGrpc.name().into(),
        setup: format!(
            "{CLUSTER_NODES}-member etcd cluster on 127.0.0.1 through gRPC (etcd-client crate, up \
             to {} HTTP/2 connections shared by the clients), fsync on; member CPU read around \
             the whole run and scaled to the measured phase",
            super::etcd_grpc::CONNECTIONS_MAX
        ),
        nodes: CLUSTER_NODES,
        durability: Durability::Fsync,
        machine: Machine::describe(running.data_dir()),
        floor: None,
    };
    drop(running);
    Outcome::Ran(Box::new(RunReport::new(
        ctx,
        &inproc_workload(&spec.workload),
        &stats,
    )))
}

/// CPU seconds so far of each watched process (0 for one that is gone).
#[cfg(feature = "etcd-grpc")]
fn cpu_seconds(watched: &[super::driver::Watched]) -> Vec<f64> {
    watched
        .iter()
        .map(|p| super::procstat::cpu_time(p.pid).map_or(0.0, |d| d.as_secs_f64()))
        .collect()
}

/// Puts the watched servers' CPU ahead of this process's in `stats.cpu`. It is read around
/// the whole run (warmup and drain included), so it is scaled to the measured phase's share
/// of `wall`: an estimate, which the run's setup line says.
#[cfg(feature = "etcd-grpc")]
fn add_server_cpu(
    stats: &mut super::driver::RunStats,
    watched: &[super::driver::Watched],
    before: &[f64],
    wall: std::time::Duration,
) {
    let measured = stats.measured.as_secs_f64().max(1e-9);
    let share = (measured / wall.as_secs_f64().max(1e-9)).min(1.0);
    let after = cpu_seconds(watched);
    let servers = watched
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(w, (b, a))| {
            let cpu_s = (a - b).max(0.0) * share;
            super::driver::ProcessCpu {
                name: w.name.clone(),
                cpu_s,
                core_percent: 100.0 * cpu_s / measured,
            }
        });
    let own: Vec<_> = stats.cpu.drain(..).collect();
    stats.cpu = servers.chain(own).collect();
}

#[cfg(not(feature = "etcd-grpc"))]
fn etcd_grpc(_spec: &RunSpec) -> Outcome {
    Outcome::Skipped(
        "this ringraft-bench was built without the `etcd-grpc` feature (needs protoc; rebuild \
         with `cargo build --release -p ringraft-bench --features etcd-grpc`)"
            .into(),
    )
}
