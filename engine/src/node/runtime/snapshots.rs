//! Snapshots: taking them, streaming them to followers, installing received ones.

use std::path::Path;

use super::*;

/// Snapshots: taking them, streaming them to followers, installing received ones.
impl<S: StateMachine> Runner<S> {
    pub(super) fn on_event(&mut self, ev: SnapshotEvent) -> Result<(), FatalError> {
        self.state.turn.events += 1;
        let t0 = StdInstant::now();
        let r = self.on_event_inner(ev);
        self.state.turn.snapshot += t0.elapsed();
        r
    }

    fn on_event_inner(&mut self, ev: SnapshotEvent) -> Result<(), FatalError> {
        match ev {
            SnapshotEvent::Sent { to, ok } => {
                self.state.sending.remove(&to);
                if ok {
                    Metrics::inc(&self.metrics.counters.snapshots_sent, 1);
                }
                self.raw.report_snapshot(to, ok);
            }
            SnapshotEvent::Received { from, header, path } => {
                self.state.receiving.remove(&from);
                match path {
                    Ok(path) => self.step_snapshot(from, &header, path),
                    Err(e) => tracing::warn!(%from, error = %e, "snapshot stream failed"),
                }
            }
            SnapshotEvent::Written { meta, path } => self.on_snapshot_written(&meta, path)?,
            SnapshotEvent::Compacted { index, result } => self.on_compacted(index, result)?,
        }
        Ok(())
    }

    fn on_snapshot_written(
        &mut self,
        meta: &SnapshotMeta,
        path: Result<PathBuf, String>,
    ) -> Result<(), FatalError> {
        let result = match path {
            Ok(path) => self.begin_finish(meta, &path).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let wait = self.state.snapshot_retry.failed(self.clock.now());
            Metrics::inc(&self.metrics.counters.snapshots_failed, 1);
            tracing::warn!(
                index = %meta.index,
                error = %e,
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "background snapshot failed; retrying with backoff"
            );
            self.end_snapshot(&Err(e));
        }
        Ok(())
    }

