//! Many appenders at once on the simulated disk (fast, so the group-commit hand-offs between
//! appenders, the background writer and async waiters race as hard as they can): every ticket
//! completes, reports a durable index covering its records, and the log holds every record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};
use std::thread;

use ringraft_wal::sim::SimDisk;
use ringraft_wal::{Config, Entry, HardState, Wal};

struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let waker = Arc::new(Unpark(thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

const THREADS: u64 = 8;
const PER_THREAD: u64 = 400;

#[test]
fn concurrent_appenders_blocking_async_and_dropped_tickets() {
    let disk = SimDisk::new();
    let cfg = Config {
        background_writer: true,
        prepare_ahead: true,
        ..common::sim_config()
    };
    let wal = Arc::new(Wal::open_with_backend(disk.backend(), cfg.clone()).unwrap());
    let next = Arc::new(Mutex::new(1u64));
    let hs: Vec<_> = (0..THREADS)
        .map(|t| {
            let (wal, next) = (wal.clone(), next.clone());
            thread::spawn(move || {
                for k in 0..PER_THREAD {
                    let (index, ticket) = {
                        let mut n = next.lock().unwrap();
                        let e = Entry::new(*n, 1, vec![t as u8; (k % 50) as usize]);
                        let ticket = wal.append(vec![e]).unwrap();
                        *n += 1;
                        (*n - 1, ticket)
                    };
                    let durable = match (t + k) % 3 {
                        0 => ticket.wait().unwrap(),
                        1 => block_on(ticket).unwrap(),
                        _ => {
                            // Dropped unwaited: the record is still written.
                            drop(ticket);
                            continue;
                        }
                    };
                    assert!(
                        durable >= index,
                        "ticket for {index} reported durable {durable}"
                    );
                    if k % 97 == 0 {
                        let hs = HardState {
                            term: 1,
                            vote: Some(t),
                            commit: durable,
                        };
                        wal.set_hard_state(hs).unwrap().wait().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let last = THREADS * PER_THREAD;
    assert_eq!(wal.flush().unwrap(), last);
    assert_eq!(wal.entries(1..last + 1).unwrap().len() as u64, last);
    drop(wal);
    let wal = Wal::open_with_backend(disk.backend(), cfg).unwrap();
    assert_eq!(wal.last_index(), last);
}
