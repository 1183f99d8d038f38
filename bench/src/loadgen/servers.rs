//! Starts the systems under test as child processes on loopback, each with fresh temporary
//! data directories, and stops them again: a `ringraft serve` process per node, an etcd
//! member per node, or one `redis-server` with an append-only file.
//!
//! Every child gets `PR_SET_PDEATHSIG`, so none outlives the load generator, and writes its
//! output to `<name>.log` in its data directory (shown when it fails to start).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;

use super::driver::{Endpoints, Watched};
use super::wire::{Codec, Outcome, Protocol};
use super::workload::Durability;

/// How long a system may take from spawn to accepting a write on every endpoint.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped process may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Most nodes a local cluster may have.
pub const NODES_MAX: usize = 9;

/// A system the load generator can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// `ringraft serve`, one process per node.
    Ringraft,
    /// etcd, one process per member, driven through its HTTP/JSON gateway.
    Etcd,
    /// `redis-server` with `appendonly yes`: a single durable node, not a cluster.
    Redis,
}

impl System {
    /// The name reports use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            System::Ringraft => "ringraft",
            System::Etcd => "etcd",
            System::Redis => "redis",
        }
    }
}

/// How to start a system.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Which.
    pub system: System,
    /// Cluster size (Redis is always one node).
    pub nodes: usize,
    /// Fsync before acknowledging, or not.
    pub durability: Durability,
    /// The `ringraft` binary; `None` looks next to this executable.
    pub ringraft_bin: Option<PathBuf>,
    /// Where the temporary data directories go.
    pub data_root: PathBuf,
}

/// A system could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The program is not installed or not built.
    #[error("{program} not found: {hint}")]
    NotFound {
        /// The program.
        program: String,
        /// What to do about it.
        hint: String,
    },
    /// The configuration cannot be run by this system.
    #[error("{0}")]
    Unsupported(String),
    /// Spawning, a temporary directory or a port failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A process exited, or the system accepted no write in time.
    #[error("{system} did not start: {reason}\n--- last lines of {log} ---\n{tail}")]
    NotReady {
        /// The system.
        system: &'static str,
        /// What happened.
        reason: String,
        /// The log of the failing process.
        log: String,
        /// Its last lines.
        tail: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

/// A running system; dropping it stops every process and removes the data directories.
#[derive(Debug)]
pub struct Running {
    /// Which.
    pub system: System,
    /// Where its clients connect.
    pub endpoints: Endpoints,
    /// What it is, for the report: `3 ringraft serve processes, fdatasync on`.
    pub description: String,
    processes: Vec<(Watched, Child, PathBuf)>,
    data: tempfile::TempDir,
}

impl Running {
    /// The processes whose CPU time the report shows.
    #[must_use]
    pub fn watched(&self) -> Vec<Watched> {
        self.processes.iter().map(|(w, _, _)| w.clone()).collect()
    }

    /// The data directory holding every node's directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.processes {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill has no memory preconditions; the pid is our own unreaped
                // child, so it cannot name another process.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for (_, child, _) in &mut self.processes {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// A free port on 127.0.0.1 (bound, then released for the child to take).
fn free_port() -> Result<SocketAddr, LaunchError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("bind a free port"))?;
    l.local_addr().map_err(io_err("bind a free port"))
}

/// Finds `program` on `PATH`.
#[must_use]
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The `ringraft` binary: `explicit`, or `ringraft` next to this executable.
///
/// # Errors
/// It does not exist.
pub fn ringraft_binary(explicit: Option<&Path>) -> Result<PathBuf, LaunchError> {
    let candidate = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(io_err("locate this executable"))?
            .with_file_name("ringraft"),
    };
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(LaunchError::NotFound {
            program: candidate.display().to_string(),
            hint: "build it with `cargo build --release --bins` (it lands next to \
                   ringraft-bench) or pass --ringraft-bin"
                .into(),
        })
    }
}

