//! Fuzz target: recovery (`Wal::open`) on mutated segment files.
//!
//! Each seed writes a log with a random workload (appends, truncations, compactions, hard
//! states, snapshots; 8 KiB segments so that it rotates and deletes segments), closes it,
//! mutates its files once (bit flips, byte overwrites, zeroed runs, cut files, deleted or
//! renumbered segments, and frames forged with a valid checksum), and opens it again. The
//! contract checked:
//! - `Wal::open` never panics; it returns a typed error or a log;
//! - a log opened in `Strict` mode from byte damage holds exactly the state after some
//!   acknowledged step at or after the last one whose frames all lie before the damage (the
//!   last write group may look unwritten and be cut; nothing earlier may be lost or changed);
//! - in `TruncateAtCorruption` mode the log is a prefix of what was written that keeps every
//!   record before the damage;
//! - whatever log opens is usable: its range is possible, every entry in it reads, appends
//!   that rotate through new segments are acknowledged and all survive a reopen.
//!
//! `WAL_SEED=n` replays one seed, `WAL_SEEDS=n` runs more.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::image::{self, SegmentFile};
use common::{Model, Rng, Step};
use ringraft_wal::layout::{FRAME_HEADER_LEN, HEADER_LEN};
use ringraft_wal::{BackendKind, Config, Entry, HardState, RecoveryMode, Wal};

/// Seeds per test run: a few seconds in a debug build on a shared 2-core machine.
const SEEDS: u64 = 400;

/// Values a forged field takes: the edges where index and term arithmetic overflows.
const EDGES: [u64; 7] = [0, 1, 2, u64::MAX / 2, u64::MAX - 2, u64::MAX - 1, u64::MAX];

fn config(recovery: RecoveryMode) -> Config {
    Config {
        backend: BackendKind::Thread,
        recovery,
        ..common::sim_config()
    }
}

/// A directory on tmpfs when there is one: recovery and the workload fdatasync often.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().expect("tempdir"))
}

/// The log a workload wrote: the model after each acknowledged step with the end of the
/// written frames (segment, offset) at that point.
struct Written {
    states: Vec<(Model, (u64, usize))>,
}

fn write_log(dir: &Path, rng: &mut Rng, append_only: bool) -> Written {
    let wal = Wal::open(dir, config(RecoveryMode::Strict)).expect("open a fresh log");
    let mut m = Model::new();
    let mut states = vec![(m.clone(), image::log_end(dir))];
    let mut term = 1;
    for _ in 0..10 + rng.below(40) {
        let step = if append_only {
            if rng.below(8) == 0 {
                let hs = HardState {
                    term,
                    vote: Some(rng.below(3)),
                    commit: m.next_index() - 1,
                };
                m.hard_state = Some(hs);
                Step::HardState(hs)
            } else {
                let batch: Vec<_> = (0..1 + rng.below(4))
                    .map(|_| (term, common::payload(rng, 300)))
                    .collect();
                for (t, p) in &batch {
                    m.append(*t, p.clone());
                }
                Step::Append(batch)
            }
        } else {
            common::random_step(rng, &mut m, 300, &mut term)
        };
        common::apply(&wal, &m, &step).expect("workload step");
        states.push((m.clone(), image::log_end(dir)));
    }
    Written { states }
}

/// One mutation of the log's files.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        seq: u64,
        off: usize,
        bit: u8,
    },
    SetByte {
        seq: u64,
        off: usize,
        value: u8,
    },
    Zero {
        seq: u64,
        off: usize,
        len: usize,
    },
    Cut {
        seq: u64,
        len: usize,
    },
    Delete {
        seq: u64,
    },
    /// A frame header field set to `value` with the frame's checksum fixed: a forgery
    /// recovery cannot tell from data, but must survive.
    Forge {
        seq: u64,
        off: usize,
        field: usize,
        value: u64,
    },
    /// Every segment renumbered so that the newest is `u64::MAX - below_max`.
    Renumber {
        below_max: u64,
    },
}

