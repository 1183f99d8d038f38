//! The group commit: turns a batch of queued requests into frames, one write and one
//! fdatasync per segment touched, then publishes the changes to readers and completes the
//! requests' tickets.

use std::collections::VecDeque;
use std::mem;
use std::sync::Arc;

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::format::{
    checkpoint_len, encode_checkpoint, encode_frame, encode_hard_state, frame_len, FrameCtx, Kind,
    StreamState, HEADER_LEN, SEAL_LEN,
};
use crate::publish::Effect;
use crate::queue::{Op, Request};
use crate::segment::Segment;
use crate::shared::{lock, Shared};
use crate::transition::{FramePos, Transition};

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
    /// The encode buffer, kept between commits so that its allocation is reused.
    buf: Vec<u8>,
    /// The effects of the commit being encoded, kept for the same reason.
    effects: Vec<Effect>,
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

impl Shared {
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
                let lens = entries.iter().map(|e| frame_len(e.payload.len()));
                self.reserve(w, chunks, lens)?;
                for e in entries {
                    let t = Transition::Append {
                        index: e.index,
                        term: e.term,
                    };
                    self.emit(w, chunks, fx, t, &e.payload);
                }
            }
            Op::HardState(hs) => {
                let p = encode_hard_state(hs);
                self.reserve(w, chunks, [frame_len(p.len())].into_iter())?;
                self.emit(w, chunks, fx, Transition::HardState(*hs), &p);
            }
            Op::Snapshot(m) => {
                self.reserve(w, chunks, [frame_len(m.membership.len())].into_iter())?;
                self.emit(
                    w,
                    chunks,
                    fx,
                    Transition::Snapshot(m.clone()),
                    &m.membership,
                );
            }
            &Op::Truncate { from, last_term } => {
                self.reserve(w, chunks, [frame_len(0)].into_iter())?;
                self.emit(w, chunks, fx, Transition::Truncate { from, last_term }, &[]);
            }
            &Op::Compact { first, prev_term } => {
                self.reserve(w, chunks, [frame_len(0)].into_iter())?;
                self.emit(w, chunks, fx, Transition::Compact { first, prev_term }, &[]);
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

    /// Appends the frame of `t` (with `payload`), rotating first if it does not fit; applies
    /// `t` to the writer's view and records it for the publisher.
    fn emit(
        &self,
        w: &mut Writer,
        chunks: &mut Vec<Chunk>,
        fx: &mut Vec<Effect>,
        t: Transition,
        payload: &[u8],
    ) {
        // Requests are validated against the accepted log end before they are queued; this is
        // the same rule checked against what is encoded. A frame recovery would refuse must
        // never reach the disk: the log could not be opened again.
        if let Some(kind) = w.stream.refusal(&t) {
            panic!("the writer encodes only what recovery accepts: {t:?} is {kind:?}");
        }
        let (kind, index, term) = t.frame_header();
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
        let at = FramePos {
            seq: c.seg.seq,
            off,
        };
        w.stream.apply(&t);
        fx.push(Effect::Log(t, at));
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
