//! A tiny RESP key-value server for the harness's own tests: one lock around a map, so its
//! histories are linearizable by construction; it can be told to lose a write, which the
//! checks must catch.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use ringraft::kv::resp::{put_bulk, put_error, put_nil, put_ok, RequestParser, Requests};

/// The server's switches.
#[derive(Default)]
pub struct Faults {
    /// Acknowledge writes without applying them.
    pub lose_writes: AtomicBool,
}

/// Starts the server on a free port; it runs until the test process ends.
pub fn start(faults: Arc<Faults>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let map: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (map, faults) = (map.clone(), faults.clone());
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut parser = RequestParser::default();
                let mut buf = BytesMut::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = conn.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let mut reqs = Requests::default();
                    if parser.parse(&mut buf, &mut reqs, usize::MAX).is_err() {
                        break;
                    }
                    let mut out = BytesMut::new();
                    for i in 0..reqs.len() {
                        let args = reqs.get(i);
                        let mut m = map.lock().expect("map lock");
                        match (&args[0][..], args.len()) {
                            (b"SET", 3) => {
                                if !faults.lose_writes.load(Ordering::SeqCst) {
                                    m.insert(args[1].to_vec(), args[2].to_vec());
                                }
                                put_ok(&mut out);
                            }
                            (b"GET", 2) => match m.get(&args[1][..]) {
                                Some(v) => put_bulk(&mut out, v),
                                None => put_nil(&mut out),
                            },
                            (b"INFO", _) => put_bulk(&mut out, b"# Raft\r\nrole:leader\r\n"),
                            _ => put_error(&mut out, "ERR unknown command"),
                        }
                    }
                    if conn.write_all(&out).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}
