//! One fault run against a process cluster: start the nodes and the recorded clients, wait
//! for acknowledged operations, let the caller inject faults, heal, read every key back,
//! check everything. Shared by `tests/tests/process_faults*.rs` and the `soak` binary.
//!
//! Every step returns a [`RunError`] naming the run and its seed instead of panicking, so
//! that the soak command can keep a failing run's directory (node logs, data directories,
//! the history) with [`Run::keep`] and go on with the next run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::linearizability::{History, Input};

use super::checks;
use super::client::Client;
use super::cluster::{Cluster, ClusterSpec};
use super::recorder::{key_name, Recorder, Workload, WorkloadConfig};
use super::tools;

/// Longest a run's clients go on by default: a safety net only, for a run whose test neither
/// stops its clients nor drops the [`Run`] (each phase waits for operation counts, not for
/// time, and [`Run::finish`] stops the clients). It used to be 20 s, the length of a healthy
/// run on a loaded machine: a slow run then lost its clients mid-way and failed waiting for
/// operations that could no longer come (`sigkill_leader_during_a_joint_configuration`, once
/// under load). A machine's speed must not fail a run, so the net sits far beyond any run.
pub const RUN_MAX_DEFAULT: Duration = Duration::from_secs(600);
/// The rule: a run with fewer acknowledged operations per second than this before
/// its fault proves nothing. Such a run is reported INVALID, never failed for it (a slow
/// machine is not a bug, and tests do not assert on speed); a run that makes no progress at
/// all fails, because every phase waits for operation counts within `wait_max`.
pub const RATE_MIN_OPS_PER_SEC: f64 = 100.0;

/// The bound on the time from undoing a fault to the next acknowledged write: twice
/// the maximum election timeout of the node's default configuration plus 1 s (1.4 s with
/// 20 ticks of 10 ms). Measured and reported per run against this bound, not asserted.
#[must_use]
pub fn heal_to_write_bound() -> Duration {
    let c = ringraft::raft::Config::new(ringraft::raft::NodeId(1));
    Duration::from_nanos(2 * c.election_ticks_max * c.tick_nanos) + Duration::from_secs(1)
}
/// Acknowledged operations before the fault by default; half as many after healing. A run
/// that does less proves nothing.
pub const OPS_BEFORE_FAULT_DEFAULT: u64 = 200;
/// Longest wait for a leader, for convergence, for an operation count (a safety net, 10x what
/// a healthy cluster needs).
pub const WAIT_MAX_DEFAULT: Duration = Duration::from_secs(10);

/// A failed step of a run: what broke, with the run's name and seed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} (seed {seed}): {what}")]
pub struct RunError {
    /// The run.
    pub name: String,
    /// Its seed (`RINGRAFT_FAULT_SEED=seed` or `soak --seed seed` replays its choices).
    pub seed: u64,
    /// What broke.
    pub what: String,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Printed with every line and error.
    pub name: String,
    /// Cluster size.
    pub nodes: u64,
    /// Seeds the clients' keys and mix and the test's choices (which follower).
    pub seed: u64,
    /// The clients stop after this at the latest.
    pub run_max: Duration,
    /// Acknowledged operations to wait for before the fault.
    pub ops_before_fault: u64,
    /// Safety net of every wait.
    pub wait_max: Duration,
}

impl RunOptions {
    /// The defaults for `name` on `nodes` nodes.
    pub fn new(name: &str, nodes: u64, seed: u64) -> RunOptions {
        RunOptions {
            name: name.to_string(),
            nodes,
            seed,
            run_max: RUN_MAX_DEFAULT,
            ops_before_fault: OPS_BEFORE_FAULT_DEFAULT,
            wait_max: WAIT_MAX_DEFAULT,
        }
    }
}

/// What a finished run did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Counts of the history (final reads included).
    pub counts: checks::Counts,
    /// The applied index the replicas converged on.
    pub applied: u64,
    /// Acknowledged operations per second before the fault.
    pub rate_before_fault: f64,
    /// Committed WAL entries compared across the replicas.
    pub compared: u64,
}

