//! The QEMU command line for a board: kernel and initramfs (or UEFI firmware and the flashable
//! disk image), data disks, network with port forwards, socket links to other guests, serial
//! console, QMP socket. Data disk devices have stable ids for QMP: `disk0`, `disk1`, ... and
//! `nvme0`, ...

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use board::{Board, DiskBus};

/// How QEMU accelerates the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: works everywhere, including where nested KVM hangs.
    Tcg,
    Kvm,
}

impl Accel {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "tcg" => Ok(Self::Tcg),
            "kvm" => Ok(Self::Kvm),
            other => Err(format!("unknown accelerator '{other}': use tcg or kvm")),
        }
    }

    /// `TANK_ACCEL` from the environment, else TCG (KVM hangs under nested virtualisation).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("TANK_ACCEL") {
            Ok(v) => Self::parse(&v),
            Err(_) => Ok(Self::Tcg),
        }
    }
}

/// A host port forwarded to a guest port.
#[derive(Clone, Copy, Debug)]
pub struct Forward {
    pub udp: bool,
    pub host: u16,
    pub guest: u16,
}

/// Debian `ovmf`'s firmware code (read-only pflash).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// Debian `ovmf`'s blank variable store; each guest gets its own writable copy.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Booting through UEFI firmware from a disk image instead of QEMU's `-kernel`.
#[derive(Clone, Debug)]
pub struct Uefi {
    /// The flashable disk image, attached as the boot disk (changed by the boot: use a copy).
    pub boot_disk: PathBuf,
    /// This guest's writable copy of the firmware's variable store.
    pub vars: PathBuf,
}

impl Uefi {
    /// Copies `image` and the blank variable store into `dir` for one guest.
    pub fn fresh(image: &Path, dir: &Path) -> std::io::Result<Uefi> {
        std::fs::create_dir_all(dir)?;
        let boot_disk = dir.join("boot.img");
        let vars = dir.join("OVMF_VARS.fd");
        std::fs::copy(image, &boot_disk).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot copy the disk image {}: {e}; build it with `cargo xtask image`",
                    image.display()
                ),
            )
        })?;
        std::fs::copy(OVMF_VARS, &vars).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot copy {OVMF_VARS}: {e}; install the firmware with `apt-get install ovmf`"),
            )
        })?;
        Ok(Uefi { boot_disk, vars })
    }
}

/// Which end of a socket link a guest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkSide {
    /// QEMU listens on the port (start this guest first; QEMU takes one peer).
    Listen,
    /// QEMU connects to the port when it starts (the listening guest must be running).
    Connect,
}

/// A NIC on a QEMU socket network (`-netdev socket`): an ethernet cable between two guests on
/// this machine through `127.0.0.1:port`, with no root and no host interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketLink {
    pub side: LinkSide,
    pub port: u16,
    /// The NIC model (`-device` name), e.g. `virtio-net-pci`.
    pub nic: &'static str,
    /// A fixed MAC address, so each side is recognisable in the other's neighbour table.
    pub mac: String,
    /// The MTU the NIC offers the guest (virtio-net `host_mtu`; the guest's driver adopts
    /// it), or the driver's 1500.
    pub mtu: Option<u16>,
}

/// What to boot and how.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    pub board: &'static Board,
    pub image_dir: PathBuf,
    pub disks: Vec<PathBuf>,
    /// NVMe disks (one controller each, serial `TANK-NVME0`, ...), after the board's disks.
    pub nvme_disks: Vec<PathBuf>,
    pub memory_mib: u32,
    pub accel: Accel,
    pub forwards: Vec<Forward>,
    /// Serial console on stdio, multiplexed with the QEMU monitor (`ctrl-a x` quits): for people.
    pub interactive: bool,
    pub qmp_socket: Option<PathBuf>,
    /// Extra kernel command line words (direct kernel boot only).
    pub extra_cmdline: String,
    /// Boot the disk image under OVMF instead of `-kernel`.
    pub uefi: Option<Uefi>,
    /// The first NIC on QEMU's user network (with the forwards); the test client has none.
    pub user_network: bool,
    /// NICs on socket links to other guests, after the user network's NIC (so on the default
    /// board the first is `eth1`).
    pub socket_links: Vec<SocketLink>,
}

impl QemuConfig {
    pub fn new(board: &'static Board, image_dir: PathBuf) -> Self {
        Self {
            board,
            image_dir,
            disks: Vec::new(),
            nvme_disks: Vec::new(),
            memory_mib: board.qemu.memory_mib,
            accel: Accel::Tcg,
            forwards: Vec::new(),
            interactive: false,
            qmp_socket: None,
            extra_cmdline: String::new(),
            uefi: None,
            user_network: true,
            socket_links: Vec::new(),
        }
    }

