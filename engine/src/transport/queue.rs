//! The bounded send queue of one connection direction, shared by the producer (the node, or a
//! snapshot stream) and the connection's writer, which drains many frames into one write.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::frame::{frame_header, FrameKind, FRAME_HEADER_BYTES};

/// One queued frame.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) kind: FrameKind,
    pub(super) stream: u64,
    pub(super) payload: Bytes,
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PushError {
    /// The bound is reached; the frame was not queued.
    Full,
    /// The queue is closed (peer removed or transport shut down).
    Closed,
}

/// What the writer found when it woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Frames are queued.
    Ready,
    /// Nothing arrived within the keepalive interval.
    Idle,
    /// The queue is closed: the writer must stop.
    Closed,
}

#[derive(Debug, Default)]
struct Inner {
    items: VecDeque<Outgoing>,
    /// Invariant: number of `Message` items in `items`.
    msgs: usize,
    /// Invariant: payload bytes of the `Message` items in `items`.
    msg_bytes: usize,
    /// Invariant: number of non-`Message` items in `items`.
    controls: usize,
    closed: bool,
}

/// A bounded multi-producer, single-consumer frame queue; its writer (a connection task of
/// either backend) waits on it asynchronously.
#[derive(Debug)]
pub(super) struct SendQueue {
    inner: Mutex<Inner>,
    notify: tokio::sync::Notify,
    msgs_max: usize,
    bytes_max: usize,
    /// Bound on control frames (snapshot chunks, acks, aborts); snapshot credits keep a
    /// well-behaved stream far below it.
    controls_max: usize,
}

impl SendQueue {
    pub(super) fn new(msgs_max: usize, bytes_max: usize, controls_max: usize) -> Self {
        SendQueue {
            inner: Mutex::new(Inner::default()),
            notify: tokio::sync::Notify::new(),
            msgs_max,
            bytes_max,
            controls_max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only plain counters behind; keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn notify_writer(&self) {
        self.notify.notify_one();
    }

    /// Queues a message, or refuses it when the queue is at its bound (never grows past it).
    pub(super) fn push_message(&self, payload: Bytes) -> Result<(), PushError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(PushError::Closed);
        }
        if inner.msgs >= self.msgs_max || inner.msg_bytes + payload.len() > self.bytes_max {
            return Err(PushError::Full);
        }
        inner.msgs += 1;
        inner.msg_bytes += payload.len();
        inner.items.push_back(Outgoing {
            kind: FrameKind::Message,
            stream: 0,
            payload,
        });
        drop(inner);
        self.notify_writer();
        Ok(())
    }

    /// Queues a snapshot or control frame.
    pub(super) fn push_control(
        &self,
        kind: FrameKind,
        stream: u64,
        payload: Bytes,
    ) -> Result<(), PushError> {
        debug_assert!(kind != FrameKind::Message);
        let mut inner = self.lock();
        if inner.closed {
            return Err(PushError::Closed);
        }
        if inner.controls >= self.controls_max {
            return Err(PushError::Full);
        }
        inner.controls += 1;
        inner.items.push_back(Outgoing {
            kind,
            stream,
            payload,
        });
        drop(inner);
        self.notify_writer();
        Ok(())
    }

    /// Moves queued frames into `batch`, at most about `bytes_max` of them but at least one.
    /// Returns `false` if the queue is closed.
    pub(super) fn take_batch(&self, batch: &mut Vec<Outgoing>, bytes_max: usize) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            return false;
        }
        let mut bytes = 0;
        while let Some(item) = inner.items.front() {
            let size = FRAME_HEADER_BYTES + item.payload.len();
            if !batch.is_empty() && bytes + size > bytes_max {
                break;
            }
            bytes += size;
            let item = inner.items.pop_front().expect("front exists");
            if item.kind == FrameKind::Message {
                inner.msgs -= 1;
                inner.msg_bytes -= item.payload.len();
            } else {
                inner.controls -= 1;
            }
            batch.push(item);
        }
        true
    }

    /// Drops the queued control frames: they belong to the connection that just broke (its
    /// snapshot streams are aborted). Messages stay for the next connection.
    pub(super) fn drop_controls(&self) {
        let mut inner = self.lock();
        inner.items.retain(|item| item.kind == FrameKind::Message);
        inner.controls = 0;
    }

    /// Closes the queue and drops its contents; returns the number of messages dropped.
    pub(super) fn close(&self) -> usize {
        let mut inner = self.lock();
        inner.closed = true;
        let dropped = inner.msgs;
        *inner = Inner {
            closed: true,
            ..Inner::default()
        };
        drop(inner);
        self.notify.notify_waiters();
        self.notify.notify_one();
        dropped
    }

    /// Whether [`SendQueue::close`] was called.
    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn state(&self) -> Option<Wait> {
        let inner = self.lock();
        if inner.closed {
            Some(Wait::Closed)
        } else if !inner.items.is_empty() {
            Some(Wait::Ready)
        } else {
            None
        }
    }

    /// Async wait (io_uring backend) for frames, closing, or `idle` elapsing. A wake-up
    /// without frames (see [`SendQueue::wake`]) also returns [`Wait::Idle`].
    pub(super) async fn wait(&self, idle: Duration) -> Wait {
        if let Some(state) = self.state() {
            return state;
        }
        // `notify_one` stores a permit when nobody waits, so a push between the check above
        // and this await is not lost.
        let _ = tokio::time::timeout(idle, self.notify.notified()).await;
        self.state().unwrap_or(Wait::Idle)
    }

    /// Wakes a waiting writer without queuing anything (it then sees [`Wait::Idle`] and
    /// re-checks its connection).
    pub(super) fn wake(&self) {
        self.notify.notify_one();
    }

    /// Number of queued messages (not control frames).
    #[cfg(test)]
    pub(super) fn msgs(&self) -> usize {
        self.lock().msgs
    }
}

