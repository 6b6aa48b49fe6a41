//! Early API filesystems and the ordered unmount at shutdown.

use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

/// One early mount.
struct EarlyMount {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MountFlags,
    data: Option<&'static std::ffi::CStr>,
}

const EARLY: &[EarlyMount] = &[
    EarlyMount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: MountFlags::NOSUID
            .union(MountFlags::NODEV)
            .union(MountFlags::NOEXEC),
        data: None,
    },
    EarlyMount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: MountFlags::NOSUID
            .union(MountFlags::NODEV)
            .union(MountFlags::NOEXEC),
        data: None,
    },
    EarlyMount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MountFlags::NOSUID,
        data: Some(c"mode=0755"),
    },
    EarlyMount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: Some(c"mode=0755,size=16m"),
    },
    EarlyMount {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: Some(c"mode=1777,size=32m"),
    },
];

/// Mounts proc, sys, devtmpfs, /run and /tmp. Returns one message per failure; the boot goes on.
pub fn early() -> Vec<String> {
    let mut errors = Vec::new();
    for m in EARLY {
        if let Err(e) = std::fs::create_dir_all(m.target) {
            errors.push(format!("cannot create {}: {e}", m.target));
            continue;
        }
        match mount(m.source, m.target, m.fstype, m.flags, m.data) {
            Ok(()) | Err(rustix::io::Errno::BUSY) => {}
            Err(e) => errors.push(format!("cannot mount {} on {}: {e}", m.fstype, m.target)),
        }
    }
    errors
}

/// Mount points from `/proc/self/mountinfo`, in mount order.
pub fn mount_points() -> Vec<String> {
    parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

pub fn parse_mountinfo(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything but the root in reverse mount order; what stays busy is detached and
/// remounted read-only. Returns a line per mount point that could not be unmounted cleanly.
pub fn unmount_all() -> Vec<String> {
    let mut problems = Vec::new();
    let points = mount_points();
    for point in points.iter().rev() {
        if point == "/" {
            continue;
        }
        if unmount(point.as_str(), UnmountFlags::empty()).is_ok() {
            continue;
        }
        // Still busy: make sure nothing more is written, then detach.
        let _ = rustix::mount::mount_remount(point.as_str(), MountFlags::RDONLY, "");
        if let Err(e) = unmount(point.as_str(), UnmountFlags::DETACH) {
            problems.push(format!("{point}: {e}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo() {
        let text = "22 1 0:20 / / rw - rootfs rootfs rw\n\
                    23 22 0:21 / /proc rw,nosuid - proc proc rw\n\
                    30 22 8:1 / /mnt/tank/my\\040data rw - btrfs /dev/sda rw\n";
        assert_eq!(
            parse_mountinfo(text),
            vec!["/", "/proc", "/mnt/tank/my data"]
        );
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("trailing\\"), "trailing\\");
    }
}
