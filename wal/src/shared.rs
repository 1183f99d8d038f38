//! State shared by the log handle, its tickets and its background threads, and the group
//! commit that turns queued requests into one write and one fdatasync per segment touched.

use std::collections::{BTreeMap, VecDeque};
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::format::{
    checkpoint_len, encode_checkpoint, encode_frame, encode_hard_state, frame_len, FrameCtx, Kind,
    StreamState, HEADER_LEN, SEAL_LEN,
};
use crate::index::PosIndex;
use crate::io::IoBackend;
use crate::segment::{self, Segment};
use crate::ticket::Completion;
use crate::types::{Entry, HardState, SnapshotMeta};

/// One queued request.
pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) done: Arc<Completion>,
}

/// What a request writes.
pub(crate) enum Op {
    Append(Vec<Entry>),
    HardState(HardState),
    Snapshot(SnapshotMeta),
    Truncate { from: u64, last_term: u64 },
    Compact { first: u64, prev_term: u64 },
}

/// Accepted but not yet committed requests, and the log end they imply.
pub(crate) struct Queue {
    pub(crate) reqs: Vec<Request>,
    /// Invariant: the sum of `reqs[..].bytes`.
    pub(crate) bytes: usize,
    /// Index the next appended entry must carry, counting queued appends.
    pub(crate) next_index: u64,
    /// Term of entry `next_index - 1`, counting queued appends.
    pub(crate) last_term: u64,
    pub(crate) fatal: Option<Error>,
    pub(crate) bg_idle: bool,
    pub(crate) closed: bool,
}

/// What readers see: durable state only.
pub(crate) struct ReadState {
    pub(crate) index: PosIndex,
    pub(crate) stream: StreamState,
    pub(crate) segments: BTreeMap<u64, Arc<Segment>>,
}

/// The committer's state; owned by whoever holds the writer lock.
pub(crate) struct Writer {
    pub(crate) active: Arc<Segment>,
    /// Offset of the next frame in `active`. Invariant: 8-byte aligned, and everything
    /// before it is written.
    pub(crate) write_off: u64,
    pub(crate) needs_checkpoint: bool,
    /// Stream state after the last encoded frame.
    pub(crate) stream: StreamState,
    pub(crate) spares: VecDeque<Arc<Segment>>,
    pub(crate) poisoned: Option<Error>,
    buf: Vec<u8>,
    effects: Vec<Effect>,
}

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

/// A change readers see once the commit that carries it is durable.
enum Effect {
    Segment(Arc<Segment>),
    Entry { seq: u64, index: u64, off: u32 },
    Truncate { from: u64, last_term: u64 },
    Compact { first: u64, prev_term: u64 },
    HardState(HardState),
    Snapshot(SnapshotMeta),
}

/// A run of bytes to write into one segment.
struct Chunk {
    /// Seed and synced watermark of the frames encoded into this chunk.
    ctx: FrameCtx,
    seg: Arc<Segment>,
    off: u64,
    buf: Vec<u8>,
}

impl Chunk {
    fn pos(&self) -> u64 {
        self.off + self.buf.len() as u64
    }
}

/// Everything behind a [`crate::Wal`].
pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn IoBackend>,
    pub(crate) config: Config,
    pub(crate) queue: Mutex<Queue>,
    pub(crate) queue_cv: Condvar,
    pub(crate) space_cv: Condvar,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) read: RwLock<ReadState>,
    pub(crate) prep: Preparer,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
        .expect("a WAL thread panicked while holding a lock")
}

