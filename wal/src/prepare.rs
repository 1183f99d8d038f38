//! Segments prepared ahead of use, so that a rotation rarely waits for a file to be
//! allocated and zero-filled.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use crate::config::Config;
use crate::error::Result;
use crate::io::IoBackend;
use crate::segment::{self, Segment};
use crate::shared::lock;

/// Segments prepared ahead of use.
pub(crate) struct Preparer {
    next_seq: Mutex<u64>,
    ready: Mutex<PrepReady>,
    cv: Condvar,
}

#[derive(Default)]
struct PrepReady {
    segs: VecDeque<Arc<Segment>>,
    kick: bool,
    closed: bool,
}

impl Preparer {
    pub(crate) fn new(next_seq: u64, ready: Vec<Arc<Segment>>) -> Preparer {
        Preparer {
            next_seq: Mutex::new(next_seq),
            ready: Mutex::new(PrepReady {
                segs: ready.into(),
                kick: false,
                closed: false,
            }),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn kick(&self) {
        lock(&self.ready).kick = true;
        self.cv.notify_one();
    }

    pub(crate) fn close(&self) {
        lock(&self.ready).closed = true;
        self.cv.notify_one();
    }

    /// A prepared segment: a ready one, or one prepared now on this thread.
    pub(crate) fn take(&self, backend: &dyn IoBackend, config: &Config) -> Result<Arc<Segment>> {
        if let Some(s) = lock(&self.ready).segs.pop_front() {
            return Ok(s);
        }
        let mut seq = lock(&self.next_seq);
        // The background preparer may have finished while we waited for the lock.
        if let Some(s) = lock(&self.ready).segs.pop_front() {
            return Ok(s);
        }
        let s = segment::prepare(backend, *seq, config.segment_bytes)?;
        *seq += 1;
        Ok(s)
    }

    /// Background loop: keeps one segment ready.
    pub(crate) fn run(&self, backend: &dyn IoBackend, config: &Config) {
        loop {
            {
                let mut r = lock(&self.ready);
                while !r.kick && !r.closed {
                    r = self.cv.wait(r).expect("preparer lock poisoned");
                }
                if r.closed {
                    return;
                }
                r.kick = false;
                if !r.segs.is_empty() {
                    continue;
                }
            }
            let mut seq = lock(&self.next_seq);
            if !lock(&self.ready).segs.is_empty() {
                continue;
            }
            match segment::prepare(backend, *seq, config.segment_bytes) {
                Ok(s) => {
                    *seq += 1;
                    lock(&self.ready).segs.push_back(s);
                }
                // The committer retries on its own thread at rotation and reports the error
                // to the appenders; here it is only logged.
                Err(e) => tracing::warn!(error = %e, "preparing the next WAL segment failed"),
            }
        }
    }
}
