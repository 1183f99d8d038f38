//! Runs a workload: one task per client on a multi-thread tokio runtime, each a closed loop
//! that keeps `pipeline` requests in flight on its own TCP connection, timing every request
//! from the moment it is written to the moment its reply is parsed.
//!
//! Timeline: every client connects and runs from the start; replies that complete during the
//! warmup are not counted. The controller flips the phase to *measuring*, samples each
//! process's CPU time, waits out the measured phase (or until the operation budget is spent),
//! flips the phase to *stopping* and samples again. Clients then write nothing more, wait for
//! the replies still in flight and hang up.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::latency::Latencies;
use super::procstat;
use super::wire::{Codec, Outcome, Protocol};
use super::workload::Workload;

/// How long a client waits to connect, and for any reply, before it gives up: far above any
/// healthy latency, so it only ends a run against a server that has stopped answering.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the controller looks at the counters (progress line, operation budget).
const TICK: Duration = Duration::from_millis(100);

const WARMUP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

/// What the clients talk to.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Client addresses; client `i` connects to `addrs[i % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    /// The protocol they speak.
    pub protocol: Protocol,
}

/// A process whose CPU time the report shows.
#[derive(Clone, Debug)]
pub struct Watched {
    /// `node 1`, `etcd n2`, `redis`.
    pub name: String,
    /// Its pid.
    pub pid: u32,
}

/// CPU used by one process during the measured phase.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessCpu {
    /// As in [`Watched::name`]; the load generator itself is `ringraft-bench`.
    pub name: String,
    /// CPU seconds (user + system) during the measured phase.
    pub cpu_s: f64,
    /// `cpu_s` over the measured wall time, in percent of one core.
    pub core_percent: f64,
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct RunStats {
    /// Length of the measured phase.
    pub measured: Duration,
    /// Writes acknowledged during it.
    pub writes: u64,
    /// Reads answered with a value during it.
    pub reads: u64,
    /// Reads of an acknowledged write that found nothing (a consistency failure).
    pub misses: u64,
    /// Requests the server refused, plus connections that failed.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Latency of acknowledged writes.
    pub write_latency: Latencies,
    /// Latency of reads.
    pub read_latency: Latencies,
    /// CPU during the measured phase of each watched process and of this one (last).
    pub cpu: Vec<ProcessCpu>,
}

impl RunStats {
    /// Operations completed in the measured phase (writes, reads and misses).
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.writes + self.reads + self.misses
    }

    /// Operations per second of the measured phase.
    #[must_use]
    pub fn throughput(&self) -> f64 {
        self.ops() as f64 / self.measured.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// State the clients and the controller share.
struct Shared {
    phase: AtomicU8,
    /// Operations recorded in the measured phase so far.
    measured_ops: AtomicU64,
    ops_max: u64,
    /// Set by the client that records the last budgeted operation.
    budget_spent_at: Mutex<Option<Instant>>,
}

/// Per-client results.
#[derive(Default)]
struct ClientStats {
    writes: u64,
    reads: u64,
    misses: u64,
    errors: u64,
    first_error: Option<String>,
    write_latency: Latencies,
    read_latency: Latencies,
}

impl ClientStats {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

/// Runs `workload` against `endpoints` and measures it. `progress` is called about ten times
/// a second with the phase name, seconds into that phase and operations measured so far.
///
/// # Errors
/// The runtime could not be built. Failures of connections and requests are counted in the
/// result, not returned.
pub fn run(
    endpoints: &Endpoints,
    workload: &Workload,
    watched: &[Watched],
    progress: &mut dyn FnMut(&str, f64, u64),
) -> std::io::Result<RunStats> {
    assert!(!endpoints.addrs.is_empty(), "at least one endpoint");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(WARMUP),
        measured_ops: AtomicU64::new(0),
        ops_max: workload.ops_max.unwrap_or(u64::MAX),
        budget_spent_at: Mutex::new(None),
    });
    // Keys differ between runs against the same servers (and between processes).
    let run_id = u64::from(std::process::id()) << 32
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    runtime.block_on(async {
        let clients: Vec<_> = (0..workload.clients)
            .map(|i| {
                let addr = endpoints.addrs[i % endpoints.addrs.len()];
                let spec = ClientSpec {
                    id: i as u64,
                    run_id,
                    addr,
                    protocol: endpoints.protocol,
                    workload: workload.clone(),
                };
                tokio::spawn(client(spec, Arc::clone(&shared)))
            })
            .collect();
        let (measured, cpu) = control(workload, watched, &shared, progress).await;
        let mut total = ClientStats::default();
        for c in clients {
            let s = c.await.unwrap_or_else(|e| {
                let mut s = ClientStats::default();
                s.error(format!("client task failed: {e}"));
                s
            });
            total.writes += s.writes;
            total.reads += s.reads;
            total.misses += s.misses;
            total.errors += s.errors;
            if total.first_error.is_none() {
                total.first_error = s.first_error;
            }
            total.write_latency.merge(&s.write_latency);
            total.read_latency.merge(&s.read_latency);
        }
        Ok(RunStats {
            measured,
            writes: total.writes,
            reads: total.reads,
            misses: total.misses,
            errors: total.errors,
            first_error: total.first_error,
            write_latency: total.write_latency,
            read_latency: total.read_latency,
            cpu,
        })
    })
}