impl Mutation {
    /// The segment it changes (all of them for a renumbering).
    fn segment(&self) -> Option<u64> {
        match *self {
            Mutation::FlipBit { seq, .. }
            | Mutation::SetByte { seq, .. }
            | Mutation::Zero { seq, .. }
            | Mutation::Cut { seq, .. }
            | Mutation::Delete { seq }
            | Mutation::Forge { seq, .. } => Some(seq),
            Mutation::Renumber { .. } => None,
        }
    }

    /// Where the damage starts, for byte damage; `None` for a forgery or a renumbering, after
    /// which the log may legitimately hold something else.
    fn point(&self, newest: u64) -> Option<(u64, usize)> {
        match *self {
            Mutation::FlipBit { seq, off, .. }
            | Mutation::SetByte { seq, off, .. }
            | Mutation::Zero { seq, off, .. } => Some((seq, off)),
            Mutation::Cut { seq, len } => Some((seq, len.min(HEADER_LEN))),
            // Deleting the newest segment erases the log's end without a trace on disk.
            Mutation::Delete { seq } if seq < newest => Some((seq, 0)),
            Mutation::Delete { .. } => None,
            Mutation::Forge { .. } | Mutation::Renumber { .. } => None,
        }
    }
}

/// An offset worth damaging in a segment: mostly inside the written frames.
fn pick_offset(rng: &mut Rng, s: &SegmentFile) -> usize {
    let written = common::frames(&s.bytes)
        .last()
        .map_or(HEADER_LEN, |&(off, len, _)| off + len);
    match rng.below(10) {
        0 => rng.below(HEADER_LEN as u64) as usize,
        1 => (written + rng.below(64) as usize).min(s.bytes.len() - 1),
        _ => rng.below(written as u64) as usize,
    }
}

fn pick_mutation(rng: &mut Rng, segs: &[SegmentFile]) -> Mutation {
    let s = &segs[rng.below(segs.len() as u64) as usize];
    let seq = s.seq;
    match rng.below(100) {
        0..=34 => Mutation::FlipBit {
            seq,
            off: pick_offset(rng, s),
            bit: rng.below(8) as u8,
        },
        35..=44 => Mutation::SetByte {
            seq,
            off: pick_offset(rng, s),
            value: rng.next_u64() as u8,
        },
        45..=59 => Mutation::Zero {
            seq,
            off: pick_offset(rng, s) & !7,
            len: 8 + rng.below(600) as usize,
        },
        60..=64 => Mutation::Cut {
            seq,
            len: rng.below(s.bytes.len() as u64) as usize,
        },
        65..=69 => Mutation::Delete { seq },
        70..=94 => {
            let frames = common::frames(&s.bytes);
            let Some(&(off, _, _)) = frames.get(rng.below(frames.len() as u64) as usize) else {
                return Mutation::Delete { seq };
            };
            let value = match rng.below(3) {
                0 => EDGES[rng.below(EDGES.len() as u64) as usize],
                _ => rng.below(40),
            };
            // Field 1: index (bytes 8..16); 2: term (16..24); 3: checkpoint payload's first
            // index; 4: the checkpoint payload's previous term.
            Mutation::Forge {
                seq,
                off,
                field: 1 + rng.below(4) as usize,
                value,
            }
        }
        _ => Mutation::Renumber {
            below_max: rng.below(3),
        },
    }
}

