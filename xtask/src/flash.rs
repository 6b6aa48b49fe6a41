//! `cargo xtask flash DEVICE`: writes the disk image to a boot device and reads it back.
//!
//! Before writing, the target is inspected: a partition (not a whole disk), anything mounted
//! or held (a mount, swap, device-mapper or md holder), and a device smaller than the image are
//! refused outright. A device that holds anything (a pool member's btrfs superblock, a
//! partition table, a file system or other signature at its head or its tail, as
//! [`tank_probe`] finds them for the appliance too; or any byte that is not zero in its first
//! MiB) is only written when the operator types its model or serial, read from sysfs (a
//! regular file's name for an image file). A blank device needs no confirmation. The write shows progress, is synced, the page cache is
//! dropped for the range, and every byte is read back and compared.
//!
//! What does not live here: building the image (`image::disk`).

use std::fs;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tank_probe::Signature;

/// What a device holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents {
    /// No signature, and all zero in the first MiB.
    Blank,
    /// The signatures [`tank_probe`] found, at the head or the tail of the device.
    Signatures(Vec<Signature>),
    /// No signature, but bytes that are not zero in the first MiB.
    Unknown,
    /// Not read: the device is in use.
    NotRead,
}

impl Contents {
    /// The contents in words, for the operator.
    fn describe(&self) -> String {
        match self {
            Self::Blank => "nothing".into(),
            Self::Signatures(sigs) => sigs
                .iter()
                .map(|sig| match sig {
                    Signature::Btrfs { .. } => format!("{sig} (a Tank pool member?)"),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Self::Unknown => "data of an unknown kind".into(),
            Self::NotRead => "data in use".into(),
        }
    }
}

/// How much of the head is checked for bytes that are not zero when no signature is found.
const HEAD_BYTES: u64 = 1 << 20;

/// What `dev` holds: every signature the probe the appliance also uses finds (it reads the
/// head and the tail); failing that, any byte that is not zero in the first MiB.
pub fn probe<D: Read + Seek>(dev: &mut D) -> io::Result<Contents> {
    let sigs = tank_probe::probe(dev)?;
    if !sigs.is_empty() {
        return Ok(Contents::Signatures(sigs));
    }
    dev.seek(SeekFrom::Start(0))?;
    let mut head = Vec::new();
    dev.take(HEAD_BYTES).read_to_end(&mut head)?;
    Ok(if head.iter().any(|&b| b != 0) {
        Contents::Unknown
    } else {
        Contents::Blank
    })
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
    if target.contents == Contents::Blank {
        return Decision::Write;
    }
    let what = target.contents.describe();
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
        fs::File::open(path)
            .and_then(|mut f| probe(&mut f))
            .with_context(|| format!("cannot read {}", path.display()))?
    } else {
        Contents::NotRead
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
        use std::io::Cursor;
        let probe_bytes = |img: &[u8]| probe(&mut Cursor::new(img)).unwrap();
        let mut img = vec![0u8; 2 << 20];
        assert_eq!(probe_bytes(&img), Contents::Blank);
        img[(64 << 10) + 0x40..(64 << 10) + 0x48].copy_from_slice(b"_BHRfS_M");
        img[(64 << 10) + 0x12b..(64 << 10) + 0x12f].copy_from_slice(b"tank");
        let member = probe_bytes(&img);
        assert_eq!(
            member,
            Contents::Signatures(vec![Signature::Btrfs {
                label: "tank".into()
            }])
        );
        assert_eq!(
            member.describe(),
            "a btrfs file system labelled 'tank' (a Tank pool member?)"
        );
        // A GPT disk: protective MBR, primary header, backup header in the last LBA.
        let mut img = vec![0u8; 2 << 20];
        img[510] = 0x55;
        img[511] = 0xaa;
        img[446 + 4] = 0xee;
        img[512..520].copy_from_slice(b"EFI PART");
        let n = img.len();
        img[n - 512..n - 504].copy_from_slice(b"EFI PART");
        assert_eq!(probe_bytes(&img).describe(), "a GPT partition table");
        // Bytes that no probe recognises, in the first MiB; past it, nothing is looked at
        // but the signatures.
        let mut img = vec![0u8; 2 << 20];
        img[100] = 1;
        assert_eq!(probe_bytes(&img), Contents::Unknown);
        assert_eq!(probe_bytes(&img).describe(), "data of an unknown kind");
        img[100] = 0;
        img[(1 << 20) + 100] = 1;
        assert_eq!(probe_bytes(&img), Contents::Blank);
        // Short or random input never panics.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 511, 512, 4097, 70000] {
            let _ = probe_bytes(&tank_probe::samples::noise(&mut state, len));
        }
    }

    #[test]
    fn refusals_and_confirmation() {
        let blank = file_target(Contents::Blank);
        assert_eq!(decide(&blank, 100, None), Decision::Write);
        let member = file_target(Contents::Signatures(vec![Signature::Btrfs {
            label: "tank".into(),
        }]));
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
        let mut disk = file_target(Contents::Signatures(vec![Signature::GptPartitionTable {
            primary: true,
        }]));
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

    /// Every signature the shared probe knows, alone on a sparse disk image at its head or
    /// its tail (a backup GPT in the last LBA, md 0.90 and 1.0 superblocks, ZFS labels L2/L3
    /// only), is named to the operator and written only with the confirmation word.
    #[test]
    fn refuses_every_sample_disk() {
        let dir = std::env::temp_dir().join(format!("tank-flash-samples-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let (mut written, mut unnamed) = (Vec::new(), Vec::new());
        for sample in tank_probe::samples::all() {
            let path = dir.join(format!("{}.img", sample.name));
            sample.write_sparse(&path).unwrap();
            let target = inspect(&path).unwrap();
            match decide(&target, 1 << 20, None) {
                Decision::Ask(q) if q.contains(&sample.expect.to_string()) => {}
                Decision::Ask(q) => unnamed.push(format!("{}: {q}", sample.name)),
                other => written.push(format!("{}: {other:?}", sample.name)),
            }
            let word = format!("{}.img", sample.name);
            if !written
                .iter()
                .any(|w| w.starts_with(&format!("{}:", sample.name)))
            {
                assert!(
                    matches!(decide(&target, 1 << 20, Some("yes")), Decision::Refuse(_)),
                    "{}",
                    sample.name
                );
                assert_eq!(decide(&target, 1 << 20, Some(&word)), Decision::Write);
            }
            fs::remove_file(&path).unwrap();
        }
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            written.is_empty(),
            "written without a question: {written:#?}"
        );
        assert!(
            unnamed.is_empty(),
            "asked without naming the signature: {unnamed:#?}"
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
