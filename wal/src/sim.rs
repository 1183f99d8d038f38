//! A simulated disk for tests: keeps written and synced bytes apart, injects faults and
//! produces the images a power cut can leave.
//!
//! # Crash model
//! - File data: bytes written but not yet covered by an `fdatasync` of their file are
//!   "unsynced". A crash keeps every synced byte. Of the unsynced writes (in issue order, over
//!   all files) it keeps what [`CrashKeep`] says: a prefix of their bytes rounded down to a
//!   whole sector (a device persists a 512-byte sector atomically), the same with the next
//!   sector torn into garbage (a device without that guarantee), any subset of sectors, or
//!   any subset of the dirty 4 KiB pages of every file (page-cache writeback in any order).
//! - The directory: creates, renames and removes since the last `sync_dir` are lost.
//! - A process crash ([`SimDisk::process_crash`]) loses nothing: written data stays in the
//!   page cache, still unsynced, and a power cut after the restart decides its fate.
//! - File lengths of allocated files are durable at once (the log syncs every allocated file
//!   before it renames it into place, so this does not weaken the tests).

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::util::rng::Rng;
use crate::util::sync::lock;
use bytes::Bytes;

use crate::io::{IoBackend, SegmentIo};

/// Sector size of the simulated disk.
pub const SECTOR_BYTES: usize = 512;

/// What a crash keeps of the unsynced writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashKeep {
    /// The first `n` bytes of the unsynced write stream.
    Prefix(u64),
    /// The first `n` bytes, then the sector that holds byte `n` is filled with garbage
    /// (seeded) up to its end: a torn sector.
    TornSector(u64, u64),
    /// Every unsynced sector independently kept or not, decided by the seed.
    SectorSubset(u64),
    /// Every dirty 4 KiB page of every file independently kept (with its latest contents)
    /// or not (its synced contents), decided by the seed.
    PageSubset(u64),
}

/// Page size of the simulated page cache.
pub const PAGE_BYTES: usize = 4096;

#[derive(Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Default)]
struct Faults {
    write_eio_in: Option<u64>,
    sync_eio_in: Option<u64>,
    short_write_in: Option<u64>,
    no_space: bool,
    dead_after_ops: Option<u64>,
}

#[derive(Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    /// Unsynced writes in issue order: inode, offset, bytes.
    unsynced: Vec<(usize, u64, Vec<u8>)>,
    faults: Faults,
    ops: u64,
    syncs: u64,
}

