//! Just-in-time linearization search (Wing & Gong, Lowe) with memoization, per key.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use super::history::{History, Input, Operation, Output};

/// Search steps allowed per key before the checker gives up with [`CheckResult::Undecided`].
/// A step is one attempt to linearize or one backtrack; histories of a few hundred operations
/// per key need a few thousand, so this bound only stops a pathological search.
pub const SEARCH_STEPS_MAX: u64 = 50_000_000;

/// A key whose sub-history has no linearization.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The key.
    pub key: u64,
    /// The key's operations with a known outcome or an unknown put, in invocation order.
    pub operations: Vec<Operation>,
    /// The longest sequence of operations the search managed to linearize, in order.
    pub longest_prefix: Vec<Operation>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history of key {} is not linearizable", self.key)?;
        writeln!(f, "operations ({}):", self.operations.len())?;
        for op in &self.operations {
            writeln!(f, "  {op}")?;
        }
        writeln!(
            f,
            "longest linearizable prefix found ({} ops):",
            self.longest_prefix.len()
        )?;
        for op in &self.longest_prefix {
            writeln!(f, "  {op}")?;
        }
        let next_stuck: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|op| op.completion.is_some() && !self.longest_prefix.contains(op))
            .take(5)
            .collect();
        writeln!(f, "first operations that could not be placed after it:")?;
        for op in next_stuck {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// Verdict of a linearizability check.
#[derive(Clone, Debug)]
pub enum CheckResult {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// Some key's sub-history has none.
    NotLinearizable(Box<Violation>),
    /// The search for `key` exceeded its step budget.
    Undecided {
        /// The key whose search was abandoned.
        key: u64,
    },
}

impl CheckResult {
    /// True for [`CheckResult::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

/// Checks a whole history, key by key (P-compositionality); returns the first failure.
pub fn check_history(ops: &[Operation]) -> CheckResult {
    for (key, key_ops) in History::by_key(ops) {
        match check_key(key, &key_ops, SEARCH_STEPS_MAX) {
            CheckResult::Linearizable => {}
            other => return other,
        }
    }
    CheckResult::Linearizable
}

/// The register model: applies `input` with the recorded `output` (None for an unknown put) to
/// `state`, returning the next state if the output is possible.
fn step(state: Option<u64>, input: Input, output: Option<Output>) -> Option<Option<u64>> {
    match (input, output) {
        (Input::Put(v), _) => Some(Some(v)),
        (Input::Get, Some(Output::Get(read))) => (read == state).then_some(state),
        (Input::Get, _) => unreachable!("unknown or mismatched gets are filtered out"),
    }
}

/// Marker for a call event versus a return event.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    // Calls sort before returns at equal times: an operation that returns at `t` and one
    // invoked at `t` are treated as concurrent, the reading that accepts the most histories.
    Call,
    Return,
}

/// A node of the doubly linked event list (index 0 is the head sentinel).
#[derive(Clone, Copy)]
struct Event {
    kind: Kind,
    op: usize,
    /// For a call: the list index of its return.
    partner: usize,
    prev: usize,
    next: usize,
}

/// Sentinel index meaning "no node".
const NIL: usize = usize::MAX;
/// Index of the head sentinel.
const HEAD: usize = 0;

/// The event list with dancing-links removal and reinsertion.
struct EventList {
    events: Vec<Event>,
}

impl EventList {
    /// Builds the time-ordered event list of `ops`, each returning at its deadline.
    fn new(ops: &[Operation], deadlines: &[u64]) -> Self {
        let mut order: Vec<(u64, Kind, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, Kind::Call, i));
            order.push((deadlines[i], Kind::Return, i));
        }
        order.sort();
        let mut events = Vec::with_capacity(order.len() + 1);
        events.push(Event {
            kind: Kind::Call,
            op: usize::MAX,
            partner: NIL,
            prev: NIL,
            next: NIL,
        });
        let mut return_at = vec![NIL; ops.len()];
        for (_, kind, op) in &order {
            let idx = events.len();
            events[idx - 1].next = idx;
            events.push(Event {
                kind: *kind,
                op: *op,
                partner: NIL,
                prev: idx - 1,
                next: NIL,
            });
            if *kind == Kind::Return {
                return_at[*op] = idx;
            }
        }
        for e in events.iter_mut().skip(1) {
            if e.kind == Kind::Call {
                e.partner = return_at[e.op];
            }
        }
        EventList { events }
    }

    fn unlink(&mut self, i: usize) {
        let Event { prev, next, .. } = self.events[i];
        self.events[prev].next = next;
        if next != NIL {
            self.events[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let Event { prev, next, .. } = self.events[i];
        self.events[prev].next = i;
        if next != NIL {
            self.events[next].prev = i;
        }
    }

    /// Removes a call and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.events[call].partner);
    }

    /// Undoes [`EventList::lift`] (must be called in reverse order of lifts).
    fn unlift(&mut self, call: usize) {
        self.relink(self.events[call].partner);
        self.relink(call);
    }
}

