//! A Prometheus text endpoint: `GET /metrics` over HTTP/1.1 (one request per connection),
//! with the node's counters, latency histograms, Raft state and per-follower lag.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::conn::stopped;
use super::{Ctx, Stats};
use crate::node::{LatencyBuckets, LatencySummary, LATENCY_BUCKET_BOUNDS_MICROS};

/// Longest request head read, bytes (a scraper's GET is a few hundred).
const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
/// Bound on a scrape connection's life.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn serve(listener: TcpListener, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let ctx = Arc::clone(&ctx);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(stream, &ctx)).await;
                });
            }
        }
    }
}

async fn scrape(mut stream: TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_HEAD_BYTES_MAX {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let (status, body) = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?")
    {
        ("200 OK", render(ctx).await)
    } else {
        ("404 Not Found", "not found: try GET /metrics\n".to_string())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// A Prometheus histogram (`_bucket{le}`, `_sum`, `_count`) from the node's fixed buckets,
/// then the HdrHistogram's precise percentiles as a gauge `<name>_hdr{quantile}` (a gauge, not
/// a summary: a summary would need the histogram's `_sum` and `_count` names).
fn histogram(out: &mut String, name: &str, help: &str, b: &LatencyBuckets, s: &LatencySummary) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound_us, n) in LATENCY_BUCKET_BOUNDS_MICROS.iter().zip(b.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {n}", seconds(*bound_us));
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", b.count);
    let _ = writeln!(out, "{name}_sum {}", seconds(b.sum_us));
    let _ = writeln!(out, "{name}_count {}", b.count);
    let _ = writeln!(
        out,
        "# HELP {name}_hdr {help} Percentiles of the node's HdrHistogram since start (1 = max).\n\
         # TYPE {name}_hdr gauge"
    );
    for (q, v) in [
        ("0.5", s.p50_us),
        ("0.99", s.p99_us),
        ("0.999", s.p999_us),
        ("1", s.max_us),
    ] {
        let _ = writeln!(out, "{name}_hdr{{quantile=\"{q}\"}} {}", seconds(v));
    }
}

/// Microseconds as seconds in Prometheus text, exactly (no float rounding: 25 us is 0.000025).
fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The metrics text.
pub(crate) async fn render(ctx: &Ctx) -> String {
    let m = ctx.handle.metrics();
    let c = &m.counters;
    let mut out = String::new();
    let counters = [
        (
            "ringraft_proposals_applied_total",
            "Proposals completed with their response.",
            c.proposals_applied,
        ),
        (
            "ringraft_proposals_failed_total",
            "Proposals failed.",
            c.proposals_failed,
        ),
        (
            "ringraft_entries_applied_total",
            "Entries applied to the state machine.",
            c.entries_applied,
        ),
        (
            "ringraft_wal_appends_total",
            "WAL appends (group commits) submitted.",
            c.wal_appends,
        ),
        (
            "ringraft_messages_sent_total",
            "Raft messages sent.",
            c.messages_sent,
        ),
        (
            "ringraft_messages_received_total",
            "Raft messages received.",
            c.messages_received,
        ),
        (
            "ringraft_reads_served_total",
            "Linearizable reads served.",
            c.reads_served,
        ),
        (
            "ringraft_reads_failed_total",
            "Reads failed.",
            c.reads_failed,
        ),
        (
            "ringraft_snapshots_taken_total",
            "Snapshots taken locally.",
            c.snapshots_taken,
        ),
        (
            "ringraft_snapshots_failed_total",
            "Background snapshots that failed (retried with backoff).",
            c.snapshots_failed,
        ),
        (
            "ringraft_snapshots_sent_total",
            "Snapshots streamed to followers.",
            c.snapshots_sent,
        ),
        (
            "ringraft_snapshots_installed_total",
            "Snapshots received and installed.",
            c.snapshots_installed,
        ),
        (
            "ringraft_elections_total",
            "Elections since this server started: new terms seen (each term begins with one \
             election or leadership transfer).",
            ctx.elections.elections(),
        ),
        (
            "ringraft_leader_changes_total",
            "Changes of the known leader, sampled every 50 ms.",
            Stats::get(&ctx.elections.leader_changes),
        ),
        (
            "ringraft_became_leader_total",
            "Times this node became leader, sampled every 50 ms.",
            Stats::get(&ctx.elections.became_leader),
        ),
        (
            "ringraft_proposals_held_total",
            "Proposals held back while the WAL queue was half full.",
            c.proposals_held,
        ),
        (
            "ringraft_messages_rejected_total",
            "Received messages that did not decode or were misaddressed.",
            c.messages_rejected,
        ),
        (
            "ringraft_resp_commands_total",
            "RESP commands received.",
            Stats::get(&ctx.stats.commands),
        ),
        (
            "ringraft_resp_writes_forwarded_total",
            "Writes forwarded to the leader.",
            Stats::get(&ctx.stats.writes_forwarded),
        ),
        (
            "ringraft_resp_reads_lease_total",
            "Reads asked in lease mode.",
            Stats::get(&ctx.stats.reads_lease),
        ),
        (
            "ringraft_resp_reads_readindex_total",
            "Reads asked in ReadIndex mode.",
            Stats::get(&ctx.stats.reads_read_index),
        ),
    ];
    for (name, help, v) in counters {
        metric(&mut out, name, "counter", help, v);
    }
    histogram(
        &mut out,
        "ringraft_fsync_seconds",
        "WAL write and fdatasync latency.",
        &m.fsync_buckets,
        &m.fsync,
    );
    histogram(
        &mut out,
        "ringraft_propose_to_apply_seconds",
        "From propose to the state machine's response.",
        &m.propose_to_apply_buckets,
        &m.propose_to_apply,
    );
    histogram(
        &mut out,
        "ringraft_apply_batch_seconds",
        "One state machine apply call (a batch of committed commands).",
        &m.apply_batch_buckets,
        &m.apply_batch,
    );
    if let Ok(st) = ctx.handle.status().await {
        metric(
            &mut out,
            "ringraft_term",
            "gauge",
            "Current term (each election raises it).",
            st.term.0,
        );
        metric(
            &mut out,
            "ringraft_commit_index",
            "gauge",
            "Commit index.",
            st.commit.0,
        );
        metric(
            &mut out,
            "ringraft_applied_index",
            "gauge",
            "Applied index.",
            st.applied.0,
        );
        metric(
            &mut out,
            "ringraft_durable_index",
            "gauge",
            "Durable index of the local log.",
            st.durable.0,
        );
        metric(
            &mut out,
            "ringraft_snapshot_index",
            "gauge",
            "Index of the latest snapshot.",
            st.snapshot_index.0,
        );
        metric(
            &mut out,
            "ringraft_is_leader",
            "gauge",
            "1 on the leader.",
            u64::from(st.role == crate::raft::Role::Leader),
        );
        let _ = writeln!(
            out,
            "# HELP ringraft_follower_lag_entries Entries a follower is behind (leader only).\n\
             # TYPE ringraft_follower_lag_entries gauge"
        );
        for (id, f) in &st.followers {
            let _ = writeln!(
                out,
                "ringraft_follower_lag_entries{{follower=\"{}\"}} {}",
                id.0, f.lag
            );
        }
    }
    out
}
