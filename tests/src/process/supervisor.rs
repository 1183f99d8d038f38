//! Child processes under test: spawn, SIGKILL, SIGSTOP/SIGCONT, SIGTERM, restart, and the
//! check that a process died only by a signal the test sent.
//!
//! Every process writes stdout and stderr to its own log file (kept with a failing run's
//! report); [`Proc::check`] fails on an exit nobody asked for, and [`Proc::panicked`] finds
//! a Rust panic in the log.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How to start a process.
#[derive(Clone, Debug)]
pub struct ProcSpec {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment (for example `LD_PRELOAD` and `FAKETIME` for a skewed clock).
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go (appended across restarts).
    pub log: PathBuf,
}

/// Why a process check failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// Spawning or signalling failed.
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The process exited or died although the test sent it nothing that ends it.
    #[error("{name} ended unexpectedly ({status}); log tail:\n{tail}")]
    Unexpected {
        /// The process.
        name: String,
        /// How it ended.
        status: ExitStatus,
        /// The end of its log.
        tail: String,
    },
}

/// A supervised child process.
pub struct Proc {
    name: String,
    spec: ProcSpec,
    child: Option<Child>,
    /// Signals this test sent to the current incarnation that may end it.
    ending_signals: Vec<i32>,
    stopped: bool,
    starts: u32,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("stopped", &self.stopped)
            .finish()
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> ProcError {
    move |source| ProcError::Io { what, source }
}

impl Proc {
    /// Starts the process.
    ///
    /// # Errors
    /// If the log cannot be opened or the program not spawned.
    pub fn spawn(name: &str, spec: ProcSpec) -> Result<Proc, ProcError> {
        let mut p = Proc {
            name: name.to_string(),
            spec,
            child: None,
            ending_signals: Vec::new(),
            stopped: false,
            starts: 0,
        };
        p.start()?;
        Ok(p)
    }

    fn start(&mut self) -> Result<(), ProcError> {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .map_err(io_err("open process log"))?;
        let err = log.try_clone().map_err(io_err("clone process log"))?;
        let child = Command::new(&self.spec.program)
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io_err("spawn"))?;
        self.child = Some(child);
        self.ending_signals.clear();
        self.stopped = false;
        self.starts += 1;
        Ok(())
    }

    /// The process name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the running incarnation.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether a running incarnation exists (not yet reaped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether it is stopped by SIGSTOP.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The arguments it is started with (a restart uses them again).
    pub fn spec_mut(&mut self) -> &mut ProcSpec {
        &mut self.spec
    }