/// One fault run in progress.
pub struct Run {
    /// The options it runs with.
    pub opts: RunOptions,
    /// The cluster.
    pub cluster: Cluster,
    /// The history of every client operation.
    pub recorder: Arc<Recorder>,
    /// What the clients do.
    pub config: WorkloadConfig,
    workload: Option<Workload>,
    started: Instant,
    rate_before_fault: f64,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("name", &self.opts.name)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Starts a cluster and its clients and waits for `ops_before_fault` acknowledged
/// operations; `Ok(None)` (with a printed SKIPPED line) when the binary is missing or
/// `adjust` says why it cannot run.
///
/// # Errors
/// If the cluster does not start, elects no leader or serves too few operations.
pub fn start(
    opts: RunOptions,
    adjust: impl FnOnce(&mut ClusterSpec) -> Result<(), String>,
) -> Result<Option<Run>, RunError> {
    let Some(binary) = tools::ringraft_binary() else {
        tools::skip(
            &opts.name,
            "no ringraft binary (build it, or set RINGRAFT_BIN)",
        );
        return Ok(None);
    };
    if !tools::serve_flags_supported(&binary) {
        let why = "`ringraft serve --help` lacks the flags the harness passes";
        tools::skip(&opts.name, why);
        return Ok(None);
    }
    let err = |what: String| RunError {
        name: opts.name.clone(),
        seed: opts.seed,
        what,
    };
    let dir = tempfile::Builder::new()
        .prefix("ringraft-fault-")
        .tempdir()
        .map_err(|e| err(format!("tempdir: {e}")))?;
    let mut spec = ClusterSpec::new(binary, opts.nodes, dir.path());
    if let Err(why) = adjust(&mut spec) {
        tools::skip(&opts.name, &why);
        return Ok(None);
    }
    let cluster = Cluster::start(&spec).map_err(|e| err(format!("start: {e}")))?;
    let config = WorkloadConfig {
        seed: opts.seed,
        ..WorkloadConfig::default()
    };
    let recorder = Arc::new(Recorder::default());
    let mut run = Run {
        cluster,
        recorder,
        config,
        workload: None,
        started: Instant::now(),
        rate_before_fault: 0.0,
        dir,
        opts,
    };
    let (leader, term) = run.wait_leader(&[])?;
    run.say(&format!("leader {leader} in term {term}"));
    run.workload = Some(Workload::start(
        &run.cluster.client_addrs(),
        &run.config,
        &run.recorder,
        run.opts.run_max,
    ));
    run.started = Instant::now();
    run.wait_ops(run.opts.ops_before_fault, "before the fault")?;
    let secs = run.started.elapsed().as_secs_f64();
    run.rate_before_fault = run.acked() as f64 / secs.max(1e-3);
    run.say(&format!(
        "{} operations acknowledged before the fault ({:.0}/s)",
        run.acked(),
        run.rate_before_fault
    ));
    if !run.valid() {
        run.say(&format!(
            "INVALID: {:.0} operations/s before the fault, below the issue's {RATE_MIN_OPS_PER_SEC}: \
             this run proves little (its checks still run; not failed: a slow machine is not a bug)",
            run.rate_before_fault
        ));
    }
    Ok(Some(run))
}

impl Run {
    /// A [`RunError`] of this run.
    pub fn error(&self, what: impl Into<String>) -> RunError {
        RunError {
            name: self.opts.name.clone(),
            seed: self.opts.seed,
            what: what.into(),
        }
    }

    /// Prints one line prefixed with the run's name.
    pub fn say(&self, line: &str) {
        println!("{}: {line}", self.opts.name);
    }

    /// The run's directory: node logs (`n<id>.log`) and data directories (`n<id>/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Acknowledged operations per second before the fault.
    pub fn rate_before_fault(&self) -> f64 {
        self.rate_before_fault
    }

