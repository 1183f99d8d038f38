//! What the machine offers the fault tests.

use std::path::{Path, PathBuf};

/// Prints why a fault run is skipped, in one line the CI log shows.
pub fn skip(test: &str, why: &str) {
    println!("SKIPPED {test}: {why}");
}

/// The `ringraft` binary: `$RINGRAFT_BIN`, else `ringraft` in the running program's directory
/// (a binary such as `soak`) or next to its `deps/` directory (a test; where `cargo test
/// --workspace` builds it), else `None`.
pub fn ringraft_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RINGRAFT_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let found = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("ringraft"))
        .find(|p| p.is_file());
    found
}

/// True when running as root (needed to mount a small tmpfs for the full-disk fault).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The libfaketime preload library, if installed (Debian `libfaketime`).
pub fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Environment that runs a process with its clocks (wall and monotonic) going `rate` times
/// as fast as real time, through libfaketime's preload: the process keeps its own pid, so
/// signals reach it directly.
pub fn clock_rate_env(lib: &Path, rate: f64) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME".into(), format!("+0 x{rate}")),
        ("FAKETIME_DONT_RESET".into(), "1".into()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
    ]
}

/// A tmpfs of `bytes` mounted at `dir` (root only); unmounted on drop.
#[derive(Debug)]
pub struct TmpfsMount {
    dir: PathBuf,
}

impl TmpfsMount {
    /// Mounts it.
    ///
    /// # Errors
    /// The mount command's output when it fails (not root, no tmpfs).
    pub fn mount(dir: &Path, bytes: u64) -> Result<TmpfsMount, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(TmpfsMount {
            dir: dir.to_path_buf(),
        })
    }

    /// Where it is mounted.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Changes its size (`mount -o remount,size=`): smaller than what is used fails.
    ///
    /// # Errors
    /// The mount command's output when it fails.
    pub fn resize(&self, bytes: u64) -> Result<(), String> {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(())
    }

    /// Bytes in use (statvfs: blocks less free blocks).
    ///
    /// # Errors
    /// The OS error of statvfs.
    pub fn used_bytes(&self) -> Result<u64, String> {
        use std::os::unix::ffi::OsStrExt;
        let path =
            std::ffi::CString::new(self.dir.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: `statvfs` is plain old data, so all-zero bytes are a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is a NUL-terminated string and `st` a valid, writable statvfs that
        // outlive the call.
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok((st.f_blocks - st.f_bfree) * st.f_frsize)
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// Lowest port [`free_port`] hands out: above the well-known and most registered services.
const PORT_MIN: u16 = 15_000;
/// Ports tried per call before giving up (a machine with that many taken is broken).
const PORT_TRIES_MAX: u32 = 10_000;

/// The kernel's ephemeral port range (`ip_local_port_range`), Linux's default if unreadable.
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// A free loopback port for a child to listen on, below the ephemeral range: a port from
/// that range, released for the child to bind, can meanwhile be taken by any outbound
/// connection or `bind(0)` (the proxies, the clients), and a node then fails to start or to
/// restart with "address in use" (seen in a soak run). Ports are handed out once per process,
/// from a start that depends on the pid so that concurrent test processes rarely meet; each
/// is checked by binding it.
///
/// # Panics
/// If no port in the range can be bound.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let (lo, _) = ephemeral_ports();
    if lo < PORT_MIN + 1000 {
        // No room below the ephemeral range: take one from it (the race above returns).
        return std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind a loopback port");
    }
    let span = u32::from(lo - PORT_MIN);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..PORT_TRIES_MAX {
        let n = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = PORT_MIN + u16::try_from(n).expect("span fits u16");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {PORT_MIN}..{lo}");
}

/// Whether `binary serve` takes the flags [`super::cluster`] passes (`--raft-addr`,
/// `--client-addr`, `--peer`, `--read-mode`): a binary with another command line is skipped,
/// not failed.
pub fn serve_flags_supported(binary: &Path) -> bool {
    let Ok(out) = std::process::Command::new(binary)
        .args(["serve", "--help"])
        .output()
    else {
        return false;
    };
    let help = String::from_utf8_lossy(&out.stdout);
    [
        "--id",
        "--data-dir",
        "--raft-addr",
        "--client-addr",
        "--peer",
        "--read-mode",
    ]
    .iter()
    .all(|f| help.contains(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_outside_the_ephemeral_range() {
        let (lo, _) = ephemeral_ports();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        assert!(
            ports.iter().all(|&p| (PORT_MIN..lo).contains(&p)),
            "{ports:?}"
        );
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    }
}