/// Payloads of at least this many bytes are written from their own buffer (one more iovec)
/// instead of being copied into the batch: below it a copy is cheaper than an iovec.
const ZERO_COPY_BYTES_MIN: usize = 8 << 10;
/// Iovecs per write, well under the kernel's `IOV_MAX` (1024); past it payloads are copied.
const IOVECS_MAX: usize = 256;

/// One coalesced write: the frames of a batch as few buffers for one `writev`. Headers and
/// small payloads are copied into contiguous runs; large payloads are referenced, not copied.
#[derive(Debug, Default)]
pub(super) struct WriteBatch {
    parts: Vec<Bytes>,
    run: BytesMut,
    /// Invariant: total bytes in `parts` and `run`.
    len: usize,
    msgs: usize,
    frames: usize,
}

impl WriteBatch {
    /// Appends one frame.
    pub(super) fn push(&mut self, kind: FrameKind, stream: u64, payload: &Bytes) {
        self.run
            .extend_from_slice(&frame_header(kind, stream, payload));
        if payload.len() >= ZERO_COPY_BYTES_MIN && self.parts.len() + 2 < IOVECS_MAX {
            self.parts.push(self.run.split().freeze());
            self.parts.push(payload.clone());
        } else {
            self.run.extend_from_slice(payload);
        }
        self.len += FRAME_HEADER_BYTES + payload.len();
        self.frames += 1;
        self.msgs += usize::from(kind == FrameKind::Message);
    }

    /// Appends every frame of `batch`.
    pub(super) fn push_all(&mut self, batch: &[Outgoing]) {
        for item in batch {
            self.push(item.kind, item.stream, &item.payload);
        }
    }

    /// The buffers to write, in order; the batch is empty afterwards (counters stay until
    /// [`WriteBatch::clear`]).
    pub(super) fn take_parts(&mut self) -> Vec<Bytes> {
        if !self.run.is_empty() {
            self.parts.push(self.run.split().freeze());
        }
        std::mem::take(&mut self.parts)
    }

    /// Bytes in the batch.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// `Message` frames in the batch.
    pub(super) fn msgs(&self) -> usize {
        self.msgs
    }

    /// Frames in the batch.
    pub(super) fn frames(&self) -> usize {
        self.frames
    }

    /// Resets the counters for the next batch.
    pub(super) fn clear(&mut self) {
        self.parts.clear();
        self.run.clear();
        self.len = 0;
        self.msgs = 0;
        self.frames = 0;
    }
}