    /// Sends `sig`, after checking that the process did not end by itself: a crash must not
    /// hide behind the SIGKILL or SIGTERM a fault schedule sends next.
    fn signal(&mut self, sig: i32) -> Result<(), ProcError> {
        self.check()?;
        let pid = self.pid().expect("signal to a running process");
        let pid = libc::pid_t::try_from(pid).expect("pids fit pid_t");
        // SAFETY: kill(2) has no memory preconditions; the pid is our unreaped child, so it
        // names no other process.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(io_err("kill")(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// SIGKILL, then reaps it.
    ///
    /// # Errors
    /// If the signal cannot be sent.
    pub fn kill(&mut self) -> Result<ExitStatus, ProcError> {
        self.ending_signals.push(libc::SIGKILL);
        self.signal(libc::SIGKILL)?;
        self.reap()
    }

    /// SIGSTOP: the process stays, frozen, until [`Proc::cont`].
    ///
    /// # Errors
    /// If the signal cannot be sent.
    pub fn stop(&mut self) -> Result<(), ProcError> {
        self.signal(libc::SIGSTOP)?;
        self.stopped = true;
        Ok(())
    }

    /// SIGCONT.
    ///
    /// # Errors
    /// If the signal cannot be sent.
    pub fn cont(&mut self) -> Result<(), ProcError> {
        self.signal(libc::SIGCONT)?;
        self.stopped = false;
        Ok(())
    }

    /// SIGTERM and a wait of up to `grace` for a clean exit, then SIGKILL. Returns how it
    /// ended and whether that was the clean exit (status 0 or death by SIGTERM).
    ///
    /// # Errors
    /// If a signal cannot be sent.
    pub fn terminate(&mut self, grace: Duration) -> Result<(ExitStatus, bool), ProcError> {
        if self.stopped {
            self.cont()?;
        }
        self.ending_signals.push(libc::SIGTERM);
        self.signal(libc::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_reap()? {
                let clean = status.success() || status.signal() == Some(libc::SIGTERM);
                return Ok((status, clean));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok((self.kill()?, false))
    }

    /// Starts a new incarnation after [`Proc::kill`] or [`Proc::terminate`].
    ///
    /// # Errors
    /// As [`Proc::spawn`].
    pub fn restart(&mut self) -> Result<(), ProcError> {
        self.start()
    }

    fn try_reap(&mut self) -> Result<Option<ExitStatus>, ProcError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait().map_err(io_err("wait"))?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    fn reap(&mut self) -> Result<ExitStatus, ProcError> {
        let child = self.child.as_mut().expect("reap a running process");
        let status = child.wait().map_err(io_err("wait"))?;
        self.child = None;
        Ok(status)
    }

    /// Fails if the running incarnation has ended by itself (an exit, or a signal this test
    /// did not send).
    ///
    /// # Errors
    /// [`ProcError::Unexpected`] with the tail of the log.
    pub fn check(&mut self) -> Result<(), ProcError> {
        let sent = self.ending_signals.clone();
        match self.try_reap()? {
            None => Ok(()),
            Some(status) if status.signal().is_some_and(|s| sent.contains(&s)) => Ok(()),
            Some(status) => Err(ProcError::Unexpected {
                name: self.name.clone(),
                status,
                tail: self.log_tail(4096),
            }),
        }
    }

    /// Waits up to `timeout` for the process to exit by itself (a node that must refuse to
    /// start); `None` if it is still running then.
    ///
    /// # Errors
    /// If waiting fails.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ProcError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_reap()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last `bytes` of the log.
    pub fn log_tail(&self, bytes: u64) -> String {
        let Ok(mut f) = File::open(&self.spec.log) else {
            return String::new();
        };
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        s
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.spec.log).unwrap_or_default()
    }

    /// Whether the log shows a Rust panic.
    pub fn panicked(&self) -> bool {
        self.log().contains("panicked at")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: as in `signal`: our own unreaped child.
            let pid = libc::pid_t::try_from(c.id()).expect("pids fit pid_t");
            unsafe {
                libc::kill(pid, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &std::path::Path, script: &str) -> ProcSpec {
        ProcSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![],
            log: dir.join("p.log"),
        }
    }

    #[test]
    fn kill_stop_cont_and_restart_are_expected_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p =
            Proc::spawn("sleeper", sleeper(dir.path(), "echo up; exec sleep 30")).expect("spawn");
        wait_log(&p, "up\n");
        p.stop().expect("stop");
        p.check().expect("a stopped process is alive");
        p.cont().expect("cont");
        let status = p.kill().expect("kill");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        p.check().expect("our own SIGKILL is an expected end");
        p.restart().expect("restart");
        assert_eq!(p.starts(), 2);
        wait_log(&p, "up\nup\n");
        let (_, clean) = p.terminate(Duration::from_secs(5)).expect("terminate");
        assert!(clean, "sleep dies by the SIGTERM it was sent");
    }

    /// Waits until the log holds `text` (at most 10 s, a safety net).
    fn wait_log(p: &Proc, text: &str) {
        for _ in 0..1000 {
            if p.log().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} never logged {text:?}: {}", p.name(), p.log());
    }

    /// Polls [`Proc::check`] until it fails (at most 10 s, a safety net).
    fn first_failure(p: &mut Proc) -> ProcError {
        for _ in 0..1000 {
            if let Err(e) = p.check() {
                return e;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} never failed its check", p.name());
    }

    #[test]
    fn an_exit_nobody_asked_for_is_reported_with_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = "echo 'thread main panicked at x'; exit 101";
        let mut p = Proc::spawn("crasher", sleeper(dir.path(), script)).expect("spawn");
        let err = first_failure(&mut p);
        assert!(matches!(&err, ProcError::Unexpected { status, .. } if status.code() == Some(101)));
        assert!(err.to_string().contains("panicked at"), "{err}");
        assert!(p.panicked());
    }

    #[test]
    fn a_signal_the_test_did_not_send_is_unexpected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p =
            Proc::spawn("victim", sleeper(dir.path(), "kill -SEGV $$; sleep 30")).expect("spawn");
        let err = first_failure(&mut p);
        assert!(
            matches!(&err, ProcError::Unexpected { status, .. } if status.signal() == Some(libc::SIGSEGV)),
            "{err}"
        );
    }

    /// A crash followed by the SIGKILL of a fault schedule: the kill reports the crash
    /// instead of reaping it as its own.
    #[test]
    fn a_kill_after_a_crash_reports_the_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Proc::spawn("crashed", sleeper(dir.path(), "exit 3")).expect("spawn");
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..100 {
            match p.kill() {
                Err(ProcError::Unexpected { status, .. }) => {
                    assert_eq!(status.code(), Some(3));
                    return;
                }
                // Not exited yet: the kill was ours; start again and wait longer.
                Ok(_) => {
                    p.restart().expect("restart");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the crash was never reported");
    }

    #[test]
    fn a_process_that_must_refuse_to_start_is_seen_exiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p =
            Proc::spawn("refuser", sleeper(dir.path(), "echo corrupt >&2; exit 2")).expect("spawn");
        let status = p.wait_exit(Duration::from_secs(10)).expect("wait");
        assert_eq!(status.and_then(|s| s.code()), Some(2));
        assert!(p.log().contains("corrupt"));
        p.check().expect("reaped: nothing left to report");
    }
}