    /// Whether the run was loaded enough to prove something ([`RATE_MIN_OPS_PER_SEC`]).
    pub fn valid(&self) -> bool {
        self.rate_before_fault >= RATE_MIN_OPS_PER_SEC
    }

    /// Time since the clients started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Acknowledged writes plus reads that returned a value.
    pub fn acked(&self) -> u64 {
        self.recorder.acked_writes() + self.recorder.ok_reads()
    }

    /// Waits until `more` further operations are acknowledged.
    ///
    /// # Errors
    /// If they are not within `wait_max`.
    pub fn wait_ops(&self, more: u64, when: &str) -> Result<(), RunError> {
        let target = self.acked() + more;
        let deadline = Instant::now() + self.opts.wait_max;
        while self.acked() < target {
            if Instant::now() >= deadline {
                let what = format!(
                    "only {} of {target} operations acknowledged {when}",
                    self.acked()
                );
                return Err(self.error(what));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Waits for the next acknowledged write; returns how long it took.
    ///
    /// # Errors
    /// If none is acknowledged within `wait_max`.
    pub fn wait_next_write(&self, when: &str) -> Result<Duration, RunError> {
        let start = Instant::now();
        let target = self.recorder.acked_writes() + 1;
        while self.recorder.acked_writes() < target {
            if start.elapsed() >= self.opts.wait_max {
                return Err(self.error(format!("no write acknowledged {when}")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(start.elapsed())
    }

    /// Lets the clients run during a fault for `d`.
    pub fn during(&self, d: Duration) {
        std::thread::sleep(d);
    }

    /// Waits for a leader outside `excluded`.
    ///
    /// # Errors
    /// If none is found within `wait_max`.
    pub fn wait_leader(&self, excluded: &[u64]) -> Result<(u64, u64), RunError> {
        self.cluster
            .wait_leader(excluded, self.opts.wait_max)
            .ok_or_else(|| self.error(format!("no leader outside {excluded:?}")))
    }

    /// The current leader.
    ///
    /// # Errors
    /// If there is none within `wait_max`.
    pub fn leader(&self) -> Result<u64, RunError> {
        self.wait_leader(&[]).map(|(id, _)| id)
    }

    /// A follower of `leader`, chosen by the seed.
    pub fn follower(&self, leader: u64) -> u64 {
        let others: Vec<u64> = self
            .cluster
            .ids()
            .into_iter()
            .filter(|&i| i != leader)
            .collect();
        others[(self.opts.seed as usize) % others.len()]
    }

    /// Waits for a leader other than `old` (proof that the fault forced an election).
    ///
    /// # Errors
    /// If none is elected within `wait_max`.
    pub fn new_leader(&self, old: u64) -> Result<u64, RunError> {
        let (id, term) = self.wait_leader(&[old])?;
        self.say(&format!("new leader {id} in term {term}"));
        Ok(id)
    }

    /// Heals, waits for a leader and for progress, stops the clients, reads every key back
    /// through the leader (recorded), and checks: a linearizable history, no acknowledged
    /// write lost, replicas `up` (every node but `down`) converged, no process that died by
    /// itself or panicked, a clean shutdown, and WALs that agree.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn finish(&mut self, down: &[u64]) -> Result<Summary, RunError> {
        self.cluster.heal();
        let (leader, term) = self.wait_leader(down)?;
        self.wait_ops(self.opts.ops_before_fault / 2, "after healing")?;
        self.stop_clients();
        let finals = self.final_reads(leader)?;
        let history = self.recorder.history();
        let counts = checks::counts(&history);
        self.say(&format!(
            "leader {leader} term {term}; {} writes acknowledged, {} unknown, {} reads",
            counts.writes_acked, counts.writes_unknown, counts.reads_ok
        ));
        checks::linearizable(&history).map_err(|e| self.error(e))?;
        checks::no_acked_write_lost(&history, &checks::final_values(&finals))
            .map_err(|e| self.error(e))?;
        let up: Vec<u64> = self
            .cluster
            .ids()
            .into_iter()
            .filter(|id| !down.contains(id))
            .collect();
        // A process that died by itself is the clearer report than the convergence it breaks.
        self.cluster.check_processes().map_err(|e| self.error(e))?;
        let applied = self.converged(&up)?;
        self.cluster
            .shutdown(Duration::from_secs(10))
            .map_err(|e| self.error(format!("unclean shutdown: {e}")))?;
        let dirs: Vec<&Path> = up
            .iter()
            .map(|&id| self.cluster.node(id).data_dir.as_path())
            .collect();
        let logs = checks::logs_agree(&dirs, 0).map_err(|e| self.error(e))?;
        self.say(&format!(
            "replicas agree at applied index {applied}; {} committed entries compared",
            logs.compared
        ));
        Ok(Summary {
            counts,
            applied,
            rate_before_fault: self.rate_before_fault,
            compared: logs.compared,
        })
    }

    /// Stops the clients (idempotent).
    pub fn stop_clients(&mut self) {
        if let Some(w) = self.workload.take() {
            w.stop();
        }
    }

    fn final_reads(
        &self,
        leader: u64,
    ) -> Result<Vec<(u64, crate::linearizability::Output)>, RunError> {
        let mut c = Client::new(self.cluster.node(leader).client, Duration::from_secs(5));
        let mut finals = Vec::new();
        for k in 0..self.config.keys {
            let h = self.recorder.history().len();
            if !self.recorder.run_op(1000, &mut c, k, Input::Get) {
                return Err(self.error(format!("final read of key {k} failed")));
            }
            let op = self.recorder.history().operation(h).clone();
            let (_, out) = op.completion.expect("run_op returned true: completed");
            finals.push((k, out));
        }
        Ok(finals)
    }

    /// The nodes `up` converge: same commit and applied index, same value of every key.
    fn converged(&self, up: &[u64]) -> Result<u64, RunError> {
        let keys: Vec<String> = (0..self.config.keys).map(key_name).collect();
        let deadline = Instant::now() + self.opts.wait_max;
        loop {
            let r = self
                .cluster
                .wait_converged(up, self.opts.wait_max)
                .and_then(|applied| self.cluster.replicas_agree(up, &keys).map(|()| applied));
            match r {
                Ok(applied) => return Ok(applied),
                Err(e) if Instant::now() >= deadline => {
                    return Err(self.error(format!("{e} (up: {up:?})")))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Keeps the run's directory for replay: writes `report.txt` (the error and `notes`)
    /// and `history.txt` (every operation, invocation order) into it, stops every process,
    /// and moves the directory to `to` (created). Returns where it is.
    ///
    /// # Errors
    /// If writing or moving fails.
    pub fn keep(mut self, to: &Path, error: &RunError, notes: &str) -> std::io::Result<PathBuf> {
        self.stop_clients();
        let _ = self.cluster.shutdown(Duration::from_secs(2));
        let report = format!("{error}\n\n{notes}\n");
        std::fs::write(self.dir.path().join("report.txt"), report)?;
        std::fs::write(
            self.dir.path().join("history.txt"),
            history_text(&self.recorder.history()),
        )?;
        std::fs::create_dir_all(to)?;
        let dest = to.join(format!("{}-seed-{}", self.opts.name, self.opts.seed));
        let _ = std::fs::remove_dir_all(&dest);
        let kept = self.dir.keep();
        if std::fs::rename(&kept, &dest).is_ok() {
            return Ok(dest);
        }
        // Another file system (a tmpfs /tmp): leave it where it is.
        Ok(kept)
    }
}

/// One operation per line, in invocation order.
pub fn history_text(history: &History) -> String {
    let mut out = String::new();
    for op in history.operations() {
        out.push_str(&op.to_string());
        out.push('\n');
    }
    out
}

/// For tests: the value, or a panic with the error (which names the run and its seed).
pub fn or_fail<T>(r: Result<T, RunError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}
