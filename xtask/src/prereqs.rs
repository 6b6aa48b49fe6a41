//! Host prerequisites: the one list of Debian packages Tank's tools need, and their install.
//!
//! A package counts as present only when dpkg says it is installed (`install ok installed`),
//! and, where the build loads a file of it, when that file is there too. A look for "any file
//! that resembles it" is not enough: `libclang-cpp14` puts `libclang-cpp.so.14` where a glob
//! for `libclang*.so*` finds it, yet bindgen needs `libclang-dev`'s `libclang.so`.
//! README.md names the same packages; a test below keeps the two lists equal. `.ci/run`
//! installs through `cargo xtask prereqs`, the path a user takes, so CI fails when a user would.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

/// A host package, what proves it is there beyond dpkg's word, and why Tank needs it.
pub struct Prereq {
    pub package: &'static str,
    /// Paths (glob patterns allowed) of which at least one must exist: the file the build or
    /// the tests really use. Empty: dpkg's status is the whole check.
    pub files: &'static [&'static str],
    pub why: &'static str,
}

/// Everything the build, `run`, the tests and the benchmark use on the host.
pub const PREREQS: &[Prereq] = &[
    Prereq {
        package: "qemu-system-x86",
        files: &["/usr/bin/qemu-system-x86_64"],
        why: "boots the image",
    },
    Prereq {
        package: "apt",
        files: &["/usr/bin/apt-get"],
        why: "downloads the kernel package",
    },
    Prereq {
        package: "ca-certificates",
        files: &["/etc/ssl/certs/ca-certificates.crt"],
        why: "apt over HTTPS mirrors",
    },
    Prereq {
        package: "libclang-dev",
        // The unversioned library clang-sys (bindgen) loads.
        files: &["/usr/lib/llvm-*/lib/libclang.so"],
        why: "bindgen for the btrfs crates",
    },
    Prereq {
        package: "btrfs-progs",
        files: &["/usr/bin/btrfs", "/bin/btrfs"],
        why: "`btrfs check` on pool images in tests, and the host btrfs suite",
    },
    Prereq {
        package: "util-linux",
        files: &["/usr/sbin/losetup", "/sbin/losetup"],
        why: "`btrfs check` of pool images through loop devices in tests",
    },
    Prereq {
        package: "ovmf",
        files: &["/usr/share/OVMF/OVMF_CODE_4M.fd"],
        why: "UEFI firmware: boots the flashable disk image in tests and the benchmark",
    },
    Prereq {
        package: "e2fsprogs",
        files: &["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"],
        why: "disks holding other data in tests",
    },
    Prereq {
        package: "dosfstools",
        files: &["/usr/sbin/mkfs.vfat", "/sbin/mkfs.vfat"],
        why: "FAT file systems the disk probe must recognise, in tests",
    },
    Prereq {
        package: "smbclient",
        files: &["/usr/bin/smbclient"],
        why: "the SMB tests and benchmark's client",
    },
    Prereq {
        package: "nfs-common",
        files: &["/usr/sbin/showmount", "/sbin/showmount"],
        why: "`showmount --exports`, Proxmox VE's NFS check, in tests",
    },
    Prereq {
        package: "rpcbind",
        files: &["/usr/sbin/rpcinfo", "/sbin/rpcinfo"],
        why: "`rpcinfo -T tcp HOST nfs 4`, Proxmox VE's NFSv4 check, in tests",
    },
    Prereq {
        package: "iproute2",
        files: &["/usr/bin/ip", "/bin/ip", "/usr/sbin/ip", "/sbin/ip"],
        why: "network namespaces for the DHCP client's host suite",
    },
    Prereq {
        package: "dnsmasq-base",
        files: &["/usr/sbin/dnsmasq"],
        why: "the DHCP server of the DHCP client's host suite",
    },
];

/// What dpkg says of `package`: installed or not.
fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["--show", "--showformat=${db:Status-Status}", package])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "installed")
        .unwrap_or(false)
}

