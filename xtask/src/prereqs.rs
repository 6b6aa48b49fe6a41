//! Host prerequisites: the one list of Debian packages Tank's tools need, and their install.

use std::process::Command;

use anyhow::{bail, Result};

/// A host package and a command that proves it is installed.
pub struct Prereq {
    pub package: &'static str,
    pub command: &'static str,
    pub why: &'static str,
}

/// Everything the build, `run`, the tests and the benchmark use on the host.
pub const PREREQS: &[Prereq] = &[
    Prereq {
        package: "qemu-system-x86",
        command: "qemu-system-x86_64",
        why: "boots the image",
    },
    Prereq {
        package: "apt",
        command: "apt-get",
        why: "downloads the kernel package",
    },
    Prereq {
        package: "ca-certificates",
        command: "update-ca-certificates",
        why: "apt over HTTPS mirrors",
    },
    Prereq {
        package: "libclang-dev",
        command: "test -n \"$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)\"",
        why: "bindgen for the btrfs crates",
    },
    Prereq {
        package: "btrfs-progs",
        command: "btrfs",
        why: "`btrfs check` on pool images in tests",
    },
    Prereq {
        package: "util-linux",
        command: "losetup",
        why: "`btrfs check` of pool images through loop devices in tests",
    },
    Prereq {
        package: "ovmf",
        command: "test -e /usr/share/OVMF/OVMF_CODE_4M.fd",
        why: "UEFI firmware: boots the flashable disk image in tests and the benchmark",
    },
    Prereq {
        package: "e2fsprogs",
        command: "mkfs.ext4",
        why: "disks holding other data in tests",
    },
    Prereq {
        package: "smbclient",
        command: "smbclient",
        why: "the SMB tests and benchmark's client",
    },
    Prereq {
        package: "nfs-common",
        command: "showmount",
        why: "`showmount --exports`, Proxmox VE's NFS check, in tests",
    },
    Prereq {
        package: "rpcbind",
        command: "rpcinfo",
        why: "`rpcinfo -T tcp HOST nfs 4`, Proxmox VE's NFSv4 check, in tests",
    },
];

fn have(check: &str) -> bool {
    let script = if check.starts_with("test ") {
        check.to_string()
    } else {
        format!("command -v {check} >/dev/null 2>&1")
    };
    Command::new("sh")
        .args(["-c", &script])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs missing packages with apt-get when running as root; otherwise prints the command.
pub fn ensure() -> Result<()> {
    let missing: Vec<&Prereq> = PREREQS.iter().filter(|p| !have(p.command)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
    for p in &missing {
        eprintln!("xtask: missing {} ({}): {}", p.command, p.package, p.why);
    }
    if !rustix_is_root() {
        bail!(
            "missing host packages; install them with:\n  sudo apt-get install -y {}",
            packages.join(" ")
        );
    }
    crate::run_cmd(Command::new("apt-get").arg("update").arg("-q"))?;
    crate::run_cmd(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&packages),
    )?;
    Ok(())
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
