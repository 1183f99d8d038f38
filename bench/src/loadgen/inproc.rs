//! A closed-loop driver for clusters that live inside this process (ringraft's in-memory
//! mode, openraft's minimal benchmark shape): no sockets between the clients and the
//! leader, each client a task that proposes one write and awaits it, again and again.
//!
//! The timeline is the one of [`super::driver`]: every client runs from the start, replies
//! during the warmup are not counted, the measured phase ends after `duration` (or after
//! `ops_max` operations), and then the clients stop proposing and finish what is in flight.
//! The pipeline depth and the read share of the workload do not apply here: a client has one
//! write in flight (that is the shape of openraft's `benchmarks/minimal`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{ProcessCpu, RunStats};
use super::latency::Latencies;
use super::procstat;
use super::workload::Workload;

/// One write: `(client, sequence number)` to a future that completes when the write is
/// committed and applied, or fails with a message.
pub type ProposeFn =
    Arc<dyn Fn(u64, u64) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// How often the controller looks at the clock and the counters.
const TICK: Duration = Duration::from_millis(50);
/// How long a stopping client may wait for its last write before the run gives up on it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

const WARMUP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

struct Shared {
    phase: AtomicU8,
    measured_ops: AtomicU64,
}

#[derive(Default)]
struct ClientStats {
    writes: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Latencies,
}

/// Runs `workload.clients` closed-loop clients of `propose` on `runtime` and measures them.
/// `cpu_name` labels this process's CPU time in the report (cluster and clients together).
#[must_use]
pub fn run(
    runtime: &tokio::runtime::Runtime,
    workload: &Workload,
    propose: &ProposeFn,
    cpu_name: &str,
) -> RunStats {
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(WARMUP),
        measured_ops: AtomicU64::new(0),
    });
    runtime.block_on(async {
        let clients: Vec<_> = (0..workload.clients as u64)
            .map(|id| tokio::spawn(client(id, Arc::clone(propose), Arc::clone(&shared))))
            .collect();
        let (measured, cpu_s) = control(workload, &shared).await;
        let mut total = ClientStats::default();
        for c in clients {
            let s = match tokio::time::timeout(DRAIN_TIMEOUT, c).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => failed(format!("client task failed: {e}")),
                Err(_) => failed(format!(
                    "a write was still in flight {} s after the run",
                    DRAIN_TIMEOUT.as_secs()
                )),
            };
            total.writes += s.writes;
            total.errors += s.errors;
            if total.first_error.is_none() {
                total.first_error = s.first_error;
            }
            total.latency.merge(&s.latency);
        }
        RunStats {
            measured,
            writes: total.writes,
            reads: 0,
            misses: 0,
            errors: total.errors,
            first_error: total.first_error,
            write_latency: total.latency,
            read_latency: Latencies::new(),
            cpu: vec![ProcessCpu {
                name: cpu_name.to_string(),
                cpu_s,
                core_percent: 100.0 * cpu_s / measured.as_secs_f64().max(f64::MIN_POSITIVE),
            }],
        }
    })
}

fn failed(e: String) -> ClientStats {
    ClientStats {
        errors: 1,
        first_error: Some(e),
        ..ClientStats::default()
    }
}

/// Drives the phases; returns the measured wall time and this process's CPU seconds in it.
async fn control(workload: &Workload, shared: &Shared) -> (Duration, f64) {
    tokio::time::sleep(workload.warmup).await;
    let cpu_before = procstat::own_cpu_time().unwrap_or_default();
    let start = Instant::now();
    shared.phase.store(MEASURING, Ordering::Release);
    let ops_max = workload.ops_max.unwrap_or(u64::MAX);
    let deadline = start + workload.duration;
    loop {
        let now = Instant::now();
        if now >= deadline || shared.measured_ops.load(Ordering::Relaxed) >= ops_max {
            break;
        }
        tokio::time::sleep(TICK.min(deadline - now)).await;
    }
    shared.phase.store(STOPPING, Ordering::Release);
    let measured = start.elapsed();
    let cpu_after = procstat::own_cpu_time().unwrap_or_default();
    (measured, cpu_after.saturating_sub(cpu_before).as_secs_f64())
}

async fn client(id: u64, propose: ProposeFn, shared: Arc<Shared>) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut seq = 0u64;
    while shared.phase.load(Ordering::Acquire) != STOPPING {
        let sent = Instant::now();
        let outcome = propose(id, seq).await;
        seq += 1;
        if shared.phase.load(Ordering::Acquire) != MEASURING {
            continue;
        }
        shared.measured_ops.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                stats.writes += 1;
                stats.latency.record(sent.elapsed());
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(e);
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_measured_phase_and_every_failure() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // Every seventh write of a client fails; each takes about a millisecond.
        let propose: ProposeFn = Arc::new(|_client, seq| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if seq % 7 == 6 {
                    Err(format!("refused {seq}"))
                } else {
                    Ok(())
                }
            })
        });
        let workload = Workload {
            clients: 4,
            warmup: Duration::from_millis(20),
            duration: Duration::from_secs(30),
            ops_max: Some(200),
            ..Workload::default()
        };
        let stats = run(&runtime, &workload, &propose, "test");
        assert!(stats.writes + stats.errors >= 200, "the budget is spent");
        assert!(stats.errors > 0, "failures are counted");
        assert!(stats
            .first_error
            .as_deref()
            .is_some_and(|e| e.starts_with("refused")));
        assert_eq!(stats.write_latency.count(), stats.writes);
        assert_eq!(stats.cpu.len(), 1);
        assert_eq!(stats.cpu[0].name, "test");
    }
}