/// Drives the phases; returns the measured wall time and the CPU each process used in it.
async fn control(
    workload: &Workload,
    watched: &[Watched],
    shared: &Shared,
    progress: &mut dyn FnMut(&str, f64, u64),
) -> (Duration, Vec<ProcessCpu>) {
    let started = Instant::now();
    while started.elapsed() < workload.warmup {
        progress("warmup", started.elapsed().as_secs_f64(), 0);
        tokio::time::sleep(TICK.min(workload.warmup.saturating_sub(started.elapsed()))).await;
    }
    let cpu_before = sample_cpu(watched);
    let start = Instant::now();
    shared.phase.store(MEASURING, Ordering::Release);
    let deadline = start + workload.duration;
    loop {
        let now = Instant::now();
        let ops = shared.measured_ops.load(Ordering::Relaxed);
        if now >= deadline || ops >= shared.ops_max {
            break;
        }
        progress("measure", (now - start).as_secs_f64(), ops);
        tokio::time::sleep(TICK.min(deadline - now)).await;
    }
    shared.phase.store(STOPPING, Ordering::Release);
    let end = shared
        .budget_spent_at
        .lock()
        .expect("no client panics while holding the lock")
        .unwrap_or_else(Instant::now);
    let cpu_after = sample_cpu(watched);
    let measured = end.saturating_duration_since(start);
    progress(
        "done",
        measured.as_secs_f64(),
        shared.measured_ops.load(Ordering::Relaxed),
    );
    let cpu = cpu_before
        .into_iter()
        .zip(cpu_after)
        .map(|((name, a), (_, b))| {
            let cpu_s = b.saturating_sub(a).as_secs_f64();
            ProcessCpu {
                name,
                cpu_s,
                core_percent: 100.0 * cpu_s / measured.as_secs_f64().max(f64::MIN_POSITIVE),
            }
        })
        .collect();
    (measured, cpu)
}

/// CPU time so far of each watched process and of this one; a process that is gone reads 0.
fn sample_cpu(watched: &[Watched]) -> Vec<(String, Duration)> {
    watched
        .iter()
        .map(|w| {
            (
                w.name.clone(),
                procstat::cpu_time(w.pid).unwrap_or_default(),
            )
        })
        .chain(std::iter::once((
            "ringraft-bench".to_string(),
            procstat::own_cpu_time().unwrap_or_default(),
        )))
        .collect()
}

struct ClientSpec {
    id: u64,
    run_id: u64,
    addr: SocketAddr,
    protocol: Protocol,
    workload: Workload,
}

/// One request in flight.
struct Pending {
    sent: Instant,
    read: bool,
}

async fn client(spec: ClientSpec, shared: Arc<Shared>) -> ClientStats {
    let mut stats = ClientStats::default();
    let connect = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(spec.addr)).await;
    let mut stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            stats.error(format!("connect to {}: {e}", spec.addr));
            return stats;
        }
        Err(_) => {
            stats.error(format!("connect to {}: timed out", spec.addr));
            return stats;
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        stats.error(format!("TCP_NODELAY: {e}"));
        return stats;
    }
    if let Err(e) = client_loop(&spec, &shared, &mut stream, &mut stats).await {
        stats.error(e);
    }
    stats
}

