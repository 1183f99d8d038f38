//! Concurrent clients against real servers, and the history they record: every operation
//! with its invocation and completion time (monotonic nanoseconds since the recorder
//! started), for the linearizability checker.
//!
//! Writes carry values unique in the whole run (`client << 32 | sequence`), so a read names
//! the write it saw. Outcomes: `+OK` completes a write; a refused connection means the request
//! was never sent, and the write is discarded; anything else (a timeout, a reset, an error
//! reply such as a forward that failed after the leader may have appended the entry) leaves
//! it unknown, which the checker allows to take effect at any later time or never. A read
//! that fails constrains nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::linearizability::{History, Input, Output};
use crate::rng::Rng;

use super::client::Client;

/// A thread-safe history with a shared clock.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    history: Mutex<History>,
    acked_writes: AtomicU64,
    ok_reads: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            start: Instant::now(),
            history: Mutex::new(History::new()),
            acked_writes: AtomicU64::new(0),
            ok_reads: AtomicU64::new(0),
        }
    }
}

impl Recorder {
    /// Nanoseconds since the recorder started.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().expect("history lock")
    }

    /// Records an invocation now; returns its handle.
    pub fn invoke(&self, client: u64, key: u64, input: Input) -> usize {
        let mut h = self.lock();
        // The time is read under the lock so that handles are in invocation-time order.
        let now = self.now();
        h.invoke(client, key, input, now)
    }

    /// Records a completion now.
    pub fn complete(&self, handle: usize, output: Output) {
        match output {
            Output::Put => self.acked_writes.fetch_add(1, Ordering::Relaxed),
            Output::Get(_) => self.ok_reads.fetch_add(1, Ordering::Relaxed),
        };
        let mut h = self.lock();
        let now = self.now();
        h.complete(handle, output, now);
    }

    /// Records that the operation certainly had no effect.
    pub fn discard(&self, handle: usize) {
        self.lock().discard(handle);
    }

    /// A copy of the history so far.
    pub fn history(&self) -> History {
        self.lock().clone()
    }

    /// Acknowledged writes so far.
    pub fn acked_writes(&self) -> u64 {
        self.acked_writes.load(Ordering::Relaxed)
    }

    /// Reads that returned a value so far.
    pub fn ok_reads(&self) -> u64 {
        self.ok_reads.load(Ordering::Relaxed)
    }

    /// Runs one write or read now through `client` and records it. Returns whether it
    /// completed.
    pub fn run_op(&self, client_id: u64, client: &mut Client, key: u64, input: Input) -> bool {
        let handle = self.invoke(client_id, key, input);
        let name = key_name(key);
        match input {
            Input::Put(v) => match client.set(&name, &v.to_string()) {
                Ok(Ok(())) => {
                    self.complete(handle, Output::Put);
                    true
                }
                Err(e) if e.never_sent() => {
                    self.discard(handle);
                    false
                }
                // Unknown: left open.
                Ok(Err(_)) | Err(_) => false,
            },
            Input::Get => match client.get(&name) {
                Ok(Ok(v)) => {
                    let value = v.map(|b| parse_value(&b));
                    self.complete(handle, Output::Get(value));
                    true
                }
                // A read without a result constrains nothing; the checker drops it.
                Ok(Err(_)) | Err(_) => false,
            },
        }
    }
}

/// The RESP key of register `key`.
pub fn key_name(key: u64) -> String {
    format!("k{key}")
}

/// A value this workload wrote. Anything else is a server bug (a value nobody wrote), which
/// the checker then reports: it maps to `u64::MAX`, never written.
fn parse_value(b: &[u8]) -> u64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent clients (threads), each with its own connection.
    pub clients: u64,
    /// Registers `0..keys`.
    pub keys: u64,
    /// Percentage of reads.
    pub read_percent: u64,
    /// How long one call may wait for a reply.
    pub op_timeout: Duration,
    /// Seeds the keys and the mix.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            clients: 6,
            keys: 8,
            read_percent: 50,
            op_timeout: Duration::from_secs(2),
            seed: 1,
        }
    }
}

/// Client threads running until [`Workload::stop`].
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("clients", &self.threads.len())
            .finish()
    }
}

