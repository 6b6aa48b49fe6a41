//! Board definitions as data.
//!
//! A board says which kernel package the image carries, which modules are loaded at boot, which
//! drivers are matched against the hardware present (coldplug), the kernel command line, the
//! consoles that get a prompt and how QEMU emulates it. Both the host-side image builder and the
//! init read these tables; nothing here does any work.
#![forbid(unsafe_code)]

/// Debian suites the kernel package is resolved from (one `deb` line each).
pub const KERNEL_SOURCES: &[&str] = &[
    "deb http://deb.debian.org/debian trixie main",
    "deb http://deb.debian.org/debian-security trixie-security main",
];

/// The kernel meta package: resolved at build time to its current `linux-image-6.12.*` package.
pub const KERNEL_PACKAGE: &str = "linux-image-amd64";

/// The UEFI boot loader's package (systemd-boot), from the same suites as the kernel.
pub const BOOTLOADER_PACKAGE: &str = "systemd-boot-efi";

/// How QEMU presents the board's data disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskBus {
    /// virtio-scsi: the disks appear as `sda`, `sdb`.
    VirtioScsi,
    /// An AHCI controller: SATA disks, also `sda`, `sdb`.
    Ahci,
}

/// How QEMU runs a board.
#[derive(Clone, Copy, Debug)]
pub struct Qemu {
    pub machine: &'static str,
    pub cpu: &'static str,
    /// Default guest memory in MiB.
    pub memory_mib: u32,
    pub smp: u32,
    pub disk_bus: DiskBus,
    /// The NIC model (`-device` name).
    pub nic: &'static str,
    /// Further devices and options, passed as they are.
    pub extra_args: &'static [&'static str],
}

/// One board.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    pub name: &'static str,
    pub description: &'static str,
    /// Kernel command line (the init adds nothing to it).
    pub cmdline: &'static str,
    /// Consoles that get a prompt, as device names under `/dev`. The first is the primary one.
    pub consoles: &'static [&'static str],
    /// Board-specific modules (names or aliases) loaded at boot, in this order, each after its
    /// dependencies; [`Board::boot_modules`] adds [`Board::common_modules`] after them.
    pub board_modules: &'static [&'static str],
    /// The modules every appliance board loads ([`COMMON_MODULES`]); the test client has none.
    pub common_modules: &'static [&'static str],
    /// Drivers carried in the image and loaded only when a device present matches one of their
    /// aliases (modalias coldplug).
    pub coldplug_modules: &'static [&'static str],
    /// Modules carried for the kernel's own `request_module()` calls, loaded only on request.
    pub on_demand_modules: &'static [&'static str],
    pub qemu: Qemu,
}

/// Modules every appliance board loads: the pool filesystem, the file servers, the power button.
pub const COMMON_MODULES: &[&str] = &[
    // Generic crypto first: under TCG and on older CPUs the accelerated variants are absent.
    "crc32c_generic",
    "crc32_generic",
    "btrfs",
    "nls_utf8",
    "nfsd",
    "ksmbd",
    "button",
    "evdev",
];

/// Algorithms the kernel asks for at run time (ksmbd signing and encryption, nfsd, btrfs
/// checksums); each is a module alias such as `crypto-gcm`.
const COMMON_ON_DEMAND: &[&str] = &[
    "crypto-cmac",
    "crypto-gcm",
    "crypto-ccm",
    "crypto-ctr",
    "crypto-ghash",
    "crypto-ecb",
    "crypto-md4",
    "crypto-xxhash64",
    "crypto-blake2b-256",
    "crypto-sha256",
    "fs-nfsd",
    "fs-btrfs",
    // The boot loader's EFI variables (which disk is the boot device).
    "fs-efivarfs",
    // The EFI System Partition (FAT32), mounted to mark a boot slot good; the kernel's
    // defaults are codepage 437 and iocharset ascii (CONFIG_FAT_DEFAULT_*).
    "fs-vfat",
    "nls_cp437",
    "nls_ascii",
];

pub const QEMU_X86_64: Board = Board {
    name: "qemu-x86_64",
    description: "QEMU PC: virtio-scsi disks (sda, sdb), virtio-net, virtio-rng, serial ttyS0",
    cmdline: "console=ttyS0,115200 panic=10 loglevel=4 printk.devkmsg=on tank.board=qemu-x86_64",
    consoles: &["ttyS0"],
    board_modules: &["virtio_scsi", "sd_mod", "virtio_net", "virtio_rng"],
    common_modules: COMMON_MODULES,
    coldplug_modules: &[],
    on_demand_modules: COMMON_ON_DEMAND,
    qemu: Qemu {
        machine: "pc",
        cpu: "max",
        memory_mib: 256,
        smp: 2,
        disk_bus: DiskBus::VirtioScsi,
        nic: "virtio-net-pci",
        extra_args: &["-device", "virtio-rng-pci"],
    },
};

