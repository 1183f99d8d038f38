//! What a fault run must show: a linearizable history, no acknowledged write lost, replicas
//! that agree.

use std::collections::BTreeMap;
use std::path::Path;

use crate::linearizability::{check_history, CheckResult, History, Input, Operation, Output};

/// Counts of a recorded history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Writes acknowledged.
    pub writes_acked: u64,
    /// Writes with an unknown outcome.
    pub writes_unknown: u64,
    /// Reads that returned a value.
    pub reads_ok: u64,
}

/// Counts the operations of `history`.
pub fn counts(history: &History) -> Counts {
    let mut c = Counts::default();
    for op in history.operations() {
        match (op.input, op.completion) {
            (Input::Put(_), Some(_)) => c.writes_acked += 1,
            (Input::Put(_), None) => c.writes_unknown += 1,
            (Input::Get, Some(_)) => c.reads_ok += 1,
            (Input::Get, None) => {}
        }
    }
    c
}

/// The history has a linearization (unknown writes may take effect or not).
///
/// # Errors
/// The checker's report of the first key without one, or of an undecided search.
pub fn linearizable(history: &History) -> Result<(), String> {
    match check_history(&history.operations()) {
        CheckResult::Linearizable => Ok(()),
        CheckResult::NotLinearizable(v) => Err(v.to_string()),
        CheckResult::Undecided { key } => Err(format!("search undecided for key {key}")),
    }
}

/// No acknowledged write is lost: for each key, the value read at the end (after the faults
/// healed) comes from a write that was not overwritten by an acknowledged write completed
/// before it was even invoked. In particular a key with an acknowledged write is never read
/// back empty. (The linearizability check of a history that includes the final reads implies
/// this; this check names the lost write.)
///
/// # Errors
/// Each lost write, with the value found instead.
pub fn no_acked_write_lost(
    history: &History,
    final_values: &BTreeMap<u64, Option<u64>>,
) -> Result<(), String> {
    let ops = history.operations();
    let mut lost = Vec::new();
    for (key, key_ops) in History::by_key(&ops) {
        let writes: Vec<&Operation> = key_ops
            .iter()
            .filter(|o| matches!(o.input, Input::Put(_)))
            .collect();
        let Some(last_acked) = writes
            .iter()
            .filter_map(|o| o.completion.map(|(t, _)| (t, *o)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, o)| o)
        else {
            continue;
        };
        let Some(found) = final_values.get(&key) else {
            lost.push(format!("key {key}: not read at the end"));
            continue;
        };
        let source = found.and_then(|v| writes.iter().find(|o| o.input == Input::Put(v)));
        let overwritten = match source {
            None => true,
            // The write read at the end completed before the last acknowledged write was
            // invoked: that acknowledged write is gone.
            Some(w) => w.completion.is_some_and(|(t, _)| t < last_acked.call),
        };
        if overwritten {
            lost.push(format!(
                "key {key}: acknowledged {last_acked} lost, the end reads {found:?}"
            ));
        }
    }
    if lost.is_empty() {
        Ok(())
    } else {
        Err(lost.join("\n"))
    }
}

/// Final reads of every key recorded in `history`, as a map for [`no_acked_write_lost`].
pub fn final_values(reads: &[(u64, Output)]) -> BTreeMap<u64, Option<u64>> {
    reads
        .iter()
        .filter_map(|&(k, out)| match out {
            Output::Get(v) => Some((k, v)),
            Output::Put => None,
        })
        .collect()
}

/// What the logs of stopped nodes hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSummary {
    /// Per node: first and last index of its WAL and its durable commit index.
    pub nodes: Vec<(u64, u64, u64)>,
    /// Entries compared across every pair of nodes.
    pub compared: u64,
}