/// Whether any path matches `pattern`, where `*` in a path component matches any run of
/// characters within it.
fn any_match(pattern: &str) -> bool {
    fn walk(dir: &Path, parts: &[&str]) -> bool {
        let Some((first, rest)) = parts.split_first() else {
            return dir.exists();
        };
        if !first.contains('*') {
            return walk(&dir.join(first), rest);
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            glob_component(first, &e.file_name().to_string_lossy()) && walk(&e.path(), rest)
        })
    }
    let parts: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    walk(Path::new("/"), &parts)
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_component(pattern: &str, name: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    for (i, piece) in pieces.iter().enumerate() {
        if i == pieces.len() - 1 {
            return rest.ends_with(piece);
        }
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `p` is installed: dpkg's status and the file the tools use.
pub fn present(p: &Prereq) -> bool {
    dpkg_installed(p.package) && (p.files.is_empty() || p.files.iter().any(|f| any_match(f)))
}

/// The packages of `PREREQS` that are missing.
pub fn missing() -> Vec<&'static Prereq> {
    PREREQS.iter().filter(|p| !present(p)).collect()
}

/// The one command that installs `packages`.
pub fn install_line(packages: &[&str]) -> String {
    format!(
        "apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

/// Installs missing packages with apt-get when running as root; otherwise fails with the one
/// `apt-get install` line to run.
pub fn ensure() -> Result<()> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
    for p in &missing {
        eprintln!("xtask: missing host package {}: {}", p.package, p.why);
    }
    if !is_root() {
        bail!(
            "missing host packages; install them as root with:\n  {}",
            install_line(&packages)
        );
    }
    crate::run_cmd(Command::new("apt-get").arg("update").arg("-q"))?;
    crate::run_cmd(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&packages),
    )?;
    if packages.contains(&"rpcbind") {
        // Installing rpcbind starts its daemon where systemd runs; the NFS tests forward the
        // well-known port 111 to the appliance's own rpcbind. It was not installed before this
        // command, so nothing of the user's depends on it running.
        eprintln!(
            "xtask: stopping the rpcbind daemon the package started (port 111 is the tests')"
        );
        let _ = Command::new("systemctl")
            .args(["disable", "--now", "rpcbind.socket", "rpcbind.service"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("pkill").args(["-x", "rpcbind"]).status();
    }
    let still: Vec<&str> = self::missing().iter().map(|p| p.package).collect();
    if !still.is_empty() {
        bail!(
            "apt-get finished but these packages are still missing: {}",
            still.join(" ")
        );
    }
    Ok(())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_names_the_same_packages() {
        let readme = std::fs::read_to_string(crate::root().join("README.md")).unwrap();
        let para = readme
            .split("\n\n")
            .find(|p| p.contains("Host packages:"))
            .expect("README.md has a 'Host packages:' paragraph");
        let para = &para[para.find("Host packages:").unwrap_or(0)..];
        let para = &para[..para.find("As root").unwrap_or(para.len())];
        let mut named: Vec<&str> = para.split('`').skip(1).step_by(2).collect();
        named.retain(|w| !w.contains(' ') && !w.contains('/') && !w.is_empty());
        // Commands named in parentheses (`showmount`) are not packages; keep the names that
        // are known packages or look like one the list lacks.
        let listed: Vec<&str> = PREREQS.iter().map(|p| p.package).collect();
        let commands = ["showmount", "rpcinfo", "btrfs", "ip", "dnsmasq"];
        named.retain(|w| !commands.contains(w));
        let mut a = named.clone();
        a.sort_unstable();
        a.dedup();
        let mut b = listed.clone();
        b.sort_unstable();
        assert_eq!(a, b, "README.md's host packages and xtask's PREREQS differ");
    }

    #[test]
    fn glob_components() {
        assert!(glob_component("llvm-*", "llvm-14"));
        assert!(!glob_component("llvm-*", "gcc-12"));
        assert!(glob_component("libclang.so", "libclang.so"));
        assert!(!glob_component("libclang.so", "libclang-cpp.so.14"));
        assert!(glob_component("a*b*c", "axxbyyc"));
        assert!(!glob_component("a*b*c", "axxbyyd"));
    }

    #[test]
    fn libclang_cpp_is_not_libclang() {
        // The file libclang-cpp14 ships must not satisfy the check for libclang-dev's.
        let dir = std::env::temp_dir().join(format!("tank-prereq-{}", std::process::id()));
        let lib = dir.join("llvm-14/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libclang-cpp.so.14"), b"").unwrap();
        let pattern = format!("{}/llvm-*/lib/libclang.so", dir.display());
        assert!(!any_match(&pattern));
        std::fs::write(lib.join("libclang.so"), b"").unwrap();
        assert!(any_match(&pattern));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dpkg_knows_an_absent_package() {
        assert!(!dpkg_installed("tank-no-such-package"));
    }
}
