//! Snapshot files: the state machine's stream framed with the Raft metadata and the peer
//! address book, checksummed, written to a temporary name, fsynced and renamed.
//!
//! ```text
//! file    = magic:"RRSNAP01" index:u64 term:u64 mlen:u32 membership[mlen]
//!           peers:u32 (id:u64 alen:u16 addr[alen])* state-machine-bytes crc32:u32
//! ```
//! The CRC covers everything before it. The same bytes are what a leader streams to a
//! follower, so a received snapshot is verified exactly like a local one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::raft::{LogIndex, Membership, NodeId, SnapshotMeta, Term};

const MAGIC: &[u8; 8] = b"RRSNAP01";
const TRAILER_BYTES: u64 = 4;
/// Upper bound on the header's variable parts; a header claiming more is corrupt.
const HEADER_FIELD_BYTES_MAX: u32 = 1 << 20;

/// Name of the snapshot file for `index` (zero-padded so names sort by index).
pub(crate) fn file_name(index: LogIndex) -> String {
    format!("snap-{:020}.snap", index.0)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Writes that feed a CRC on their way to the file.
struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_header(
    w: &mut dyn Write,
    meta: &SnapshotMeta,
    peers: &BTreeMap<NodeId, SocketAddr>,
) -> io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&meta.index.0.to_le_bytes())?;
    w.write_all(&meta.term.0.to_le_bytes())?;
    let m = meta.membership.encode();
    w.write_all(
        &u32::try_from(m.len())
            .map_err(|_| invalid("membership"))?
            .to_le_bytes(),
    )?;
    w.write_all(&m)?;
    w.write_all(
        &u32::try_from(peers.len())
            .map_err(|_| invalid("peers"))?
            .to_le_bytes(),
    )?;
    for (id, addr) in peers {
        let a = addr.to_string();
        w.write_all(&id.0.to_le_bytes())?;
        w.write_all(
            &u16::try_from(a.len())
                .map_err(|_| invalid("addr"))?
                .to_le_bytes(),
        )?;
        w.write_all(a.as_bytes())?;
    }
    Ok(())
}

/// Syncs a directory so that a rename or unlink in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing ancestors durably: each new directory's entry is synced in
/// its parent, so a power cut after start cannot lose `data_dir/wal` or `data_dir/snap`
/// (and the files later synced inside them) with it. Returns the parents it synced.
pub(crate) fn create_dir_durable(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    fs::create_dir_all(dir)?;
    let mut synced = Vec::new();
    for created in missing {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent)?;
        synced.push(parent.to_path_buf());
    }
    Ok(synced)
}

/// Writes a snapshot file for `meta` into `dir` and returns its path; `body` streams the
/// state machine. Durable (file and directory synced) when this returns.
pub(crate) fn write(
    dir: &Path,
    meta: &SnapshotMeta,
    peers: &BTreeMap<NodeId, SocketAddr>,
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let path = dir.join(file_name(meta.index));
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp)?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(256 << 10, file),
        crc: crc32fast::Hasher::new(),
    };
    write_header(&mut w, meta, peers)?;
    body(&mut w)?;
    let crc = w.crc.finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes())?;
    let file = inner.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_data()?;
    drop(file);
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// The header of a verified snapshot file.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) meta: SnapshotMeta,
    pub(crate) peers: BTreeMap<NodeId, SocketAddr>,
}

fn read_u64(r: &mut dyn Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_u32(r: &mut dyn Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_vec(r: &mut dyn Read, len: u32) -> io::Result<Vec<u8>> {
    if len > HEADER_FIELD_BYTES_MAX {
        return Err(invalid("snapshot header field too long"));
    }
    let mut v = vec![0u8; len as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

fn read_header(r: &mut dyn Read) -> io::Result<(Header, u64)> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid("not a ringraft snapshot"));
    }
    let index = LogIndex(read_u64(r)?);
    let term = Term(read_u64(r)?);
    let mlen = read_u32(r)?;
    let m = read_vec(r, mlen)?;
    let membership = Membership::decode(&m).map_err(|_| invalid("snapshot membership"))?;
    let count = read_u32(r)?;
    if count > HEADER_FIELD_BYTES_MAX / 10 {
        return Err(invalid("snapshot peer count"));
    }
    let mut used = 8 + 8 + 8 + 4 + u64::from(mlen) + 4;
    let mut peers = BTreeMap::new();
    for _ in 0..count {
        let id = NodeId(read_u64(r)?);
        let mut l = [0u8; 2];
        r.read_exact(&mut l)?;
        let alen = u16::from_le_bytes(l);
        let a = read_vec(r, u32::from(alen))?;
        let addr = std::str::from_utf8(&a)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("snapshot peer address"))?;
        peers.insert(id, addr);
        used += 8 + 2 + u64::from(alen);
    }
    let meta = SnapshotMeta {
        index,
        term,
        membership,
    };
    Ok((Header { meta, peers }, used))
}