/// A simulated directory. Cloning shares the same disk.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn countdown(c: &mut Option<u64>) -> bool {
    match c {
        Some(0) => {
            *c = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The `n`-th next write (0 = the very next) fails with EIO.
    pub fn fail_write_in(&self, n: u64) {
        self.lock().faults.write_eio_in = Some(n);
    }

    /// The `n`-th next fdatasync fails with EIO.
    pub fn fail_sync_in(&self, n: u64) {
        self.lock().faults.sync_eio_in = Some(n);
    }

    /// The `n`-th next write writes only part of its buffer.
    pub fn short_write_in(&self, n: u64) {
        self.lock().faults.short_write_in = Some(n);
    }

    /// While set, allocating a file fails with ENOSPC.
    pub fn set_no_space(&self, on: bool) {
        self.lock().faults.no_space = on;
    }

    /// After `n` more mutating operations (write, sync, create, rename, remove, dir sync)
    /// the disk dies: every later operation fails with EIO, as if power were cut.
    pub fn die_after_ops(&self, n: u64) {
        self.lock().faults.dead_after_ops = Some(n);
    }

    /// Mutating operations so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// fdatasync and directory sync calls so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Bytes written but not yet synced.
    pub fn unsynced_bytes(&self) -> u64 {
        self.lock().unsynced.iter().map(|w| w.2.len() as u64).sum()
    }

    /// The disk a power cut now would leave behind, as a fresh disk.
    pub fn crash_image(&self, keep: CrashKeep) -> SimDisk {
        let st = self.lock();
        let mut inodes: Vec<Inode> = st
            .inodes
            .iter()
            .map(|i| Inode {
                live: i.durable.clone(),
                durable: i.durable.clone(),
            })
            .collect();
        match keep {
            CrashKeep::PageSubset(seed) => keep_pages(&st, &mut inodes, seed),
            CrashKeep::SectorSubset(seed) => keep_sectors(&st, &mut inodes, seed),
            CrashKeep::Prefix(n) => keep_prefix(&st, &mut inodes, n, None),
            CrashKeep::TornSector(n, seed) => keep_prefix(&st, &mut inodes, n, Some(seed)),
        }
        for i in &mut inodes {
            i.durable = i.live.clone();
        }
        let new = State {
            inodes,
            names: st.durable_names.clone(),
            durable_names: st.durable_names.clone(),
            ..State::default()
        };
        SimDisk {
            state: Arc::new(Mutex::new(new)),
        }
    }

    /// The disk a process crash now leaves to the restarted process: everything written is
    /// still there (in the page cache), still unsynced; faults are cleared.
    pub fn process_crash(&self) -> SimDisk {
        let st = self.lock();
        let new = State {
            inodes: st.inodes.clone(),
            names: st.names.clone(),
            durable_names: st.durable_names.clone(),
            unsynced: st.unsynced.clone(),
            ..State::default()
        };
        SimDisk {
            state: Arc::new(Mutex::new(new)),
        }
    }

    /// Names in the directory now, and the ones a power cut now would leave.
    pub fn names(&self) -> (Vec<String>, Vec<String>) {
        let st = self.lock();
        (
            st.names.keys().cloned().collect(),
            st.durable_names.keys().cloned().collect(),
        )
    }

    /// Durable (synced) contents of a file under its durable name.
    pub fn durable_file(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        st.durable_names
            .get(name)
            .map(|&i| st.inodes[i].durable.clone())
    }

    /// Writes bytes into a file durably (as a test's stand-in for damage or a foreign write).
    pub fn write_durable(&self, name: &str, offset: usize, bytes: &[u8]) {
        let mut st = self.lock();
        let ino = *st.names.get(name).expect("write_durable: no such file");
        st.inodes[ino].live[offset..offset + bytes.len()].copy_from_slice(bytes);
        st.inodes[ino].durable[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Flips one bit of a file (as media corruption would), durably.
    pub fn flip_bit(&self, name: &str, offset: usize, bit: u8) {
        let mut st = self.lock();
        let ino = *st.names.get(name).expect("flip_bit: no such file");
        st.inodes[ino].live[offset] ^= 1 << bit;
        st.inodes[ino].durable[offset] ^= 1 << bit;
    }

    /// Current (written, not necessarily synced) contents of a file.
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        st.names.get(name).map(|&i| st.inodes[i].live.clone())
    }

    /// The backend over this disk.
    pub fn backend(&self) -> Arc<dyn IoBackend> {
        Arc::new(self.clone())
    }
}

/// Keeps each unsynced sector (of each write) or not.
fn keep_sectors(st: &State, inodes: &mut [Inode], seed: u64) {
    let mut rng = Rng::new(seed);
    for (ino, off, data) in &st.unsynced {
        let img = &mut inodes[*ino].live;
        let off = *off as usize;
        let mut s = off / SECTOR_BYTES * SECTOR_BYTES;
        while s < off + data.len() {
            let (a, b) = (s.max(off), (s + SECTOR_BYTES).min(off + data.len()));
            if rng.next_u64() & 1 == 1 {
                img[a..b].copy_from_slice(&data[a - off..b - off]);
            }
            s += SECTOR_BYTES;
        }
    }
}

/// Keeps each dirty page of each file whole (its live contents) or not at all.
fn keep_pages(st: &State, inodes: &mut [Inode], seed: u64) {
    let mut dirty: std::collections::BTreeSet<(usize, usize)> = Default::default();
    for (ino, off, data) in &st.unsynced {
        let (first, last) = (
            *off as usize / PAGE_BYTES,
            (*off as usize + data.len() - 1) / PAGE_BYTES,
        );
        dirty.extend((first..=last).map(|p| (*ino, p)));
    }
    let mut rng = Rng::new(seed);
    for (ino, page) in dirty {
        if rng.next_u64() & 1 == 1 {
            let live = &st.inodes[ino].live;
            let (a, b) = (page * PAGE_BYTES, ((page + 1) * PAGE_BYTES).min(live.len()));
            inodes[ino].live[a..b].copy_from_slice(&live[a..b]);
        }
    }
}

/// Keeps the first `n` bytes of the unsynced stream, each write's kept part rounded down to
/// a sector boundary of its file; with `torn`, the next sector is then filled with garbage.
fn keep_prefix(st: &State, inodes: &mut [Inode], n: u64, torn: Option<u64>) {
    let mut budget = n;
    let mut rng = Rng::new(torn.unwrap_or(0));
    for (ino, off, data) in &st.unsynced {
        let img = &mut inodes[*ino].live;
        let off = *off as usize;
        let n = (data.len() as u64).min(budget) as usize;
        budget -= n as u64;
        if n == data.len() {
            img[off..off + n].copy_from_slice(data);
            continue;
        }
        let pos = ((off + n) / SECTOR_BYTES * SECTOR_BYTES).max(off);
        img[off..pos].copy_from_slice(&data[..pos - off]);
        if torn.is_some() {
            let end = (pos / SECTOR_BYTES + 1) * SECTOR_BYTES;
            for b in &mut img[pos..end.min(off + data.len())] {
                *b = rng.next_u64() as u8;
            }
        }
        break;
    }
}

impl State {
    fn op(&mut self) -> io::Result<()> {
        if self.faults.dead_after_ops == Some(0) {
            return Err(eio());
        }
        if let Some(n) = &mut self.faults.dead_after_ops {
            *n -= 1;
        }
        self.ops += 1;
        Ok(())
    }
}

impl IoBackend for SimDisk {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().names.keys().cloned().collect())
    }

    fn allocate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.op()?;
        if st.faults.no_space {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let zero = vec![0u8; len as usize];
        st.inodes.push(Inode {
            live: zero.clone(),
            durable: zero,
        });
        let ino = st.inodes.len() - 1;
        st.names.insert(name.to_string(), ino);
        Ok(())
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentIo>> {
        let st = self.lock();
        let ino = *st
            .names
            .get(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let len = st.inodes[ino].live.len() as u64;
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            ino,
            len,
        }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.lock();
        st.op()?;
        let ino = st
            .names
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        st.names.insert(to.to_string(), ino);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut st = self.lock();
        st.op()?;
        st.names
            .remove(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut st = self.lock();
        st.op()?;
        st.syncs += 1;
        st.durable_names = st.names.clone();
        Ok(())
    }

    fn name(&self) -> &'static str {
        "sim"
    }
}

struct SimFile {
    disk: SimDisk,
    ino: usize,
    len: u64,
}

impl SegmentIo for SimFile {
    fn size(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.disk.lock();
        st.op()?;
        if countdown(&mut st.faults.write_eio_in) {
            return Err(eio());
        }
        let mut n = buf.len();
        if countdown(&mut st.faults.short_write_in) {
            n = (n / 2).max(1);
        }
        let end = offset as usize + n;
        if end > self.len as usize {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        st.inodes[self.ino].live[offset as usize..end].copy_from_slice(&buf[..n]);
        st.unsynced.push((self.ino, offset, buf[..n].to_vec()));
        Ok(n)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.disk.lock();
        st.op()?;
        st.syncs += 1;
        if countdown(&mut st.faults.sync_eio_in) {
            // Like Linux after a failed writeback: the dirty data is dropped from the unsynced
            // set without being made durable, and later syncs will not report it again.
            let ino = self.ino;
            st.unsynced.retain(|w| w.0 != ino);
            let durable = st.inodes[ino].durable.clone();
            st.inodes[ino].live = durable;
            return Err(eio());
        }
        let ino = self.ino;
        let live = st.inodes[ino].live.clone();
        st.inodes[ino].durable = live;
        st.unsynced.retain(|w| w.0 != ino);
        Ok(())
    }

    fn read(&self, offset: usize, len: usize) -> io::Result<Bytes> {
        let st = self.disk.lock();
        let data = &st.inodes[self.ino].live;
        if offset.checked_add(len).is_none_or(|e| e > data.len()) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read beyond file",
            ));
        }
        Ok(Bytes::copy_from_slice(&data[offset..offset + len]))
    }
}
