//! WAL recovery on damaged segment files: a small log is written once, then each input is
//! applied to a copy of its segment as (offset, byte) overwrites and the copy is opened in
//! both recovery modes. `Wal::open` must return a log or a typed error, never panic; a log
//! that opens must read every entry it claims.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringraft_wal::{BackendKind, Config, Entry, RecoveryMode, Wal};

fn config(recovery: RecoveryMode) -> Config {
    Config {
        backend: BackendKind::Thread,
        recovery,
        ..Config::small()
    }
}

/// The segment files (name, bytes) of a log of 40 entries written once.
fn pristine() -> &'static Vec<(String, Vec<u8>)> {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), config(RecoveryMode::Strict)).expect("open");
        for i in 1..=40u64 {
            let t = wal
                .append(vec![Entry::new(
                    i,
                    1 + i / 10,
                    vec![i as u8; (i * 37 % 300) as usize],
                )])
                .expect("append");
            t.wait().expect("durable");
        }
        drop(wal);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .map(|p| {
                let name = p.file_name().expect("name").to_string_lossy().into_owned();
                (name, std::fs::read(&p).expect("read"))
            })
            .collect();
        files.sort();
        files
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (name, bytes)) in pristine().iter().enumerate() {
        let mut b = bytes.clone();
        // Each 5 input bytes: a little-endian u32 offset into the data written so far (the
        // first 16 KiB) and the byte to write there; segment i takes every (i+1)-th group.
        for w in data.chunks_exact(5).skip(i).step_by(i + 1) {
            let off =
                u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize % (16 << 10).min(b.len());
            b[off] = w[4];
        }
        std::fs::write(dir.path().join(name), &b).expect("write");
    }
    for mode in [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption] {
        if let Ok(wal) = Wal::open(dir.path(), config(mode)) {
            let (first, last) = (wal.first_index(), wal.last_index());
            for i in first..=last {
                wal.entry(i).expect("an entry the log claims reads");
            }
        }
    }
});
