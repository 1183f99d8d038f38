//! One pipeline executed in request order. A run of consecutive writes becomes one log entry
//! (a [`KvCommand::Batch`], split only at the proposal size limit): this is where pipelining
//! pays, one proposal, one fsync share and one apply for the whole run. A run of consecutive
//! reads is served by one linearizable read barrier. A read after a write of the same
//! pipeline runs after that write is applied, so it sees it.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::command::{self, ClientOp, CommandError, CommandQuery, Op, ReadOp};
use super::command_table::{self, COMMANDS};
use super::forward::ForwardError;
use super::{admin, info, Ctx, ServerConfig, Stats, REPLY_BYTES_FLUSH};
use crate::kv::resp::{self, Reply, Requests};
use crate::kv::{
    decode_batch_response, BatchBuilder, KvCommand, KvError, KvReply, KvStateMachine,
    RESPONSE_INVALID, VALUE_BYTES_MAX,
};
use crate::node::NodeError;
use crate::raft::{NodeId, ReadError, ReadMode};

/// A connection's state.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) name: Option<Bytes>,
    /// Whether the client switched to RESP3 (`HELLO 3`): nil is then `_`.
    pub(crate) resp3: bool,
    /// Answer writes on a follower with `-MOVED` instead of forwarding them.
    pub(crate) no_forward: bool,
    pub(crate) read_mode: ReadMode,
    /// `QUIT` was seen: reply, then close.
    pub(crate) quit: bool,
}

impl Session {
    pub(crate) fn new(id: u64, peer: SocketAddr, config: &ServerConfig) -> Self {
        Session {
            id,
            peer,
            name: None,
            resp3: false,
            no_forward: !config.forward,
            read_mode: config.read_mode,
            quit: false,
        }
    }
}

/// The nil reply of the connection's protocol.
pub(crate) fn put_nil(out: &mut BytesMut, resp3: bool) {
    if resp3 {
        out.extend_from_slice(b"_\r\n");
    } else {
        resp::put_nil(out);
    }
}

