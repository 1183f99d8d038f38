//! The recovery rule, case by case: a flipped bit in any record an fdatasync covered is
//! refused with the typed corruption error (the last write group included); the same test
//! turns red under the `cut instead of refuse` mutation; and the segment-boundary cases (seal
//! written but not synced, a prepared next segment never used, a next segment with a garbage
//! header or garbage first frames while the previous one is unsealed).
//!
//! The mutation check runs with `cargo test -p ringraft-wal --features mutations --test
//! recovery_rules`. Replay one seed with `WAL_SEED=<seed>`; more with `WAL_SEEDS=<n>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringraft_wal::layout::{segment_name, FRAME_HEADER_LEN, HEADER_LEN};
use ringraft_wal::sim::{CrashKeep, SimDisk};
use ringraft_wal::{Error, Wal};

/// Kind byte of a seal frame (docs/wal-format.md, "Kinds").
const KIND_SEAL: u8 = 7;

/// A fully acknowledged workload (every step waited on) on a fresh disk.
fn synced_log(seed: u64) -> (SimDisk, Model) {
    let disk = SimDisk::new();
    let wal = open(&disk.backend(), &sim_config()).unwrap();
    let mut rng = Rng::new(seed);
    let mut m = Model::new();
    let mut term = 1;
    for _ in 0..40 {
        let step = random_step(&mut rng, &mut m, 300, &mut term);
        apply(&wal, &m, &step).unwrap();
    }
    drop(wal);
    assert_eq!(disk.unsynced_bytes(), 0, "every step was waited on");
    (disk, m)
}

/// Flips one random bit in one random frame of one random segment, all of it synced, and
/// returns whether the open refused with the typed corruption error.
fn flip_is_refused(seed: u64, last_frame: bool) -> Result<(), String> {
    let (disk, _) = synced_log(seed);
    let (names, _) = disk.names();
    let mut rng = Rng::new(seed ^ 0xB17);
    let segs: Vec<_> = names.iter().filter(|n| n.ends_with(".wal")).collect();
    let name = if last_frame {
        segs[segs.len() - 1]
    } else {
        segs[rng.below(segs.len() as u64) as usize]
    };
    let file = disk.file(name).unwrap();
    let fs = frames(&file);
    if fs.is_empty() {
        return Ok(());
    }
    let (off, len, _) = if last_frame {
        fs[fs.len() - 1]
    } else {
        fs[rng.below(fs.len() as u64) as usize]
    };
    let at = off + rng.below(len as u64) as usize;
    let bit = rng.below(8) as u8;
    disk.flip_bit(name, at, bit);
    match open(&disk.backend(), &sim_config()) {
        Err(Error::Corruption { .. }) => Ok(()),
        Err(e) => Err(format!(
            "seed {seed}: {name} byte {at} bit {bit}: wrong error {e}"
        )),
        Ok(_) => Err(format!(
            "seed {seed}: {name} byte {at} bit {bit}: synced damage was cut silently"
        )),
    }
}

#[test]
fn flipped_bit_in_any_synced_frame_is_refused() {
    run_seeded(500, 150, |seed| flip_is_refused(seed, false).unwrap());
}

#[test]
fn flipped_bit_in_the_last_synced_write_group_is_refused() {
    // The last frame of the log: no later frame can prove its sync, so this is the rule
    // for the last write group (a frame with no unwritten sector is refused).
    run_seeded(900, 150, |seed| flip_is_refused(seed, true).unwrap());
}

/// Under the mutation, recovery cuts instead of refusing: the bit-flip property must fail.
#[cfg(feature = "mutations")]
#[test]
fn mutation_cut_instead_of_refuse_turns_the_bit_flip_tests_red() {
    ringraft_wal::mutation::set_cut_refused(true);
    let violated = seeds(900, 60)
        .into_iter()
        .filter(|&s| flip_is_refused(s, true).is_err() || flip_is_refused(s, false).is_err())
        .count();
    ringraft_wal::mutation::set_cut_refused(false);
    assert!(
        violated > 0,
        "the bit-flip tests did not notice the mutation"
    );
    eprintln!("mutation: {violated} of 60 seeds violate the bit-flip property");
}

/// Appends 60 one-record batches of 300 bytes (the 8 KiB segments rotate several times)
/// until the disk dies; returns the number of acknowledged records.
fn rotate_until_death(disk: &SimDisk) -> u64 {
    let Ok(wal) = open(&disk.backend(), &sim_config()) else {
        return 0;
    };
    let mut acked = 0;
    for i in 1..=60u64 {
        let e = ringraft_wal::Entry::new(i, 1, vec![i as u8 | 1; 300]);
        match wal.append(vec![e]).and_then(|t| t.wait()) {
            Ok(_) => acked = i,
            Err(_) => break,
        }
    }
    acked
}