pub const PC_X86_64: Board = Board {
    name: "pc-x86_64",
    description:
        "x86-64 storage box: AHCI/SATA, NVMe, USB boot stick, common NICs, serial and VGA console",
    cmdline: "console=tty0 console=ttyS0,115200 panic=10 loglevel=4 printk.devkmsg=on tank.board=pc-x86_64",
    consoles: &["ttyS0", "tty1"],
    board_modules: &["sd_mod", "usb_storage", "uas"],
    common_modules: COMMON_MODULES,
    coldplug_modules: &[
        // Storage controllers.
        "ahci",
        "ata_piix",
        "nvme",
        "virtio_scsi",
        "virtio_blk",
        "mpt3sas",
        // USB (boot sticks).
        "xhci_pci",
        "ehci_pci",
        "ohci_pci",
        "uhci_hcd",
        // NICs.
        "e1000e",
        "e1000",
        "igb",
        "igc",
        "ixgbe",
        "i40e",
        "ice",
        "r8169",
        "tg3",
        "bnx2",
        "atlantic",
        "virtio_net",
        // Entropy sources.
        "virtio_rng",
        "tpm_crb",
        "tpm_tis",
    ],
    on_demand_modules: COMMON_ON_DEMAND,
    qemu: Qemu {
        machine: "q35",
        cpu: "max",
        memory_mib: 256,
        smp: 2,
        disk_bus: DiskBus::Ahci,
        nic: "e1000e",
        extra_args: &["-device", "virtio-rng-pci", "-vga", "std"],
    },
};

impl Board {
    /// Every module loaded at boot, in order: the board's own, then the common set.
    pub fn boot_modules(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.board_modules
            .iter()
            .chain(self.common_modules)
            .copied()
    }

    /// Every module name or alias the image must carry, with its dependencies added later.
    pub fn image_modules(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.boot_modules()
            .chain(self.coldplug_modules.iter().copied())
            .chain(self.on_demand_modules.iter().copied())
    }
}

/// The test client: a second QEMU guest that mounts the appliance's NFS exports and SMB shares
/// with the kernel's own clients, as Proxmox VE and a Linux media server do. Its init is the test
/// agent (`tests/agent`), not the appliance; it is not in [`BOARDS`] (those are appliance
/// boards, each with a boot test) and the harness in `tests/` builds and starts it.
///
/// Its only NIC is the one the harness puts on a QEMU socket network shared with the
/// appliance. The console stays quiet (`loglevel=1`): the agent's replies own the serial line
/// and the agent forwards kernel warnings itself, one whole line at a time. `-no-reboot`
/// makes a panic end QEMU instead of booting again.
pub const TEST_CLIENT: Board = Board {
    name: "test-client",
    description:
        "test client guest: kernel NFS and CIFS clients, virtio-net, the test agent as init",
    cmdline: "console=ttyS0,115200 panic=1 loglevel=1 tank.board=test-client",
    consoles: &["ttyS0"],
    board_modules: &[
        "virtio_net",
        "virtio_rng",
        // NFSv4.0, 4.1 and 4.2 (nfsv4 carries every minor version).
        "nfs",
        "nfsv4",
        // SMB2/3. Its soft dependencies (fs/smb/client/cifsfs.c: ecb, hmac, md5, nls, aes,
        // cmac, sha256, sha512, aead2, ccm, gcm) are followed by the closure; gcm and ccm
        // build on ctr and ghash, which the kernel would otherwise request at mount time from a
        // modprobe this image does not have.
        "cifs",
        "nls_utf8",
        "crypto-cmac",
        "crypto-ccm",
        "crypto-gcm",
        "crypto-ctr",
        "crypto-ghash",
        "crypto-ecb",
        "crypto-md4",
        "crypto-md5",
        "crypto-hmac",
        "crypto-sha256",
        "crypto-sha512",
        "crypto-aes",
    ],
    common_modules: &[],
    coldplug_modules: &[],
    on_demand_modules: &[],
    qemu: Qemu {
        machine: "pc",
        cpu: "max",
        memory_mib: 256,
        smp: 1,
        disk_bus: DiskBus::VirtioScsi,
        nic: "virtio-net-pci",
        extra_args: &["-device", "virtio-rng-pci", "-no-reboot"],
    },
};

/// Every appliance board, the default first.
pub const BOARDS: &[Board] = &[QEMU_X86_64, PC_X86_64];

/// The default board.
pub fn default_board() -> &'static Board {
    &BOARDS[0]
}

/// The board called `name`.
pub fn find(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name == name)
}

/// The names of all boards, for error messages.
pub fn names() -> Vec<&'static str> {
    BOARDS.iter().map(|b| b.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_client_is_no_appliance_board() {
        assert!(find(TEST_CLIENT.name).is_none());
        let client: Vec<&str> = TEST_CLIENT.boot_modules().collect();
        for m in [
            "virtio_net",
            "nfs",
            "nfsv4",
            "cifs",
            "crypto-gcm",
            "crypto-ghash",
        ] {
            assert!(client.contains(&m), "{m} missing from the test client");
        }
        for m in ["btrfs", "nfsd", "ksmbd"] {
            assert!(!client.contains(&m), "the test client loads {m}");
        }
        for b in BOARDS {
            assert!(b.boot_modules().any(|m| m == "nfsd"), "{}", b.name);
        }
    }
}
