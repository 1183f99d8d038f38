//! The physical floor of one replicated write on this machine, measured: the latency of one
//! `fdatasync` on the disk under the data directories, and one TCP round trip on loopback.
//!
//! A write acknowledged by a 3-node Raft cluster that fsyncs on the leader in parallel with
//! replication needs at least one fdatasync (a follower's, after the entries arrived) and one
//! loopback round trip (leader to follower and back) beyond the client's own round trip; the
//! report compares the 1-client median with `fdatasync p50 + round trip p50`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::latency::{Latencies, LatencySummary};

/// fdatasyncs timed for the floor: a few hundred milliseconds on a fast disk.
pub const FSYNC_SAMPLES: usize = 200;
/// Loopback round trips timed for the floor.
pub const RTT_SAMPLES: usize = 2_000;
/// Bytes written before each fdatasync: one 256 B value.
const FSYNC_WRITE_BYTES: usize = 256;

/// The measured floor.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Floor {
    /// `pwrite` of 256 B + `fdatasync` in the data directory.
    pub fdatasync: LatencySummary,
    /// One byte there and back over TCP on 127.0.0.1 (`TCP_NODELAY`).
    pub loopback_rtt: LatencySummary,
}

impl Floor {
    /// The floor's median for one replicated write: fdatasync p50 + loopback round trip p50.
    #[must_use]
    pub fn write_p50_us(&self) -> f64 {
        self.fdatasync.p50_us + self.loopback_rtt.p50_us
    }

    /// Measures both parts; the fdatasync in a temporary file under `dir`.
    ///
    /// # Errors
    /// A file or socket operation failed.
    pub fn measure(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            fdatasync: measure_fdatasync(dir, FSYNC_SAMPLES)?,
            loopback_rtt: measure_loopback_rtt(RTT_SAMPLES)?,
        })
    }
}

/// Times `samples` rounds of a 256 B `pwrite` at a growing offset followed by `fdatasync`, in
/// a temporary file under `dir` (removed afterwards). The file is zero-filled and synced
/// first, as the WAL does with its segments, so the timed syncs flush data only: appending
/// past the end would time an ext4 journal commit for the size change on every sync, which
/// the WAL never pays.
///
/// # Errors
/// Creating, writing or syncing the file failed, or `samples` is 0.
pub fn measure_fdatasync(dir: &Path, samples: usize) -> io::Result<LatencySummary> {
    let file = tempfile::tempfile_in(dir)?;
    let block = [0x5au8; FSYNC_WRITE_BYTES];
    file.write_all_at(&vec![0u8; samples * FSYNC_WRITE_BYTES], 0)?;
    file.sync_all()?;
    let mut latencies = Latencies::new();
    for i in 0..samples {
        let start = Instant::now();
        file.write_all_at(&block, (i * FSYNC_WRITE_BYTES) as u64)?;
        file.sync_data()?;
        latencies.record(start.elapsed());
    }
    latencies
        .summary()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no fdatasync samples"))
}

/// Times `samples` one-byte ping-pongs between two TCP sockets on 127.0.0.1.
///
/// # Errors
/// A socket operation failed, or `samples` is 0.
pub fn measure_loopback_rtt(samples: usize) -> io::Result<LatencySummary> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        for _ in 0..samples {
            s.read_exact(&mut b)?;
            s.write_all(&b)?;
        }
        Ok(())
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut latencies = Latencies::new();
    let mut b = [7u8; 1];
    for _ in 0..samples {
        let start = Instant::now();
        s.write_all(&b)?;
        s.read_exact(&mut b)?;
        latencies.record(start.elapsed());
    }
    echo.join()
        .map_err(|_| io::Error::other("the loopback echo thread panicked"))??;
    latencies
        .summary()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no round-trip samples"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_few_samples() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = measure_fdatasync(dir.path(), 3).expect("fdatasync in a temp dir");
        assert_eq!(f.count, 3);
        let r = measure_loopback_rtt(10).expect("loopback");
        assert_eq!(r.count, 10);
        assert!(measure_fdatasync(dir.path(), 0).is_err());
    }
}
