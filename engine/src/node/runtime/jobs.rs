//! Work the loop hands off so that it never waits on it: writing a snapshot from a view,
//! deleting compacted segments and older snapshot files, streaming a snapshot to a follower
//! or receiving one. Every job reports back through the loop's event channel
//! ([`super::SnapshotEvent`]), so where it runs does not change what the loop does.
//!
//! Production runs each job on a named thread of its own (a long stream to one follower
//! must not hold up the deletion of segments or another follower's stream). A simulation
//! queues the jobs and runs each when its schedule says, on its own thread of control.

use std::io;

/// A job handed off by the loop.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Where the loop's background jobs run.
///
/// # Correctness
/// A job that `spawn` accepted (returned `Ok`) runs exactly once, after `spawn` returned and
/// never inside it: the loop is not re-entered from `spawn`. A job that was refused (`Err`)
/// never runs; the loop then reports the failure itself.
pub trait Executor: Send + Sync {
    /// Starts `job`; `name` names its thread where there is one.
    fn spawn(&self, name: String, job: Job) -> io::Result<()>;
}

/// One OS thread per job.
pub struct ThreadExecutor;

impl Executor for ThreadExecutor {
    fn spawn(&self, name: String, job: Job) -> io::Result<()> {
        std::thread::Builder::new().name(name).spawn(job).map(drop)
    }
}

/// Queues jobs and runs them only when asked, in order, on the caller's thread (a
/// simulation's executor: it decides when each background job happens).
#[derive(Default)]
pub struct QueuedExecutor {
    jobs: std::sync::Mutex<std::collections::VecDeque<(String, Job)>>,
}

impl QueuedExecutor {
    /// Names of the queued jobs, oldest first.
    #[must_use]
    pub fn queued(&self) -> Vec<String> {
        let jobs = self.jobs.lock().expect("no job panics holding the queue");
        jobs.iter().map(|(name, _)| name.clone()).collect()
    }

    /// Runs the oldest queued job; false if there was none. Call it outside any async
    /// runtime: a job reports back with a blocking send.
    pub fn run_next(&self) -> bool {
        let job = self
            .jobs
            .lock()
            .expect("no job panics holding the queue")
            .pop_front();
        job.map(|(_, job)| job()).is_some()
    }
}

impl Executor for QueuedExecutor {
    fn spawn(&self, name: String, job: Job) -> io::Result<()> {
        let mut jobs = self.jobs.lock().expect("no job panics holding the queue");
        jobs.push_back((name, job));
        Ok(())
    }
}
