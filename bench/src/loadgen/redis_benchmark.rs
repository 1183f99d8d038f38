//! The issue's first target, measured the way a user would: `redis-benchmark -t set,get -P 16
//! -c 50 -d 256` against a `ringraft cluster --nodes 3` (one process, fdatasync on, lease
//! reads on the leader). `compare --redis-benchmark` runs it once per repetition, interleaved
//! with the other engines, so its SET rate sits next to etcd's writes/s from the same
//! repetitions. Skipped with a line when redis-benchmark is not installed.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::procstat;
use super::servers::{ringraft_binary, which, START_TIMEOUT};

/// The flags the issue names; `-n` and `--csv` are added by [`command_args`].
pub const FLAGS: [&str; 8] = ["-t", "set,get", "-P", "16", "-c", "50", "-d", "256"];
/// Requests per test unless told otherwise: a few seconds of SET on a 2-core machine, long
/// enough that connection set-up does not show in the rate.
pub const REQUESTS_DEFAULT: u64 = 1_000_000;
/// Fewest requests per test: fewer finish before the 50 connections are all busy.
pub const REQUESTS_MIN: u64 = 10_000;
/// Longest one redis-benchmark run may take before it is killed and the run failed (a
/// cluster that lost its leader would otherwise leave it waiting forever).
const BENCHMARK_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the cluster may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Nodes of the cluster.
const NODES: usize = 3;

/// What to run.
#[derive(Clone, Debug)]
pub struct RbSpec {
    /// `-n`: requests per test (SET, then GET).
    pub requests: u64,
    /// The `ringraft` binary (`None`: next to this executable).
    pub ringraft_bin: Option<PathBuf>,
    /// Root of the data directories.
    pub data_root: PathBuf,
    /// `--election-timeout` for the cluster, if any (`MIN-MAX` in ms).
    pub election_timeout: Option<String>,
}

/// One run's result.
#[derive(Clone, Debug, Serialize)]
pub struct RbRun {
    /// SET requests per second.
    pub set_rps: f64,
    /// GET requests per second (lease reads on the leader).
    pub get_rps: f64,
    /// SET p50 latency, milliseconds, if redis-benchmark printed it.
    pub set_p50_ms: Option<f64>,
    /// GET p50 latency, milliseconds, if printed.
    pub get_p50_ms: Option<f64>,
    /// CPU seconds of the cluster process over the run (all three nodes).
    pub cluster_cpu_s: Option<f64>,
    /// Lines of redis-benchmark's output that report an error reply.
    pub error_lines: usize,
}

/// How one run ended.
#[derive(Debug)]
pub enum RbOutcome {
    /// It ran.
    Ran(RbRun),
    /// redis-benchmark or the ringraft binary is missing: skip the other repetitions.
    Skipped(String),
    /// This run failed; later repetitions try again.
    Failed(String),
}

/// The redis-benchmark arguments after `-h` and `-p`.
#[must_use]
pub fn command_args(requests: u64) -> Vec<String> {
    let mut args: Vec<String> = FLAGS.iter().map(|s| (*s).to_string()).collect();
    args.extend(["-n".into(), requests.to_string(), "--csv".into()]);
    args
}

/// The command line as the report prints it.
#[must_use]
pub fn command_line(requests: u64) -> String {
    format!("redis-benchmark {}", command_args(requests).join(" "))
}

/// Runs the cluster and redis-benchmark once, on a fresh data directory.
#[must_use]
pub fn run_once(spec: &RbSpec) -> RbOutcome {
    let Some(rb) = which("redis-benchmark") else {
        return RbOutcome::Skipped(
            "redis-benchmark not found: install it (Debian: redis-tools)".into(),
        );
    };
    let bin = match ringraft_binary(spec.ringraft_bin.as_deref()) {
        Ok(b) => b,
        Err(e) => return RbOutcome::Skipped(e.to_string()),
    };
    match run_with(spec, &rb, &bin) {
        Ok(run) => RbOutcome::Ran(run),
        Err(e) => RbOutcome::Failed(e),
    }
}

fn run_with(spec: &RbSpec, rb: &Path, bin: &Path) -> Result<RbRun, String> {
    std::fs::create_dir_all(&spec.data_root).map_err(|e| e.to_string())?;
    let dir = tempfile::Builder::new()
        .prefix("ringraft-bench-redis-benchmark-")
        .tempdir_in(&spec.data_root)
        .map_err(|e| format!("create a temporary directory: {e}"))?;
    let cluster = Cluster::start(spec, bin, dir.path())?;
    let cpu_before = procstat::cpu_time(cluster.child.id()).ok();
    let out = benchmark(rb, cluster.leader_port, spec.requests)?;
    let cpu_after = procstat::cpu_time(cluster.child.id()).ok();
    drop(cluster);
    let mut run = parse_csv(&out)
        .ok_or_else(|| format!("redis-benchmark printed no SET and GET rates:\n{out}"))?;
    run.cluster_cpu_s = cpu_before
        .zip(cpu_after)
        .map(|(b, a)| a.saturating_sub(b).as_secs_f64());
    Ok(run)
}

