//! Completion tickets: awaitable and blocking-waitable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;

use crate::completion::Completion;
use crate::error::Result;
use crate::shared::Shared;

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
            if let Some(r) = self.done.take_or_unpark(thread::current()) {
                return r;
            }
            thread::park();
        }
    }

    /// True once the request completed.
    pub fn is_done(&self) -> bool {
        self.done.is_done()
    }
}

impl Future for Ticket {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(r) = this.done.take_or_wake(cx.waker()) {
            this.woke_writer = true;
            return Poll::Ready(r);
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
