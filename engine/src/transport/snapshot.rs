//! Snapshot streaming with flow control.
//!
//! A runtime streams a state-machine snapshot chunk by chunk: [`SnapshotSender::send_chunk`]
//! waits for a credit, and the receiver returns one credit per chunk its application has taken
//! ([`SnapshotReceiver::next_chunk`]). At most `snapshot_chunks_inflight_max` chunks (plus the
//! end marker) are ever queued, on the wire or buffered at the receiver, so neither side holds
//! the snapshot in one buffer. A stream is bound to one connection: if it breaks, both ends
//! see [`SnapshotStreamError::Aborted`] and the runtime starts over (Raft resends InstallSnapshot).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};

use super::error::SnapshotStreamError;
use super::frame::FrameKind;
use super::metrics::Metrics;
use super::queue::SendQueue;
use super::NodeId;

/// Sender-side state of one stream, shared with whoever delivers its acknowledgements.
#[derive(Debug)]
pub(super) struct OutStream {
    /// Invariant: permits + frames in flight (sent, not acknowledged) == window.
    credits: Semaphore,
    aborted: AtomicBool,
}

impl OutStream {
    pub(super) fn new(window: u32) -> Self {
        OutStream {
            credits: Semaphore::new(window as usize),
            aborted: AtomicBool::new(false),
        }
    }

    /// The receiver's application took `count` frames.
    pub(super) fn ack(&self, count: u32) {
        self.credits.add_permits(count as usize);
    }

    /// Wakes and fails the sender.
    pub(super) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.credits.close();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The outgoing streams of one peer connection, by stream id.
#[derive(Debug, Default)]
pub(super) struct OutStreams {
    streams: Mutex<HashMap<u64, Arc<OutStream>>>,
}

impl OutStreams {
    pub(super) fn insert(&self, id: u64, stream: Arc<OutStream>, max: usize) -> bool {
        let mut streams = lock(&self.streams);
        if streams.len() >= max {
            return false;
        }
        streams.insert(id, stream);
        true
    }

    pub(super) fn get(&self, id: u64) -> Option<Arc<OutStream>> {
        lock(&self.streams).get(&id).cloned()
    }

    pub(super) fn remove(&self, id: u64) {
        lock(&self.streams).remove(&id);
    }

    /// The connection broke: every stream on it fails.
    pub(super) fn abort_all(&self) -> usize {
        let streams: Vec<_> = lock(&self.streams).drain().collect();
        for (_, stream) in &streams {
            stream.abort();
        }
        streams.len()
    }
}

/// What a receiver's channel carries.
#[derive(Debug)]
pub(super) enum ChunkEvent {
    Chunk(Bytes),
    End,
}

/// Where a sender's frames go.
#[derive(Debug)]
pub(super) enum ChunkSink {
    /// A TCP connection's send queue; `registry` is unregistered from when the sender ends.
    Queue {
        queue: Arc<SendQueue>,
        registry: Arc<OutStreams>,
    },
    /// Straight into the receiver's channel (in-memory transport).
    Memory(mpsc::Sender<ChunkEvent>),
}

/// The sending end of a snapshot stream, from [`super::Transport::start_snapshot`].
///
/// Dropping it before [`SnapshotSender::finish`] aborts the stream.
#[derive(Debug)]
pub struct SnapshotSender {
    to: NodeId,
    stream: u64,
    state: Arc<OutStream>,
    sink: ChunkSink,
    window: u32,
    chunk_bytes_max: u32,
    done: bool,
}

impl SnapshotSender {
    pub(super) fn new(
        to: NodeId,
        stream: u64,
        state: Arc<OutStream>,
        sink: ChunkSink,
        window: u32,
        chunk_bytes_max: u32,
    ) -> Self {
        SnapshotSender {
            to,
            stream,
            state,
            sink,
            window,
            chunk_bytes_max,
            done: false,
        }
    }

    /// The receiving node.
    #[must_use]
    pub fn to(&self) -> NodeId {
        self.to
    }