fn apply_mutation(dir: &Path, mut segs: Vec<SegmentFile>, m: &Mutation) {
    let at = segs
        .iter()
        .position(|s| Some(s.seq) == m.segment())
        .unwrap_or(0);
    let find = |_: u64| at;
    match *m {
        Mutation::FlipBit { seq, off, bit } => segs[find(seq)].bytes[off] ^= 1 << bit,
        Mutation::SetByte { seq, off, value } => segs[find(seq)].bytes[off] = value,
        Mutation::Zero { seq, off, len } => {
            let b = &mut segs[find(seq)].bytes;
            let end = (off + len).min(b.len());
            b[off..end].fill(0);
        }
        Mutation::Cut { seq, len } => segs[find(seq)].bytes.truncate(len),
        Mutation::Delete { seq } => {
            let s = segs.remove(find(seq));
            std::fs::remove_file(&s.path).expect("delete segment");
        }
        Mutation::Forge {
            seq,
            off,
            field,
            value,
        } => {
            let b = &mut segs[find(seq)].bytes;
            // The checkpoint payload follows the header: 16 bytes, first index then term.
            let at = match field {
                1 => off + 8,
                2 => off + 16,
                3 => off + FRAME_HEADER_LEN,
                _ => off + FRAME_HEADER_LEN + 8,
            };
            if at + 8 <= b.len() {
                b[at..at + 8].copy_from_slice(&value.to_le_bytes());
                image::fix_frame_crc(b, off);
            }
        }
        Mutation::Renumber { below_max } => {
            let last = segs.last().expect("a segment").seq;
            let shift = (u64::MAX - below_max) - last;
            for s in &mut segs {
                std::fs::remove_file(&s.path).expect("rename segment");
                s.seq += shift;
                image::renumber(&mut s.bytes, s.seq);
                s.path = dir.join(ringraft_wal::layout::segment_name(s.seq));
            }
        }
    }
    for s in &segs {
        std::fs::write(&s.path, &s.bytes).expect("write segment");
    }
}

/// The log's state, checking on the way that its range is possible and every entry reads.
fn read_checked(wal: &Wal) -> Model {
    let (first, last) = (wal.first_index(), wal.last_index());
    assert!(first >= 1, "first index {first}");
    assert!(
        last.checked_add(1).is_some_and(|end| end >= first),
        "impossible range first {first} last {last}"
    );
    // Reading entries one by one bounds the work by what the segments hold, not by a forged
    // range: the log holds at most a few hundred entries here.
    let mut entries = Vec::new();
    for i in first..=last {
        assert!(entries.len() < 10_000, "more entries than were written");
        let e = wal.entry(i).expect("every entry in the range reads");
        assert_eq!(e.index, i);
        entries.push((e.term, e.payload));
    }
    Model {
        first,
        entries,
        prev_term: 0,
        hard_state: wal.hard_state(),
        snapshot: wal.snapshot_meta(),
    }
}

/// Uses a recovered log: appends enough to rotate through several new segments, then checks
/// that a reopened log holds everything acknowledged. An append may be refused with a typed
/// error (the log is full at `u64::MAX`), never lost.
fn use_after_recovery(dir: &Path, wal: Wal, mut m: Model, rng: &mut Rng) {
    let last_term = wal.term(wal.last_index()).unwrap_or(0);
    if std::env::var("WAL_SEED").is_ok() {
        eprintln!(
            "recovered {:?} term of last {:?}",
            wal,
            wal.term(wal.last_index())
        );
    }
    let term = last_term.max(wal.hard_state().map_or(0, |h| h.term));
    for _ in 0..30 {
        let next = m.next_index();
        let batch: Vec<Bytes> = (0..1 + rng.below(3))
            .map(|_| common::payload(rng, 700))
            .collect();
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, p)| Entry::new(next.wrapping_add(i as u64), term, p.clone()))
            .collect();
        match wal.append(entries).and_then(|t| t.wait()) {
            Ok(_) => batch.into_iter().for_each(|p| m.append(term, p)),
            Err(e) => {
                assert!(
                    next > u64::MAX - 4,
                    "append at {next} refused on a recovered log: {e}"
                );
                break;
            }
        }
    }
    assert!(m.same(&read_checked(&wal)), "the live log lost an append");
    drop(wal);
    let wal = Wal::open(dir, config(RecoveryMode::Strict)).expect("reopen after use");
    let got = read_checked(&wal);
    assert!(
        m.same(&got),
        "acknowledged appends lost after reopen: first {} -> {}, {} -> {} entries",
        m.first,
        got.first,
        m.entries.len(),
        got.entries.len()
    );
}