    /// The QEMU command.
    pub fn command(&self) -> Result<Command, String> {
        let q = &self.board.qemu;
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-nodefaults", "-no-user-config", "-display", "none"]);
        cmd.args(["-machine", q.machine, "-cpu", q.cpu]);
        match &self.uefi {
            None => self.direct_kernel(&mut cmd)?,
            Some(uefi) => {
                if !Path::new(OVMF_CODE).exists() {
                    return Err(format!(
                        "{OVMF_CODE} is missing: install the UEFI firmware with `apt-get install ovmf`"
                    ));
                }
                cmd.arg("-drive").arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
                ));
                cmd.arg("-drive").arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    uefi.vars.display()
                ));
                cmd.arg("-drive").arg(format!(
                    "if=none,id=bootdisk,format=raw,cache=unsafe,file={}",
                    uefi.boot_disk.display()
                ));
            }
        }
        self.rest(cmd)
    }

    /// `-kernel`, `-initrd` and `-append` from the image folder.
    fn direct_kernel(&self, cmd: &mut Command) -> Result<(), String> {
        let kernel = self.image_dir.join("vmlinuz");
        let initrd = self.image_dir.join("initramfs.img");
        for f in [&kernel, &initrd] {
            if !f.exists() {
                return Err(format!(
                    "{} is missing: build the image first with `cargo xtask image --board {}`",
                    f.display(),
                    self.board.name
                ));
            }
        }
        let mut cmdline = std::fs::read_to_string(self.image_dir.join("cmdline"))
            .map_err(|e| format!("cannot read {}/cmdline: {e}", self.image_dir.display()))?
            .trim()
            .to_string();
        if !self.extra_cmdline.is_empty() {
            cmdline.push(' ');
            cmdline.push_str(&self.extra_cmdline);
        }
        cmd.arg("-kernel").arg(&kernel).arg("-initrd").arg(&initrd);
        cmd.args(["-append", &cmdline]);
        Ok(())
    }

    fn rest(&self, mut cmd: Command) -> Result<Command, String> {
        let q = &self.board.qemu;
        cmd.args([
            "-smp",
            &q.smp.to_string(),
            "-m",
            &self.memory_mib.to_string(),
        ]);
        cmd.args([
            "-accel",
            match self.accel {
                Accel::Tcg => "tcg,thread=multi",
                Accel::Kvm => "kvm",
            },
        ]);
        if q.disk_bus == DiskBus::VirtioScsi {
            cmd.args(["-device", "virtio-scsi-pci,id=scsi0"]);
        }
        if self.uefi.is_some() {
            // The boot disk: on the board's SCSI bus after the data disks, or a USB stick.
            match q.disk_bus {
                DiskBus::VirtioScsi => cmd.args([
                    "-device",
                    &format!(
                        "scsi-hd,drive=bootdisk,bus=scsi0.0,channel=0,scsi-id={},lun=0,serial=TANK-BOOT,bootindex=0",
                        self.disks.len()
                    ),
                ]),
                DiskBus::Ahci => cmd.args([
                    "-device",
                    "qemu-xhci,id=xhci",
                    "-device",
                    "usb-storage,bus=xhci.0,drive=bootdisk,serial=TANK-BOOT,bootindex=0",
                ]),
            };
        }
        // Each data disk's device has the id of its drive (`disk0`, ..., `nvme0`, ...), so QMP
        // can name it: `device_del` to pull it out, `qom-set` on `/machine/peripheral/<id>`.
        for (i, disk) in self.disks.iter().enumerate() {
            let letter = (b'a' + i as u8) as char;
            cmd.arg("-drive").arg(format!(
                "if=none,id=disk{i},format=raw,cache=unsafe,file={}",
                disk.display()
            ));
            let serial = format!("TANK-SD{}", letter.to_ascii_uppercase());
            match q.disk_bus {
                DiskBus::VirtioScsi => cmd.args([
                    "-device",
                    &format!("scsi-hd,drive=disk{i},bus=scsi0.0,channel=0,scsi-id={i},lun=0,serial={serial},id=disk{i}"),
                ]),
                DiskBus::Ahci => cmd.args(["-device", &format!("ide-hd,drive=disk{i},bus=ide.{i},serial={serial},id=disk{i}")]),
            };
        }
        for (i, disk) in self.nvme_disks.iter().enumerate() {
            cmd.arg("-drive").arg(format!(
                "if=none,id=nvme{i},format=raw,cache=unsafe,file={}",
                disk.display()
            ));
            cmd.args([
                "-device",
                &format!("nvme,drive=nvme{i},serial=TANK-NVME{i},id=nvme{i}"),
            ]);
        }
        if self.user_network {
            let mut netdev = "user,id=net0".to_string();
            for f in &self.forwards {
                netdev.push_str(&format!(
                    ",hostfwd={}:127.0.0.1:{}-:{}",
                    if f.udp { "udp" } else { "tcp" },
                    f.host,
                    f.guest
                ));
            }
            cmd.args([
                "-netdev",
                &netdev,
                "-device",
                &format!("{},netdev=net0", q.nic),
            ]);
        }
        for (i, link) in self.socket_links.iter().enumerate() {
            let side = match link.side {
                LinkSide::Listen => "listen",
                LinkSide::Connect => "connect",
            };
            cmd.args([
                "-netdev",
                &format!("socket,id=link{i},{side}=127.0.0.1:{}", link.port),
                "-device",
                &format!(
                    "{},netdev=link{i},mac={}{}",
                    link.nic,
                    link.mac,
                    match link.mtu {
                        Some(mtu) => format!(",host_mtu={mtu}"),
                        None => String::new(),
                    }
                ),
            ]);
        }
        cmd.args(q.extra_args);
        if self.interactive {
            cmd.args(["-serial", "mon:stdio"]);
        } else {
            cmd.args(["-serial", "stdio", "-monitor", "none"]);
        }
        if let Some(sock) = &self.qmp_socket {
            cmd.arg("-qmp")
                .arg(format!("unix:{},server=on,wait=off", sock.display()));
        }
        Ok(cmd)
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Creates a sparse raw disk image of `size` bytes unless it exists.
pub fn ensure_disk(path: &Path, size: u64) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::File::create(path)?;
    file.set_len(size)?;
    Ok(true)
}

