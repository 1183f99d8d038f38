//! `INFO` (sections server, clients, replication, raft, stats), the `HELLO` reply, and the
//! `RAFT.STATUS` text.

use std::fmt::Write as _;

use bytes::BytesMut;

use super::exec::Session;
use super::{Ctx, Stats};
use crate::kv::resp;
use crate::node::{NodeError, NodeStatus};
use crate::raft::{ProgressState, Role};

/// The `redis_version` reported: the Redis command set this server follows (clients such as
/// redis-py check it before using newer commands).
const REDIS_VERSION: &str = "7.2.0";

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::PreCandidate => "precandidate",
        Role::Candidate => "candidate",
    }
}

/// The raft section: also the text of `RAFT.STATUS` (and so of `ringraft status`).
pub(crate) fn raft_section(ctx: &Ctx, st: &NodeStatus, out: &mut String) {
    let leader = st
        .leader
        .map_or_else(|| "none".to_string(), |l| l.0.to_string());
    let leader_client = st
        .leader
        .and_then(|l| ctx.client_addr(l))
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    let ids = |s: &std::collections::BTreeSet<crate::raft::NodeId>| {
        s.iter()
            .map(|i| i.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let _ = write!(
        out,
        "# Raft\r\nraft_node_id:{}\r\nraft_cluster_id:{}\r\nraft_role:{}\r\nraft_term:{}\r\n\
         raft_leader:{leader}\r\nraft_leader_client_addr:{leader_client}\r\nraft_commit:{}\r\n\
         raft_applied:{}\r\nraft_durable:{}\r\nraft_last_index:{}\r\nraft_snapshot_index:{}\r\n\
         raft_applied_lag:{}\r\nraft_voters:{}\r\nraft_voters_outgoing:{}\r\nraft_learners:{}\r\n\
         raft_durability:{}\r\nraft_read_mode_default:{}\r\nraft_forward_default:{}\r\n",
        st.id.0,
        ctx.config.cluster_id,
        role_name(st.role),
        st.term.0,
        st.commit.0,
        st.applied.0,
        st.durable.0,
        st.last_index.0,
        st.snapshot_index.0,
        st.commit.0.saturating_sub(st.applied.0),
        ids(&st.membership.voters),
        ids(&st.membership.voters_outgoing),
        ids(&st.membership.learners),
        st.durability.name(),
        match ctx.config.read_mode {
            crate::raft::ReadMode::Lease => "lease",
            crate::raft::ReadMode::ReadIndex => "readindex",
        },
        if ctx.config.forward { "on" } else { "off" },
    );
    let e = &ctx.elections;
    let _ = write!(
        out,
        "raft_elections:{}\r\nraft_leader_changes:{}\r\nraft_became_leader:{}\r\n",
        e.elections(),
        super::Stats::get(&e.leader_changes),
        super::Stats::get(&e.became_leader),
    );
    for (id, f) in &st.followers {
        let state = match f.state {
            ProgressState::Probe => "probe".to_string(),
            ProgressState::Replicate => "replicate".to_string(),
            ProgressState::Snapshot(i) => format!("snapshot@{}", i.0),
        };
        let _ = write!(
            out,
            "raft_follower_{}:match={},next={},lag={},state={state}\r\n",
            id.0, f.match_index.0, f.next.0, f.lag
        );
    }
}

fn stats_section(ctx: &Ctx, out: &mut String) {
    let s = &ctx.stats;
    let m = ctx.handle.metrics();
    let _ = write!(
        out,
        "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\n\
         total_commands_processed:{}\r\nprotocol_errors:{}\r\nwrites_proposed:{}\r\n\
         writes_forwarded:{}\r\nreplies_moved:{}\r\nreplies_tryagain:{}\r\n\
         reads_lease:{}\r\nreads_readindex:{}\r\nproposals_applied:{}\r\nentries_applied:{}\r\n\
         wal_appends:{}\r\nfsync_p50_us:{}\r\nfsync_p99_us:{}\r\npropose_to_apply_p50_us:{}\r\n\
         propose_to_apply_p99_us:{}\r\nsnapshots_taken:{}\r\nsnapshots_failed:{}\r\n",
        Stats::get(&s.connections_total),
        Stats::get(&s.connections_rejected),
        Stats::get(&s.commands),
        Stats::get(&s.protocol_errors),
        Stats::get(&s.writes_proposed),
        Stats::get(&s.writes_forwarded),
        Stats::get(&s.replies_moved),
        Stats::get(&s.replies_tryagain),
        Stats::get(&s.reads_lease),
        Stats::get(&s.reads_read_index),
        m.counters.proposals_applied,
        m.counters.entries_applied,
        m.counters.wal_appends,
        m.fsync.p50_us,
        m.fsync.p99_us,
        m.propose_to_apply.p50_us,
        m.propose_to_apply.p99_us,
        m.counters.snapshots_taken,
        m.counters.snapshots_failed,
    );
}

/// The `INFO` text for `section` (all sections if `None`, `all`, `everything` or `default`).
pub(crate) async fn render(ctx: &Ctx, section: Option<&str>) -> Result<String, NodeError> {
    let st = ctx.handle.status().await?;
    let want = |name: &str| {
        section.is_none_or(|s| s == name || s == "all" || s == "everything" || s == "default")
    };
    let mut out = String::new();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nringraft_version:{}\r\n\
             redis_mode:standalone\r\nos:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            ctx.local_addr.port(),
            ctx.started.elapsed().as_secs(),
        );
    }
    if want("clients") {
        let open = ctx.config.connections_max - ctx.connections.available_permits();
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{open}\r\nmaxclients:{}\r\n\r\n",
            ctx.config.connections_max
        );
    }
    if want("replication") {
        replication_section(ctx, &st, &mut out);
    }
    if want("raft") {
        raft_section(ctx, &st, &mut out);
        out.push_str("\r\n");
    }
    if want("stats") {
        stats_section(ctx, &mut out);
    }
    Ok(out)
}