/// Set of linearized operations, as a bitset.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The operations of `key` that take part in the search, with unknown outcomes bounded.
///
/// - An unknown get constrains nothing: dropped.
/// - An unknown put whose value no get returned is dropped: taking effect can only make
///   later reads harder to explain, never easier, so leaving it out keeps the verdict.
/// - An unknown put whose value was written by no other put and returned by some gets must
///   take effect before each of those gets, hence before the earliest of their completions:
///   that becomes its completion time (its output stays unknown; the model treats both alike).
///
/// Without the last two rules every unknown put is concurrent with the rest of the history
/// and the search space grows with 2^(unknown puts).
///
/// Returns the operations and the time each must have taken effect by.
fn prepare(key: u64, key_ops: &[Operation]) -> (Vec<Operation>, Vec<u64>) {
    let mut writers: BTreeMap<u64, usize> = BTreeMap::new();
    let mut first_read_done: BTreeMap<u64, u64> = BTreeMap::new();
    for op in key_ops.iter().filter(|op| op.key == key) {
        match (op.input, op.completion) {
            (Input::Put(v), _) => *writers.entry(v).or_default() += 1,
            (Input::Get, Some((ret, Output::Get(Some(v))))) => {
                let t = first_read_done.entry(v).or_insert(ret);
                *t = (*t).min(ret);
            }
            _ => {}
        }
    }
    key_ops
        .iter()
        .filter(|op| op.key == key)
        .filter_map(|op| match (op.input, op.completion) {
            (Input::Get, None) => None,
            (Input::Put(v), None) => {
                let observed = first_read_done.get(&v).copied()?;
                let deadline = if writers.get(&v) == Some(&1) {
                    observed.max(op.call)
                } else {
                    u64::MAX
                };
                Some((op.clone(), deadline))
            }
            (_, Some((ret, _))) => Some((op.clone(), ret)),
        })
        .unzip()
}

/// Checks the sub-history of one key within `steps_max` search steps.
pub fn check_key(key: u64, key_ops: &[Operation], steps_max: u64) -> CheckResult {
    let (ops, deadlines) = prepare(key, key_ops);
    for op in &ops {
        op.assert_well_formed();
    }
    let mut list = EventList::new(&ops, &deadlines);
    let mut known_left = ops.iter().filter(|op| op.completion.is_some()).count();
    // Memo of (linearized set, register value) already explored. Only membership is queried,
    // so the hasher's seed cannot change the outcome or the search order.
    let mut seen: HashSet<(Bits, Option<u64>)> = HashSet::new();
    let mut linearized = Bits::new(ops.len());
    let mut state: Option<u64> = None;
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut cursor = list.events[HEAD].next;
    let mut steps: u64 = 0;
    // Done once every operation with a known outcome is placed: the unknown puts left over
    // are taken to have had no effect (or an effect after the end of the history).
    while known_left > 0 {
        steps += 1;
        if steps > steps_max {
            return CheckResult::Undecided { key };
        }
        assert!(
            cursor != NIL,
            "a return event always follows every remaining call"
        );
        let event = list.events[cursor];
        if event.kind == Kind::Call {
            let op = &ops[event.op];
            if let Some(next_state) = step(state, op.input, op.completion.map(|(_, out)| out)) {
                let mut next_bits = linearized.clone();
                next_bits.set(event.op);
                if seen.insert((next_bits.clone(), next_state)) {
                    stack.push((cursor, state));
                    state = next_state;
                    linearized = next_bits;
                    if op.completion.is_some() {
                        known_left -= 1;
                    }
                    list.lift(cursor);
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|(c, _)| list.events[*c].op).collect();
                    }
                    cursor = list.events[HEAD].next;
                    continue;
                }
            }
            cursor = event.next;
        } else {
            // A return whose operation is not linearized yet: everything before it was tried.
            let Some((call, prev_state)) = stack.pop() else {
                return CheckResult::NotLinearizable(Box::new(Violation {
                    key,
                    longest_prefix: longest.iter().map(|i| ops[*i].clone()).collect(),
                    operations: ops,
                }));
            };
            let op = list.events[call].op;
            if ops[op].completion.is_some() {
                known_left += 1;
            }
            linearized.clear(op);
            state = prev_state;
            list.unlift(call);
            cursor = list.events[call].next;
        }
    }
    CheckResult::Linearizable
}
