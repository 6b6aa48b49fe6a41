//! `cargo xtask flash DEVICE`: writes the disk image to a boot device and reads it back.
//!
//! Before writing, the target is inspected: a partition (not a whole disk), anything mounted
//! or held (a mount, swap, device-mapper or md holder), and a device smaller than the image are
//! refused outright. A device that holds anything (a pool member's btrfs superblock, a
//! partition table, a file system or other signature) is only written when the operator types
//! its model or serial, read from sysfs (a regular file's name for an image file). A blank
//! device needs no confirmation. The write shows progress, is synced, the page cache is
//! dropped for the range, and every byte is read back and compared.
//!
//! What does not live here: building the image (`image::disk`).

use std::fs;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// What the first bytes of a device hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents {
    /// All zero where signatures live.
    Blank,
    /// A btrfs superblock: a pool member (or another btrfs).
    PoolMember { label: String },
    /// Something else, named (e.g. "a GPT partition table", "an ext4 file system").
    Data(Vec<String>),
}

/// How much of the device is read to look for signatures.
const PROBE_BYTES: usize = 1 << 20;
/// The btrfs primary superblock and its magic.
const BTRFS_SUPER: usize = 64 << 10;
const BTRFS_MAGIC: &[u8] = b"_BHRfS_M";

/// Recognises what `head` (the first [`PROBE_BYTES`] or fewer of a device) holds.
pub fn probe(head: &[u8]) -> Contents {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(BTRFS_SUPER + 0x40, BTRFS_MAGIC) {
        let label = head
            .get(BTRFS_SUPER + 0x12b..BTRFS_SUPER + 0x12b + 256)
            .map(|l| {
                String::from_utf8_lossy(&l[..l.iter().position(|&b| b == 0).unwrap_or(l.len())])
                    .into_owned()
            })
            .unwrap_or_default();
        return Contents::PoolMember { label };
    }
    let mut found = Vec::new();
    let checks: &[(usize, &[u8], &str)] = &[
        (512, b"EFI PART", "a GPT partition table"),
        (4096, b"EFI PART", "a GPT partition table (4 KiB sectors)"),
        (1024 + 0x38, &[0x53, 0xef], "an ext2/3/4 file system"),
        (0, b"XFSB", "an XFS file system"),
        (0x52, b"FAT32   ", "a FAT32 file system"),
        (0x36, b"FAT1", "a FAT12/16 file system"),
        (0, b"LUKS\xba\xbe", "a LUKS encrypted volume"),
        (512 + 24, b"LVM2 001", "an LVM physical volume"),
        (4096, &[0xfc, 0x4e, 0x2b, 0xa9], "an md RAID member"),
        (4086, b"SWAPSPACE2", "swap space"),
        (0x8001, b"CD001", "an ISO 9660 image"),
        (3, b"NTFS    ", "an NTFS file system"),
        (0x10040, b"ReIsEr", "a ReiserFS file system"),
    ];
    for (off, magic, what) in checks {
        if at(*off, magic) && !found.iter().any(|f: &String| f == what) {
            found.push(what.to_string());
        }
    }
    if found.is_empty() && at(510, &[0x55, 0xaa]) {
        found.push("an MBR partition table or boot sector".into());
    }
    if found.is_empty() && head.iter().any(|&b| b != 0) {
        found.push("data of an unknown kind".into());
    }
    if found.is_empty() {
        Contents::Blank
    } else {
        Contents::Data(found)
    }
}

/// What `flash` found out about its target.
#[derive(Clone, Debug)]
pub struct Target {
    pub path: PathBuf,
    pub is_block: bool,
    pub size: u64,
    /// Words that confirm the target: its model and serial (a file's name for a file).
    pub confirm_words: Vec<String>,
    /// Shown to the operator: model, serial, size.
    pub description: String,
    /// Reasons the target can never be written (mounted, held, a partition).
    pub busy: Vec<String>,
    pub contents: Contents,
}

/// The decision for a target and the operator's typed answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Write,
    /// Needs a typed confirmation; the question to ask.
    Ask(String),
    Refuse(String),
}

