//! The accept loop and the per-connection loop: read, parse every complete request in the
//! buffer (at most [`PIPELINE_REQUESTS_MAX`]), run them as one pipeline, write the replies in
//! request order. Malformed protocol gets an error and closes this connection only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::exec::{self, Session};
use super::{Ctx, Stats, PIPELINE_REQUESTS_MAX};
use crate::kv::resp::{self, RequestParser, Requests};

/// Read buffer reserved per read, bytes.
const READ_CHUNK_BYTES: usize = 16 << 10;

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(admit(stream, peer, Arc::clone(&ctx)));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
    conns.shutdown().await;
}

/// Takes a connection slot, or refuses the connection as Redis does.
async fn admit(mut stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>) {
    let Ok(_slot) = Arc::clone(&ctx.connections).try_acquire_owned() else {
        Stats::inc(&ctx.stats.connections_rejected, 1);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    };
    Stats::inc(&ctx.stats.connections_total, 1);
    let id = NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed);
    let mut session = Session::new(id, peer, &ctx.config);
    if let Err(e) = serve(&mut stream, &ctx, &mut session).await {
        tracing::debug!(client = id, %peer, error = %e, "connection closed");
    }
}

async fn serve(stream: &mut TcpStream, ctx: &Ctx, session: &mut Session) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut parser = RequestParser::default();
    let mut requests = Requests::default();
    let mut out = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        requests.clear();
        let missing = match parser.parse(&mut buf, &mut requests, PIPELINE_REQUESTS_MAX) {
            Ok(missing) => missing,
            Err(e) => {
                Stats::inc(&ctx.stats.protocol_errors, 1);
                out.clear();
                resp::put_error(&mut out, &format!("ERR {e}"));
                stream.write_all(&out).await?;
                return Ok(());
            }
        };
        if requests.is_empty() {
            buf.reserve(missing.max(READ_CHUNK_BYTES));
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
            continue;
        }
        Stats::inc(&ctx.stats.commands, requests.len() as u64);
        exec::run(ctx, session, &requests, &mut out, stream).await?;
        stream.write_all(&out).await?;
        out.clear();
        if session.quit {
            return Ok(());
        }
    }
}

/// Completes once the server is asked to stop (or its stop sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