/// Replicas agree: opens a copy of each stopped node's WAL (`<data_dir>/wal`) and checks that
/// every index that two logs both hold and both count as committed carries the same term and
/// payload (State Machine Safety: a follower may still hold a stale entry of an old term at an
/// index the leader committed without it, but never once it counts that index committed
/// itself), and that every node holds or has compacted up to `committed_min`.
///
/// # Errors
/// The first disagreement, or a log that does not open.
pub fn logs_agree(data_dirs: &[&Path], committed_min: u64) -> Result<LogSummary, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut logs = Vec::new();
    for (i, dir) in data_dirs.iter().enumerate() {
        let copy = scratch.path().join(i.to_string());
        copy_dir(&dir.join("wal"), &copy).map_err(|e| format!("copy WAL of node {i}: {e}"))?;
        let wal = ringraft_wal::Wal::open(&copy, ringraft_wal::Config::default())
            .map_err(|e| format!("WAL of node {i} does not open: {e}"))?;
        logs.push(wal);
    }
    let mut summary = LogSummary {
        nodes: Vec::new(),
        compared: 0,
    };
    for (i, w) in logs.iter().enumerate() {
        let commit = w.hard_state().map_or(0, |h| h.commit);
        if w.last_index() < committed_min && w.first_index() <= committed_min {
            return Err(format!(
                "node {i} holds up to {} but {committed_min} was committed",
                w.last_index()
            ));
        }
        summary
            .nodes
            .push((w.first_index(), w.last_index(), commit));
    }
    for a in 0..logs.len() {
        for b in a + 1..logs.len() {
            let (la, lb) = (&logs[a], &logs[b]);
            let from = la.first_index().max(lb.first_index());
            let to = la
                .last_index()
                .min(lb.last_index())
                .min(summary.nodes[a].2.min(summary.nodes[b].2));
            for i in from..=to {
                let (ea, eb) = match (la.entry(i), lb.entry(i)) {
                    (Ok(ea), Ok(eb)) => (ea, eb),
                    (ea, eb) => return Err(format!("entry {i}: {ea:?} / {eb:?}")),
                };
                if (ea.term, &ea.payload) != (eb.term, &eb.payload) {
                    return Err(format!(
                        "nodes {a} and {b} differ at committed index {i}: term {} vs {}",
                        ea.term, eb.term
                    ));
                }
                summary.compared += 1;
            }
        }
    }
    Ok(summary)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (key, input, invocation, completion).
    type Op = (u64, Input, u64, Option<(u64, Output)>);

    fn history(ops: &[Op]) -> History {
        let mut h = History::new();
        for &(key, input, call, done) in ops {
            let id = h.invoke(1, key, input, call);
            if let Some((t, out)) = done {
                h.complete(id, out, t);
            }
        }
        h
    }

    #[test]
    fn a_lost_acknowledged_write_is_named() {
        let h = history(&[
            (1, Input::Put(10), 0, Some((5, Output::Put))),
            (1, Input::Put(11), 10, Some((15, Output::Put))),
            (1, Input::Put(12), 20, None),
        ]);
        let ok = |v| final_values(&[(1, Output::Get(Some(v)))]);
        assert!(no_acked_write_lost(&h, &ok(11)).is_ok());
        assert!(
            no_acked_write_lost(&h, &ok(12)).is_ok(),
            "an unknown write may land"
        );
        let err = no_acked_write_lost(&h, &ok(10)).expect_err("11 was lost");
        assert!(err.contains("put(k1, 11)"), "{err}");
        assert!(no_acked_write_lost(&h, &final_values(&[(1, Output::Get(None))])).is_err());
        assert!(no_acked_write_lost(&h, &BTreeMap::new()).is_err());
        assert_eq!(
            counts(&h),
            Counts {
                writes_acked: 2,
                writes_unknown: 1,
                reads_ok: 0
            }
        );
    }

    #[test]
    fn a_stale_read_is_not_linearizable() {
        let stale = history(&[
            (1, Input::Put(10), 0, Some((5, Output::Put))),
            (1, Input::Put(11), 10, Some((15, Output::Put))),
            (1, Input::Get, 20, Some((25, Output::Get(Some(10))))),
        ]);
        assert!(linearizable(&stale).is_err());
        let fine = history(&[
            (1, Input::Put(10), 0, Some((5, Output::Put))),
            (1, Input::Put(11), 10, None),
            (1, Input::Get, 20, Some((25, Output::Get(Some(10))))),
        ]);
        assert!(linearizable(&fine).is_ok());
    }

    #[test]
    fn logs_that_differ_in_a_committed_entry_are_caught() {
        use ringraft_wal::{Config, Entry, HardState, Wal};
        let dirs: Vec<tempfile::TempDir> = (0..2)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        for (n, d) in dirs.iter().enumerate() {
            let wal = Wal::open(d.path().join("wal"), Config::small()).expect("open");
            let second = if n == 0 { "b" } else { "B" };
            let entries = vec![Entry::new(1, 1, "a"), Entry::new(2, 1, second)];
            wal.append(entries).and_then(|t| t.wait()).expect("append");
            let hs = HardState {
                term: 1,
                vote: None,
                commit: 2,
            };
            wal.set_hard_state(hs)
                .and_then(|t| t.wait())
                .expect("hard state");
        }
        let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
        let err = logs_agree(&paths, 1).expect_err("index 2 differs and both committed it");
        assert!(err.contains("committed index 2"), "{err}");
        let err = logs_agree(&paths, 3).expect_err("nobody holds 3");
        assert!(err.contains("3 was committed"), "{err}");
    }
}
