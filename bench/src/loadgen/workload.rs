//! What the clients do: how many, how deep they pipeline, what they write and read, for how
//! long.

use std::time::Duration;

use serde::Serialize;

/// Most client connections one run opens (each is a task and a socket).
pub const CLIENTS_MAX: usize = 10_000;
/// Deepest pipeline per client: requests written before the first reply is awaited.
pub const PIPELINE_MAX: usize = 1_024;
/// Largest value, bytes: 1 MiB, under every target's limit (ringraft and Redis take more; etcd
/// takes 1.5 MiB per request by default).
pub const VALUE_BYTES_MAX: usize = 1 << 20;
/// Longest measured phase or warmup: one hour (the bench is for short runs).
pub const PHASE_MAX: Duration = Duration::from_secs(3_600);

/// One workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Client connections, each a closed loop.
    pub clients: usize,
    /// Requests each client keeps in flight.
    pub pipeline: usize,
    /// Bytes of each written value.
    pub value_bytes: usize,
    /// Percentage of operations that are reads (GET of a key the same client wrote and saw
    /// acknowledged); the rest are writes (SET of a new key with a new value).
    pub read_percent: u8,
    /// Time the clients run before measuring starts.
    #[serde(serialize_with = "as_secs")]
    pub warmup: Duration,
    /// Length of the measured phase.
    #[serde(serialize_with = "as_secs")]
    pub duration: Duration,
    /// Stop measuring after this many operations, if sooner than `duration`.
    pub ops_max: Option<u64>,
}

impl Default for Workload {
    /// The README's main run: 256 clients, no pipelining, 256 B values, writes only, 2 s of
    /// warmup and 20 s measured.
    fn default() -> Self {
        Self {
            clients: 256,
            pipeline: 1,
            value_bytes: 256,
            read_percent: 0,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(20),
            ops_max: None,
        }
    }
}

/// A workload parameter out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// A count or size outside its range.
    #[error("{what} must be between {min} and {max}, got {got}")]
    OutOfRange {
        /// The parameter.
        what: &'static str,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// Given.
        got: u64,
    },
    /// A phase longer than [`PHASE_MAX`] or a zero measured phase.
    #[error("{what} must be more than 0 s and at most {max_s} s, got {got:?}")]
    Phase {
        /// `duration` or `warmup`.
        what: &'static str,
        /// [`PHASE_MAX`] in seconds.
        max_s: u64,
        /// Given.
        got: Duration,
    },
}

impl Workload {
    /// Checks every parameter against its limit.
    ///
    /// # Errors
    /// The first parameter out of range.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let range = |what, min: usize, max: usize, got: usize| {
            if (min..=max).contains(&got) {
                Ok(())
            } else {
                Err(WorkloadError::OutOfRange {
                    what,
                    min: min as u64,
                    max: max as u64,
                    got: got as u64,
                })
            }
        };
        range("clients", 1, CLIENTS_MAX, self.clients)?;
        range("pipeline", 1, PIPELINE_MAX, self.pipeline)?;
        range("value bytes", 1, VALUE_BYTES_MAX, self.value_bytes)?;
        range("read percent", 0, 100, usize::from(self.read_percent))?;
        if let Some(ops) = self.ops_max {
            if ops == 0 {
                return Err(WorkloadError::OutOfRange {
                    what: "ops",
                    min: 1,
                    max: u64::MAX,
                    got: 0,
                });
            }
        }
        let max_s = PHASE_MAX.as_secs();
        if self.duration.is_zero() || self.duration > PHASE_MAX {
            return Err(WorkloadError::Phase {
                what: "duration",
                max_s,
                got: self.duration,
            });
        }
        if self.warmup > PHASE_MAX {
            return Err(WorkloadError::Phase {
                what: "warmup",
                max_s,
                got: self.warmup,
            });
        }
        Ok(())
    }
}

/// Whether the servers fsync before they acknowledge a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Every acknowledged write is on disk (ringraft fdatasync, etcd's default, Redis
    /// `appendfsync always`).
    Fsync,
    /// No fsync before acknowledging (ringraft no-sync, etcd `--unsafe-no-fsync`, Redis
    /// `appendfsync no`): for experiments only.
    None,
}

impl Durability {
    /// How the report names it.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync on every acknowledged write",
            Durability::None => "no fsync (experiments only: acknowledged writes can be lost)",
        }
    }
}

pub(crate) fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Parses a duration as people write it: `20s`, `1.5s`, `500ms`, or bare seconds `20`.
///
/// # Errors
/// Anything else, or a negative or non-finite number.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (write 20s, 1.5s or 500ms)"))?;
    Duration::try_from_secs_f64(v * scale).map_err(|_| format!("`{s}` is not a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Workload::default().validate(), Ok(()));
    }

    #[test]
    fn limits_are_enforced() {
        let bad = |w: Workload| w.validate().is_err();
        let d = Workload::default;
        assert!(bad(Workload { clients: 0, ..d() }));
        assert!(bad(Workload {
            clients: CLIENTS_MAX + 1,
            ..d()
        }));
        assert!(bad(Workload { pipeline: 0, ..d() }));
        assert!(bad(Workload {
            value_bytes: VALUE_BYTES_MAX + 1,
            ..d()
        }));
        assert!(bad(Workload {
            read_percent: 101,
            ..d()
        }));
        assert!(bad(Workload {
            duration: Duration::ZERO,
            ..d()
        }));
        assert!(bad(Workload {
            ops_max: Some(0),
            ..d()
        }));
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("NaNs").is_err());
    }
}
