//! The I/O backend: the only place the log touches files.
//!
//! The log above this trait is the same for every backend: the io_uring and the plain-thread
//! backends on real directories ([`DirBackend`]), and the simulated disk in [`crate::sim`].

mod dir;
mod uring;

use std::io;
use std::sync::Arc;

use bytes::Bytes;

pub use dir::DirBackend;

/// A directory of segment files.
///
/// # Correctness
/// - [`IoBackend::allocate`] returns only once the file exists with `len` bytes of real,
///   zero-filled blocks and they are durable (a later write into the file never needs a new
///   block, so a full disk shows up here, as an error, and never at a write or a mapped page).
/// - Creating, renaming and removing files become durable only with [`IoBackend::sync_dir`].
/// - No method retries a failed sync.
pub trait IoBackend: Send + Sync + 'static {
    /// Names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates file `name` with `len` zero-filled, allocated and synced bytes.
    fn allocate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Opens an existing file for writing and mapped reading.
    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentIo>>;
    /// Renames a file (atomic replace).
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes earlier creates, renames and removes durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// Short name for logs and benchmark output.
    fn name(&self) -> &'static str;
}

/// One open segment file.
///
/// # Correctness
/// - The file never changes length while open (reads come from a map of the full file).
/// - [`SegmentIo::read`] returns bytes as last written through this handle; it never writes.
/// - After [`SegmentIo::sync_data`] returns `Ok`, all earlier writes are durable.
pub trait SegmentIo: Send + Sync {
    /// Length of the file, bytes.
    fn size(&self) -> u64;
    /// Writes some prefix of `buf` at `offset`; returns the bytes written (may be short).
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<usize>;
    /// fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// Bytes `offset..offset + len`; zero-copy from the memory map for real files.
    fn read(&self, offset: usize, len: usize) -> io::Result<Bytes>;
    /// Writes all of `buf` at `offset`, then syncs if `sync`. Backends may override this to
    /// submit both at once (io_uring can link a write and an fdatasync).
    fn write_all_and_sync(&self, offset: u64, buf: &[u8], sync: bool) -> io::Result<()> {
        write_all(self, offset, buf)?;
        if sync {
            self.sync_data()?;
        }
        Ok(())
    }
}

/// Writes all of `buf`, looping over short writes.
pub(crate) fn write_all<S: SegmentIo + ?Sized>(
    s: &S,
    mut offset: u64,
    mut buf: &[u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        match s.write_at(offset, buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => {
                offset += n as u64;
                buf = &buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