    /// The snapshot in progress is over: answer the requests that waited for it.
    fn end_snapshot(&mut self, result: &Result<LogIndex, String>) {
        self.state.snapshot_writing = None;
        self.state.finishing = None;
        for reply in self.state.snapshot_waiters.drain(..) {
            let r = result.clone().map_err(NodeError::Snapshot);
            let _ = reply.send(r);
        }
    }
    /// Steps an InstallSnapshot whose data arrived complete and verified.
    pub(super) fn step_snapshot(&mut self, from: NodeId, header: &Bytes, path: PathBuf) {
        let me = self.config.id();
        let verified = codec::decode(header.clone())
            .ok()
            .and_then(|m| match &m.body {
                MessageBody::InstallSnapshot { meta, .. } if m.from == from && m.to == me => {
                    let (h, _) = snapshot::open(&path).ok()?;
                    (h.meta == *meta).then_some(m)
                }
                _ => None,
            });
        let Some(msg) = verified else {
            Metrics::inc(&self.metrics.counters.messages_rejected, 1);
            let _ = std::fs::remove_file(&path);
            return;
        };
        let MessageBody::InstallSnapshot { meta, .. } = &msg.body else {
            unreachable!("verified as an InstallSnapshot above");
        };
        let meta = meta.clone();
        let before = self.raw.pending_snapshot().cloned();
        let now = self.now();
        if let Err(e) = self.raw.step(msg, now) {
            tracing::warn!(%from, error = %e, "snapshot refused by the core");
        }
        // Several streams may finish in one loop turn (issue 13 item 5): keep the file of
        // the snapshot the core will install, and only that one. It is this one if the core
        // took it now; otherwise the file goes (stale, or the same snapshot already held).
        let taken = self.raw.pending_snapshot() == Some(&meta) && before.as_ref() != Some(&meta);
        if taken {
            if let Some((_, old)) = self.state.received.replace((meta.index, path)) {
                let _ = std::fs::remove_file(old);
            }
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }

    pub(super) fn maybe_snapshot(&mut self) -> Result<(), FatalError> {
        let entries = self.state.entries_since_snapshot;
        let bytes = self.state.bytes_since_snapshot;
        let (te, tb) = (
            self.config.snapshot_entries_threshold,
            self.config.snapshot_bytes_threshold,
        );
        let now = self.clock.now();
        if self.state.snapshot_retry.waiting(now) {
            return Ok(());
        }
        if entries < te && bytes < tb && !self.state.snapshot_retry.due(now) {
            return Ok(());
        }
        // The core keeps the entries near followers still need (log_retain_entries_max), so
        // a threshold snapshot does not push healthy followers onto snapshots.
        if self.state.snapshot_writing.is_some() {
            return Ok(());
        }
        let Some(meta) = self.snapshot_meta()? else {
            // Nothing newer to snapshot (one was installed meanwhile): no retry is owed.
            self.state.snapshot_retry = SnapshotRetry::default();
            return Ok(());
        };
        let Some(view) = self.sm.snapshot_view() else {
            return self.take_snapshot().map(|_| ());
        };
        // Written off the loop; the core and the WAL hear of it when the file is durable.
        self.state.snapshot_writing = Some(meta.index);
        self.state.entries_since_snapshot = 0;
        self.state.bytes_since_snapshot = 0;
        let (dir, peers, events) = (
            self.snap_dir.clone(),
            self.peers.clone(),
            self.events_tx.clone(),
        );
        let spawned = self.executor.spawn(
            format!("ringraft-snap-write-{}", self.config.id()),
            Box::new(move || {
                let path = snapshot::write(&dir, &meta, &peers, |w| view.write_to(w))
                    .map_err(|e| e.to_string());
                let _ = events.blocking_send(SnapshotEvent::Written { meta, path });
            }),
        );
        if let Err(e) = spawned {
            self.state.snapshot_writing = None;
            tracing::warn!(error = %e, "cannot start the snapshot thread");
        }
        Ok(())
    }

    /// The metadata of a snapshot at the applied index, if it would be newer than the last.
    fn snapshot_meta(&self) -> Result<Option<SnapshotMeta>, FatalError> {
        let index = self.applied;
        if index <= self.snapshot_index {
            return Ok(None);
        }
        let term = self
            .raw
            .term_at(index)
            .ok_or(FatalError::NoTermForApplied { index })?;
        Ok(Some(SnapshotMeta {
            index,
            term,
            membership: self.raw.membership().clone(),
        }))
    }

    /// Writes a snapshot at the applied index on the loop, then starts finishing it. Returns
    /// the index at once if there is nothing newer to snapshot; `None` if a snapshot is now in
    /// progress (its requests wait in `snapshot_waiters`).
    pub(super) fn take_snapshot(&mut self) -> Result<Option<LogIndex>, FatalError> {
        let Some(meta) = self.snapshot_meta()? else {
            return Ok(Some(self.snapshot_index));
        };
        let sm = &self.sm;
        let path = snapshot::write(&self.snap_dir, &meta, &self.peers, |w| sm.snapshot(w))
            .map_err(FatalError::snapshot_io("write"))?;
        self.state.entries_since_snapshot = 0;
        self.state.bytes_since_snapshot = 0;
        self.state.snapshot_writing = Some(meta.index);
        if let Err(e) = self.begin_finish(&meta, &path) {
            self.end_snapshot(&Err(e.to_string()));
            return Err(e);
        }
        Ok(None)
    }

    /// A durable snapshot file exists for `meta`: tell the core and queue the metadata in
    /// the WAL. The rest (compacting the WAL prefix once the metadata is durable, deleting
    /// segments and older snapshot files) runs in stages that never block the loop
    /// (`advance_finish`): a loop that waits here for fsyncs under load misses heartbeats
    /// and costs the leadership.
    fn begin_finish(&mut self, meta: &SnapshotMeta, path: &Path) -> Result<(), FatalError> {
        let index = meta.index;
        if index <= self.snapshot_index {
            // A newer snapshot was installed while this one was written.
            let _ = std::fs::remove_file(path);
            self.end_snapshot(&Ok(self.snapshot_index));
            return Ok(());
        }
        let core_meta = self.raw.on_snapshot_created(index)?;
        assert_eq!(
            core_meta, *meta,
            "the core's snapshot metadata matches the file's"
        );
        let ticket = self.wal.set_snapshot_meta(storage::meta_to_wal(meta))?;
        self.state.finishing = Some(Finishing {
            index,
            stage: FinishStage::Meta(ticket),
            garbage: self.raw.take_compacted(),
        });
        Ok(())
    }

    /// Moves the snapshot being finished on, as far as it can go without waiting.
    pub(super) fn advance_finish(&mut self) -> Result<(), FatalError> {
        loop {
            let Some(f) = self.state.finishing.as_mut() else {
                return Ok(());
            };
            let index = f.index;
            let ticket = match &mut f.stage {
                FinishStage::Meta(t) | FinishStage::Compact(Some(t)) => Some(t),
                FinishStage::Compact(None) | FinishStage::Deleting => None,
            };
            if let Some(t) = ticket {
                match poll_now(t) {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(FatalError::Wal(e)),
                    Some(Ok(_)) => {}
                }
            }
            match f.stage {
                FinishStage::Meta(_) => f.stage = FinishStage::Compact(None),
                FinishStage::Compact(None) => {
                    // The marker names the term of `index`, read from the durable log.
                    if self.wal.last_index() < index.0 {
                        return Ok(());
                    }
                    match self.wal.compact_prefix_queued(index.0)? {
                        Some(t) => f.stage = FinishStage::Compact(Some(t)),
                        None => f.stage = FinishStage::Deleting,
                    }
                    if matches!(f.stage, FinishStage::Deleting) {
                        self.spawn_delete(index);
                    }
                }
                FinishStage::Compact(Some(_)) => {
                    f.stage = FinishStage::Deleting;
                    self.spawn_delete(index);
                }
                FinishStage::Deleting => return Ok(()),
            }
        }
    }

    /// Deletes compacted segments and older snapshot files off the loop (file removal and
    /// directory syncs can wait behind other writers' data on ext4); the outcome comes back
    /// as [`SnapshotEvent::Compacted`].
    fn spawn_delete(&mut self, index: LogIndex) {
        let garbage = self
            .state
            .finishing
            .as_mut()
            .map(|f| std::mem::take(&mut f.garbage));
        let (wal, dir, events) = (
            Arc::clone(&self.wal),
            self.snap_dir.clone(),
            self.events_tx.clone(),
        );
        let work = move || {
            drop(garbage);
            let result = wal.delete_compacted();
            if let Err(e) = snapshot::prune(&dir, index) {
                // A concurrent install may have pruned the same files first.
                tracing::warn!(%index, error = %e, "cannot prune older snapshot files");
            }
            result
        };
        let events2 = self.events_tx.clone();
        let spawned = self.executor.spawn(
            format!("ringraft-compact-{}", self.config.id()),
            Box::new(move || {
                let result = work();
                let _ = events.blocking_send(SnapshotEvent::Compacted { index, result });
            }),
        );
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the compaction thread; deleting on the loop");
            let result = self.wal.delete_compacted();
            let _ = snapshot::prune(&self.snap_dir, index);
            let _ = events2.try_send(SnapshotEvent::Compacted { index, result });
        }
    }