/// Finds crash points whose durable image satisfies `pick`, checks that each opens and holds
/// every acknowledged record, and returns how many there were.
fn boundary_states(pick: impl Fn(&SimDisk) -> bool, damage: impl Fn(&SimDisk)) -> usize {
    let total = {
        let d = SimDisk::new();
        rotate_until_death(&d);
        d.ops()
    };
    let mut found = 0;
    for k in 0..total {
        let disk = SimDisk::new();
        disk.die_after_ops(k);
        let acked = rotate_until_death(&disk);
        for keep in [CrashKeep::Prefix(0), CrashKeep::PageSubset(k)] {
            let image = disk.crash_image(keep);
            if !pick(&image) {
                continue;
            }
            found += 1;
            damage(&image);
            let wal: Wal = open(&image.backend(), &sim_config())
                .unwrap_or_else(|e| panic!("op {k} {keep:?}: boundary state refused: {e}"));
            assert!(
                wal.last_index() >= acked,
                "op {k}: acknowledged record lost"
            );
        }
    }
    found
}

fn has_seal(file: &[u8]) -> bool {
    frames(file).iter().any(|f| f.2 == KIND_SEAL)
}

fn durable(image: &SimDisk, seq: u64) -> Option<Vec<u8>> {
    image.durable_file(&segment_name(seq))
}

#[test]
fn seal_written_but_not_synced() {
    // Live has the seal of segment 1, the power cut did not keep it.
    let mut n = 0;
    for k in 0..400u64 {
        let disk = SimDisk::new();
        disk.die_after_ops(k);
        let acked = rotate_until_death(&disk);
        let live = disk.file(&segment_name(1)).unwrap_or_default();
        let synced = durable(&disk, 1).unwrap_or_default();
        if !has_seal(&live) || has_seal(&synced) {
            continue;
        }
        n += 1;
        for keep in [CrashKeep::Prefix(0), CrashKeep::PageSubset(k)] {
            let wal: Wal = open(&disk.crash_image(keep).backend(), &sim_config())
                .unwrap_or_else(|e| panic!("op {k}: unsynced seal refused: {e}"));
            assert!(
                wal.last_index() >= acked,
                "op {k}: acknowledged record lost"
            );
        }
    }
    assert!(n > 0, "no crash point left an unsynced seal");
}

/// Segment 2 exists durably, segment 1 is unsealed, segment 2 holds nothing after its header.
fn prepared_not_used(image: &SimDisk) -> bool {
    let (Some(s1), Some(s2)) = (durable(image, 1), durable(image, 2)) else {
        return false;
    };
    !has_seal(&s1) && s2[HEADER_LEN..].iter().all(|&b| b == 0)
}

#[test]
fn prepared_next_segment_never_used() {
    let n = boundary_states(prepared_not_used, |_| {});
    assert!(n > 0, "no crash point left a prepared, unused segment");
}

#[test]
fn garbage_header_of_unused_next_segment_while_previous_unsealed() {
    let n = boundary_states(prepared_not_used, |image| {
        image.write_durable(&segment_name(2), 0, &[0xA5; 64]);
    });
    assert!(n > 0, "no crash point left a prepared, unused segment");
}

#[test]
fn garbage_first_frames_of_next_segment_while_previous_unsealed_is_refused() {
    // Frames are written into segment 2 only after segment 1's seal was synced: data there
    // with segment 1 unsealed means the seal (synced) was damaged, never a crash.
    let disk = SimDisk::new();
    assert_eq!(rotate_until_death(&disk), 60);
    let (names, _) = disk.names();
    let segs: Vec<_> = names.iter().filter(|n| n.ends_with(".wal")).collect();
    assert!(segs.len() >= 2, "the workload rotates");
    let prev = segs[segs.len() - 2];
    let file = disk.file(prev).unwrap();
    let seal = frames(&file)
        .into_iter()
        .find(|f| f.2 == KIND_SEAL)
        .expect("a sealed segment");
    disk.write_durable(prev, seal.0, &[0; FRAME_HEADER_LEN]);
    let last = segs[segs.len() - 1];
    disk.write_durable(last, HEADER_LEN, &[0x5A; 40]);
    match open(&disk.backend(), &sim_config()) {
        Err(Error::Corruption { .. }) => {}
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("a damaged seal with data after it was cut silently"),
    }
}
