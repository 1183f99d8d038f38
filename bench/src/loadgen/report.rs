//! The report of one run, as text for people and as JSON (`--json`).

use std::fmt::Write as _;

use serde::Serialize;

use super::driver::{ProcessCpu, RunStats};
use super::floor::Floor;
use super::latency::{format_us, LatencySummary};
use super::machine::Machine;
use super::workload::{Durability, Workload};

/// One run's figures with everything needed to read them.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// `ringraft`, `etcd`, `redis`, or `endpoints` for servers the bench did not start.
    pub system: String,
    /// What ran: process count, protocol, durability.
    pub setup: String,
    /// Cluster size (1 for Redis).
    pub nodes: usize,
    /// Fsync or not.
    pub durability: Durability,
    /// The clients' workload.
    pub workload: Workload,
    /// Where it ran.
    pub machine: Machine,
    /// The physical floor measured before the run, if it was.
    pub floor: Option<Floor>,
    /// Length of the measured phase, seconds.
    pub measured_s: f64,
    /// Operations per second in the measured phase.
    pub throughput_ops_s: f64,
    /// Acknowledged writes.
    pub writes: u64,
    /// Reads that found their value.
    pub reads: u64,
    /// Reads of an acknowledged write that found nothing.
    pub misses: u64,
    /// Refused requests and failed connections.
    pub errors: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Latency of every operation.
    pub latency: Option<LatencySummary>,
    /// Latency of writes.
    pub write_latency: Option<LatencySummary>,
    /// Latency of reads.
    pub read_latency: Option<LatencySummary>,
    /// CPU of each server process and (last) of the load generator in the measured phase.
    pub cpu: Vec<ProcessCpu>,
    /// Server CPU microseconds per operation (all server processes together).
    pub server_cpu_us_per_op: Option<f64>,
}

/// What [`RunReport::new`] needs besides the measurements.
#[derive(Clone, Debug)]
pub struct Context {
    /// As [`RunReport::system`].
    pub system: String,
    /// As [`RunReport::setup`].
    pub setup: String,
    /// As [`RunReport::nodes`].
    pub nodes: usize,
    /// As [`RunReport::durability`].
    pub durability: Durability,
    /// As [`RunReport::machine`].
    pub machine: Machine,
    /// As [`RunReport::floor`].
    pub floor: Option<Floor>,
}

impl RunReport {
    /// Assembles the report of one run.
    #[must_use]
    pub fn new(ctx: Context, workload: &Workload, stats: &RunStats) -> Self {
        let mut all = stats.write_latency.clone();
        all.merge(&stats.read_latency);
        let ops = stats.ops();
        let server_cpu_s: f64 = stats
            .cpu
            .iter()
            .filter(|c| c.name != "ringraft-bench")
            .map(|c| c.cpu_s)
            .sum();
        let has_servers = stats.cpu.len() > 1;
        Self {
            system: ctx.system,
            setup: ctx.setup,
            nodes: ctx.nodes,
            durability: ctx.durability,
            workload: workload.clone(),
            machine: ctx.machine,
            floor: ctx.floor,
            measured_s: stats.measured.as_secs_f64(),
            throughput_ops_s: stats.throughput(),
            writes: stats.writes,
            reads: stats.reads,
            misses: stats.misses,
            errors: stats.errors,
            first_error: stats.first_error.clone(),
            latency: all.summary(),
            write_latency: stats.write_latency.summary(),
            read_latency: stats.read_latency.summary(),
            cpu: stats.cpu.clone(),
            server_cpu_us_per_op: (has_servers && ops > 0).then(|| server_cpu_s * 1e6 / ops as f64),
        }
    }

    /// Whether the run measured anything and nothing went wrong.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.misses == 0 && self.writes + self.reads > 0
    }

    /// The report for people.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = &self.workload;
        let _ = writeln!(s, "ringraft-bench: {}", self.setup);
        let _ = writeln!(
            s,
            "  workload    {} clients, pipeline {}, {} B values, {}% reads / {}% writes (SET of \
             new keys), {:.1} s warmup + {:.1} s measured",
            w.clients,
            w.pipeline,
            w.value_bytes,
            w.read_percent,
            100 - w.read_percent,
            w.warmup.as_secs_f64(),
            w.duration.as_secs_f64(),
        );
        let _ = writeln!(
            s,
            "  durability  {} ({} node{})",
            self.durability.describe(),
            self.nodes,
            if self.nodes == 1 { "" } else { "s" }
        );
        let m = &self.machine;
        let _ = writeln!(
            s,
            "  machine     {} CPUs ({}), kernel {}, data on {}",
            m.cpus, m.cpu_model, m.kernel, m.disk
        );
        let _ = writeln!(
            s,
            "  throughput  {:.0} ops/s ({} writes, {} reads in {:.2} s)",
            self.throughput_ops_s, self.writes, self.reads, self.measured_s
        );
        for (name, l) in [
            ("latency", &self.latency),
            ("  writes", &self.write_latency),
            ("  reads", &self.read_latency),
        ] {
            if let Some(l) = l {
                if name == "latency" || self.reads > 0 {
                    let _ = writeln!(s, "  {name:<11} {}", latency_line(l));
                }
            }
        }
        if let Some(f) = &self.floor {
            let _ =
                writeln!(
                s,
                "  floor       fdatasync p50 {} + loopback RTT p50 {} = {} per replicated write{}",
                format_us(f.fdatasync.p50_us),
                format_us(f.loopback_rtt.p50_us),
                format_us(f.write_p50_us()),
                self.write_latency.as_ref().map_or(String::new(), |l| format!(
                    "; write p50 is {:.1}x the floor",
                    l.p50_us / f.write_p50_us()
                )),
            );
        }
        let cpu: Vec<String> = self
            .cpu
            .iter()
            .map(|c| format!("{} {:.2} s ({:.0}%)", c.name, c.cpu_s, c.core_percent))
            .collect();
        let _ = writeln!(s, "  cpu         {}", cpu.join(", "));
        if let Some(us) = self.server_cpu_us_per_op {
            let _ = writeln!(s, "  cpu/op      {us:.1} us of server CPU per operation");
        }
        if self.errors > 0 || self.misses > 0 {
            let _ = writeln!(
                s,
                "  ERRORS      {} errors, {} reads missed an acknowledged write; first: {}",
                self.errors,
                self.misses,
                self.first_error.as_deref().unwrap_or("-")
            );
        }
        s
    }
}

/// `p50 637 us  p90 ...  max ...`.
#[must_use]
pub fn latency_line(l: &LatencySummary) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        format_us(l.p50_us),
        format_us(l.p90_us),
        format_us(l.p99_us),
        format_us(l.p999_us),
        format_us(l.max_us)
    )
}