/// Re-encodes a parsed reply (a forwarded one) in the connection's protocol.
pub(crate) fn put_reply(out: &mut BytesMut, r: &Reply, resp3: bool) {
    match r {
        Reply::Simple(s) => {
            out.extend_from_slice(b"+");
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(s) => {
            out.extend_from_slice(b"-");
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(v) => resp::put_int(out, *v),
        Reply::Bulk(Some(b)) => resp::put_bulk(out, b),
        Reply::Bulk(None) | Reply::Array(None) => put_nil(out, resp3),
        Reply::Array(Some(items)) => {
            resp::put_array_len(out, items.len());
            items.iter().for_each(|i| put_reply(out, i, resp3));
        }
    }
}

/// `-MOVED 0 <addr>`: the shape of a Redis Cluster redirect (slot 0: one shard holds
/// every key), so cluster-aware clients can follow it.
pub(crate) fn put_moved(ctx: &Ctx, out: &mut BytesMut, leader: Option<NodeId>) {
    match leader.and_then(|l| ctx.client_addr(l)) {
        Some(addr) => {
            Stats::inc(&ctx.stats.replies_moved, 1);
            resp::put_error(out, &format!("MOVED 0 {addr}"));
        }
        None => put_tryagain(ctx, out, leader),
    }
}

/// `-TRYAGAIN`: no leader is known (an election is running), or its address is not.
pub(crate) fn put_tryagain(ctx: &Ctx, out: &mut BytesMut, leader: Option<NodeId>) {
    Stats::inc(&ctx.stats.replies_tryagain, 1);
    match leader {
        None => resp::put_error(out, "TRYAGAIN no leader known (election in progress?)"),
        Some(l) => resp::put_error(
            out,
            &format!("TRYAGAIN no client address known for leader {l}"),
        ),
    }
}

/// The reply to a node error that is not a redirect.
pub(crate) fn put_node_error(ctx: &Ctx, out: &mut BytesMut, e: &NodeError) {
    match e {
        NodeError::NotLeader { leader } => put_moved(ctx, out, *leader),
        NodeError::Read(ReadError::NoLeader | ReadError::LeadershipLost | ReadError::TimedOut)
        | NodeError::Timeout => put_tryagain(ctx, out, None),
        NodeError::Propose(crate::raft::ProposeError::TooLarge { max, .. }) => {
            resp::put_error(
                out,
                &format!("ERR request too large for one log entry (max {max} bytes)"),
            );
        }
        other => resp::put_error(out, &format!("ERR {other}")),
    }
}

/// Runs the pipeline `requests`, appending the replies to `out` in order. Writes `out` to
/// `stream` early once it holds [`REPLY_BYTES_FLUSH`] bytes.
pub(crate) async fn run(
    ctx: &Ctx,
    session: &mut Session,
    requests: &Requests,
    out: &mut BytesMut,
    stream: &mut TcpStream,
) -> std::io::Result<()> {
    let ops: Vec<Result<Op, CommandError>> = (0..requests.len())
        .map(|i| command::parse(requests.get(i)))
        .collect();
    let mut i = 0;
    while i < ops.len() && !session.quit {
        let run_end = |pred: fn(&Op) -> bool| {
            i + ops[i..]
                .iter()
                .take_while(|o| o.as_ref().is_ok_and(pred))
                .count()
        };
        match &ops[i] {
            Err(e) => {
                resp::put_error(out, &e.to_string());
                i += 1;
            }
            Ok(Op::Write(_)) => {
                let end = run_end(|o| matches!(o, Op::Write(_)));
                let writes: Vec<(&KvCommand, &[Bytes])> = (i..end)
                    .map(|j| match &ops[j] {
                        Ok(Op::Write(c)) => (c, requests.get(j)),
                        _ => unreachable!("the run holds writes only"),
                    })
                    .collect();
                run_writes(ctx, session, &writes, out).await;
                i = end;
            }
            Ok(Op::Read(_)) => {
                let end = run_end(|o| matches!(o, Op::Read(_)));
                let reads: Vec<ReadOp> = ops[i..end]
                    .iter()
                    .map(|o| match o {
                        Ok(Op::Read(r)) => r.clone(),
                        _ => unreachable!("the run holds reads only"),
                    })
                    .collect();
                i += run_reads(ctx, session, reads, out).await;
            }
            Ok(op) => {
                run_local(ctx, session, op, out).await;
                i += 1;
            }
        }
        if out.len() >= REPLY_BYTES_FLUSH {
            stream.write_all(out).await?;
            out.clear();
        }
    }
    Ok(())
}

/// Proposes a run of writes, in chunks that each fit one log entry.
async fn run_writes(
    ctx: &Ctx,
    session: &Session,
    writes: &[(&KvCommand, &[Bytes])],
    out: &mut BytesMut,
) {
    // Room for the batch header and each command's length prefix.
    let limit = usize::try_from(ctx.handle.proposal_bytes_max)
        .unwrap_or(usize::MAX)
        .saturating_sub(64);
    let mut start = 0;
    let mut batch = BatchBuilder::default();
    let mut scratch = BytesMut::new();
    for (j, (cmd, _)) in writes.iter().enumerate() {
        scratch.clear();
        cmd.encode_into(&mut scratch);
        if !batch.is_empty() && batch.bytes() + scratch.len() + 10 > limit {
            propose_chunk(ctx, session, &writes[start..j], &mut batch, out).await;
            start = j;
        }
        batch.push(cmd);
    }
    propose_chunk(ctx, session, &writes[start..], &mut batch, out).await;
}

async fn propose_chunk(
    ctx: &Ctx,
    session: &Session,
    writes: &[(&KvCommand, &[Bytes])],
    batch: &mut BatchBuilder,
    out: &mut BytesMut,
) {
    let data = if writes.len() == 1 {
        batch.finish();
        writes[0].0.encode()
    } else {
        batch.finish()
    };
    match ctx.handle.propose(data).await {
        Ok(p) => {
            Stats::inc(&ctx.stats.writes_proposed, writes.len() as u64);
            if writes.len() == 1 {
                put_write_reply(writes[0].0, &p.response, session.resp3, out);
                return;
            }
            match decode_batch_response(&p.response) {
                Ok(parts) if parts.len() == writes.len() => {
                    for ((cmd, _), r) in writes.iter().zip(&parts) {
                        put_write_reply(cmd, r, session.resp3, out);
                    }
                }
                _ => {
                    for _ in writes {
                        resp::put_error(out, "ERR internal: batch response did not decode");
                    }
                }
            }
        }
        Err(NodeError::NotLeader { leader: Some(l) }) if !session.no_forward => {
            forward(ctx, session, l, writes, out).await;
        }
        Err(e) => {
            for _ in writes {
                put_node_error(ctx, out, &e);
            }
        }
    }
}

/// Forwards writes to `leader`'s client port; its replies come back in order.
async fn forward(
    ctx: &Ctx,
    session: &Session,
    leader: NodeId,
    writes: &[(&KvCommand, &[Bytes])],
    out: &mut BytesMut,
) {
    let Some(addr) = ctx.client_addr(leader).filter(|a| *a != ctx.local_addr) else {
        writes
            .iter()
            .for_each(|_| put_tryagain(ctx, out, Some(leader)));
        return;
    };
    let requests: Vec<&[Bytes]> = writes.iter().map(|(_, args)| *args).collect();
    match ctx.forwarder.forward(addr, &requests).await {
        Ok(replies) => {
            Stats::inc(&ctx.stats.writes_forwarded, writes.len() as u64);
            for r in &replies {
                if matches!(r, Reply::Error(e) if e.starts_with(b"MOVED")) {
                    Stats::inc(&ctx.stats.replies_moved, 1);
                }
                put_reply(out, r, session.resp3);
            }
        }
        Err(e @ ForwardError::Connect { .. }) => {
            tracing::debug!(error = %e, "forward failed");
            writes.iter().for_each(|_| {
                Stats::inc(&ctx.stats.replies_tryagain, 1);
                resp::put_error(out, &format!("TRYAGAIN {e}"));
            });
        }
        Err(e) => {
            tracing::debug!(error = %e, "forward failed");
            writes
                .iter()
                .for_each(|_| resp::put_error(out, &format!("ERR {e}; outcome unknown")));
        }
    }
}

/// The RESP reply to a write, from the state machine's response.
fn put_write_reply(cmd: &KvCommand, response: &Bytes, resp3: bool, out: &mut BytesMut) {
    if response.first() == Some(&RESPONSE_INVALID) {
        resp::put_error(out, "ERR internal: the command did not decode");
        return;
    }
    match cmd {
        KvCommand::Set { .. } | KvCommand::MSet { .. } | KvCommand::Flush => resp::put_ok(out),
        KvCommand::SetIf { .. } => match KvReply::decode(response) {
            Some(KvReply::Int(1)) => resp::put_ok(out),
            _ => put_nil(out, resp3),
        },
        _ => match KvReply::decode(response) {
            Some(KvReply::Int(n)) => resp::put_int(out, n),
            Some(KvReply::Err(KvError::NotInteger)) => {
                resp::put_error(out, "ERR value is not an integer or out of range");
            }
            Some(KvReply::Err(KvError::Overflow)) => {
                resp::put_error(out, "ERR increment or decrement would overflow");
            }
            Some(KvReply::Err(KvError::TooLarge)) => resp::put_error(
                out,
                &format!("ERR string exceeds maximum allowed size ({VALUE_BYTES_MAX} bytes)"),
            ),
            Some(KvReply::Ok) | None => resp::put_error(out, "ERR internal: unexpected response"),
        },
    }
}

/// Serves a run of reads behind one read barrier; returns how many it served (it stops
/// early once the replies reach [`REPLY_BYTES_FLUSH`], leaving the rest to the caller).
async fn run_reads(ctx: &Ctx, session: &Session, reads: Vec<ReadOp>, out: &mut BytesMut) -> usize {
    let n = reads.len();
    let mode = session.read_mode;
    let resp3 = session.resp3;
    let result = ctx
        .handle
        .read(mode, move |kv: &KvStateMachine| {
            let mut buf = BytesMut::new();
            let mut served = 0;
            for r in &reads {
                put_read_reply(kv, r, resp3, &mut buf);
                served += 1;
                if buf.len() >= REPLY_BYTES_FLUSH {
                    break;
                }
            }
            (buf, served)
        })
        .await;
    match result {
        Ok((buf, served)) => {
            let counter = match mode {
                ReadMode::Lease => &ctx.stats.reads_lease,
                ReadMode::ReadIndex => &ctx.stats.reads_read_index,
            };
            Stats::inc(counter, served as u64);
            out.extend_from_slice(&buf);
            served
        }
        Err(e) => {
            (0..n).for_each(|_| put_node_error(ctx, out, &e));
            n
        }
    }
}

fn put_read_reply(kv: &KvStateMachine, r: &ReadOp, resp3: bool, out: &mut BytesMut) {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    match r {
        ReadOp::Get(k) => match kv.get(k) {
            Some(v) => resp::put_bulk(out, &v),
            None => put_nil(out, resp3),
        },
        ReadOp::MGet(keys) => {
            resp::put_array_len(out, keys.len());
            for k in keys {
                match kv.get(k) {
                    Some(v) => resp::put_bulk(out, &v),
                    None => put_nil(out, resp3),
                }
            }
        }
        ReadOp::Exists(keys) => {
            resp::put_int(out, count(keys.iter().filter(|k| kv.contains(k)).count()));
        }
        ReadOp::StrLen(k) => resp::put_int(out, count(kv.get(k).map_or(0, |v| v.len()))),
        ReadOp::DbSize => resp::put_int(out, count(kv.len())),
    }
}

/// Commands answered without the log.
async fn run_local(ctx: &Ctx, session: &mut Session, op: &Op, out: &mut BytesMut) {
    match op {
        Op::Ping(None) => resp::put_simple(out, "PONG"),
        Op::Ping(Some(m)) | Op::Echo(m) => resp::put_bulk(out, m),
        Op::Info(section) => match info::render(ctx, section.as_deref()).await {
            Ok(text) => resp::put_bulk(out, text.as_bytes()),
            Err(e) => put_node_error(ctx, out, &e),
        },
        Op::Command(q) => command_reply(q, out),
        Op::Client(c) => client(session, c, out),
        Op::Hello(ver, name) => {
            if let Some(n) = name {
                session.name = Some(n.clone());
            }
            if let Some(v) = ver {
                session.resp3 = *v == 3;
            }
            info::hello(ctx, session, out).await;
        }
        Op::Select => resp::put_ok(out),
        Op::Quit => {
            resp::put_ok(out);
            session.quit = true;
        }
        Op::NoForward(on) => {
            session.no_forward = *on;
            resp::put_ok(out);
        }
        Op::ReadMode(m) => {
            session.read_mode = *m;
            resp::put_ok(out);
        }
        Op::Admin(a) => admin::run(ctx, a, out).await,
        Op::Read(_) | Op::Write(_) => unreachable!("reads and writes run in batches"),
    }
}

fn client(session: &mut Session, c: &ClientOp, out: &mut BytesMut) {
    match c {
        ClientOp::SetName(n) => {
            session.name = Some(n.clone());
            resp::put_ok(out);
        }
        ClientOp::GetName => match &session.name {
            Some(n) => resp::put_bulk(out, n),
            None => put_nil(out, session.resp3),
        },
        ClientOp::Id => resp::put_int(out, i64::try_from(session.id).unwrap_or(i64::MAX)),
        ClientOp::Info => {
            let name = session
                .name
                .as_ref()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            let line = format!(
                "id={} addr={} name={} resp={} noforward={} readmode={:?}\n",
                session.id,
                session.peer,
                name,
                if session.resp3 { 3 } else { 2 },
                u8::from(session.no_forward),
                session.read_mode,
            );
            resp::put_bulk(out, line.as_bytes());
        }
        ClientOp::SetInfo => resp::put_ok(out),
    }
}

/// The reply to `COMMAND ...` (see [`command_table`]).
fn command_reply(q: &CommandQuery, out: &mut BytesMut) {
    match q {
        CommandQuery::Count => {
            resp::put_int(out, i64::try_from(COMMANDS.len()).unwrap_or(i64::MAX));
        }
        CommandQuery::List => {
            resp::put_array_len(out, COMMANDS.len());
            for c in COMMANDS {
                resp::put_bulk(out, c.name.to_ascii_lowercase().as_bytes());
            }
        }
        CommandQuery::Info(names) if names.is_empty() => {
            resp::put_array_len(out, COMMANDS.len());
            for c in COMMANDS {
                command_table::put_info(out, c);
            }
        }
        CommandQuery::Info(names) => {
            resp::put_array_len(out, names.len());
            for n in names {
                match command_table::find(n) {
                    Some(c) => command_table::put_info(out, c),
                    None => resp::put_nil(out),
                }
            }
        }
        CommandQuery::Docs(names) => {
            // Unknown names are left out, as Redis does.
            let docs: Vec<_> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names
                    .iter()
                    .filter_map(|n| command_table::find(n))
                    .collect()
            };
            resp::put_array_len(out, docs.len() * 2);
            for c in docs {
                command_table::put_docs(out, c);
            }
        }
    }
}
