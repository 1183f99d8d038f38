//! A small blocking RESP2 client for the fault tests: one request at a time, with a timeout,
//! over `ringraft::kv::resp` (the server's own request writer and reply parser).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringraft::kv::resp::{put_request, Reply, ReplyReader, RespError};

/// Why a call did not return a reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed (refused, reset, closed).
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// No reply within the timeout: the request may or may not take effect.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The reply is not valid RESP.
    #[error("malformed reply: {0}")]
    Protocol(#[from] RespError),
}

impl ClientError {
    /// True if the request certainly never reached the server (the connection was refused),
    /// so a write had no effect.
    pub fn never_sent(&self) -> bool {
        matches!(self, ClientError::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused)
    }
}

/// A connection to one server.
pub struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    reader: ReplyReader,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

impl Client {
    /// A client of `addr` whose calls wait at most `timeout` for a reply; it connects lazily
    /// and reconnects after an error.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            stream: None,
            reader: ReplyReader::default(),
            timeout,
        }
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn connect(&mut self) -> Result<&mut TcpStream, ClientError> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
            s.set_nodelay(true)?;
            self.reader = ReplyReader::default();
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("connected above"))
    }

    /// Sends one request and waits for its reply. After an error the connection is dropped
    /// (a late reply must never answer the next request).
    ///
    /// # Errors
    /// [`ClientError`]; an error reply (`-ERR ...`) is a reply, not an error.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, ClientError> {
        let r = self.call_inner(args);
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn call_inner<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, ClientError> {
        let timeout = self.timeout;
        let mut req = BytesMut::new();
        put_request(&mut req, args);
        let stream = self.connect()?;
        stream.write_all(&req)?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 16 << 10];
        loop {
            if let Some((reply, _)) = self.reader.next_reply()? {
                return Ok(reply);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(timeout));
            }
            let stream = self.stream.as_mut().expect("connected");
            stream.set_read_timeout(Some(left))?;
            match stream.read(&mut buf) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => self.reader.buffer().extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::Timeout(timeout))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `SET key value`: `Ok(true)` when acknowledged (`+OK`), `Ok(false)` for an error reply.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<Result<(), String>, ClientError> {
        match self.call(&["SET", key, value])? {
            Reply::Simple(s) if &s[..] == b"OK" => Ok(Ok(())),
            other => Ok(Err(other.display())),
        }
    }

    /// `GET key`: the value, `None` for nil, or the error reply's text.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn get(&mut self, key: &str) -> Result<Result<Option<Vec<u8>>, String>, ClientError> {
        match self.call(&["GET", key])? {
            Reply::Bulk(v) => Ok(Ok(v.map(|b| b.to_vec()))),
            other => Ok(Err(other.display())),
        }
    }

    /// `INFO [section]` as `field -> value` pairs.
    ///
    /// # Errors
    /// As [`Client::call`]; an error reply gives an empty map.
    pub fn info(&mut self, section: &str) -> Result<Vec<(String, String)>, ClientError> {
        let reply = self.call(&["INFO", section])?;
        let text = match reply {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect())
    }
}