/// Whether `target` may take an image of `image_len` bytes, given what the operator typed.
pub fn decide(target: &Target, image_len: u64, typed: Option<&str>) -> Decision {
    let name = target.path.display();
    if !target.busy.is_empty() {
        return Decision::Refuse(format!(
            "{name} is in use: {}; unmount it (and stop what holds it) first; nothing was written",
            target.busy.join("; ")
        ));
    }
    if target.size < image_len {
        return Decision::Refuse(format!(
            "{name} has {} bytes, smaller than the image ({image_len} bytes); nothing was written",
            target.size
        ));
    }
    let what = match &target.contents {
        Contents::Blank => return Decision::Write,
        Contents::PoolMember { label } => format!(
            "a btrfs file system{} (a Tank pool member?)",
            if label.is_empty() {
                String::new()
            } else {
                format!(" labelled '{label}'")
            }
        ),
        Contents::Data(kinds) => kinds.join(", "),
    };
    let words: Vec<&str> = target
        .confirm_words
        .iter()
        .map(String::as_str)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Decision::Refuse(format!(
            "{name} holds {what} and has no model or serial to confirm with; nothing was written"
        ));
    }
    match typed.map(str::trim) {
        Some(t) if words.contains(&t) => Decision::Write,
        Some(t) => Decision::Refuse(format!(
            "'{t}' is neither {}; nothing was written",
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" nor ")
        )),
        None => Decision::Ask(format!(
            "{name} ({}) holds {what}. Everything on it will be lost.\nType its {} to go on: ",
            target.description,
            if target.is_block {
                "model or serial"
            } else {
                "file name"
            }
        )),
    }
}

/// The `maj:min` of every mount in a mountinfo text.
pub fn mounted_devices(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

fn sysfs_text(path: &Path) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Looks at `path`: a whole-disk block device or a regular file.
pub fn inspect(path: &Path) -> Result<Target> {
    let meta = fs::metadata(path).with_context(|| format!("cannot look at {}", path.display()))?;
    let ft = meta.file_type();
    let is_block = ft.is_block_device();
    if !is_block && !ft.is_file() {
        bail!(
            "{} is neither a block device nor an image file",
            path.display()
        );
    }
    let mut busy = Vec::new();
    let (size, confirm_words, description) = if is_block {
        let real = fs::canonicalize(path)?;
        let name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sys = Path::new("/sys/class/block").join(&name);
        if sys.join("partition").exists() {
            busy.push(format!(
                "{name} is a partition; flash the whole disk it belongs to"
            ));
        }
        let size = sysfs_text(&sys.join("size")).parse::<u64>().unwrap_or(0) * 512;
        let model = sysfs_text(&sys.join("device/model"));
        let mut serial = sysfs_text(&sys.join("device/serial"));
        if serial.is_empty() {
            serial = sysfs_text(&sys.join("serial"));
        }
        if serial.is_empty() {
            serial = fs::read(sys.join("device/vpd_pg80"))
                .ok()
                .and_then(|p| {
                    p.get(4..)
                        .map(|s| String::from_utf8_lossy(s).trim().to_owned())
                })
                .unwrap_or_default();
        }
        // A loop device is confirmed with its backing file's name.
        let backing = sysfs_text(&sys.join("loop/backing_file"));
        if model.is_empty() && serial.is_empty() && !backing.is_empty() {
            serial = Path::new(&backing)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        // The disk and its partitions: mounted, swap, or held by device-mapper or md.
        let mut devs = vec![(name.clone(), sysfs_text(&sys.join("dev")))];
        for part in fs::read_dir(&sys).into_iter().flatten().flatten() {
            if part.path().join("partition").exists() {
                devs.push((
                    part.file_name().to_string_lossy().into_owned(),
                    sysfs_text(&part.path().join("dev")),
                ));
            }
        }
        let mounts =
            mounted_devices(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
        let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
        for (dev, majmin) in &devs {
            if mounts.contains(majmin) {
                busy.push(format!("/dev/{dev} is mounted"));
            }
            if swaps
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&format!("/dev/{dev}")))
            {
                busy.push(format!("/dev/{dev} is swap space in use"));
            }
            let holders = Path::new("/sys/class/block").join(dev).join("holders");
            if fs::read_dir(holders)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
            {
                busy.push(format!("/dev/{dev} is held by device-mapper, md or a loop"));
            }
        }
        let description = format!(
            "model {}, serial {}, {:.1} GiB",
            if model.is_empty() { "-" } else { &model },
            if serial.is_empty() { "-" } else { &serial },
            size as f64 / (1u64 << 30) as f64
        );
        (size, vec![model, serial], description)
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = meta.len();
        (size, vec![name], format!("image file, {size} bytes"))
    };
    // A device in use is refused whatever it holds; it is not even read.
    let contents = if busy.is_empty() {
        let mut head = vec![0u8; PROBE_BYTES.min(size as usize)];
        fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .with_context(|| format!("cannot read {}", path.display()))?;
        probe(&head)
    } else {
        Contents::Data(vec!["data in use".into()])
    };
    Ok(Target {
        path: path.to_owned(),
        is_block,
        // A regular file grows as it is written: any size will do.
        size: if is_block { size } else { u64::MAX },
        confirm_words,
        description,
        busy,
        contents,
    })
}

/// Copies `image` to `target` (from offset 0) with progress on stderr, then syncs.
pub fn write(image: &Path, target: &Path, is_block: bool) -> Result<u64> {
    let mut src =
        fs::File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let total = src.metadata()?.len();
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if is_block {
        // O_EXCL on a block device fails while anything has it mounted.
        opts.custom_flags(rustix::fs::OFlags::EXCL.bits() as i32);
    } else {
        opts.create(true);
    }
    let mut dst = opts
        .open(target)
        .with_context(|| format!("cannot open {} for writing", target.display()))?;
    let started = Instant::now();
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])
            .with_context(|| format!("writing {} at byte {done}", target.display()))?;
        done += n as u64;
        progress("writing", done, total, started);
    }
    eprintln!();
    eprintln!("flash: syncing");
    dst.sync_all()
        .with_context(|| format!("syncing {}", target.display()))?;
    // Read back from the device, not from the page cache.
    let _ = rustix::fs::fadvise(&dst, 0, None, rustix::fs::Advice::DontNeed);
    Ok(total)
}