/// Opens and verifies a snapshot file (CRC over the whole file, then the header). Returns
/// the header and a reader positioned at the state machine's bytes, ending before the CRC.
pub(crate) fn open(path: &Path) -> io::Result<(Header, impl Read)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < MAGIC.len() as u64 + TRAILER_BYTES {
        return Err(invalid("snapshot file too short"));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut body = BufReader::with_capacity(256 << 10, (&mut file).take(len - TRAILER_BYTES));
    loop {
        let chunk = io::BufRead::fill_buf(&mut body)?;
        if chunk.is_empty() {
            break;
        }
        crc.update(chunk);
        let n = chunk.len();
        io::BufRead::consume(&mut body, n);
    }
    drop(body);
    let stored = read_u32(&mut file)?;
    if stored != crc.finalize() {
        return Err(invalid("snapshot checksum mismatch"));
    }
    file.seek(SeekFrom::Start(0))?;
    let mut r = BufReader::with_capacity(256 << 10, file);
    let (header, used) = read_header(&mut r)?;
    let data_len = (len - TRAILER_BYTES)
        .checked_sub(used)
        .ok_or_else(|| invalid("snapshot header longer than the file"))?;
    Ok((header, r.take(data_len)))
}

/// Snapshot files in `dir`, by index.
pub(crate) fn list(dir: &Path) -> io::Result<BTreeMap<LogIndex, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(index) = name
            .strip_prefix("snap-")
            .and_then(|n| n.strip_suffix(".snap"))
            .and_then(|n| n.parse().ok())
        {
            out.insert(LogIndex(index), path);
        }
    }
    Ok(out)
}

/// Deletes snapshot files older than `keep`.
pub(crate) fn prune(dir: &Path, keep: LogIndex) -> io::Result<()> {
    for (index, path) in list(dir)? {
        if index < keep {
            fs::remove_file(path)?;
        }
    }
    sync_dir(dir)
}

/// Deletes snapshot files older than `keep` and the temporary files a crash left behind.
/// Only at start: while the node runs, streams may be writing their temporary files.
pub(crate) fn prune_at_start(dir: &Path, keep: LogIndex) -> io::Result<()> {
    prune(dir, keep)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp" || e == "recv") {
            fs::remove_file(path)?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            index: LogIndex(index),
            term: Term(2),
            membership: Membership::with_voters([NodeId(1), NodeId(2)]),
        }
    }

    /// Issue 13, smaller: `data_dir/wal` and `data_dir/snap` were created without a sync of
    /// their parent. Every directory created gets its parent synced, deepest first; nothing
    /// is synced when it all exists.
    #[test]
    fn created_directories_are_synced_in_their_parents() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("a").join("data");
        let synced = create_dir_durable(&data.join("wal")).expect("create");
        assert_eq!(
            synced,
            vec![
                data.clone(),
                root.path().join("a"),
                root.path().to_path_buf()
            ]
        );
        assert!(data.join("wal").is_dir());
        let synced = create_dir_durable(&data.join("snap")).expect("create");
        assert_eq!(synced, vec![data.clone()]);
        assert!(create_dir_durable(&data.join("snap"))
            .expect("exists")
            .is_empty());
    }

    #[test]
    fn write_then_open_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut peers = BTreeMap::new();
        peers.insert(NodeId(2), "127.0.0.1:9000".parse().expect("addr"));
        let data: Vec<u8> = (0..100_000u32).flat_map(u32::to_le_bytes).collect();
        let path = write(dir.path(), &meta(42), &peers, |w| w.write_all(&data)).expect("write");
        let (h, mut r) = open(&path).expect("open");
        assert_eq!(h.meta, meta(42));
        assert_eq!(h.peers, peers);
        let mut back = Vec::new();
        r.read_to_end(&mut back).expect("read");
        assert_eq!(back, data);
        assert_eq!(list(dir.path()).expect("list").len(), 1);
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), &meta(7), &BTreeMap::new(), |w| {
            w.write_all(b"state")
        })
        .expect("write");
        let good = fs::read(&path).expect("read");
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            fs::write(&path, &bad).expect("write");
            assert!(open(&path).is_err(), "flip at {at} undetected");
        }
    }

    #[test]
    fn prune_keeps_the_latest() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in [3, 5, 9] {
            write(dir.path(), &meta(i), &BTreeMap::new(), |_| Ok(())).expect("write");
        }
        fs::write(dir.path().join("x.recv"), b"partial").expect("write");
        prune(dir.path(), LogIndex(9)).expect("prune");
        assert_eq!(
            fs::read_dir(dir.path()).expect("dir").count(),
            2,
            "running: keep partials"
        );
        prune_at_start(dir.path(), LogIndex(9)).expect("prune");
        let left: Vec<_> = list(dir.path()).expect("list").into_keys().collect();
        assert_eq!(left, vec![LogIndex(9)]);
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
