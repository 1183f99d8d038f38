//! Completion tickets: awaitable and blocking-waitable.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};

use crate::error::Result;
use crate::shared::Shared;
use crate::util::sync::lock;

#[derive(Default)]
struct Slot {
    result: Option<Result<u64>>,
    waker: Option<Waker>,
    thread: Option<Thread>,
}

/// The completion of one request, shared by the committer and the ticket.
#[derive(Default)]
pub(crate) struct Completion {
    slot: Mutex<Slot>,
}

impl Completion {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        lock(&self.slot)
    }

    pub(crate) fn complete(&self, r: Result<u64>) {
        let (waker, thread) = {
            let mut s = self.lock();
            debug_assert!(s.result.is_none(), "a request completes once");
            s.result = Some(r);
            (s.waker.take(), s.thread.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(t) = thread {
            t.unpark();
        }
    }

    fn take(&self) -> Option<Result<u64>> {
        self.lock().result.take()
    }
}

/// Completes when a request is durable (or failed). Yields the last durable log index at
/// that moment, which covers every record of the request.
///
/// Wait on any thread with [`Ticket::wait`], or `.await` it on any runtime. The request is
/// written at the latest when its ticket is waited on, polled or dropped, or when any other
/// commit runs. A lone appender
/// that waits with [`Ticket::wait`] commits its own request on its own thread when no commit
/// is running (no thread hop); otherwise the running committer covers it.
#[must_use = "a ticket does nothing unless waited on or awaited"]
pub struct Ticket {
    done: Arc<Completion>,
    shared: Arc<Shared>,
    /// Whether the background writer was asked to cover this request.
    woke_writer: bool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").finish_non_exhaustive()
    }
}

impl Ticket {
    pub(crate) fn new(done: Arc<Completion>, shared: Arc<Shared>) -> Ticket {
        Ticket {
            done,
            shared,
            woke_writer: false,
        }
    }

    /// Blocks until the request is durable; returns the durable last index.
    pub fn wait(mut self) -> Result<u64> {
        self.woke_writer = true;
        loop {
            if let Some(r) = self.done.take() {
                return r;
            }
            if self.shared.try_commit(!self.shared.has_background_writer()) {
                continue;
            }
            // Another thread is committing. It drains the queue until empty, but it may have
            // looked before our request arrived: the background writer covers that case.
            self.shared.wake_writer();
            {
                let mut s = self.done.lock();
                if let Some(r) = s.result.take() {
                    return r;
                }
                s.thread = Some(thread::current());
            }
            thread::park();
        }
    }

    /// True once the request completed.
    pub fn is_done(&self) -> bool {
        self.done.lock().result.is_some()
    }
}

impl Future for Ticket {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        {
            let mut s = this.done.lock();
            if let Some(r) = s.result.take() {
                drop(s);
                this.woke_writer = true;
                return Poll::Ready(r);
            }
            s.waker = Some(cx.waker().clone());
        }
        if !this.woke_writer {
            this.woke_writer = true;
            this.shared.wake_writer();
        }
        Poll::Pending
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // An unfinished ticket nobody waits on: make sure its request is still written.
        if !self.woke_writer && !self.is_done() {
            self.shared.wake_writer();
        }
    }
}