/// The closed loop: top up the pipeline, write, take whatever replies have arrived (at least
/// one), repeat; after the measured phase, drain what is in flight.
async fn client_loop(
    spec: &ClientSpec,
    shared: &Shared,
    stream: &mut TcpStream,
    stats: &mut ClientStats,
) -> Result<(), String> {
    let w = &spec.workload;
    let mut codec = Codec::new(spec.protocol, spec.addr.to_string());
    let mut keys = KeyMaker::new(spec.run_id, spec.id, w.value_bytes);
    let mut rng = XorShift::new(spec.run_id ^ (spec.id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = BytesMut::with_capacity(w.pipeline * (w.value_bytes + 128));
    let mut inflight: VecDeque<Pending> = VecDeque::with_capacity(w.pipeline);
    let mut written = 0u64; // writes issued
    let mut acked = 0u64; // writes acknowledged: keys 0..acked may be read
    loop {
        if shared.phase.load(Ordering::Acquire) != STOPPING {
            let now = Instant::now();
            while inflight.len() < w.pipeline {
                let read = acked > 0 && rng.below(100) < u64::from(w.read_percent);
                if read {
                    codec.put_read(&mut out, keys.key(rng.below(acked)));
                } else {
                    let (key, value) = keys.key_value(written);
                    codec.put_write(&mut out, key, value);
                    written += 1;
                }
                inflight.push_back(Pending { sent: now, read });
            }
        }
        if inflight.is_empty() {
            return Ok(());
        }
        if !out.is_empty() {
            stream
                .write_all(&out)
                .await
                .map_err(|e| format!("write to {}: {e}", spec.addr))?;
            out.clear();
        }
        let mut got = 0;
        while got == 0 {
            while let Some(outcome) = {
                let read = inflight.front().is_some_and(|p| p.read);
                codec.next_reply(read).map_err(|e| e.to_string())?
            } {
                let p = inflight
                    .pop_front()
                    .ok_or_else(|| format!("{}: a reply to no request", spec.addr))?;
                if !p.read && outcome == Outcome::Ok {
                    acked += 1;
                }
                record(shared, stats, &p, outcome);
                got += 1;
                if inflight.is_empty() {
                    break;
                }
            }
            if got == 0 {
                read_some(stream, &mut codec, spec.addr).await?;
            }
        }
    }
}

async fn read_some(
    stream: &mut TcpStream,
    codec: &mut Codec,
    addr: SocketAddr,
) -> Result<(), String> {
    let buf = codec.read_buffer();
    buf.reserve(64 << 10);
    match tokio::time::timeout(REPLY_TIMEOUT, stream.read_buf(buf)).await {
        Err(_) => Err(format!("{addr}: no reply in {} s", REPLY_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(format!("read from {addr}: {e}")),
        Ok(Ok(0)) => Err(format!("{addr} closed the connection")),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Counts a completed request if it completed in the measured phase, within the budget.
fn record(shared: &Shared, stats: &mut ClientStats, p: &Pending, outcome: Outcome) {
    let now = Instant::now();
    if shared.phase.load(Ordering::Acquire) != MEASURING {
        return;
    }
    let n = shared.measured_ops.fetch_add(1, Ordering::Relaxed);
    if n >= shared.ops_max {
        return;
    }
    if n + 1 == shared.ops_max {
        *shared
            .budget_spent_at
            .lock()
            .expect("no client panics while holding the lock") = Some(now);
    }
    let latency = now - p.sent;
    match outcome {
        Outcome::Ok if p.read => {
            stats.reads += 1;
            stats.read_latency.record(latency);
        }
        Outcome::Ok => {
            stats.writes += 1;
            stats.write_latency.record(latency);
        }
        Outcome::Miss => stats.misses += 1,
        Outcome::Refused(e) => stats.error(e),
    }
}

/// Builds each client's keys (`rb<run>:<client>:<seq>`, unique per run, client and write) and
/// values (the key, then filler, to the value size: unique too).
struct KeyMaker {
    prefix: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl KeyMaker {
    fn new(run: u64, client: u64, value_bytes: usize) -> Self {
        Self {
            prefix: format!("rb{run:016x}:{client}:").into_bytes(),
            key: Vec::with_capacity(48),
            value: vec![b'v'; value_bytes],
        }
    }

    fn key(&mut self, seq: u64) -> &[u8] {
        self.key.clear();
        self.key.extend_from_slice(&self.prefix);
        write!(self.key, "{seq}").expect("writing to a Vec cannot fail");
        &self.key
    }

    fn key_value(&mut self, seq: u64) -> (&[u8], &[u8]) {
        self.key(seq);
        let n = self.key.len().min(self.value.len());
        self.value[..n].copy_from_slice(&self.key[..n]);
        (&self.key, &self.value)
    }
}

/// xorshift64*: a few nanoseconds per number, plenty for choosing reads.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_are_unique_and_sized() {
        let mut k = KeyMaker::new(1, 7, 64);
        let (k0, v0) = k.key_value(0);
        let (k0, v0) = (k0.to_vec(), v0.to_vec());
        let (k1, v1) = k.key_value(1);
        assert_ne!(k0, k1);
        assert_ne!(v0, v1);
        assert_eq!(v1.len(), 64);
        assert_eq!(k0, b"rb0000000000000001:7:0");
        // A value shorter than its key is still the right size.
        let mut tiny = KeyMaker::new(1, 7, 4);
        assert_eq!(tiny.key_value(3).1, b"rb00");
    }

    #[test]
    fn xorshift_stays_below_its_bound() {
        let mut r = XorShift::new(0);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = r.below(10);
            assert!(v < 10);
            seen[v as usize] = true;
        }
        assert!(
            seen.iter().all(|&s| s),
            "every value of 0..10 comes up in 1000 draws"
        );
    }
}
