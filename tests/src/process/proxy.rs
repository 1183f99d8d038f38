//! A fault-injecting TCP proxy for one direction of the peer traffic between two nodes.
//!
//! The transport sends a node's messages to a peer on the connection that node dials (the
//! acceptor only answers keepalives), so the link `a -> b` is exactly the connections `a`
//! dials to `b`. Giving node `a` the proxy's address for peer `b` puts the proxy on that link.
//! Cutting both `a -> b` and `b -> a` partitions the pair; cutting one is a one-way partition.
//!
//! A cut link closes its open connections and black-holes new ones (accepted and held open,
//! everything read discarded), as a partition looks to the dialer: connects that succeed and
//! messages that are never answered. Healing closes the black-holed connections, so the
//! dialer reconnects through a clean stream. Counters prove that traffic flowed and that a
//! partition dropped some.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a forwarding thread blocks in one read before it looks at the link state again.
const POLL: Duration = Duration::from_millis(50);

/// Byte counts of a proxy, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Bytes passed on, both directions.
    pub forwarded: u64,
    /// Bytes read while the link was cut and thrown away.
    pub dropped: u64,
    /// Connections accepted.
    pub accepted: u64,
}

#[derive(Default)]
struct State {
    /// The link is cut.
    down: AtomicBool,
    /// Bumped on every change of `down`: connections of an older epoch close.
    epoch: AtomicU64,
    closed: AtomicBool,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    accepted: AtomicU64,
}

/// A proxy listening on 127.0.0.1 that forwards to `target`.
pub struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("down", &self.is_down())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Proxy {
    /// Starts a proxy on a free loopback port, forwarding to `target`.
    ///
    /// # Errors
    /// If the listener cannot be bound.
    pub fn start(target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let target = Arc::new(Mutex::new(target));
        let (s, t) = (state.clone(), target.clone());
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &s, &t))?;
        Ok(Proxy {
            addr,
            target,
            state,
            acceptor: Some(acceptor),
        })
    }

    /// Where the dialer connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Points the proxy at a new target (a restarted node on another port); open
    /// connections close.
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().expect("proxy target lock") = target;
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Cuts the link: open connections close, new ones are black-holed.
    pub fn cut(&self) {
        self.set_down(true);
    }

    /// Heals the link: black-holed connections close; new ones are forwarded.
    pub fn heal(&self) {
        self.set_down(false);
    }

    fn set_down(&self, down: bool) {
        if self.state.down.swap(down, Ordering::SeqCst) != down {
            self.state.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether the link is cut.
    pub fn is_down(&self) -> bool {
        self.state.down.load(Ordering::SeqCst)
    }

    /// Counters since the start.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            forwarded: self.state.forwarded.load(Ordering::Relaxed),
            dropped: self.state.dropped.load(Ordering::Relaxed),
            accepted: self.state.accepted.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>, target: &Arc<Mutex<SocketAddr>>) {
    while !state.closed.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((inbound, _)) => {
                state.accepted.fetch_add(1, Ordering::Relaxed);
                let to = *target.lock().expect("proxy target lock");
                let s = state.clone();
                // A connection thread ends by itself within POLL of its epoch ending.
                let _ = std::thread::Builder::new()
                    .name("proxy-conn".into())
                    .spawn(move || serve_connection(inbound, to, &s));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL / 5),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// One accepted connection: forwarded both ways while its epoch lasts if the link was up when
/// it came, else read and discarded until its epoch ends.
fn serve_connection(inbound: TcpStream, to: SocketAddr, state: &Arc<State>) {
    let epoch = state.epoch.load(Ordering::SeqCst);
    let _ = inbound.set_nodelay(true);
    if state.down.load(Ordering::SeqCst) {
        blackhole(inbound, epoch, state);
        return;
    }
    let Ok(outbound) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    let (Ok(in2), Ok(out2)) = (inbound.try_clone(), outbound.try_clone()) else {
        return;
    };
    let s = state.clone();
    let back = std::thread::spawn(move || pump(out2, in2, epoch, &s));
    pump(inbound, outbound, epoch, state);
    let _ = back.join();
}

fn live(state: &State, epoch: u64) -> bool {
    state.epoch.load(Ordering::SeqCst) == epoch && !state.closed.load(Ordering::SeqCst)
}

/// Copies `from` to `to` until either side closes or the epoch ends; then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, epoch: u64, state: &State) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 << 10];
    while live(state, epoch) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Counted before the write, so that whoever receives the bytes sees them
                // counted.
                state.forwarded.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn blackhole(mut conn: TcpStream, epoch: u64, state: &State) {
    let _ = conn.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 << 10];
    while live(state, epoch) {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                state.dropped.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on loopback; returns its address.
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut c = c;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(addr: SocketAddr, msg: &[u8]) -> io::Result<Vec<u8>> {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_millis(300)))?;
        c.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got)?;
        Ok(got)
    }

    /// Retries `f` until it returns true, for at most 10 s (a safety net, not a timing
    /// assertion: each attempt is a real round trip).
    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn forwards_cuts_and_heals() {
        let proxy = Proxy::start(echo_server()).expect("proxy");
        assert_eq!(round_trip(proxy.addr(), b"hello").expect("echo"), b"hello");
        let before = proxy.stats();
        assert!(before.forwarded >= 10, "{before:?}");

        // An open connection closes when the link is cut; a new one is black-holed.
        let mut open = TcpStream::connect(proxy.addr()).expect("connect");
        open.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        open.write_all(b"x").expect("write");
        let mut one = [0u8; 1];
        open.read_exact(&mut one).expect("echoed while up");
        proxy.cut();
        let mut rest = Vec::new();
        let closed = open.read_to_end(&mut rest);
        let timed_out = closed.as_ref().is_err_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )
        });
        assert!(!timed_out, "the cut closes open connections: {closed:?}");
        assert!(rest.is_empty());
        assert!(
            round_trip(proxy.addr(), b"lost").is_err(),
            "nothing comes back"
        );
        assert!(
            eventually(|| proxy.stats().dropped >= 4),
            "{:?}",
            proxy.stats()
        );
        assert_eq!(proxy.stats().forwarded, before.forwarded + 2);

        proxy.heal();
        assert!(eventually(
            || round_trip(proxy.addr(), b"again").is_ok_and(|g| g == b"again")
        ));
    }

    #[test]
    fn retarget_moves_new_connections() {
        let proxy = Proxy::start(echo_server()).expect("proxy");
        let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead_addr = dead.local_addr().expect("addr");
        drop(dead);
        proxy.retarget(dead_addr);
        assert!(round_trip(proxy.addr(), b"a").is_err());
        proxy.retarget(echo_server());
        assert!(eventually(|| round_trip(proxy.addr(), b"b").is_ok()));
    }
}