/// Reads `len` bytes of `target` back and compares them with `image`.
pub fn verify(image: &Path, target: &Path, len: u64) -> Result<()> {
    let mut a = io::BufReader::new(fs::File::open(image)?);
    let mut b = fs::File::open(target)?;
    b.seek(SeekFrom::Start(0))?;
    let mut b = io::BufReader::new(b);
    let started = Instant::now();
    let (mut x, mut y) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(x.len());
        a.read_exact(&mut x[..n])?;
        b.read_exact(&mut y[..n])
            .with_context(|| format!("reading {} back at byte {done}", target.display()))?;
        if x[..n] != y[..n] {
            let at = done
                + x[..n]
                    .iter()
                    .zip(&y[..n])
                    .position(|(p, q)| p != q)
                    .unwrap_or(0) as u64;
            bail!(
                "verification failed: {} differs from the image at byte {at}; the device may be failing, flash again or use another one",
                target.display()
            );
        }
        done += n as u64;
        progress("verifying", done, len, started);
    }
    eprintln!();
    Ok(())
}

fn progress(what: &str, done: u64, total: u64, started: Instant) {
    let mib = |b: u64| b as f64 / 1048576.0;
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    eprint!(
        "\rflash: {what} {:>3}%  {:.0} of {:.0} MiB  {:.1} MiB/s   ",
        done * 100 / total.max(1),
        mib(done),
        mib(total),
        mib(done) / secs
    );
}