impl Writer {
    pub(crate) fn new(
        active: Arc<Segment>,
        write_off: u64,
        needs_checkpoint: bool,
        stream: StreamState,
    ) -> Writer {
        Writer {
            active,
            write_off,
            needs_checkpoint,
            stream,
            spares: VecDeque::new(),
            poisoned: None,
            buf: Vec::new(),
            effects: Vec::new(),
        }
    }
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
    fn take(&self, backend: &dyn IoBackend, config: &Config) -> Result<Arc<Segment>> {
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

impl ReadState {
    fn apply(&mut self, e: Effect) {
        let s = &mut self.stream;
        match e {
            Effect::Segment(seg) => {
                self.segments.insert(seg.seq, seg);
            }
            Effect::Entry { seq, index, off } => {
                self.index.push(seq, index, off);
                s.next_index = index + 1;
            }
            Effect::Truncate { from, last_term } => {
                self.index.truncate(from);
                s.next_index = from;
                s.last_term = last_term;
            }
            Effect::Compact { first, prev_term } => {
                self.index.compact(first);
                s.first_index = first;
                s.prev_term = prev_term;
                if first > s.next_index {
                    s.last_term = prev_term;
                }
                s.next_index = self.index.next_index();
            }
            Effect::HardState(h) => s.hard_state = Some(h),
            Effect::Snapshot(m) => s.snapshot = Some(m),
        }
    }
}

impl Shared {
    pub(crate) fn has_background_writer(&self) -> bool {
        self.config.background_writer
    }

    /// Wakes the background writer if it sleeps and work is queued.
    pub(crate) fn wake_writer(&self) {
        if self.config.background_writer {
            self.wake_writer_locked(&mut lock(&self.queue));
        }
    }

    pub(crate) fn wake_writer_locked(&self, q: &mut Queue) {
        if q.bg_idle && !q.reqs.is_empty() {
            q.bg_idle = false;
            self.queue_cv.notify_one();
        }
    }

    /// Commits queued requests if this thread can become the committer; with `block`, waits
    /// for the writer lock. Returns whether it committed.
    pub(crate) fn try_commit(&self, block: bool) -> bool {
        let w = if block {
            Some(lock(&self.writer))
        } else {
            self.writer.try_lock().ok()
        };
        match w {
            Some(mut w) => {
                self.commit_pending(&mut w);
                true
            }
            None => false,
        }
    }

    /// Commits until the queue is empty: whatever queued while one sync ran goes into the
    /// next write and sync (group commit without a timer).
    pub(crate) fn commit_pending(&self, w: &mut Writer) {
        loop {
            let reqs = {
                let mut q = lock(&self.queue);
                if q.reqs.is_empty() {
                    return;
                }
                q.bytes = 0;
                mem::take(&mut q.reqs)
            };
            self.space_cv.notify_all();
            self.commit_batch(w, reqs);
        }
    }

    /// Writes `reqs` with one write (per segment touched) and one fdatasync, then publishes
    /// them to readers and completes their tickets.
    pub(crate) fn commit_batch(&self, w: &mut Writer, reqs: Vec<Request>) {
        if let Some(e) = &w.poisoned {
            for r in reqs {
                r.done.complete(Err(e.clone()));
            }
            return;
        }
        let mut buf = mem::take(&mut w.buf);
        buf.clear();
        // Every earlier commit's fdatasync has returned, so the write starts at the synced
        // watermark; its frames record that (docs/wal-format.md, "Recovery"). Without syncs
        // nothing but the header is known durable.
        let synced = match self.config.durability {
            Durability::Fdatasync => w.write_off,
            Durability::NoSync => HEADER_LEN as u64,
        };
        let mut chunks = vec![Chunk {
            ctx: w.active.frame_ctx(synced),
            seg: w.active.clone(),
            off: w.write_off,
            buf,
        }];
        let mut effects = mem::take(&mut w.effects);
        if w.needs_checkpoint {
            let ctx = chunks[0].ctx;
            encode_checkpoint(&mut chunks[0].buf, ctx, &w.stream);
            w.needs_checkpoint = false;
        }
        let mut done = Vec::with_capacity(reqs.len());
        let mut failed: Option<Error> = None;
        for req in reqs {
            if let Some(e) = &failed {
                req.done.complete(Err(e.clone()));
                continue;
            }
            match self.encode(w, &mut chunks, &mut effects, &req.op) {
                Ok(()) => done.push(req),
                Err(e) => {
                    req.done.complete(Err(e.clone()));
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = &failed {
            self.fail_queued(w, e);
        }
        let sync = self.config.durability == Durability::Fdatasync;
        for c in &chunks {
            if c.buf.is_empty() {
                continue;
            }
            if let Err(e) = c.seg.io.write_all_and_sync(c.off, &c.buf, sync) {
                let err = Error::Fatal {
                    op: "write+fdatasync",
                    segment: c.seg.seq,
                    source: Arc::new(e),
                };
                tracing::error!(error = %err, "WAL write failed; the log refuses further appends");
                w.poisoned = Some(err.clone());
                for r in done {
                    r.done.complete(Err(err.clone()));
                }
                self.fail_queued(w, &err);
                lock(&self.queue).fatal = Some(err);
                return;
            }
        }
        let last = chunks.last().expect("a commit has at least one chunk");
        w.write_off = last.pos();
        let last_index = {
            let mut r = self.read.write().expect("read state lock poisoned");
            for e in effects.drain(..) {
                r.apply(e);
            }
            r.stream.next_index - 1
        };
        w.effects = effects;
        w.buf = chunks.swap_remove(0).buf;
        for r in done {
            r.done.complete(Ok(last_index));
        }
    }

    /// Fails every queued request (they were validated on top of a failed one) and resets
    /// the accepted log end to what the committer has encoded.
    fn fail_queued(&self, w: &Writer, e: &Error) {
        let reqs = {
            let mut q = lock(&self.queue);
            q.bytes = 0;
            q.next_index = w.stream.next_index;
            q.last_term = w.stream.last_term;
            mem::take(&mut q.reqs)
        };
        self.space_cv.notify_all();
        for r in reqs {
            r.done.complete(Err(e.clone()));
        }
    }

    /// Encodes one request's frames, rotating segments as needed. Fails (writing nothing of
    /// the request) only if a needed segment cannot be prepared.
    fn encode(
        &self,
        w: &mut Writer,
        chunks: &mut Vec<Chunk>,
        fx: &mut Vec<Effect>,
        op: &Op,
    ) -> Result<()> {
        match op {
            Op::Append(entries) => {
                self.reserve(
                    w,
                    chunks,
                    entries.iter().map(|e| frame_len(e.payload.len())),
                )?;
                for e in entries {
                    let off = self.emit(w, chunks, fx, Kind::Entry, e.index, e.term, &e.payload);
                    let seq = chunks.last().expect("chunk").seg.seq;
                    fx.push(Effect::Entry {
                        seq,
                        index: e.index,
                        off,
                    });
                    w.stream.next_index = e.index + 1;
                    w.stream.last_term = e.term;
                }
            }
            Op::HardState(hs) => {
                let p = encode_hard_state(hs);
                self.reserve(w, chunks, [frame_len(p.len())].into_iter())?;
                self.emit(w, chunks, fx, Kind::HardState, 0, 0, &p);
                w.stream.hard_state = Some(*hs);
                fx.push(Effect::HardState(*hs));
            }
            Op::Snapshot(m) => {
                self.reserve(w, chunks, [frame_len(m.membership.len())].into_iter())?;
                self.emit(
                    w,
                    chunks,
                    fx,
                    Kind::Snapshot,
                    m.index,
                    m.term,
                    &m.membership,
                );
                w.stream.snapshot = Some(m.clone());
                fx.push(Effect::Snapshot(m.clone()));
            }
            &Op::Truncate { from, last_term } => {
                self.reserve(w, chunks, [frame_len(0)].into_iter())?;
                self.emit(w, chunks, fx, Kind::Truncate, from, last_term, &[]);
                w.stream.next_index = from;
                w.stream.last_term = last_term;
                fx.push(Effect::Truncate { from, last_term });
            }
            &Op::Compact { first, prev_term } => {
                self.reserve(w, chunks, [frame_len(0)].into_iter())?;
                self.emit(w, chunks, fx, Kind::Compact, first, prev_term, &[]);
                let s = &mut w.stream;
                s.first_index = first;
                s.prev_term = prev_term;
                if first > s.next_index {
                    s.next_index = first;
                    s.last_term = prev_term;
                }
                fx.push(Effect::Compact { first, prev_term });
            }
        }
        Ok(())
    }

    /// Makes sure enough spare segments exist for frames of `lens` bytes.
    fn reserve(
        &self,
        w: &mut Writer,
        chunks: &[Chunk],
        lens: impl Iterator<Item = usize>,
    ) -> Result<()> {
        let c = chunks.last().expect("chunk");
        let (mut pos, mut cap) = (c.pos(), c.seg.io.size());
        let cp = checkpoint_len(&w.stream) as u64;
        let mut need = 0;
        for l in lens {
            let l = l as u64;
            if pos + l + SEAL_LEN as u64 > cap {
                need += 1;
                cap = w
                    .spares
                    .get(need - 1)
                    .map_or(self.config.segment_bytes, |s| s.io.size());
                pos = HEADER_LEN as u64 + cp;
            }
            pos += l;
        }
        while w.spares.len() < need {
            let s = self.prep.take(&*self.backend, &self.config)?;
            if self.config.prepare_ahead {
                self.prep.kick();
            }
            w.spares.push_back(s);
        }
        Ok(())
    }

    /// Appends one frame, rotating first if it does not fit; returns its offset.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        w: &mut Writer,
        chunks: &mut Vec<Chunk>,
        fx: &mut Vec<Effect>,
        kind: Kind,
        index: u64,
        term: u64,
        payload: &[u8],
    ) -> u32 {
        let len = frame_len(payload.len()) as u64;
        let c = chunks.last().expect("chunk");
        if c.pos() + len + SEAL_LEN as u64 > c.seg.io.size() {
            self.rotate(w, chunks, fx);
        }
        let c = chunks.last_mut().expect("chunk");
        let off = u32::try_from(c.pos()).expect("segments are at most 4 GiB");
        encode_frame(&mut c.buf, c.ctx, kind, index, term, payload);
        assert!(
            c.pos() + SEAL_LEN as u64 <= c.seg.io.size(),
            "frame fits after rotation"
        );
        off
    }

    /// Seals the current segment and continues in a reserved spare.
    fn rotate(&self, w: &mut Writer, chunks: &mut Vec<Chunk>, fx: &mut Vec<Effect>) {
        let c = chunks.last_mut().expect("chunk");
        encode_frame(
            &mut c.buf,
            c.ctx,
            Kind::Seal,
            w.stream.next_index,
            w.stream.last_term,
            &[],
        );
        let seg = w
            .spares
            .pop_front()
            .expect("rotations are reserved before encoding");
        let mut buf = Vec::with_capacity(64 << 10);
        // The chunk of the sealed segment is written and synced before this one is written.
        let ctx = seg.frame_ctx(HEADER_LEN as u64);
        encode_checkpoint(&mut buf, ctx, &w.stream);
        fx.push(Effect::Segment(seg.clone()));
        chunks.push(Chunk {
            ctx,
            seg: seg.clone(),
            off: HEADER_LEN as u64,
            buf,
        });
        w.active = seg;
    }
}