/// Index of the last state whose frames all end at or before `point`.
fn last_before(w: &Written, point: (u64, usize)) -> usize {
    w.states
        .iter()
        .rposition(|(_, end)| *end <= point)
        .unwrap_or(0)
}

/// Whether `got` lies strictly inside the batch that the step from `prev` to `next` appended:
/// the damage erased that batch's tail frames and nothing after them. Each entry is its own
/// record, so recovery keeps the intact ones before the damage, exactly as after a crash in
/// the middle of the batch's write; no reader of the files could tell the two apart.
fn inside_batch(prev: &Model, next: &Model, got: &Model) -> bool {
    let (p, n, g) = (prev.entries.len(), next.entries.len(), got.entries.len());
    prev.first == next.first
        && got.first == next.first
        && got.hard_state == next.hard_state
        && got.snapshot == next.snapshot
        && next.entries.starts_with(&prev.entries)
        && p < g
        && g < n
        && next.entries.starts_with(&got.entries)
}

/// Whether the mutated log opened (for the summary line that shows the target reaches both
/// outcomes).
fn one_seed(seed: u64, recovery: RecoveryMode, append_only: bool) -> bool {
    let mut rng = Rng::new(seed);
    let dir = tempdir();
    let written = write_log(dir.path(), &mut rng, append_only);
    let segs = image::segments(dir.path());
    let mutation = pick_mutation(&mut rng, &segs);
    let newest = segs.last().expect("a segment").seq;
    if std::env::var("WAL_SEED").is_ok() {
        let seqs: Vec<u64> = segs.iter().map(|s| s.seq).collect();
        eprintln!("segments {seqs:?}, {mutation:?}");
        for sf in &segs {
            for (off, len, kind) in common::frames(&sf.bytes) {
                let h = &sf.bytes[off..off + 32];
                let word = |a: usize| u64::from_le_bytes(h[a..a + 8].try_into().expect("8"));
                let p = &sf.bytes[off + 32..off + len];
                let pw = |a: usize| {
                    p.get(a..a + 8)
                        .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
                };
                eprintln!(
                    "  {} @{off} kind {kind} index {} term {} payload {:?} {:?}",
                    sf.seq,
                    word(8),
                    word(16),
                    pw(0),
                    pw(8)
                );
            }
        }
    }
    apply_mutation(dir.path(), segs, &mutation);
    let wal = match Wal::open(dir.path(), config(recovery)) {
        Ok(wal) => wal,
        Err(e) => {
            assert!(!e.is_fatal(), "{mutation:?}: {e}");
            return false;
        }
    };
    let got = read_checked(&wal);
    let finals = &written.states.last().expect("a state").0;
    match (mutation.point(newest), recovery) {
        (Some(point), RecoveryMode::Strict) => {
            let k = last_before(&written, point);
            assert!(
                written.states[k..].iter().any(|(m, _)| m.same(&got))
                    || written.states.get(k + 1).is_some_and(|(next, _)| {
                        inside_batch(&written.states[k].0, next, &got)
                    }),
                "{mutation:?}: a strict open returned a state that was never acknowledged \
                 after step {k}: first {} with {} entries",
                got.first,
                got.entries.len()
            );
        }
        (Some(point), _) if append_only => {
            let k = last_before(&written, point);
            // Append-only: entry `i` is `finals.entries[i - 1]` wherever it is kept.
            let kept = written.states[k].0.entries.len();
            let skip = (got.first - 1) as usize;
            assert!(
                finals.entries[skip.min(finals.entries.len())..].starts_with(&got.entries),
                "{mutation:?}: repair kept entries that were never written"
            );
            assert!(
                kept == 0 || (got.first == 1 && got.entries.len() >= kept),
                "{mutation:?}: repair kept {}..{}, 1..{} were before the damage",
                got.first,
                got.first + got.entries.len() as u64,
                kept + 1
            );
        }
        _ => {}
    }
    use_after_recovery(dir.path(), wal, got, &mut rng);
    true
}

