//! The client subcommands: one RESP request to a node, following `-MOVED` to the leader and
//! retrying `-TRYAGAIN` (an election in progress) for a few seconds.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringraft::kv::resp::{self, Reply, ReplyReader};

use crate::CliError;

/// Bound on connecting to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on one reply (a write waits for a quorum's fsync; a transfer for an election).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// `-MOVED` hops followed before giving up (a leader change mid-request needs one or two).
const REDIRECTS_MAX: usize = 5;
/// How long `-TRYAGAIN` is retried.
const TRYAGAIN_FOR: Duration = Duration::from_secs(10);

fn resolve(addr: &str) -> Result<SocketAddr, CliError> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| CliError::Resolve(addr.to_string()))
}

fn call_once(addr: SocketAddr, args: &[&[u8]]) -> Result<Reply, CliError> {
    let connect = |source| CliError::Connect { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(connect)?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(CliError::Io)?;
    s.set_write_timeout(Some(REPLY_TIMEOUT))
        .map_err(CliError::Io)?;
    let mut req = BytesMut::new();
    resp::put_request(&mut req, args);
    s.write_all(&req).map_err(connect)?;
    let mut reader = ReplyReader::default();
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some((r, _)) = reader.next_reply().map_err(|e| CliError::Protocol {
            addr,
            message: e.to_string(),
        })? {
            return Ok(r);
        }
        let n = s
            .read(&mut chunk)
            .map_err(|source| CliError::Connect { addr, source })?;
        if n == 0 {
            return Err(CliError::Protocol {
                addr,
                message: "connection closed before the reply".into(),
            });
        }
        reader.buffer().extend_from_slice(&chunk[..n]);
    }
}

/// Sends `args` to `addr` (following redirects); an error reply becomes [`CliError::Reply`].
pub fn call(addr: &str, args: &[&[u8]]) -> Result<Reply, CliError> {
    let mut at = resolve(addr)?;
    let mut hops = 0;
    let deadline = Instant::now() + TRYAGAIN_FOR;
    loop {
        match call_once(at, args)? {
            Reply::Error(e) => {
                let text = String::from_utf8_lossy(&e).into_owned();
                if let Some(target) = text.strip_prefix("MOVED ") {
                    let next = target.split(' ').nth(1).and_then(|a| a.parse().ok());
                    match next {
                        Some(n) if hops < REDIRECTS_MAX => {
                            tracing::debug!(from = %at, to = %n, "following MOVED");
                            at = n;
                            hops += 1;
                            continue;
                        }
                        _ => return Err(CliError::Reply(text)),
                    }
                }
                if text.starts_with("TRYAGAIN") && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                return Err(CliError::Reply(text));
            }
            other => return Ok(other),
        }
    }
}

/// Prints a reply for people; the `RAFT.STATUS` text without its carriage returns.
pub fn print(reply: &Reply) {
    let text = match reply {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).replace('\r', ""),
        other => other.display(),
    };
    println!("{}", text.trim_end());
}
