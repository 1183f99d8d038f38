//! State shared by the log handle, its tickets and its background threads, and the entry to
//! the group commit (`commit.rs`): whoever takes the writer lock commits what is queued.

use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use crate::commit::Writer;
use crate::config::Config;
use crate::io::IoBackend;
use crate::prepare::Preparer;
use crate::publish::ReadState;
use crate::queue::Queue;

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

/// Locks a WAL mutex, panicking if a thread panicked while holding it: the writer's and the
/// queue's state may be half-updated then, and a log that goes on from a corrupt state is
/// worse than one that stops. (Contrast [`crate::util::sync::lock`].)
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
        .expect("a WAL thread panicked while holding a lock")
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
}