    fn on_compacted(
        &mut self,
        index: LogIndex,
        result: Result<(), ringraft_wal::Error>,
    ) -> Result<(), FatalError> {
        // As for any WAL write: on failure the log's files are in an unknown state.
        result?;
        self.snapshot_index = self.snapshot_index.max(index);
        Metrics::inc(&self.metrics.counters.snapshots_taken, 1);
        self.state.snapshot_retry = SnapshotRetry::default();
        tracing::debug!(id = %self.config.id(), %index, "snapshot taken");
        self.end_snapshot(&Ok(index));
        Ok(())
    }

    /// Streams the snapshot file to `m.to` off the loop; the outcome comes back as
    /// [`SnapshotEvent::Sent`].
    pub(super) fn send_snapshot(&mut self, m: Message) {
        let MessageBody::InstallSnapshot { meta, .. } = &m.body else {
            unreachable!("called for InstallSnapshot only");
        };
        let to = m.to;
        if !self.state.sending.insert(to) {
            return;
        }
        let path = self.snap_dir.join(snapshot::file_name(meta.index));
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(%to, ?path, error = %e, "snapshot file missing");
                self.state.sending.remove(&to);
                self.raw.report_snapshot(to, false);
                return;
            }
        };
        let header = match codec::encode(&m) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(%to, error = %e, "snapshot header cannot be encoded");
                self.state.sending.remove(&to);
                self.raw.report_snapshot(to, false);
                return;
            }
        };
        let sender = match self.transport.start_snapshot(to, header) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%to, error = %e, "cannot open a snapshot stream");
                self.state.sending.remove(&to);
                self.raw.report_snapshot(to, false);
                return;
            }
        };
        let events = self.events_tx.clone();
        let chunk = self.config.snapshot_chunk_bytes;
        let spawned = self.executor.spawn(
            format!("ringraft-snap-send-{to}"),
            Box::new(move || {
                let ok = crate::node::block_on(stream_file(file, sender, chunk)).is_ok();
                let _ = events.blocking_send(SnapshotEvent::Sent { to, ok });
            }),
        );
        if spawned.is_err() {
            self.state.sending.remove(&to);
            self.raw.report_snapshot(to, false);
        }
    }

    /// Receives a snapshot stream into a file off the loop; the verified file comes back as
    /// [`SnapshotEvent::Received`].
    pub(super) fn receive_snapshot(&mut self, mut rx: SnapshotReceiver) {
        let from = rx.from();
        if !self.state.receiving.insert(from) {
            return; // dropping the receiver aborts the duplicate stream
        }
        let path = self
            .snap_dir
            .join(format!("recv-{from}-{}.recv", rx.stream_id()));
        let events = self.events_tx.clone();
        let spawned = self.executor.spawn(
            format!("ringraft-snap-recv-{from}"),
            Box::new(move || {
                let header = rx.header().clone();
                let r = crate::node::block_on(receive_file(&mut rx, &path));
                let path = match r {
                    Ok(()) => Ok(path),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        Err(e)
                    }
                };
                let _ = events.blocking_send(SnapshotEvent::Received { from, header, path });
            }),
        );
        if spawned.is_err() {
            self.state.receiving.remove(&from);
        }
    }

    /// Installs the snapshot the core accepted: restore the state machine, keep the file,
    /// store the metadata, and replace the stored log (keeping entries after the snapshot
    /// only if the log holds the snapshot's last entry with its term).
    pub(super) fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<Ticket, FatalError> {
        let (index, path) = self
            .state
            .received
            .take()
            .expect("invariant: the core installs only snapshots stepped with their data");
        assert_eq!(
            index, meta.index,
            "the installed snapshot is the one received"
        );
        let (header, mut data) = snapshot::open(&path).map_err(FatalError::snapshot_io("open"))?;
        self.sm
            .restore(&mut data)
            .map_err(FatalError::snapshot_io("restore"))?;
        drop(data);
        let final_path = self.snap_dir.join(snapshot::file_name(index));
        std::fs::rename(&path, &final_path).map_err(FatalError::snapshot_io("rename"))?;
        snapshot::sync_dir(&self.snap_dir).map_err(FatalError::snapshot_io("sync"))?;
        for (id, addr) in header.peers {
            self.learn_peer(id, addr);
        }
        let ticket = self.wal.set_snapshot_meta(storage::meta_to_wal(meta))?;
        self.wal.flush()?;
        if !storage::keep_or_drop_suffix(&self.wal, index.0, meta.term.0)? {
            self.wal_next = index.0 + 1;
        }
        self.wal_next = self.wal_next.max(index.0 + 1);
        snapshot::prune(&self.snap_dir, index).map_err(FatalError::snapshot_io("prune"))?;
        self.applied = index;
        self.snapshot_index = index;
        self.state.entries_since_snapshot = 0;
        self.state.bytes_since_snapshot = 0;
        self.fail_overtaken_proposals();
        self.serve_reads();
        Metrics::inc(&self.metrics.counters.snapshots_installed, 1);
        tracing::debug!(id = %self.config.id(), %index, "snapshot installed");
        Ok(ticket)
    }
}

