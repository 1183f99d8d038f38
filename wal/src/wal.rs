//! The log handle.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::commit::Writer;
use crate::completion::Completion;
use crate::config::{BackendKind, Config};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{u32_at, u64_at, FRAME_HEADER_LEN};
use crate::io::{DirBackend, IoBackend};
use crate::prepare::Preparer;
use crate::publish::ReadState;
use crate::queue::{Op, Queue, Request};
use crate::recovery;
use crate::segment::Segment;
use crate::shared::{lock, Shared};
use crate::ticket::Ticket;
use crate::types::{Entry, HardState, SnapshotMeta};

/// Bytes a queued entry counts for backpressure besides its payload.
const ENTRY_OVERHEAD_BYTES: usize = FRAME_HEADER_LEN;

static URING_WARNED: AtomicBool = AtomicBool::new(false);

/// A segmented, checksummed write-ahead log. See the crate docs for its guarantees.
///
/// `Wal` is `Send + Sync`; share it with an `Arc`.
pub struct Wal {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("backend", &self.shared.backend.name())
            .field("first_index", &self.first_index())
            .field("last_index", &self.last_index())
            .finish()
    }
}

impl Wal {
    /// Opens (or creates) the log in directory `dir` with the backend `config.backend`.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Wal> {
        let dir = dir.as_ref();
        let backend: Arc<dyn IoBackend> = match config.backend {
            BackendKind::Thread => {
                Arc::new(DirBackend::thread(dir).map_err(|e| Error::io("open directory", e))?)
            }
            BackendKind::IoUring => {
                Arc::new(DirBackend::io_uring(dir).map_err(|e| Error::io("create io_uring", e))?)
            }
            BackendKind::Auto => match DirBackend::io_uring(dir) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    if !URING_WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "io_uring unavailable; the WAL uses pwrite + fdatasync");
                    }
                    Arc::new(DirBackend::thread(dir).map_err(|e| Error::io("open directory", e))?)
                }
            },
        };
        Wal::open_with_backend(backend, config)
    }

    /// Opens (or creates) the log on an explicit I/O backend (a real directory or
    /// [`crate::sim::SimDisk`]).
    pub fn open_with_backend(backend: Arc<dyn IoBackend>, config: Config) -> Result<Wal> {
        config.validate()?;
        let mut rec = recovery::recover(&*backend, &config)?;
        let missing_prefix = rec.missing_prefix.take();
        let queue = Queue {
            reqs: Vec::new(),
            bytes: 0,
            next_index: rec.stream.next_index,
            last_term: rec.stream.last_term,
            fatal: None,
            bg_idle: false,
            closed: false,
        };
        let read = ReadState {
            index: rec.index,
            stream: rec.stream.clone(),
            segments: rec.segments,
        };
        let writer = Writer::new(rec.active, rec.write_off, rec.needs_checkpoint, rec.stream);
        let shared = Arc::new(Shared {
            backend,
            config,
            queue: Mutex::new(queue),
            queue_cv: Condvar::new(),
            space_cv: Condvar::new(),
            writer: Mutex::new(writer),
            read: RwLock::new(read),
            prep: Preparer::new(rec.next_seq, rec.spares),
        });
        if let Some((first, prev_term)) = missing_prefix {
            // Before anything else is written: a later checkpoint records the moved first
            // index, which must agree with the frames before it on the next open.
            let done = Arc::new(Completion::default());
            shared.commit_batch(
                &mut lock(&shared.writer),
                vec![Request {
                    op: Op::Compact { first, prev_term },
                    done: done.clone(),
                }],
            );
            Ticket::new(done, shared.clone()).wait()?;
        }
        let mut threads = Vec::new();
        if shared.config.background_writer {
            let s = shared.clone();
            threads.push(spawn("wal-writer", move || writer_loop(&s))?);
        }
        if shared.config.prepare_ahead {
            let s = shared.clone();
            threads.push(spawn("wal-prepare", move || {
                s.prep.run(&*s.backend, &s.config)
            })?);
            shared.prep.kick();
        }
        Ok(Wal { shared, threads })
    }

    /// Name of the I/O backend in use (`io_uring`, `thread`, `sim`).
    pub fn backend_name(&self) -> &'static str {
        self.shared.backend.name()
    }

    /// Appends a batch of consecutive entries. Validation happens now: on error nothing is
    /// written. The returned ticket completes once the batch is durable. Blocks while more
    /// than [`Config::queue_bytes_max`] bytes are queued.
    pub fn append(&self, entries: Vec<Entry>) -> Result<Ticket> {
        let max = self.shared.config.record_bytes_max;
        let mut bytes = 0;
        for e in &entries {
            if e.payload.len() > max as usize {
                return Err(Error::RecordTooLarge {
                    index: e.index,
                    len: e.payload.len(),
                    max,
                });
            }
            bytes += e.payload.len() + ENTRY_OVERHEAD_BYTES;
        }
        if entries.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let mut q = self.wait_for_space(bytes)?;
        let (mut next, mut last_term) = (q.next_index, q.last_term);
        for e in &entries {
            if e.index != next {
                return Err(Error::NonConsecutive {
                    expected: next,
                    got: e.index,
                });
            }
            if e.index == u64::MAX {
                return Err(Error::IndexExhausted);
            }
            if e.term < last_term {
                return Err(Error::TermRegression {
                    index: e.index,
                    term: e.term,
                    prev_term: last_term,
                });
            }
            next += 1;
            last_term = e.term;
        }
        q.next_index = next;
        q.last_term = last_term;
        Ok(self.enqueue(q, Op::Append(entries), bytes))
    }

    /// Stores the hard state; it rides in the same write and fdatasync as entries queued with
    /// it. Durable (and visible to [`Wal::hard_state`]) when the ticket completes.
    pub fn set_hard_state(&self, hs: HardState) -> Result<Ticket> {
        let q = self.wait_for_space(64)?;
        Ok(self.enqueue(q, Op::HardState(hs), 64))
    }

    /// Stores snapshot metadata (ordered with appends, like [`Wal::set_hard_state`]).
    pub fn set_snapshot_meta(&self, meta: SnapshotMeta) -> Result<Ticket> {
        let max = self.shared.config.membership_bytes_max;
        if meta.membership.len() > max as usize {
            return Err(Error::MembershipTooLarge {
                len: meta.membership.len(),
                max,
            });
        }
        let bytes = meta.membership.len() + ENTRY_OVERHEAD_BYTES;
        let q = self.wait_for_space(bytes)?;
        Ok(self.enqueue(q, Op::Snapshot(meta), bytes))
    }

    fn wait_for_space(&self, bytes: usize) -> Result<std::sync::MutexGuard<'_, Queue>> {
        let s = &self.shared;
        let mut q = lock(&s.queue);
        loop {
            if let Some(e) = &q.fatal {
                return Err(e.clone());
            }
            if q.closed {
                return Err(Error::Closed);
            }
            if q.bytes == 0 || q.bytes + bytes <= s.config.queue_bytes_max {
                return Ok(q);
            }
            if s.config.background_writer {
                s.wake_writer_locked(&mut q);
                q = s.space_cv.wait(q).expect("queue lock poisoned");
            } else {
                drop(q);
                s.try_commit(true);
                q = lock(&s.queue);
            }
        }
    }

    fn enqueue(&self, mut q: std::sync::MutexGuard<'_, Queue>, op: Op, bytes: usize) -> Ticket {
        let done = Arc::new(Completion::default());
        q.reqs.push(Request {
            op,
            done: done.clone(),
        });
        q.bytes += bytes;
        drop(q);
        // The background writer is not woken here: a lone appender that waits commits on its
        // own thread, and waking a thread it does not need costs more than the rest of the
        // append. The ticket wakes the writer when it is polled, dropped unfinished, or waited
        // on while another thread commits.
        Ticket::new(done, self.shared.clone())
    }

    /// Waits until everything queued so far is durable; returns the durable last index.
    pub fn flush(&self) -> Result<u64> {
        let mut w = lock(&self.shared.writer);
        self.shared.commit_pending(&mut w);
        if let Some(e) = &w.poisoned {
            return Err(e.clone());
        }
        Ok(self.last_index())
    }

    /// Drops entries `from..` (a follower's conflicting suffix); the next append must carry
    /// index `from`. Waits for queued requests, then writes a durable truncation marker: a
    /// crash leaves either the old or the new log, and truncated entries never come back.
    pub fn truncate_suffix(&self, from: u64) -> Result<()> {
        self.quiesced(|s, r, q| {
            let (first, next) = (r.stream.first_index, r.stream.next_index);
            if from < first || from > next {
                return Err(Error::TruncateOutOfRange {
                    from,
                    first,
                    last: next - 1,
                });
            }
            if from == next {
                return Ok(None);
            }
            let last_term = if from > first {
                s.term_in(r, from - 1)?
            } else {
                r.stream.prev_term
            };
            q.next_index = from;
            q.last_term = last_term;
            Ok(Some(Op::Truncate { from, last_term }))
        })
    }

    /// Drops entries `..=up_to` (after a snapshot). A durable marker moves the first index to
    /// `up_to + 1`, then whole segments holding only dropped entries are deleted. Compacting
    /// past the last entry empties the log; the next append must then carry `up_to + 1`.
    pub fn compact_prefix(&self, up_to: u64) -> Result<()> {
        let first_new = up_to
            .checked_add(1)
            .ok_or(Error::CompactOutOfRange { up_to, first: 0 })?;
        self.quiesced(|s, r, q| {
            let (first, next) = (r.stream.first_index, r.stream.next_index);
            if first_new < first {
                return Err(Error::CompactOutOfRange { up_to, first });
            }
            if first_new == first {
                return Ok(None);
            }
            let prev_term = if up_to < next {
                s.term_in(r, up_to)?
            } else if r.stream.snapshot.as_ref().is_some_and(|m| m.index == up_to) {
                r.stream.snapshot.as_ref().map_or(0, |m| m.term)
            } else if up_to + 1 == next {
                r.stream.last_term
            } else {
                0
            };
            if first_new > next {
                q.next_index = first_new;
                q.last_term = prev_term;
            }
            Ok(Some(Op::Compact {
                first: first_new,
                prev_term,
            }))
        })?;
        self.delete_compacted()
    }

    /// Like [`Wal::compact_prefix`] without waiting: queues the durable marker that moves the
    /// first index to `up_to + 1`, ordered with appends like [`Wal::set_snapshot_meta`], and
    /// returns its ticket (`None`: nothing to compact). Segments are not deleted: call
    /// [`Wal::delete_compacted`] once the ticket completes. `up_to` must be durable already
    /// (at most [`Wal::last_index`]), so that its term is known without draining the queue;
    /// a node's loop can therefore compact under load without stopping its appends.
    pub fn compact_prefix_queued(&self, up_to: u64) -> Result<Option<Ticket>> {
        // Computed before taking the queue lock (no lock nesting): only the appending thread
        // queues, and committing only moves the durable state forward.
        let op = {
            let s = &*self.shared;
            let r = s.read.read().expect("read state lock poisoned");
            let (first, next) = (r.stream.first_index, r.stream.next_index);
            if up_to < first {
                // Already compacted (a snapshot was installed meanwhile).
                return Ok(None);
            }
            if up_to >= next {
                return Err(Error::CompactNotDurable {
                    up_to,
                    last: next - 1,
                });
            }
            Op::Compact {
                first: up_to + 1,
                prev_term: s.term_in(&r, up_to)?,
            }
        };
        let q = self.wait_for_space(64)?;
        Ok(Some(self.enqueue(q, op, 64)))
    }

    /// Runs `f` with the queue drained and durable (accepted == durable), and commits the op
    /// it returns before anything queued later.
    fn quiesced(
        &self,
        f: impl FnOnce(&Shared, &ReadState, &mut Queue) -> Result<Option<Op>>,
    ) -> Result<()> {
        let s = &*self.shared;
        let mut w = lock(&s.writer);
        let (op, done) = loop {
            s.commit_pending(&mut w);
            let mut q = lock(&s.queue);
            if let Some(e) = &q.fatal {
                return Err(e.clone());
            }
            if !q.reqs.is_empty() {
                continue;
            }
            let r = s.read.read().expect("read state lock poisoned");
            match f(s, &r, &mut q)? {
                None => return Ok(()),
                Some(op) => break (op, Arc::new(Completion::default())),
            }
        };
        s.commit_batch(
            &mut w,
            vec![Request {
                op,
                done: done.clone(),
            }],
        );
        drop(w);
        Ticket::new(done, self.shared.clone()).wait().map(|_| ())
    }

    /// Deletes segments that hold no live entry and precede the active segment, oldest first,
    /// syncing the directory after each so a crash leaves a contiguous suffix. The writer is
    /// only held while choosing them: commits go on while the files are removed. Callers
    /// must not run two of these at once (the node runs one compaction at a time).
    pub fn delete_compacted(&self) -> Result<()> {
        let s = &*self.shared;
        let victims: Vec<Arc<Segment>> = {
            let w = lock(&s.writer);
            let mut r = s.read.write().expect("read state lock poisoned");
            let keep_from = r
                .index
                .oldest_seq()
                .unwrap_or(w.active.seq)
                .min(w.active.seq);
            let v: Vec<_> = r
                .segments
                .range(..keep_from)
                .map(|(_, seg)| seg.clone())
                .collect();
            for seg in &v {
                r.segments.remove(&seg.seq);
            }
            v
        };
        for seg in victims {
            s.backend
                .remove(&seg.name)
                .map_err(|e| Error::io("remove segment", e))?;
            s.backend
                .sync_dir()
                .map_err(|e| Error::io("sync directory", e))?;
        }
        Ok(())
    }

    /// The entry at `index` (durable entries only), payload zero-copy from the map.
    pub fn entry(&self, index: u64) -> Result<Entry> {
        let (seg, off) = {
            let r = self.shared.read.read().expect("read state lock poisoned");
            self.shared.locate(&r, index)?
        };
        read_entry(&seg, off, index)
    }

    /// Entries `range` (durable entries only), each payload zero-copy from the map.
    pub fn entries(&self, range: Range<u64>) -> Result<Vec<Entry>> {
        let locs = {
            let r = self.shared.read.read().expect("read state lock poisoned");
            let mut v = Vec::with_capacity(range.end.saturating_sub(range.start) as usize);
            for i in range.clone() {
                v.push(self.shared.locate(&r, i)?);
            }
            v
        };
        locs.into_iter()
            .zip(range)
            .map(|((seg, off), i)| read_entry(&seg, off, i))
            .collect()
    }

    /// Term of entry `index`; also answers for `first_index() - 1` (the last compacted one).
    pub fn term(&self, index: u64) -> Result<u64> {
        let r = self.shared.read.read().expect("read state lock poisoned");
        if index + 1 == r.stream.first_index {
            return Ok(r.stream.prev_term);
        }
        self.shared.term_in(&r, index)
    }

    /// First index in the log.
    pub fn first_index(&self) -> u64 {
        self.shared
            .read
            .read()
            .expect("read state lock poisoned")
            .stream
            .first_index
    }

    /// Last durable index (`first_index() - 1` when empty).
    pub fn last_index(&self) -> u64 {
        self.shared
            .read
            .read()
            .expect("read state lock poisoned")
            .stream
            .next_index
            - 1
    }

    /// The durable hard state, if one was ever stored.
    pub fn hard_state(&self) -> Option<HardState> {
        self.shared
            .read
            .read()
            .expect("read state lock poisoned")
            .stream
            .hard_state
    }

    /// The durable snapshot metadata, if any was stored.
    pub fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.shared
            .read
            .read()
            .expect("read state lock poisoned")
            .stream
            .snapshot
            .clone()
    }

    /// The fatal error that stopped the log, if any.
    pub fn fatal_error(&self) -> Option<Error> {
        lock(&self.shared.queue).fatal.clone()
    }
}

