//! Exhaustive linearizability check for tiny histories (a reference for testing the fast one).

use super::history::{History, Input, Operation, Output};

/// Largest history [`brute_force_linearizable`] accepts: it explores up to n! orders.
pub const BRUTE_OPS_MAX: usize = 9;

/// True when some order of the operations respects real time and the register semantics.
///
/// Operation `a` must precede `b` when `a` completed strictly before `b` was invoked. An unknown
/// put may be placed anywhere after its invocation or left out; an unknown get is ignored.
pub fn brute_force_linearizable(ops: &[Operation]) -> bool {
    History::by_key(ops).values().all(|key_ops| {
        let ops: Vec<&Operation> = key_ops
            .iter()
            .filter(|op| op.completion.is_some() || op.input != Input::Get)
            .collect();
        assert!(
            ops.len() <= BRUTE_OPS_MAX,
            "history too large for brute force"
        );
        let mut placed = vec![false; ops.len()];
        search(&ops, &mut placed, None)
    })
}

fn search(ops: &[&Operation], placed: &mut [bool], state: Option<u64>) -> bool {
    let all_known_placed = ops
        .iter()
        .zip(placed.iter())
        .all(|(op, p)| *p || op.completion.is_none());
    if all_known_placed {
        return true;
    }
    for i in 0..ops.len() {
        if placed[i] || !may_go_next(ops, placed, i) {
            continue;
        }
        let next = match (ops[i].input, ops[i].completion) {
            (Input::Put(v), _) => Some(Some(v)),
            (Input::Get, Some((_, Output::Get(read)))) => (read == state).then_some(state),
            _ => None,
        };
        if let Some(next) = next {
            placed[i] = true;
            let ok = search(ops, placed, next);
            placed[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

/// `i` may be linearized next if no unplaced operation completed strictly before `i` began.
fn may_go_next(ops: &[&Operation], placed: &[bool], i: usize) -> bool {
    ops.iter().enumerate().all(|(j, op)| {
        j == i || placed[j] || op.completion.is_none_or(|(ret, _)| ret >= ops[i].call)
    })
}
