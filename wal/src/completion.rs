//! The completion of one queued request: written by the committer, read by its ticket.
//!
//! A module of its own so that the committer (`commit.rs`) and the ticket (`ticket.rs`) both
//! depend on it and not on each other.

use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::thread::Thread;

use crate::error::Result;
use crate::util::sync::lock;

/// The result once set, and whoever waits for it.
#[derive(Default)]
struct Slot {
    result: Option<Result<u64>>,
    waker: Option<Waker>,
    thread: Option<Thread>,
}

/// The completion of one request, shared by the committer and the ticket.
#[derive(Default)]
pub(crate) struct Completion {
    /// Poison-tolerant: every change to the slot is one assignment.
    slot: Mutex<Slot>,
}

impl Completion {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        lock(&self.slot)
    }

    /// Sets the result (once) and wakes the waiter, if any.
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

    /// The result, if set (taken: a second call returns `None`).
    pub(crate) fn take(&self) -> Option<Result<u64>> {
        self.lock().result.take()
    }

    /// The result, or else `thread` is unparked when it is set. Looking and registering are
    /// one step under the lock, so a completion in between cannot be missed.
    pub(crate) fn take_or_unpark(&self, thread: Thread) -> Option<Result<u64>> {
        let mut s = self.lock();
        let r = s.result.take();
        if r.is_none() {
            s.thread = Some(thread);
        }
        r
    }

    /// The result, or else `waker` is woken when it is set (one step, as
    /// [`Completion::take_or_unpark`]).
    pub(crate) fn take_or_wake(&self, waker: &Waker) -> Option<Result<u64>> {
        let mut s = self.lock();
        let r = s.result.take();
        if r.is_none() {
            s.waker = Some(waker.clone());
        }
        r
    }

    /// True once the result is set (and not yet taken).
    pub(crate) fn is_done(&self) -> bool {
        self.lock().result.is_some()
    }
}