/// The whole command.
pub fn run(device: &Path, image: &Path, confirm: Option<String>) -> Result<()> {
    let len = fs::metadata(image)
        .with_context(|| format!("no disk image at {}", image.display()))?
        .len();
    let target = inspect(device)?;
    eprintln!(
        "flash: {} -> {} ({})",
        image.display(),
        device.display(),
        target.description
    );
    let mut decision = decide(&target, len, confirm.as_deref());
    if let Decision::Ask(question) = &decision {
        eprint!("{question}");
        io::stderr().flush()?;
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
        decision = decide(&target, len, Some(line.trim()));
    }
    match decision {
        Decision::Write => {}
        Decision::Refuse(why) | Decision::Ask(why) => bail!("{why}"),
    }
    let written = write(image, device, target.is_block)?;
    verify(image, device, written)?;
    eprintln!(
        "flash: {} written and verified ({written} bytes)",
        device.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_target(contents: Contents) -> Target {
        Target {
            path: PathBuf::from("/tmp/stick.img"),
            is_block: false,
            size: u64::MAX,
            confirm_words: vec!["stick.img".into()],
            description: "image file".into(),
            busy: vec![],
            contents,
        }
    }

    #[test]
    fn probes_signatures() {
        let mut head = vec![0u8; PROBE_BYTES];
        assert_eq!(probe(&head), Contents::Blank);
        head[BTRFS_SUPER + 0x40..BTRFS_SUPER + 0x48].copy_from_slice(BTRFS_MAGIC);
        head[BTRFS_SUPER + 0x12b..BTRFS_SUPER + 0x12f].copy_from_slice(b"tank");
        assert_eq!(
            probe(&head),
            Contents::PoolMember {
                label: "tank".into()
            }
        );
        let mut head = vec![0u8; PROBE_BYTES];
        head[1024 + 0x38] = 0x53;
        head[1024 + 0x39] = 0xef;
        assert_eq!(
            probe(&head),
            Contents::Data(vec!["an ext2/3/4 file system".into()])
        );
        let mut head = vec![0u8; 8192];
        head[510] = 0x55;
        head[511] = 0xaa;
        head[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(
            probe(&head),
            Contents::Data(vec!["a GPT partition table".into()])
        );
        let mut head = vec![0u8; 4096];
        head[100] = 1;
        assert_eq!(
            probe(&head),
            Contents::Data(vec!["data of an unknown kind".into()])
        );
        // Short or random input never panics.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 511, 512, 4097, 70000] {
            let mut h = vec![0u8; len];
            for b in &mut h {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            let _ = probe(&h);
        }
    }

    #[test]
    fn refusals_and_confirmation() {
        let blank = file_target(Contents::Blank);
        assert_eq!(decide(&blank, 100, None), Decision::Write);
        let member = file_target(Contents::PoolMember {
            label: "tank".into(),
        });
        match decide(&member, 100, None) {
            Decision::Ask(q) => assert!(
                q.contains("labelled 'tank'") && q.contains("file name"),
                "{q}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(decide(&member, 100, Some("stick.img")), Decision::Write);
        match decide(&member, 100, Some("yes")) {
            Decision::Refuse(why) => assert!(why.contains("'yes' is neither 'stick.img'"), "{why}"),
            other => panic!("{other:?}"),
        }
        let mut disk = file_target(Contents::Data(vec!["a GPT partition table".into()]));
        disk.is_block = true;
        disk.size = 64 << 20;
        disk.confirm_words = vec!["QEMU HARDDISK".into(), "TANK-SDA".into()];
        match decide(&disk, 100, None) {
            Decision::Ask(q) => assert!(q.contains("model or serial") && q.contains("GPT"), "{q}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(decide(&disk, 100, Some("TANK-SDA")), Decision::Write);
        assert_eq!(
            decide(&disk, 100, Some(" QEMU HARDDISK\n")),
            Decision::Write
        );
        // Too small, mounted, or nothing to confirm with: refused whatever is typed.
        assert!(
            matches!(decide(&disk, 128 << 20, Some("TANK-SDA")), Decision::Refuse(w) if w.contains("smaller"))
        );
        let mut mounted = disk.clone();
        mounted.busy = vec!["/dev/sdc1 is mounted".into()];
        assert!(
            matches!(decide(&mounted, 100, Some("TANK-SDA")), Decision::Refuse(w) if w.contains("is mounted"))
        );
        let mut anonymous = disk.clone();
        anonymous.confirm_words = vec![String::new(), String::new()];
        assert!(
            matches!(decide(&anonymous, 100, Some("")), Decision::Refuse(w) if w.contains("no model or serial"))
        );
    }

    #[test]
    fn mountinfo_devices() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    23 22 0:21 / /proc rw - proc proc rw\n";
        assert_eq!(mounted_devices(text), vec!["8:1", "0:21"]);
    }

    #[test]
    fn flashes_a_file_and_verifies() {
        let dir = std::env::temp_dir().join(format!("tank-flash-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let image = dir.join("tank.img");
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&image, &data).unwrap();
        // A blank target is written without a question.
        let stick = dir.join("stick.img");
        fs::write(&stick, vec![0u8; 6_000_000]).unwrap();
        run(&stick, &image, None).unwrap();
        assert_eq!(&fs::read(&stick).unwrap()[..data.len()], &data[..]);
        // Now it holds data: refused without the right word, written with it.
        let err = run(&stick, &image, Some("nope".into())).unwrap_err();
        assert!(err.to_string().contains("nothing was written"), "{err}");
        run(&stick, &image, Some("stick.img".into())).unwrap();
        // A target that differs from the image fails verification.
        let mut bytes = fs::read(&stick).unwrap();
        bytes[4_000_000] ^= 1;
        fs::write(&stick, &bytes).unwrap();
        let err = verify(&image, &stick, data.len() as u64).unwrap_err();
        assert!(err.to_string().contains("at byte 4000000"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
