//! Forwarding: a follower sends the writes it receives to the leader's client port, over
//! pooled RESP connections on which `RAFT.NOFORWARD on` was set. That switch is what keeps a
//! forwarded write from being forwarded again: a forwarded-to node that is no longer the
//! leader answers `-MOVED` (or `-TRYAGAIN`), and the follower passes that reply on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::kv::resp::{self, Reply, ReplyReader, RespError};

/// Idle connections kept per leader address: enough for the usual number of concurrently
/// forwarding client connections without holding sockets forever.
const IDLE_PER_ADDR_MAX: usize = 64;
/// Bound on connecting to the leader (loopback or LAN).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on waiting for the leader's replies: a write waits for a quorum's fsync, and an
/// election may run meanwhile; past this the outcome is unknown.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a forward failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    /// The leader could not be reached: nothing was sent.
    #[error("leader at {addr} unreachable: {source}")]
    Connect {
        /// The leader's client address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed after the requests were sent.
    #[error("forwarding to the leader at {addr} failed: {source}")]
    Broken {
        /// The leader's client address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The leader's replies did not parse.
    #[error("the leader at {addr} sent an invalid reply: {source}")]
    Protocol {
        /// The leader's client address.
        addr: SocketAddr,
        /// Why.
        source: RespError,
    },
}

/// A connection to another node's client port.
struct Link {
    stream: TcpStream,
    reader: ReplyReader,
}

impl Link {
    async fn read_reply(&mut self) -> Result<Reply, std::io::Error> {
        loop {
            match self.reader.next_reply() {
                Ok(Some((r, _))) => return Ok(r),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            if self.stream.read_buf(self.reader.buffer()).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn connect(addr: SocketAddr) -> std::io::Result<Link> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        let mut link = Link {
            stream,
            reader: ReplyReader::default(),
        };
        let mut hello = BytesMut::new();
        resp::put_request(&mut hello, &[&b"RAFT.NOFORWARD"[..], b"on"]);
        link.stream.write_all(&hello).await?;
        match tokio::time::timeout(CONNECT_TIMEOUT, link.read_reply()).await {
            Ok(Ok(Reply::Simple(_))) => Ok(link),
            Ok(Ok(other)) => Err(std::io::Error::other(format!(
                "RAFT.NOFORWARD refused: {}",
                other.display()
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// A pool of connections to leaders' client ports.
#[derive(Default)]
pub(crate) struct Forwarder {
    idle: Mutex<HashMap<SocketAddr, Vec<Link>>>,
}

impl Forwarder {
    fn take(&self, addr: SocketAddr) -> Option<Link> {
        ringraft_wal::util::sync::lock(&self.idle)
            .get_mut(&addr)
            .and_then(Vec::pop)
    }

    fn give_back(&self, addr: SocketAddr, link: Link) {
        let mut idle = ringraft_wal::util::sync::lock(&self.idle);
        let links = idle.entry(addr).or_default();
        if links.len() < IDLE_PER_ADDR_MAX {
            links.push(link);
        }
    }

    /// Sends `requests` (argument lists) to `addr` as one pipeline and returns its replies,
    /// one per request, in order.
    pub(crate) async fn forward(
        &self,
        addr: SocketAddr,
        requests: &[&[Bytes]],
    ) -> Result<Vec<Reply>, ForwardError> {
        let mut link = match self.take(addr) {
            Some(l) => l,
            None => Link::connect(addr)
                .await
                .map_err(|source| ForwardError::Connect { addr, source })?,
        };
        let mut buf = BytesMut::new();
        for r in requests {
            resp::put_request(&mut buf, r);
        }
        let broken = |source| ForwardError::Broken { addr, source };
        link.stream.write_all(&buf).await.map_err(broken)?;
        let mut replies = Vec::with_capacity(requests.len());
        let read_all = async {
            while replies.len() < requests.len() {
                replies.push(link.read_reply().await?);
            }
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(REPLY_TIMEOUT, read_all).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(ForwardError::Protocol {
                    addr,
                    source: RespError::Reply,
                })
            }
            Ok(Err(e)) => return Err(broken(e)),
            Err(_) => return Err(broken(std::io::ErrorKind::TimedOut.into())),
        }
        self.give_back(addr, link);
        Ok(replies)
    }
}
