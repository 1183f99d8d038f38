//! The machine a report was measured on: cores, kernel, CPU model, and the disk under the data
//! directories.

use std::path::Path;

use serde::Serialize;

/// What every report states about the machine.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Online CPUs (`nproc`).
    pub cpus: usize,
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// The file system holding the data directories: `ext4 on /dev/vda (mounted at /work)`.
    pub disk: String,
}

impl Machine {
    /// Reads the machine's description; `data_dir` is where the servers keep their logs.
    /// Fields that cannot be read say `unknown` rather than failing the run.
    #[must_use]
    pub fn describe(data_dir: &Path) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, m)| m.trim().to_string());
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
        let data_dir = data_dir
            .canonicalize()
            .unwrap_or_else(|_| data_dir.to_path_buf());
        let disk = mount_of(&read("/proc/mounts"), &data_dir).unwrap_or_else(|| "unknown".into());
        Self {
            cpus,
            cpu_model,
            kernel: if kernel.is_empty() {
                "unknown".into()
            } else {
                kernel
            },
            disk,
        }
    }
}

/// The mount (from the text of `/proc/mounts`) with the longest mount point that contains
/// `path`, described as `<fstype> on <device> (mounted at <point>)`.
#[must_use]
pub fn mount_of(mounts: &str, path: &Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_ascii_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter(|(_, point, _)| path.starts_with(point))
        .max_by_key(|(_, point, _)| point.len())
        .map(|(dev, point, fs)| format!("{fs} on {dev} (mounted at {point})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_longest_containing_mount() {
        let mounts = "/dev/root / ext4 rw 0 0\n\
                      tmpfs /tmp tmpfs rw 0 0\n\
                      /dev/vda /work ext4 rw,relatime 0 0\n";
        let m = mount_of(mounts, Path::new("/work/tgt/x")).expect("a mount");
        assert_eq!(m, "ext4 on /dev/vda (mounted at /work)");
        let m = mount_of(mounts, Path::new("/tmp/a")).expect("a mount");
        assert_eq!(m, "tmpfs on tmpfs (mounted at /tmp)");
        // "/workspace" is not under "/work": whole components only.
        let m = mount_of(mounts, Path::new("/workspace")).expect("a mount");
        assert_eq!(m, "ext4 on /dev/root (mounted at /)");
    }
}