fn run(base: u64, seeds: u64, recovery: RecoveryMode, append_only: bool) {
    let opened = std::sync::atomic::AtomicU64::new(0);
    common::run_seeded(base, seeds, |seed| {
        if one_seed(seed, recovery, append_only) {
            opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let opened = opened.into_inner();
    println!("{recovery:?}: {opened} of {seeds} mutated logs opened, the rest refused");
    assert!(
        opened > 0,
        "no mutated log opened: the target tests nothing"
    );
}

#[test]
fn strict_recovery_of_mutated_segments() {
    run(0xF0_0000, SEEDS, RecoveryMode::Strict, false);
}

#[test]
fn truncating_recovery_of_mutated_segments() {
    run(0xF1_0000, SEEDS, RecoveryMode::TruncateAtCorruption, true);
}

#[test]
fn truncating_recovery_of_mutated_segments_with_every_step_kind() {
    run(
        0xF2_0000,
        SEEDS / 2,
        RecoveryMode::TruncateAtCorruption,
        false,
    );
}

// Regressions this target found, one test each (each failed before its fix).

/// A log of `n` small entries over several 8 KiB segments.
fn small_log(dir: &Path, n: u64) -> Wal {
    let wal = Wal::open(dir, config(RecoveryMode::Strict)).expect("open");
    for i in 1..=n {
        let e = Entry::new(i, 1 + i / 40, vec![i as u8; 200]);
        wal.append(vec![e]).and_then(|t| t.wait()).expect("append");
    }
    wal
}

/// `TruncateAtCorruption` moved the first index past entries missing from every segment
/// only in memory; the next rotation wrote that into its checkpoint, which disagreed with
/// the frames before it, so the next open refused the log (and a repair would have cut every
/// append acknowledged since). Now a compaction marker makes the move durable first, with the
/// right term for the entry before the new first one.
#[test]
fn repair_of_a_missing_first_segment_survives_rotation() {
    let dir = tempdir();
    drop(small_log(dir.path(), 100));
    let segs = image::segments(dir.path());
    assert!(segs.len() >= 3, "the log spans segments");
    std::fs::remove_file(&segs[0].path).expect("delete the oldest segment");
    let wal = Wal::open(dir.path(), config(RecoveryMode::TruncateAtCorruption)).expect("repair");
    let (first, last) = (wal.first_index(), wal.last_index());
    assert!(first > 1 && last == 100, "{first}..={last}");
    assert_eq!(
        wal.term(first - 1).expect("term before first"),
        1 + (first - 1) / 40
    );
    for i in 101..=200 {
        let e = Entry::new(i, 4, vec![1; 200]);
        wal.append(vec![e]).and_then(|t| t.wait()).expect("append");
    }
    drop(wal);
    let wal = Wal::open(dir.path(), config(RecoveryMode::Strict)).expect("strict reopen");
    assert_eq!((wal.first_index(), wal.last_index()), (first, 200));
}

/// A checkpoint whose first index lies after its next index (or is zero) was accepted and
/// gave a log with `first_index() > last_index() + 1`.
#[test]
fn checkpoint_with_an_impossible_range_is_refused() {
    for (first, next) in [(50, 10), (0, 10), (1, 0)] {
        let dir = tempdir();
        drop(small_log(dir.path(), 5));
        let mut segs = image::segments(dir.path());
        let b = &mut segs[0].bytes;
        b[HEADER_LEN + 8..HEADER_LEN + 16].copy_from_slice(&u64::to_le_bytes(next));
        let at = HEADER_LEN + FRAME_HEADER_LEN;
        b[at..at + 8].copy_from_slice(&u64::to_le_bytes(first));
        image::fix_frame_crc(b, HEADER_LEN);
        std::fs::write(&segs[0].path, &segs[0].bytes).expect("write");
        let err = Wal::open(dir.path(), config(RecoveryMode::Strict)).expect_err("refused");
        assert!(
            matches!(
                err,
                ringraft_wal::Error::Corruption {
                    kind: ringraft_wal::CorruptionKind::BadCheckpoint,
                    segment: 1,
                    ..
                }
            ),
            "first {first} next {next}: {err}"
        );
    }
}

/// Segment numbers near `u64::MAX` (a damaged or foreign file name with a matching header)
/// overflowed `seq + 1` when the log rotated or prepared its next segment.
#[test]
fn segment_numbers_near_u64_max_are_refused() {
    for below_max in [0, 1, 2] {
        let dir = tempdir();
        drop(small_log(dir.path(), 60));
        let segs = image::segments(dir.path());
        apply_mutation(dir.path(), segs, &Mutation::Renumber { below_max });
        let err = Wal::open(dir.path(), config(RecoveryMode::Strict)).expect_err("refused");
        assert!(
            matches!(
                err,
                ringraft_wal::Error::Corruption {
                    kind: ringraft_wal::CorruptionKind::BadHeader,
                    ..
                }
            ),
            "{err}"
        );
    }
}

/// Indexes near `u64::MAX`: `compact_prefix(u64::MAX - 1)` leaves an empty log whose next
/// index is `u64::MAX`; an entry there has no successor index, so the log refuses it instead
/// of overflowing, and a forged frame there is corruption.
#[test]
fn indexes_near_u64_max_do_not_overflow() {
    let dir = tempdir();
    let wal = small_log(dir.path(), 3);
    wal.compact_prefix(u64::MAX - 1)
        .expect("compact to the end");
    assert_eq!(
        (wal.first_index(), wal.last_index()),
        (u64::MAX, u64::MAX - 1)
    );
    let err = wal
        .append(vec![Entry::new(u64::MAX, 2, "x")])
        .expect_err("no index after u64::MAX");
    assert!(matches!(err, ringraft_wal::Error::IndexExhausted), "{err}");
    drop(wal);
    let wal = Wal::open(dir.path(), config(RecoveryMode::Strict)).expect("reopen");
    assert_eq!(wal.first_index(), u64::MAX);
    drop(wal);
    // Forge a checkpoint that starts at u64::MAX - 1 with entries after it.
    let dir = tempdir();
    drop(small_log(dir.path(), 3));
    let mut segs = image::segments(dir.path());
    let b = &mut segs[0].bytes;
    let offs: Vec<usize> = common::frames(b).iter().map(|f| f.0).collect();
    let start = u64::MAX - 1;
    b[offs[0] + 8..offs[0] + 16].copy_from_slice(&start.to_le_bytes());
    b[offs[0] + 32..offs[0] + 40].copy_from_slice(&start.to_le_bytes());
    image::fix_frame_crc(b, offs[0]);
    for (k, &off) in offs[1..].iter().enumerate() {
        let index = start.wrapping_add(k as u64);
        b[off + 8..off + 16].copy_from_slice(&index.to_le_bytes());
        image::fix_frame_crc(b, off);
    }
    std::fs::write(&segs[0].path, &segs[0].bytes).expect("write");
    let err = Wal::open(dir.path(), config(RecoveryMode::Strict)).expect_err("refused");
    assert!(
        matches!(
            err,
            ringraft_wal::Error::Corruption {
                kind: ringraft_wal::CorruptionKind::IndexGap,
                ..
            }
        ),
        "{err}"
    );
}