/// Drops the first `written` bytes from `parts` (after a partial vectored write).
pub(super) fn advance_parts(parts: &mut Vec<Bytes>, mut written: usize) {
    let mut done = 0;
    for part in parts.iter_mut() {
        if written >= part.len() {
            written -= part.len();
            done += 1;
        } else {
            bytes::Buf::advance(part, written);
            break;
        }
    }
    parts.drain(..done);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_holds_and_drops_are_refused() {
        let queue = SendQueue::new(3, 10, 2);
        for _ in 0..3 {
            queue.push_message(Bytes::from_static(b"ab")).unwrap();
        }
        assert_eq!(
            queue.push_message(Bytes::from_static(b"ab")),
            Err(PushError::Full)
        );
        let queue = SendQueue::new(100, 10, 2);
        queue
            .push_message(Bytes::from_static(b"0123456789"))
            .unwrap();
        assert_eq!(
            queue.push_message(Bytes::from_static(b"x")),
            Err(PushError::Full)
        );
        queue
            .push_control(FrameKind::SnapshotAck, 1, Bytes::new())
            .unwrap();
        queue
            .push_control(FrameKind::SnapshotAck, 1, Bytes::new())
            .unwrap();
        let full = queue.push_control(FrameKind::SnapshotAck, 1, Bytes::new());
        assert_eq!(full, Err(PushError::Full));
    }

    #[test]
    fn batches_respect_the_byte_bound_but_take_one_at_least() {
        let queue = SendQueue::new(100, 1 << 20, 8);
        queue.push_message(Bytes::from(vec![0; 100])).unwrap();
        queue.push_message(Bytes::from(vec![0; 100])).unwrap();
        let mut batch = Vec::new();
        assert!(queue.take_batch(&mut batch, 50));
        assert_eq!(batch.len(), 1);
        batch.clear();
        assert!(queue.take_batch(&mut batch, 1 << 20));
        assert_eq!((batch.len(), queue.msgs()), (1, 0));
    }

    #[test]
    fn write_batch_is_the_wire_image_with_large_payloads_referenced() {
        use super::super::frame::FrameDecoder;
        let large = Bytes::from(vec![5u8; ZERO_COPY_BYTES_MIN]);
        let items = [
            (FrameKind::Message, 0, Bytes::from_static(b"small")),
            (FrameKind::SnapshotChunk, 3, large.clone()),
            (FrameKind::Message, 0, Bytes::from_static(b"tail")),
        ];
        let mut write = WriteBatch::default();
        for (kind, stream, payload) in &items {
            write.push(*kind, *stream, payload);
        }
        assert_eq!((write.frames(), write.msgs()), (3, 2));
        let parts = write.take_parts();
        assert_eq!(parts.len(), 3, "run, large payload, run");
        assert_eq!(parts[1].as_ptr(), large.as_ptr(), "not copied");
        let wire: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(wire.len(), write.len());
        let mut decoder = FrameDecoder::new(1 << 20);
        decoder.push(&wire);
        for (kind, stream, payload) in items {
            let frame = decoder.next_frame().unwrap().unwrap();
            assert_eq!(
                (frame.kind, frame.stream, frame.payload),
                (kind, stream, payload)
            );
        }
        // A partial write leaves exactly the unwritten suffix.
        let mut rest = parts.clone();
        advance_parts(&mut rest, parts[0].len() + 10);
        let suffix: Vec<u8> = rest.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(suffix, wire[parts[0].len() + 10..]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Message(usize),
        Control,
        Take(usize),
        DropControls,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0usize..300).prop_map(Op::Message),
            Just(Op::Control),
            (1usize..1000).prop_map(Op::Take),
            Just(Op::DropControls),
        ]
    }

    proptest::proptest! {
        /// Against a naive model: the bounds hold after every operation, frames leave in
        /// push order, nothing is lost or duplicated except by `drop_controls`.
        #[test]
        fn queue_matches_a_naive_model(ops in proptest::collection::vec(op(), 0..200)) {
            const MSGS: usize = 8;
            const BYTES: usize = 1000;
            const CONTROLS: usize = 4;
            let queue = SendQueue::new(MSGS, BYTES, CONTROLS);
            let mut model: VecDeque<(bool, usize, u64)> = VecDeque::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Message(len) => {
                        let (msgs, bytes) = model.iter().filter(|m| m.0)
                            .fold((0, 0), |(n, b), m| (n + 1, b + m.1));
                        let fits = msgs < MSGS && bytes + len <= BYTES;
                        let mut payload = vec![0u8; len];
                        if len >= 8 { payload[..8].copy_from_slice(&next.to_le_bytes()); }
                        let pushed = queue.push_message(Bytes::from(payload));
                        proptest::prop_assert_eq!(pushed.is_ok(), fits);
                        if fits { model.push_back((true, len, next)); }
                        next += 1;
                    }
                    Op::Control => {
                        let fits = model.iter().filter(|m| !m.0).count() < CONTROLS;
                        let pushed = queue.push_control(
                            FrameKind::SnapshotAck, next, Bytes::new());
                        proptest::prop_assert_eq!(pushed.is_ok(), fits);
                        if fits { model.push_back((false, 0, next)); }
                        next += 1;
                    }
                    Op::Take(max) => {
                        let was_empty = model.is_empty();
                        let mut batch = Vec::new();
                        proptest::prop_assert!(queue.take_batch(&mut batch, max));
                        let mut bytes = 0;
                        for item in &batch {
                            let (is_msg, len, id) = model.pop_front().expect("model has it");
                            proptest::prop_assert_eq!(item.kind == FrameKind::Message, is_msg);
                            proptest::prop_assert_eq!(item.payload.len(), len);
                            if is_msg && len >= 8 {
                                proptest::prop_assert_eq!(&item.payload[..8], &id.to_le_bytes());
                            } else if !is_msg {
                                proptest::prop_assert_eq!(item.stream, id);
                            }
                            bytes += FRAME_HEADER_BYTES + len;
                        }
                        proptest::prop_assert!(batch.len() <= 1 || bytes <= max);
                        proptest::prop_assert_eq!(batch.is_empty(), was_empty, "at least one frame");
                    }
                    Op::DropControls => {
                        queue.drop_controls();
                        model.retain(|m| m.0);
                    }
                }
                proptest::prop_assert_eq!(queue.msgs(), model.iter().filter(|m| m.0).count());
            }
        }
    }

    #[test]
    fn close_wakes_and_refuses() {
        let queue = SendQueue::new(4, 100, 4);
        queue.push_message(Bytes::from_static(b"a")).unwrap();
        assert_eq!(queue.close(), 1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let wait = runtime.block_on(queue.wait(Duration::from_secs(5)));
        assert_eq!(wait, Wait::Closed);
        assert_eq!(queue.push_message(Bytes::new()), Err(PushError::Closed));
    }
}
