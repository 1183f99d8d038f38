//! A synchronous io_uring for the group commit's fdatasync.
//!
//! The write is not submitted here: ext4 punts buffered ring writes to an io-wq worker, and
//! the linked write + fdatasync submission this module used to make measured slower than a
//! `pwrite` on the committing thread followed by the ring's fdatasync (see
//! `DirSegment::write_all_and_sync`). The `io-uring` crate is used rather than tokio-uring so
//! that any thread can commit without hopping to a runtime thread.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use io_uring::{opcode, squeue, types, IoUring};

/// Entries in the ring: a commit submits one.
const RING_ENTRIES: u32 = 8;

pub(crate) struct Ring {
    ring: Mutex<IoUring>,
}

impl Ring {
    pub(crate) fn new() -> io::Result<Ring> {
        Ok(Ring {
            ring: Mutex::new(IoUring::new(RING_ENTRIES)?),
        })
    }

    pub(crate) fn fdatasync(&self, file: &File) -> io::Result<()> {
        let sqe = opcode::Fsync::new(types::Fd(file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(0);
        let res = self.run(&[sqe])?;
        check(res[0]).map(|_| ())
    }

    /// Submits `sqes` and waits for all their completions; results in user_data order.
    fn run(&self, sqes: &[squeue::Entry]) -> io::Result<Vec<i32>> {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: every buffer an entry points to is borrowed by our caller for the whole call,
        // and this function returns only after the completions of all entries were reaped, so
        // the kernel never touches a buffer after it is released. The fd outlives the call too.
        unsafe {
            ring.submission()
                .push_multiple(sqes)
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        let mut res = vec![0i32; sqes.len()];
        let mut got = 0;
        while got < sqes.len() {
            match ring.submit_and_wait(sqes.len() - got) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)) => {}
                // Entries may be in flight and reference caller buffers: returning would be
                // unsound, so this is treated as the programmer/kernel error it is.
                Err(e) => panic!("io_uring_enter failed with operations in flight: {e}"),
            }
            for cqe in ring.completion() {
                let i = cqe.user_data() as usize;
                res[i] = cqe.result();
                got += 1;
            }
        }
        Ok(res)
    }
}

fn check(res: i32) -> io::Result<i32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res)
    }
}
