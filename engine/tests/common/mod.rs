//! Shared by the end-to-end tests of the `ringraft` binary (`server_e2e.rs`,
//! `server_probes_e2e.rs`): a child process whose stdout is read line by line, addresses
//! parsed from what it prints, and the check that skips a test whose tool is missing.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringraft");
/// Safety net on every wait: generous, never reached on a healthy run.
pub const WAIT: Duration = Duration::from_secs(60);

/// A running `ringraft` process; killed on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ringraft");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc { child, lines }
    }

    /// Lines up to and including the first one starting with `prefix`.
    pub fn until(&self, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {prefix:?} line; saw {seen:?}"));
            let done = line.starts_with(prefix);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "unclean exit: {status}");
        self.until("stopped cleanly");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address after `marker` in every line that has it.
pub fn addr_after(lines: &[String], marker: &str) -> Vec<SocketAddr> {
    lines
        .iter()
        .filter_map(|l| l.split(marker).nth(1))
        .map(|rest| {
            let a = rest.split([' ', '/']).next().expect("address");
            a.parse().unwrap_or_else(|_| panic!("address in {rest:?}"))
        })
        .collect()
}

/// A loopback address that was free a moment ago (the server binds it after we release it).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Whether `tool probe...` runs and succeeds; prints the skip line when it does not.
pub fn have(tool: &str, probe: &[&str]) -> bool {
    let found = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!(
            "skipped: {tool} is not installed (or cannot `{}`)",
            probe.join(" ")
        );
    }
    found
}