impl Workload {
    /// Starts the clients: client `c` talks to `targets[c % len]` and moves to the next
    /// target after a failed call. Every thread stops by itself after `run_max` at the latest
    /// (a safety net for a test that forgets to stop it).
    pub fn start(
        targets: &[SocketAddr],
        config: &WorkloadConfig,
        recorder: &Arc<Recorder>,
        run_max: Duration,
    ) -> Workload {
        assert!(!targets.is_empty(), "a workload needs a server");
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + run_max;
        let threads = (0..config.clients)
            .map(|c| {
                let (targets, config, recorder, stop) = (
                    targets.to_vec(),
                    config.clone(),
                    recorder.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    client_loop(c, &targets, &config, &recorder, &stop, deadline);
                })
            })
            .collect();
        Workload { stop, threads }
    }

    /// Stops the clients and waits for them (each finishes its call in flight, bounded by the
    /// operation timeout).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in std::mem::take(&mut self.threads) {
            t.join().expect("a client thread panicked");
        }
    }
}

impl Drop for Workload {
    /// A workload dropped without [`Workload::stop`] (a test that failed) stops its clients
    /// too; they end after their call in flight.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn client_loop(
    c: u64,
    targets: &[SocketAddr],
    config: &WorkloadConfig,
    recorder: &Recorder,
    stop: &AtomicBool,
    deadline: Instant,
) {
    let mut rng = Rng::new(config.seed.wrapping_mul(1000).wrapping_add(c));
    let mut target = c as usize % targets.len();
    let mut client = Client::new(targets[target], config.op_timeout);
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let key = rng.below(config.keys);
        let input = if rng.below(100) < config.read_percent {
            Input::Get
        } else {
            seq += 1;
            Input::Put((c << 32) | seq)
        };
        if !recorder.run_op(c, &mut client, key, input) {
            target = (target + 1) % targets.len();
            client = Client::new(targets[target], config.op_timeout);
            // A failed call often means a node is down or electing: do not spin on it.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::checks;
    use crate::process::fake_server::{self, Faults};

    fn final_reads(addr: SocketAddr, keys: u64, recorder: &Recorder) -> Vec<(u64, Output)> {
        let mut c = Client::new(addr, Duration::from_secs(2));
        (0..keys)
            .map(|k| {
                assert!(recorder.run_op(99, &mut c, k, Input::Get), "final read");
                let v = c.get(&key_name(k)).expect("get").expect("value");
                (k, Output::Get(v.map(|b| parse_value(&b))))
            })
            .collect()
    }

    fn run(faults: Arc<Faults>) -> (Arc<Recorder>, Vec<(u64, Output)>) {
        let addr = fake_server::start(faults);
        let recorder = Arc::new(Recorder::default());
        let config = WorkloadConfig::default();
        let w = Workload::start(&[addr], &config, &recorder, Duration::from_secs(30));
        // Bounded by operation count, not time: the check does not depend on speed.
        while recorder.acked_writes() < 300 || recorder.ok_reads() < 300 {
            std::thread::sleep(Duration::from_millis(5));
        }
        w.stop();
        let reads = final_reads(addr, config.keys, &recorder);
        (recorder, reads)
    }

    #[test]
    fn a_correct_server_passes_every_check() {
        let (recorder, reads) = run(Arc::default());
        let h = recorder.history();
        let c = checks::counts(&h);
        assert!(c.writes_acked >= 300 && c.reads_ok >= 300, "{c:?}");
        checks::linearizable(&h).expect("linearizable");
        checks::no_acked_write_lost(&h, &checks::final_values(&reads)).expect("nothing lost");
    }

    #[test]
    fn a_server_that_loses_writes_fails_the_checks() {
        let faults = Arc::new(Faults::default());
        faults.lose_writes.store(true, Ordering::SeqCst);
        let (recorder, reads) = run(faults);
        let h = recorder.history();
        assert!(checks::linearizable(&h).is_err());
        assert!(checks::no_acked_write_lost(&h, &checks::final_values(&reads)).is_err());
    }

    #[test]
    fn a_refused_connection_discards_the_write() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = dead.local_addr().expect("addr");
        drop(dead);
        let recorder = Recorder::default();
        let mut c = Client::new(addr, Duration::from_secs(1));
        assert!(!recorder.run_op(1, &mut c, 0, Input::Put(7)));
        assert!(
            recorder.history().operations().is_empty(),
            "never sent: no effect"
        );
    }
}