/// Starts `launch.system` and waits until every endpoint acknowledges a write.
///
/// # Errors
/// See [`LaunchError`].
pub fn start(launch: &Launch) -> Result<Running, LaunchError> {
    if !(1..=NODES_MAX).contains(&launch.nodes) {
        return Err(LaunchError::Unsupported(format!(
            "--nodes must be between 1 and {NODES_MAX}, got {}",
            launch.nodes
        )));
    }
    std::fs::create_dir_all(&launch.data_root)
        .map_err(io_err(format!("create {}", launch.data_root.display())))?;
    let data = tempfile::Builder::new()
        .prefix(&format!("ringraft-bench-{}-", launch.system.name()))
        .tempdir_in(&launch.data_root)
        .map_err(io_err("create a temporary data directory"))?;
    let plan = match launch.system {
        System::Ringraft => ringraft_plan(launch, data.path())?,
        System::Etcd => etcd_plan(launch, data.path())?,
        System::Redis => redis_plan(launch, data.path())?,
    };
    let mut running = Running {
        system: launch.system,
        endpoints: Endpoints {
            addrs: plan.iter().map(|p| p.client_addr).collect(),
            protocol: match launch.system {
                System::Etcd => Protocol::EtcdHttp,
                System::Ringraft | System::Redis => Protocol::Resp,
            },
        },
        description: describe(launch),
        processes: Vec::new(),
        data,
    };
    for p in plan {
        let child = spawn(&p)?;
        let watched = Watched {
            name: p.name,
            pid: child.id(),
        };
        running.processes.push((watched, child, p.log));
    }
    wait_ready(&mut running)?;
    Ok(running)
}

fn describe(launch: &Launch) -> String {
    let sync = match launch.durability {
        Durability::Fsync => "fsync on",
        Durability::None => "no fsync",
    };
    match launch.system {
        System::Ringraft => format!(
            "{} `ringraft serve` processes on 127.0.0.1, {sync}",
            launch.nodes
        ),
        System::Etcd => format!(
            "{}-member etcd cluster on 127.0.0.1 (HTTP/JSON gateway), {sync}",
            launch.nodes
        ),
        System::Redis => match launch.durability {
            Durability::Fsync => {
                "1 redis-server (single node, not replicated), appendonly yes, appendfsync always"
                    .into()
            }
            Durability::None => {
                "1 redis-server (single node, not replicated), appendonly yes, appendfsync no"
                    .into()
            }
        },
    }
}

/// One process to start.
struct Planned {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    client_addr: SocketAddr,
    log: PathBuf,
}

/// The cluster id the bench gives its ringraft nodes.
const RINGRAFT_CLUSTER_ID: u64 = 7;

fn ringraft_plan(launch: &Launch, dir: &Path) -> Result<Vec<Planned>, LaunchError> {
    let program = ringraft_binary(launch.ringraft_bin.as_deref())?;
    let raft: Vec<SocketAddr> = (0..launch.nodes)
        .map(|_| free_port())
        .collect::<Result<_, _>>()?;
    let client: Vec<SocketAddr> = (0..launch.nodes)
        .map(|_| free_port())
        .collect::<Result<_, _>>()?;
    (0..launch.nodes)
        .map(|i| {
            let client_addr = client[i];
            let node_dir = dir.join(format!("node{}", i + 1));
            let mut args = vec![
                "serve".to_string(),
                "--id".into(),
                (i + 1).to_string(),
                "--data-dir".into(),
                node_dir.display().to_string(),
                "--raft-addr".into(),
                raft[i].to_string(),
                "--client-addr".into(),
                client_addr.to_string(),
                "--cluster-id".into(),
                RINGRAFT_CLUSTER_ID.to_string(),
            ];
            for (j, (r, c)) in raft.iter().zip(&client).enumerate() {
                if j != i {
                    args.extend(["--peer".into(), format!("{}={r},{c}", j + 1)]);
                }
            }
            if launch.durability == Durability::None {
                args.extend(["--durability".into(), "nosync".into()]);
            }
            Ok(Planned {
                name: format!("node {}", i + 1),
                program: program.clone(),
                args,
                client_addr,
                log: dir.join(format!("node{}.log", i + 1)),
            })
        })
        .collect()
}