pub(super) async fn stream_file(
    mut file: std::fs::File,
    mut sender: crate::transport::SnapshotSender,
    chunk: usize,
) -> Result<(), String> {
    use std::io::Read;
    loop {
        let mut buf = vec![0u8; chunk];
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        sender
            .send_chunk(Bytes::from(buf))
            .await
            .map_err(|e| e.to_string())?;
    }
    sender.finish().await.map_err(|e| e.to_string())
}

pub(super) async fn receive_file(
    rx: &mut SnapshotReceiver,
    path: &std::path::Path,
) -> Result<(), String> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut w = std::io::BufWriter::new(file);
    while let Some(chunk) = rx.next_chunk().await.map_err(|e| e.to_string())? {
        w.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    let file = w.into_inner().map_err(|e| e.to_string())?;
    file.sync_data().map_err(|e| e.to_string())?;
    snapshot::open(path).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kv::KvStateMachine;
    use crate::node::handle::Shared;
    use crate::node::metrics::Metrics;
    use crate::node::{Boot, NodeConfig};
    use crate::raft::{Membership, Term};
    use crate::transport::TcpBackend;

    /// A follower (node 1 of 1, 2, 3) built as `Node::start` builds it, on the thread
    /// transport, without its loop running: the test drives it.
    pub(in crate::node::runtime) fn follower(dir: &Path) -> Runner<KvStateMachine> {
        built(dir, &[1, 2, 3])
    }

    /// Node 1 of a cluster of `voters`, built as `Node::start` builds it, on the thread
    /// transport, without its loop running.
    pub(in crate::node::runtime) fn built(dir: &Path, voters: &[u64]) -> Runner<KvStateMachine> {
        let mut config = NodeConfig::new(7, NodeId(1), dir);
        config.initial_voters = voters.iter().map(|v| NodeId(*v)).collect();
        config.listen = "127.0.0.1:0".parse().expect("addr");
        std::fs::create_dir_all(dir.join("wal")).expect("wal dir");
        std::fs::create_dir_all(dir.join("snap")).expect("snap dir");
        let metrics = Arc::new(Metrics::new(config.durability));
        let shared = Arc::new(Shared::new(Arc::clone(&metrics)));
        let (_tx, rx) = tokio::sync::mpsc::channel(4);
        let boot = Boot {
            config,
            sm: KvStateMachine::default(),
            rx,
            shared,
            metrics,
            backend: TcpBackend::Thread,
        };
        boot.build().map_err(|e| e.to_string()).expect("build").0
    }

    /// A received, verified snapshot stream from `from` in `term` at `index`: its header
    /// message and its file, named as `receive_snapshot` names it.
    fn received(
        runner: &Runner<KvStateMachine>,
        from: u64,
        term: u64,
        index: u64,
    ) -> SnapshotEvent {
        let meta = SnapshotMeta {
            index: LogIndex(index),
            term: Term(1),
            membership: Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]),
        };
        let sm = KvStateMachine::default();
        let written = snapshot::write(&runner.snap_dir, &meta, &BTreeMap::new(), |w| {
            sm.snapshot(w)
        })
        .expect("write");
        let path = runner.snap_dir.join(format!("recv-{from}-{index}.recv"));
        std::fs::rename(written, &path).expect("rename");
        let msg = Message {
            from: NodeId(from),
            to: NodeId(1),
            term: Term(term),
            body: MessageBody::InstallSnapshot { meta, round: 1 },
        };
        SnapshotEvent::Received {
            from: NodeId(from),
            header: codec::encode(&msg).expect("encode"),
            path: Ok(path),
        }
    }

    /// Issue 13 item 5: two snapshot streams finished in one loop turn. The first (5/1 from
    /// the leader of term 1) was taken by the core; the second (4/1 from the leader of
    /// term 2) was not, being below the commit index by then, yet it overwrote the slot of the
    /// received file: the install of 5 hit its `assert_eq!` on 4 (the node crashed), and the
    /// file of 5 leaked. Now the core's choice decides which file stays.
    #[test]
    fn item5_two_snapshot_streams_finishing_in_one_turn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut runner = follower(dir.path());
        let first = received(&runner, 2, 1, 5);
        let second = received(&runner, 3, 2, 4);
        runner
            .on_event(first)
            .map_err(|e| e.to_string())
            .expect("first");
        runner
            .on_event(second)
            .map_err(|e| e.to_string())
            .expect("second");
        runner
            .process_readies()
            .map_err(|e| e.to_string())
            .expect("install");
        assert_eq!(runner.snapshot_index, LogIndex(5));
        assert_eq!(runner.raw.status().commit, LogIndex(5));
        let mut files: Vec<String> = std::fs::read_dir(&runner.snap_dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            vec![snapshot::file_name(LogIndex(5))],
            "no file leaked"
        );
    }
}

