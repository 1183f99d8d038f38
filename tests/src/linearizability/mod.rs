//! Linearizability checking of key-value register histories.
//!
//! A history is a set of client operations (get or put on one key), each with the time it was
//! invoked and, when the client learned the result, the time it completed and its output. Keys
//! are independent registers, so a history is linearizable if and only if each key's
//! sub-history is (P-compositionality, Herlihy & Wing 1990); [`check_history`] checks key by
//! key.
//!
//! Per key, [`checker`] runs Wing & Gong's search with Lowe's just-in-time linearization and
//! memoization of (linearized set, register value), the algorithm of Porcupine and Knossos.
//! Operations with an unknown outcome are handled as Knossos does: an unknown put may take
//! effect at any time after its invocation or never (its completion is moved to the end of
//! time), and an unknown get constrains nothing and is dropped.
//!
//! [`brute`] is an exhaustive checker for tiny histories, used to test the fast one.

pub mod brute;
pub mod checker;
pub mod history;

pub use checker::{check_history, check_key, CheckResult, Violation};
pub use history::{History, Input, Operation, Output};
