//! The `RAFT.*` admin commands the `ringraft` client subcommands send: status, membership
//! changes, leadership transfer, snapshot. Changes run on the leader only: a follower
//! answers `-MOVED 0 <leader>` (never forwards them), and the client follows it.

use bytes::BytesMut;

use super::command::AdminOp;
use super::exec::put_node_error;
use super::{info, Ctx};
use crate::kv::resp;
use crate::node::NodeError;
use crate::raft::LogIndex;

pub(crate) async fn run(ctx: &Ctx, op: &AdminOp, out: &mut BytesMut) {
    let h = &ctx.handle;
    let index = |r: Result<LogIndex, NodeError>, out: &mut BytesMut| match r {
        Ok(i) => resp::put_int(out, i64::try_from(i.0).unwrap_or(i64::MAX)),
        Err(e) => put_node_error(ctx, out, &e),
    };
    match op {
        AdminOp::Status => match h.status().await {
            Ok(st) => {
                let mut text = String::new();
                info::raft_section(ctx, &st, &mut text);
                resp::put_bulk(out, text.as_bytes());
            }
            Err(e) => put_node_error(ctx, out, &e),
        },
        AdminOp::AddVoter(id, raft, client) | AdminOp::AddLearner(id, raft, client) => {
            let r = if matches!(op, AdminOp::AddVoter(..)) {
                h.add_voter(*id, *raft).await
            } else {
                h.add_learner(*id, *raft).await
            };
            if let (Ok(_), Some(c)) = (&r, client) {
                ctx.clients
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(*id, *c);
            }
            index(r, out);
        }
        AdminOp::Promote(id) => index(h.promote(*id).await, out),
        AdminOp::Remove(id) => index(h.remove(*id).await, out),
        AdminOp::Transfer(id) => match h.transfer_leadership(*id).await {
            Ok(()) => resp::put_ok(out),
            Err(NodeError::Transfer(crate::raft::TransferError::NotLeader { leader })) => {
                super::exec::put_moved(ctx, out, leader);
            }
            Err(e) => put_node_error(ctx, out, &e),
        },
        AdminOp::Snapshot => index(h.snapshot().await, out),
    }
}
