//! CPU time of a process from `/proc/<pid>/stat`: user plus system time of all its threads.

use std::io;
use std::time::Duration;

/// CPU time (user + system, all threads) the process `pid` has used so far.
///
/// # Errors
/// The file cannot be read (the process is gone) or does not parse.
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: no utime/stime fields"),
        )
    })?;
    Ok(ticks_to_duration(ticks))
}

/// CPU time of this process.
///
/// # Errors
/// As [`cpu_time`].
pub fn own_cpu_time() -> io::Result<Duration> {
    cpu_time(std::process::id())
}

/// `utime + stime` in clock ticks from the text of a `/proc/<pid>/stat` file. The command
/// name (field 2) is in parentheses and may itself contain spaces and `)`, so fields are
/// counted from the last `)`: the state is field 3, utime field 14, stime field 15.
#[must_use]
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state (3), then fields 4..=13 (10 of them), then utime (14).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf only reads a configuration value; it has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux has reported 100 for decades; fall back to it if sysconf fails.
    let per_second = u64::try_from(per_second)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / per_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (ring raft) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 37 0 0 20 0 9 0 1000 100000 50 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(287));
    }

    #[test]
    fn refuses_a_truncated_line() {
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn reads_this_process() {
        let before = own_cpu_time().expect("/proc/self/stat is readable on Linux");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = own_cpu_time().expect("/proc/self/stat is readable on Linux");
        assert!(after >= before);
    }
}