/// Parses sizes like `512M`, `8G`, `1073741824`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        Some((i, 'T' | 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{text}' is not a size: use a number with K, M, G or T, e.g. 8G"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("0").is_err());
        assert!(parse_size("huge").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn command_line_has_disks_forwards_and_accel() {
        let dir = std::env::temp_dir().join(format!("tank-qemu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["vmlinuz", "initramfs.img"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        std::fs::write(dir.join("cmdline"), "console=ttyS0\n").unwrap();
        let mut cfg = QemuConfig::new(&board::QEMU_X86_64, dir.clone());
        cfg.disks = vec![dir.join("a.img"), dir.join("b.img")];
        cfg.nvme_disks = vec![dir.join("n.img")];
        cfg.forwards = vec![Forward {
            udp: false,
            host: 12049,
            guest: 2049,
        }];
        let cmd = cfg.command().unwrap();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(joined.contains("-accel tcg"), "{joined}");
        assert!(
            joined.contains("hostfwd=tcp:127.0.0.1:12049-:2049"),
            "{joined}"
        );
        assert!(
            joined.contains(
                "scsi-hd,drive=disk1,bus=scsi0.0,channel=0,scsi-id=1,lun=0,serial=TANK-SDB,id=disk1"
            ),
            "{joined}"
        );
        assert!(
            joined.contains("nvme,drive=nvme0,serial=TANK-NVME0,id=nvme0"),
            "{joined}"
        );
        assert!(joined.contains("-append console=ttyS0"), "{joined}");
        assert!(joined.contains("virtio-rng-pci"), "{joined}");
    }

    #[test]
    fn ahci_disks_have_device_ids() {
        let dir = std::env::temp_dir().join(format!("tank-qemu-ahci-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["vmlinuz", "initramfs.img"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        std::fs::write(dir.join("cmdline"), "console=ttyS0\n").unwrap();
        let mut cfg = QemuConfig::new(&board::PC_X86_64, dir.clone());
        cfg.disks = vec![dir.join("a.img"), dir.join("b.img")];
        let args: Vec<String> = cfg
            .command()
            .unwrap()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        let joined = args.join(" ");
        assert!(
            joined.contains("-device ide-hd,drive=disk0,bus=ide.0,serial=TANK-SDA,id=disk0"),
            "{joined}"
        );
        assert!(
            joined.contains("-device ide-hd,drive=disk1,bus=ide.1,serial=TANK-SDB,id=disk1"),
            "{joined}"
        );
    }

    #[test]
    fn socket_links_without_user_network() {
        let dir = std::env::temp_dir().join(format!("tank-qemu-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["vmlinuz", "initramfs.img"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        std::fs::write(dir.join("cmdline"), "console=ttyS0\n").unwrap();
        let mut cfg = QemuConfig::new(&board::TEST_CLIENT, dir.clone());
        cfg.user_network = false;
        cfg.socket_links = vec![SocketLink {
            side: LinkSide::Connect,
            port: 41234,
            nic: "virtio-net-pci",
            mac: "52:54:00:0a:03:02".into(),
            mtu: Some(9000),
        }];
        let args: Vec<String> = cfg
            .command()
            .unwrap()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        let joined = args.join(" ");
        assert!(!joined.contains("user,id=net0"), "{joined}");
        assert!(
            joined.contains(
                "-netdev socket,id=link0,connect=127.0.0.1:41234 \
                 -device virtio-net-pci,netdev=link0,mac=52:54:00:0a:03:02,host_mtu=9000"
            ),
            "{joined}"
        );
    }
}