    /// This stream's id (unique per sending endpoint).
    #[must_use]
    pub fn stream_id(&self) -> u64 {
        self.stream
    }

    fn aborted(&self) -> SnapshotStreamError {
        SnapshotStreamError::Aborted {
            stream: self.stream,
        }
    }

    async fn credit(&self, count: u32) -> Result<(), SnapshotStreamError> {
        match self.state.credits.acquire_many(count).await {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(_) => Err(self.aborted()),
        }
    }

    async fn push(&mut self, event: ChunkEvent) -> Result<(), SnapshotStreamError> {
        self.credit(1).await?;
        if self.state.aborted.load(Ordering::Acquire) {
            return Err(self.aborted());
        }
        let pushed = match (&self.sink, event) {
            (ChunkSink::Queue { queue, .. }, ChunkEvent::Chunk(chunk)) => {
                queue.push_control(FrameKind::SnapshotChunk, self.stream, chunk)
            }
            (ChunkSink::Queue { queue, .. }, ChunkEvent::End) => {
                queue.push_control(FrameKind::SnapshotEnd, self.stream, Bytes::new())
            }
            (ChunkSink::Memory(tx), event) => tx
                .try_send(event)
                .map_err(|_| super::queue::PushError::Closed),
        };
        pushed.map_err(|_| {
            self.state.abort();
            self.aborted()
        })
    }

    /// Sends one chunk, first waiting until fewer than `snapshot_chunks_inflight_max` frames
    /// are unacknowledged.
    ///
    /// # Errors
    /// [`SnapshotStreamError::ChunkTooLarge`] (the stream stays usable), or
    /// [`SnapshotStreamError::Aborted`] if the receiver gave up or the connection broke.
    pub async fn send_chunk(&mut self, chunk: Bytes) -> Result<(), SnapshotStreamError> {
        if chunk.len() > self.chunk_bytes_max as usize {
            return Err(SnapshotStreamError::ChunkTooLarge {
                len: chunk.len(),
                max: self.chunk_bytes_max,
            });
        }
        self.push(ChunkEvent::Chunk(chunk)).await
    }

    /// Ends the stream and waits until the receiving application has taken every chunk.
    ///
    /// # Errors
    /// [`SnapshotStreamError::Aborted`] if the stream failed before the last acknowledgement
    /// arrived. The receiver may still have taken everything (its connection broke right
    /// after); the sender cannot tell, so it treats the snapshot as not sent, and Raft
    /// resends it if the follower still needs it.
    pub async fn finish(mut self) -> Result<(), SnapshotStreamError> {
        self.push(ChunkEvent::End).await?;
        let acked = self.credit(self.window).await;
        self.done = acked.is_ok();
        acked
    }
}

impl Drop for SnapshotSender {
    fn drop(&mut self) {
        match &self.sink {
            ChunkSink::Queue { queue, registry } => {
                registry.remove(self.stream);
                if !self.done && !self.state.aborted.load(Ordering::Acquire) {
                    // Best effort: if the queue is closed the connection is gone anyway.
                    let _ = queue.push_control(FrameKind::SnapshotAbort, self.stream, Bytes::new());
                }
            }
            // Dropping the channel's sender without an End tells the receiver.
            ChunkSink::Memory(_) => {}
        }
        self.state.abort();
    }
}

/// Where a receiver's acknowledgements go.
#[derive(Debug)]
pub(super) enum AckPath {
    /// Back over the connection the stream arrived on.
    Queue(Arc<SendQueue>),
    /// Straight to the sender's credits (in-memory transport).
    Memory(Arc<OutStream>),
}

/// The receiving end of a snapshot stream, delivered as [`super::Incoming::Snapshot`].
///
/// Dropping it before the end aborts the stream at the sender.
#[derive(Debug)]
pub struct SnapshotReceiver {
    from: NodeId,
    stream: u64,
    header: Bytes,
    rx: mpsc::Receiver<ChunkEvent>,
    ack: AckPath,
    metrics: Arc<Metrics>,
    done: bool,
}

impl SnapshotReceiver {
    pub(super) fn new(
        from: NodeId,
        stream: u64,
        header: Bytes,
        rx: mpsc::Receiver<ChunkEvent>,
        ack: AckPath,
        metrics: Arc<Metrics>,
    ) -> Self {
        SnapshotReceiver {
            from,
            stream,
            header,
            rx,
            ack,
            metrics,
            done: false,
        }
    }