fn etcd_plan(launch: &Launch, dir: &Path) -> Result<Vec<Planned>, LaunchError> {
    let program = which("etcd").ok_or_else(|| LaunchError::NotFound {
        program: "etcd".into(),
        hint: "install Debian's etcd-server".into(),
    })?;
    if launch.durability == Durability::None {
        return Err(LaunchError::Unsupported(
            "etcd 3.4 has no way to turn fsync off; run etcd with --durability fsync".into(),
        ));
    }
    let peer: Vec<SocketAddr> = (0..launch.nodes)
        .map(|_| free_port())
        .collect::<Result<_, _>>()?;
    let cluster = peer
        .iter()
        .enumerate()
        .map(|(i, a)| format!("n{}=http://{a}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    (0..launch.nodes)
        .map(|i| {
            let client_addr = free_port()?;
            let name = format!("n{}", i + 1);
            let args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", dir.join(&name).display()),
                format!("--listen-client-urls=http://{client_addr}"),
                format!("--advertise-client-urls=http://{client_addr}"),
                format!("--listen-peer-urls=http://{}", peer[i]),
                format!("--initial-advertise-peer-urls=http://{}", peer[i]),
                format!("--initial-cluster={cluster}"),
                "--initial-cluster-state=new".into(),
                "--initial-cluster-token=ringraft-bench".into(),
                "--log-level=warn".into(),
            ];
            Ok(Planned {
                name: format!("etcd {name}"),
                program: program.clone(),
                args,
                client_addr,
                log: dir.join(format!("{name}.log")),
            })
        })
        .collect()
}

fn redis_plan(launch: &Launch, dir: &Path) -> Result<Vec<Planned>, LaunchError> {
    let program = which("redis-server").ok_or_else(|| LaunchError::NotFound {
        program: "redis-server".into(),
        hint: "install Debian's redis-server".into(),
    })?;
    if launch.nodes != 1 {
        return Err(LaunchError::Unsupported(format!(
            "redis-server runs as a single node here; got --nodes {}",
            launch.nodes
        )));
    }
    let client_addr = free_port()?;
    let fsync = match launch.durability {
        Durability::Fsync => "always",
        Durability::None => "no",
    };
    let args = [
        "--port",
        &client_addr.port().to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.display().to_string(),
        "--appendonly",
        "yes",
        "--appendfsync",
        fsync,
        "--save",
        "",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Ok(vec![Planned {
        name: "redis".into(),
        program,
        args,
        client_addr,
        log: dir.join("redis.log"),
    }])
}

fn spawn(p: &Planned) -> Result<Child, LaunchError> {
    let log = File::create(&p.log).map_err(io_err(format!("create {}", p.log.display())))?;
    let log2 = log.try_clone().map_err(io_err("duplicate a log handle"))?;
    let mut cmd = Command::new(&p.program);
    cmd.args(&p.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: the closure runs in the child between fork and exec and calls only prctl,
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(io_err(format!("start {}", p.program.display())))
}

/// Waits until every endpoint acknowledges a write (so a leader exists and a follower's
/// forwarding works), or a process exits, or [`START_TIMEOUT`] passes.
fn wait_ready(r: &mut Running) -> Result<(), LaunchError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let protocol = r.endpoints.protocol;
    for (i, addr) in r.endpoints.addrs.clone().into_iter().enumerate() {
        loop {
            for (w, child, log) in &mut r.processes {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(not_ready(
                        r.system,
                        format!("{} exited: {status}", w.name),
                        log,
                    ));
                }
            }
            match probe(addr, protocol) {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    let log = &r.processes[i.min(r.processes.len() - 1)].2;
                    return Err(not_ready(
                        r.system,
                        format!(
                            "no write acknowledged by {addr} in {} s: {e}",
                            START_TIMEOUT.as_secs()
                        ),
                        log,
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    Ok(())
}

fn not_ready(system: System, reason: String, log: &Path) -> LaunchError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    LaunchError::NotReady {
        system: system.name(),
        reason,
        log: log.display().to_string(),
        tail: lines[lines.len().saturating_sub(20)..].join("\n"),
    }
}

/// Writes one probe key and waits for its acknowledgement.
fn probe(addr: SocketAddr, protocol: Protocol) -> Result<(), String> {
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut codec = Codec::new(protocol, addr.to_string());
    let mut out = BytesMut::new();
    codec.put_write(&mut out, b"ringraft-bench:probe", b"1");
    s.write_all(&out).map_err(|e| e.to_string())?;
    let mut chunk = [0u8; 4096];
    loop {
        match codec.next_reply(false).map_err(|e| e.to_string())? {
            Some(Outcome::Ok) => return Ok(()),
            Some(other) => return Err(format!("{other:?}")),
            None => {}
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        codec.read_buffer().extend_from_slice(&chunk[..n]);
    }
}