impl Shared {
    fn locate(&self, r: &ReadState, index: u64) -> Result<(Arc<Segment>, u32)> {
        if index < r.stream.first_index {
            return Err(Error::Compacted {
                index,
                first: r.stream.first_index,
            });
        }
        let (seq, off) = r.index.locate(index).ok_or(Error::Unavailable {
            index,
            last: r.stream.next_index - 1,
        })?;
        let seg = r
            .segments
            .get(&seq)
            .expect("every indexed segment is open")
            .clone();
        Ok((seg, off))
    }

    fn term_in(&self, r: &ReadState, index: u64) -> Result<u64> {
        let (seg, off) = self.locate(r, index)?;
        let (_, term, _) = read_header(&seg, off, index)?;
        Ok(term)
    }
}

fn read_header(seg: &Segment, off: u32, index: u64) -> Result<(usize, u64, u64)> {
    let bad = || Error::Corruption {
        kind: CorruptionKind::BadFrame,
        segment: seg.seq,
        offset: off as u64,
        index: Some(index),
    };
    let h = seg
        .io
        .read(off as usize, FRAME_HEADER_LEN)
        .map_err(|_| bad())?;
    if u64_at(&h, 8) != index {
        return Err(bad());
    }
    Ok((u32_at(&h, 0) as usize, u64_at(&h, 16), u64_at(&h, 8)))
}

fn read_entry(seg: &Segment, off: u32, index: u64) -> Result<Entry> {
    let (len, term, _) = read_header(seg, off, index)?;
    let payload: Bytes = seg
        .io
        .read(off as usize + FRAME_HEADER_LEN, len)
        .map_err(|e| Error::io("read entry", e))?;
    Ok(Entry {
        index,
        term,
        payload,
    })
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::io("spawn thread", e))
}

/// The background log writer: commits whatever is queued, sleeps when nothing is.
fn writer_loop(s: &Shared) {
    loop {
        {
            let mut q = lock(&s.queue);
            while q.reqs.is_empty() {
                if q.closed {
                    return;
                }
                q.bg_idle = true;
                q = s.queue_cv.wait(q).expect("queue lock poisoned");
            }
            q.bg_idle = false;
        }
        s.try_commit(true);
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.queue_cv.notify_all();
        self.shared.prep.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Without a background writer, commit what is still queued (tickets may be waited on
        // after the handle is gone; they would commit it themselves, this just makes it prompt).
        self.shared.try_commit(true);
    }
}