/// A `ringraft cluster` child, stopped with SIGTERM on drop.
struct Cluster {
    child: Child,
    leader_port: u16,
}

impl Cluster {
    fn start(spec: &RbSpec, bin: &Path, dir: &Path) -> Result<Cluster, String> {
        let log_path = dir.join("cluster.log");
        let log = File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let data = dir.join("data");
        let mut cmd = Command::new(bin);
        cmd.args(["cluster", "--nodes", &NODES.to_string(), "--port", "0"])
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(t) = &spec.election_timeout {
            cmd.args(["--election-timeout", t]);
        }
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
        let child = cmd
            .spawn()
            .map_err(|e| format!("start {}: {e}", bin.display()))?;
        let mut cluster = Cluster {
            child,
            leader_port: 0,
        };
        cluster.leader_port = cluster.wait_ready(&log_path)?;
        Ok(cluster)
    }

    /// Waits for `ready: ... leader N (client ADDR) ...` in the log; returns ADDR's port.
    fn wait_ready(&mut self, log: &Path) -> Result<u16, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(port) = text.lines().find_map(leader_port) {
                return Ok(port);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("ringraft cluster exited: {status}\n{text}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "ringraft cluster not ready in {} s\n{text}",
                    START_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The leader's client port from `ring cluster`'s ready line.
fn leader_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("ready:")?.split("(client ").nth(1)?;
    let addr: std::net::SocketAddr = rest.split(')').next()?.parse().ok()?;
    Some(addr.port())
}

/// Runs redis-benchmark against the leader; its stdout, or why it failed.
fn benchmark(rb: &Path, port: u16, requests: u64) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out_path = dir.path().join("out");
    let out = File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(rb)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(command_args(requests))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("start redis-benchmark: {e}"))?;
    let deadline = Instant::now() + BENCHMARK_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-benchmark still running after {} s",
                BENCHMARK_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).map_err(|e| e.to_string())?;
    if status.success() {
        Ok(text)
    } else {
        Err(format!("redis-benchmark exited with {status}:\n{text}"))
    }
}

/// SET and GET rates (and p50s where printed) from `--csv` output: a header
/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...` then one row per
/// test. Older versions print only `"test","rps"`.
#[must_use]
pub fn parse_csv(text: &str) -> Option<RbRun> {
    let mut set = None;
    let mut get = None;
    for line in text.lines() {
        let fields: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"'))
            .collect();
        let rps = fields.get(1).and_then(|v| v.parse::<f64>().ok());
        let p50 = fields.get(4).and_then(|v| v.parse::<f64>().ok());
        match (fields.first().copied(), rps) {
            (Some("SET"), Some(r)) => set = Some((r, p50)),
            (Some("GET"), Some(r)) => get = Some((r, p50)),
            _ => {}
        }
    }
    let ((set_rps, set_p50_ms), (get_rps, get_p50_ms)) = (set?, get?);
    Some(RbRun {
        set_rps,
        get_rps,
        set_p50_ms,
        get_p50_ms,
        cluster_cpu_s: None,
        error_lines: text.lines().filter(|l| l.contains("ERR")).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_7_csv() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                    \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                    \"SET\",\"212314.23\",\"3.601\",\"0.600\",\"3.383\",\"5.439\",\"7.391\",\"29.039\"\n\
                    \"GET\",\"1098901.12\",\"0.687\",\"0.160\",\"0.671\",\"0.951\",\"1.127\",\"3.087\"\n";
        let run = parse_csv(text).expect("both rows");
        assert_eq!(run.set_rps, 212_314.23);
        assert_eq!(run.get_rps, 1_098_901.12);
        assert_eq!(run.set_p50_ms, Some(3.383));
        assert_eq!(run.get_p50_ms, Some(0.671));
        assert_eq!(run.error_lines, 0);
    }

    #[test]
    fn parses_the_two_column_csv_and_refuses_a_missing_test() {
        let run = parse_csv("\"SET\",\"100.5\"\n\"GET\",\"200\"\n").expect("both rows");
        assert_eq!((run.set_rps, run.get_rps), (100.5, 200.0));
        assert_eq!(run.set_p50_ms, None);
        assert!(parse_csv("\"SET\",\"100.5\"\n").is_none());
        assert!(parse_csv("Could not connect to Redis at 127.0.0.1:1").is_none());
    }

    #[test]
    fn finds_the_leader_port_in_the_ready_line() {
        let line = "ready: 3 nodes, leader 2 (client 127.0.0.1:40112), durability fdatasync; \
                    Ctrl-C to stop";
        assert_eq!(leader_port(line), Some(40112));
        assert_eq!(
            leader_port("node 1: raft 127.0.0.1:1 client 127.0.0.1:2"),
            None
        );
    }

    #[test]
    fn the_command_carries_the_issue_flags() {
        assert_eq!(
            command_line(1000),
            "redis-benchmark -t set,get -P 16 -c 50 -d 256 -n 1000 --csv"
        );
    }
}