/// First wait before a failed background snapshot is tried again; doubled per failure in a
/// row. A second is long against a loop turn and short against the log growth it stops.
pub(super) const SNAPSHOT_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between retries: a disk that stays full is tried once a minute, each failure
/// counted (`snapshots_failed`) and logged, so compaction never stalls silently.
pub(super) const SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(60);

/// Retry state of the background snapshot after a failure: exponential backoff between
/// [`SNAPSHOT_RETRY_MIN`] and [`SNAPSHOT_RETRY_MAX`], reset by a snapshot that completes.
#[derive(Debug, Default)]
pub(super) struct SnapshotRetry {
    /// When the next attempt may start; `None` when none failed since the last success.
    at: Option<StdInstant>,
    /// The wait after the latest failure (zero before the first).
    backoff: Duration,
}

impl SnapshotRetry {
    /// Records a failure at `now`; returns the wait before the next attempt.
    pub(super) fn failed(&mut self, now: StdInstant) -> Duration {
        self.backoff = (self.backoff * 2).clamp(SNAPSHOT_RETRY_MIN, SNAPSHOT_RETRY_MAX);
        self.at = Some(now + self.backoff);
        self.backoff
    }

    /// A failed snapshot waits for its retry time.
    pub(super) fn waiting(&self, now: StdInstant) -> bool {
        self.at.is_some_and(|at| now < at)
    }

    /// A failed snapshot's retry time has come.
    pub(super) fn due(&self, now: StdInstant) -> bool {
        self.at.is_some_and(|at| now >= at)
    }
}
