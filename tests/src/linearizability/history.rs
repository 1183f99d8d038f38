//! Client operations on a key-value register and their recorded history.

use std::collections::BTreeMap;
use std::fmt;

/// What a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Input {
    /// Read the key.
    Get,
    /// Write `value` to the key.
    Put(u64),
}

/// What the client was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Output {
    /// The value read (`None`: the key was never written).
    Get(Option<u64>),
    /// The write was acknowledged.
    Put,
}

/// One client operation on one key.
///
/// Invariant: `completion.0 >= call` when present, and the output kind matches the input kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued it (for reports only).
    pub client: u64,
    /// The register it acts on.
    pub key: u64,
    /// What was asked.
    pub input: Input,
    /// Invocation time (any monotonic unit, e.g. simulated nanoseconds).
    pub call: u64,
    /// Completion time and output, or `None` when the outcome is unknown (timed out, lost).
    pub completion: Option<(u64, Output)>,
}

impl Operation {
    /// Asserts the invariants of a recorded operation.
    pub fn assert_well_formed(&self) {
        if let Some((ret, out)) = self.completion {
            assert!(
                ret >= self.call,
                "operation completes before it is invoked: {self}"
            );
            let kinds_match = matches!(
                (self.input, out),
                (Input::Get, Output::Get(_)) | (Input::Put(_), Output::Put)
            );
            assert!(kinds_match, "output kind does not match input kind: {self}");
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = match self.input {
            Input::Get => format!("get(k{})", self.key),
            Input::Put(v) => format!("put(k{}, {v})", self.key),
        };
        match self.completion {
            None => write!(f, "c{} [{}, ?) {input} -> unknown", self.client, self.call),
            Some((ret, Output::Put)) => {
                write!(f, "c{} [{}, {ret}] {input} -> ok", self.client, self.call)
            }
            Some((ret, Output::Get(v))) => {
                let v = v.map_or_else(|| "none".to_string(), |v| v.to_string());
                write!(f, "c{} [{}, {ret}] {input} -> {v}", self.client, self.call)
            }
        }
    }
}

/// A recorded history: operations in the order they were invoked.
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Operation>,
    /// Operations known to have had no effect (refused before they could take effect); they
    /// are left out of [`History::operations`].
    discarded: Vec<bool>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Records an invocation; returns its handle for [`History::complete`].
    pub fn invoke(&mut self, client: u64, key: u64, input: Input, now: u64) -> usize {
        self.ops.push(Operation {
            client,
            key,
            input,
            call: now,
            completion: None,
        });
        self.discarded.push(false);
        self.ops.len() - 1
    }

    /// Records the completion of the operation `handle`. Operations never completed keep an
    /// unknown outcome.
    pub fn complete(&mut self, handle: usize, output: Output, now: u64) {
        let op = &mut self.ops[handle];
        assert!(op.completion.is_none(), "operation completed twice: {op}");
        op.completion = Some((now, output));
        op.assert_well_formed();
    }

    /// Records that the operation `handle` certainly had no effect (for example a proposal
    /// the core refused): it is left out of the history.
    pub fn discard(&mut self, handle: usize) {
        assert!(
            self.ops[handle].completion.is_none(),
            "a completed operation cannot be discarded: {}",
            self.ops[handle]
        );
        self.discarded[handle] = true;
    }

    /// True while the operation has neither completed nor been discarded.
    pub fn is_open(&self, handle: usize) -> bool {
        self.ops[handle].completion.is_none() && !self.discarded[handle]
    }

    /// The operation behind `handle`.
    pub fn operation(&self, handle: usize) -> &Operation {
        &self.ops[handle]
    }

    /// The operations that count (not discarded), in invocation order.
    pub fn operations(&self) -> Vec<Operation> {
        self.ops
            .iter()
            .zip(&self.discarded)
            .filter(|(_, d)| !**d)
            .map(|(op, _)| op.clone())
            .collect()
    }

    /// Number of operations recorded (discarded ones included).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations grouped by key, each group in invocation order.
    pub fn by_key(ops: &[Operation]) -> BTreeMap<u64, Vec<Operation>> {
        let mut keys: BTreeMap<u64, Vec<Operation>> = BTreeMap::new();
        for op in ops {
            keys.entry(op.key).or_default().push(op.clone());
        }
        keys
    }
}