    /// The sending node.
    #[must_use]
    pub fn from(&self) -> NodeId {
        self.from
    }

    /// The sender's stream id.
    #[must_use]
    pub fn stream_id(&self) -> u64 {
        self.stream
    }

    /// The header the sender opened the stream with (typically the encoded snapshot metadata).
    #[must_use]
    pub fn header(&self) -> &Bytes {
        &self.header
    }

    fn ack_one(&self) {
        match &self.ack {
            AckPath::Queue(queue) => {
                let count = Bytes::copy_from_slice(&1u32.to_le_bytes());
                // A failed push means the connection is closing: the stream aborts with it.
                let _ = queue.push_control(FrameKind::SnapshotAck, self.stream, count);
            }
            AckPath::Memory(state) => state.ack(1),
        }
    }

    /// The next chunk in send order, or `None` once the sender finished.
    ///
    /// # Errors
    /// [`SnapshotStreamError::Aborted`] if the sender gave up or the connection broke.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, SnapshotStreamError> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(ChunkEvent::Chunk(chunk)) => {
                self.ack_one();
                Ok(Some(chunk))
            }
            Some(ChunkEvent::End) => {
                self.done = true;
                Metrics::inc(&self.metrics.snapshots_completed);
                self.ack_one();
                Ok(None)
            }
            None => {
                self.done = true;
                Metrics::inc(&self.metrics.snapshots_aborted);
                Err(SnapshotStreamError::Aborted {
                    stream: self.stream,
                })
            }
        }
    }
}

impl Drop for SnapshotReceiver {
    fn drop(&mut self) {
        self.rx.close();
        if self.done {
            return;
        }
        Metrics::inc(&self.metrics.snapshots_aborted);
        match &self.ack {
            AckPath::Queue(queue) => {
                let _ = queue.push_control(FrameKind::SnapshotAbort, self.stream, Bytes::new());
            }
            AckPath::Memory(state) => state.abort(),
        }
    }
}

/// The incoming streams of one endpoint, by (sender, stream id), with the generation of the
/// connection each arrived on.
#[derive(Debug, Default)]
pub(super) struct InStreams {
    streams: Mutex<HashMap<StreamKey, (u64, mpsc::Sender<ChunkEvent>)>>,
}

/// An incoming stream: (sender, stream id).
type StreamKey = (NodeId, u64);

impl InStreams {
    pub(super) fn insert(
        &self,
        key: (NodeId, u64),
        generation: u64,
        tx: mpsc::Sender<ChunkEvent>,
        max: usize,
    ) -> bool {
        let mut streams = lock(&self.streams);
        streams.retain(|_, (_, tx)| !tx.is_closed());
        if streams.len() >= max || streams.contains_key(&key) {
            return false;
        }
        streams.insert(key, (generation, tx));
        true
    }

    pub(super) fn get(&self, key: (NodeId, u64)) -> Option<mpsc::Sender<ChunkEvent>> {
        lock(&self.streams).get(&key).map(|(_, tx)| tx.clone())
    }

    pub(super) fn remove(&self, key: (NodeId, u64)) {
        lock(&self.streams).remove(&key);
    }

    /// Drops the streams of `from` that arrived on connections up to `generation`: their
    /// receivers then see [`SnapshotStreamError::Aborted`] after the chunks already buffered.
    pub(super) fn remove_peer(&self, from: NodeId, generation: u64) {
        lock(&self.streams).retain(|(peer, _), (gen, _)| *peer != from || *gen > generation);
    }

    /// Drops every incoming stream (shutdown).
    pub(super) fn remove_peer_all(&self) {
        lock(&self.streams).clear();
    }
}