fn replication_section(ctx: &Ctx, st: &NodeStatus, out: &mut String) {
    if st.role == Role::Leader {
        let _ = write!(
            out,
            "# Replication\r\nrole:master\r\nconnected_slaves:{}\r\n",
            st.followers.len()
        );
        for (i, (id, f)) in st.followers.iter().enumerate() {
            let addr = ctx
                .client_addr(*id)
                .map_or_else(|| "unknown".into(), |a| a.to_string());
            let _ = write!(
                out,
                "slave{i}:id={},addr={addr},offset={},lag={}\r\n",
                id.0, f.match_index.0, f.lag
            );
        }
    } else {
        let leader = st.leader.and_then(|l| ctx.client_addr(l));
        let (host, port) = leader.map_or_else(
            || ("none".to_string(), "0".to_string()),
            |a| (a.ip().to_string(), a.port().to_string()),
        );
        let link = if leader.is_some() { "up" } else { "down" };
        let _ = write!(
            out,
            "# Replication\r\nrole:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\n\
             master_link_status:{link}\r\nslave_repl_offset:{}\r\n",
            st.applied.0
        );
    }
    out.push_str("\r\n");
}

/// The reply to `HELLO`: a map (RESP3) or a flat array of its pairs (RESP2), with the
/// fields Redis sends.
pub(crate) async fn hello(ctx: &Ctx, session: &Session, out: &mut BytesMut) {
    let role = match ctx.handle.status().await {
        Ok(st) if st.role == Role::Leader => "master",
        _ => "replica",
    };
    let id = i64::try_from(session.id).unwrap_or(i64::MAX);
    let proto = if session.resp3 { 3 } else { 2 };
    if session.resp3 {
        out.extend_from_slice(b"%7\r\n");
    } else {
        resp::put_array_len(out, 14);
    }
    let pairs: [(&str, Result<&str, i64>); 6] = [
        ("server", Ok("redis")),
        ("version", Ok(REDIS_VERSION)),
        ("proto", Err(proto)),
        ("id", Err(id)),
        ("mode", Ok("standalone")),
        ("role", Ok(role)),
    ];
    for (k, v) in pairs {
        resp::put_bulk(out, k.as_bytes());
        match v {
            Ok(s) => resp::put_bulk(out, s.as_bytes()),
            Err(n) => resp::put_int(out, n),
        }
    }
    resp::put_bulk(out, b"modules");
    resp::put_array_len(out, 0);
}
