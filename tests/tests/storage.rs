//! Storage tests on the default board, each on fresh disk images: the mirrored pool, its
//! datasets with quotas and properties, the configuration store across reboots and power cuts,
//! refusal of disks holding data, degraded boot and replace, bit rot repaired by scrub.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tank_tests::console::{
    create_pool, disk_named, fails, ok, poweroff, sha256_of_file, wait_pool,
};

const T: Duration = Duration::from_secs(60);
const GIB: u64 = 1 << 30;

/// Whether a log line starts with a `YYYY-MM-DD HH:MM:SS ` time.
fn dated(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
        && b[19] == b' '
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn pool_datasets_quota_reboot_and_power_cut() {
    let disks = tank_tests::fresh_disks("pool", &[GIB, GIB]);
    let mut guest = tank_tests::boot_default("pool", &disks);
    create_pool(&mut guest);

    // Bad input first: clear errors, nothing created.
    fails(&mut guest, "dataset create ..", "..");
    fails(&mut guest, "dataset create a/b", "/");
    fails(&mut guest, "dataset create \"two words\"", "two words");
    fails(&mut guest, "dataset create \"\"", "empty");
    fails(
        &mut guest,
        &format!("dataset create {}", "x".repeat(65)),
        "64",
    );
    fails(&mut guest, "dataset create media quota lots", "lots");
    fails(&mut guest, "dataset create media quota 0", "0");
    fails(
        &mut guest,
        "dataset create media compression gzip9",
        "gzip9",
    );
    fails(
        &mut guest,
        "pool create other mirror sdx sdy",
        "already exists",
    );
    fails(&mut guest, "dataset set nothere quota 1G", "nothere");
    let list = ok(&mut guest, "dataset list");
    assert!(
        list.contains("no datasets"),
        "bad input created something:\n{list}"
    );

    // Three datasets with properties.
    ok(&mut guest, "dataset create vms quota 64M");
    ok(
        &mut guest,
        "dataset create media compression zstd owner 1000:1000 mode 0775",
    );
    ok(&mut guest, "dataset create backups mode 0700");
    fails(&mut guest, "dataset create media", "already exists");
    let list = ok(&mut guest, "dataset list");
    for name in ["vms", "media", "backups"] {
        assert!(list.contains(&format!("/mnt/tank/{name}")), "{list}");
    }
    assert!(!list.contains("NOT MOUNTED"), "{list}");

    // Data in each.
    let vms = sha256_of_file(&ok(&mut guest, "file write vms/disk.raw 8M seed vm"));
    let media = sha256_of_file(&ok(&mut guest, "file write media/show/ep1.mkv 4M seed ep1"));
    let backups = sha256_of_file(&ok(&mut guest, "file write backups/db.dump 1M seed db"));

    // Quota: writing past 64M fails with EDQUOT and the pool stays healthy.
    let out = fails(&mut guest, "file write vms/big.raw 80M seed big", "EDQUOT");
    assert!(out.contains("quota"), "{out}");
    let status = ok(&mut guest, "pool status");
    assert!(status.contains("ONLINE"), "{status}");
    assert!(
        status.contains("data RAID1") && status.contains("metadata RAID1"),
        "{status}"
    );

    // Reboot: pool, datasets, properties and data are all back, and the log of the boot
    // before.
    ok(&mut guest, "log mark before the reboot");
    guest.send(b"reboot\r").unwrap();
    guest.expect("Rebooting", T).unwrap();
    guest.wait_prompt(Duration::from_secs(180)).unwrap();
    wait_pool(&mut guest, "tank mounted");
    let list = ok(&mut guest, "dataset list");
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{list}"))
            .to_string()
    };
    assert!(line("vms").contains("64.0 MiB"), "{list}");
    assert!(
        line("media").contains("zstd")
            && line("media").contains("1000:1000")
            && line("media").contains("775"),
        "{list}"
    );
    assert!(line("backups").contains("700"), "{list}");
    assert!(ok(&mut guest, "file checksum vms/disk.raw").contains(&vms));
    assert!(ok(&mut guest, "file checksum media/show/ep1.mkv").contains(&media));
    assert!(ok(&mut guest, "file checksum backups/db.dump").contains(&backups));
    // The previous boot's log, from the kernel's first line and the init's lines from before
    // the pool existed to the mark before the reboot, with wall-clock times.
    let previous = guest.run("log boot -1", T).unwrap();
    for needle in [
        "Linux version 6.12",
        "init started",
        "no pool on the disks",
        "tank: mark: before the reboot",
    ] {
        let line = previous
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("'{needle}' not in the previous boot's log:\n{previous}"));
        assert!(dated(line), "{line}");
    }
    assert!(!guest
        .run("log 1000", T)
        .unwrap()
        .contains("mark: before the reboot"));
    fails(&mut guest, "log boot -2", "not kept");

    // Power cut right after an acknowledged change: the change survives, and so does the log
    // of that boot up to a second before the cut.
    ok(&mut guest, "log mark before the cut");
    std::thread::sleep(Duration::from_secs(3));
    ok(&mut guest, "dataset create late quota 10M");
    guest.kill();
    drop(guest);
    let mut guest = tank_tests::boot_default("pool-after-cut", &disks);
    wait_pool(&mut guest, "tank mounted");
    let previous = guest.run("log boot -1", T).unwrap();
    assert!(
        previous.contains("tank: mark: before the cut"),
        "{previous}"
    );
    assert!(!previous.contains("mark: before the reboot"), "{previous}");
    let earlier = guest.run("log boot -2 200", T).unwrap();
    assert!(
        earlier.contains("tank: mark: before the reboot"),
        "{earlier}"
    );
    let boots = guest.run("log boots", T).unwrap();
    for n in ["-2", "-1", "0"] {
        assert!(
            boots
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{n} "))
                    && dated(
                        l.trim_start()
                            .split_once(' ')
                            .map_or("", |s| s.1.trim_start())
                    )),
            "boot {n} missing:\n{boots}"
        );
    }
    let list = ok(&mut guest, "dataset list");
    assert!(
        list.lines()
            .any(|l| l.starts_with("late") && l.contains("10.0 MiB")),
        "{list}"
    );
    assert!(ok(&mut guest, "pool status").contains("ONLINE"));

    // Destroy asks for the dataset's name; a wrong answer keeps it, the right one removes it.
    guest.skip_output();
    guest.send(b"dataset destroy late\r").unwrap();
    guest.expect("confirm> ", T).unwrap();
    assert!(guest.run("lat", T).unwrap().contains("not confirmed"));
    assert!(ok(&mut guest, "dataset list").contains("late"));
    guest.skip_output();
    guest.send(b"dataset destroy late\r").unwrap();
    guest.expect("confirm> ", T).unwrap();
    assert!(guest
        .run("late", T)
        .unwrap()
        .contains("dataset late destroyed"));
    let list = ok(&mut guest, "dataset list");
    assert!(!list.contains("late") && list.contains("media"), "{list}");
    poweroff(&mut guest);
}

#[test]
fn disks_holding_data_are_refused() {
    let disks = tank_tests::fresh_disks("refuse", &[GIB, GIB, GIB, GIB]);
    // sdb holds an ext4 filesystem, sda a GPT partition table; sdc and sdd each hold a pool of
    // another box (single-disk btrfs with valid pool names): neither may be guessed at boot.
    run(Command::new("timeout")
        .args(["120", "mkfs.ext4", "-q", "-F"])
        .arg(&disks[1]));
    write_gpt(&disks[0]);
    for (disk, label) in [(&disks[2], "alpha"), (&disks[3], "beta")] {
        run(Command::new("timeout")
            .args(["120", "mkfs.btrfs", "-q", "-f", "-L", label])
            .arg(disk));
    }
    let before = [file_bytes(&disks[0]), file_bytes(&disks[1])];

    let mut guest = tank_tests::boot_default("refuse", &disks);
    let status = wait_pool(&mut guest, "FAILED");
    assert!(
        status.contains("several pools are on the disks")
            && status.contains("'alpha'")
            && status.contains("'beta'")
            && status.contains("pool import"),
        "{status}"
    );
    let a = disk_named(&mut guest, "TANK-SDA");
    let b = disk_named(&mut guest, "TANK-SDB");
    fails(
        &mut guest,
        "pool create tank mirror sdx sdy",
        "no disk 'sdx'",
    );
    fails(
        &mut guest,
        &format!("pool create Tank! mirror {a} {b}"),
        "Tank!",
    );
    fails(
        &mut guest,
        &format!("pool create tank mirror {a} {a}"),
        "twice",
    );
    let out = fails(
        &mut guest,
        &format!("pool create tank mirror {a} {b}"),
        "nothing was changed",
    );
    assert!(out.contains("GPT") || out.contains("partition"), "{out}");
    let out = fails(
        &mut guest,
        &format!("pool create tank mirror {b} {a}"),
        "ext4",
    );
    assert!(out.contains("force"), "{out}");
    // Forcing still asks; a wrong answer changes nothing.
    guest.skip_output();
    guest
        .send(format!("pool create tank mirror {a} {b} force\r").as_bytes())
        .unwrap();
    guest.expect("to confirm", T).unwrap();
    guest.expect("confirm> ", T).unwrap();
    let out = guest.run("not-the-disk", T).unwrap();
    assert!(out.contains("not confirmed"), "{out}");
    let status = ok(&mut guest, "status");
    assert!(status.contains("several pools"), "{status}");
    fails(&mut guest, "group add media", "changes are refused");
    // The operator names the pool; only it is mounted.
    fails(&mut guest, "pool import gamma", "no pool 'gamma'");
    wait_pool(&mut guest, "FAILED");
    ok(&mut guest, "pool import beta");
    wait_pool(&mut guest, "beta mounted");
    let pool = ok(&mut guest, "pool status");
    assert!(!pool.contains("alpha"), "{pool}");
    fails(&mut guest, "pool import alpha", "a pool is mounted");
    poweroff(&mut guest);
    let after = [file_bytes(&disks[0]), file_bytes(&disks[1])];
    assert!(before[0] == after[0], "sda's bytes changed");
    assert!(before[1] == after[1], "sdb's bytes changed");
}

#[test]
fn degraded_boot_then_replace() {
    let disks = tank_tests::fresh_disks("degraded", &[GIB, GIB, GIB]);
    let mut guest = tank_tests::boot_default("degraded-1", &disks[..2]);
    create_pool(&mut guest);
    ok(&mut guest, "dataset create media");
    let sum = sha256_of_file(&ok(&mut guest, "file write media/keep.bin 6M seed keep"));
    poweroff(&mut guest);

    // sdb is gone; a blank disk sits in its place.
    let mut guest = tank_tests::boot_default("degraded-2", &[disks[0].clone(), disks[2].clone()]);
    let status = wait_pool(&mut guest, "DEGRADED");
    assert!(status.contains("DEGRADED"), "{status}");
    assert!(
        guest.transcript().contains("IS DEGRADED"),
        "no degraded banner on the console"
    );
    let pool = ok(&mut guest, "pool status");
    assert!(
        pool.contains("MISSING") && pool.contains("pool replace missing"),
        "{pool}"
    );
    assert!(ok(&mut guest, "file checksum media/keep.bin").contains(&sum));
    let written = sha256_of_file(&ok(
        &mut guest,
        "file write media/while-degraded.bin 3M seed deg",
    ));

    let blank = disk_named(&mut guest, "TANK-SDB");
    ok(&mut guest, &format!("pool replace missing {blank}"));
    let pool = guest
        .run_until("pool status", Duration::from_secs(600), |s| {
            s.contains("ONLINE") && !s.contains("running:")
        })
        .expect("the pool is ONLINE again after replace");
    assert!(
        !pool.contains("single") && !pool.contains("MISSING"),
        "{pool}"
    );
    assert!(
        pool.contains("data RAID1")
            && pool.contains("metadata RAID1")
            && pool.contains("system RAID1"),
        "{pool}"
    );
    assert!(ok(&mut guest, "file checksum media/keep.bin").contains(&sum));
    assert!(ok(&mut guest, "file checksum media/while-degraded.bin").contains(&written));
    poweroff(&mut guest);
}

#[test]
fn bit_rot_is_repaired_by_scrub() {
    let disks = tank_tests::fresh_disks("bitrot", &[GIB, GIB]);
    let mut guest = tank_tests::boot_default("bitrot-1", &disks);
    create_pool(&mut guest);
    ok(&mut guest, "dataset create media compression none");
    let sum = sha256_of_file(&ok(&mut guest, "file write media/rot.bin 2M seed ROTTEN"));
    poweroff(&mut guest);

    // Overwrite one copy of 64 KiB of the file on sda's image, superblocks untouched.
    let mut image = file_bytes(&disks[0]);
    let needle = b"ROTTEN 0000000000000000";
    let at = image
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the test data is on sda");
    assert!(at > 1 << 20, "the data sits where the superblocks are");
    for b in &mut image[at..at + 65536] {
        *b = 0x5a;
    }
    std::fs::write(&disks[0], &image).unwrap();
    drop(image);

    let mut guest = tank_tests::boot_default("bitrot-2", &disks);
    wait_pool(&mut guest, "tank mounted");
    assert!(
        ok(&mut guest, "file checksum media/rot.bin").contains(&sum),
        "a read returned bad data"
    );
    ok(&mut guest, "pool scrub start");
    let out = guest
        .run_until("pool scrub status", Duration::from_secs(300), |s| {
            s.contains("last scrub finished")
        })
        .expect("the scrub finishes");
    let corrected: u64 = out
        .split("corrected ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    // The read above may have met the damaged copy and repaired it itself (btrfs picks a copy
    // by the reader's pid and the chunk's stripe order, which depends on what the pool holds);
    // otherwise the scrub did.
    let log = guest.run("log 1000", T).unwrap();
    let repaired_by_read = log.contains("read error corrected");
    assert!(
        corrected > 0 || repaired_by_read,
        "neither the read nor the scrub repaired the damaged copy:\n{out}\n{log}"
    );
    assert!(out.contains("uncorrectable 0"), "{out}");
    assert!(ok(&mut guest, "file checksum media/rot.bin").contains(&sum));
    poweroff(&mut guest);
    btrfs_check(&disks);
}

/// Writes a GPT partition table with one Linux partition (protective MBR, primary header and
/// entries with their CRCs), as a partitioning tool would. Written here rather than with
/// sfdisk, which syncs every filesystem of the host.
fn write_gpt(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let size = std::fs::metadata(path).unwrap().len();
    let last_lba = size / 512 - 1;
    let mut mbr = [0u8; 512];
    mbr[446 + 1..446 + 4].copy_from_slice(&[0x00, 0x02, 0x00]);
    mbr[446 + 4] = 0xee;
    mbr[446 + 5..446 + 8].copy_from_slice(&[0xff, 0xff, 0xff]);
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&(last_lba.min(0xffff_ffff) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    // One entry: Linux filesystem data, LBA 2048 to the last usable LBA.
    let mut entries = vec![0u8; 128 * 128];
    let linux: [u8; 16] = [
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ];
    entries[..16].copy_from_slice(&linux);
    entries[16..32].copy_from_slice(&[0x42; 16]);
    entries[32..40].copy_from_slice(&2048u64.to_le_bytes());
    entries[40..48].copy_from_slice(&(last_lba - 34).to_le_bytes());
    let mut header = [0u8; 92];
    header[..8].copy_from_slice(b"EFI PART");
    header[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    header[12..16].copy_from_slice(&92u32.to_le_bytes());
    header[24..32].copy_from_slice(&1u64.to_le_bytes());
    header[32..40].copy_from_slice(&last_lba.to_le_bytes());
    header[40..48].copy_from_slice(&34u64.to_le_bytes());
    header[48..56].copy_from_slice(&(last_lba - 34).to_le_bytes());
    header[56..72].copy_from_slice(&[0x17; 16]);
    header[72..80].copy_from_slice(&2u64.to_le_bytes());
    header[80..84].copy_from_slice(&128u32.to_le_bytes());
    header[84..88].copy_from_slice(&128u32.to_le_bytes());
    header[88..92].copy_from_slice(&crc32fast::hash(&entries).to_le_bytes());
    let crc = crc32fast::hash(&header);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(&mbr).unwrap();
    f.write_all(&header).unwrap();
    f.seek(SeekFrom::Start(1024)).unwrap();
    f.write_all(&entries).unwrap();
}

/// `btrfs check --readonly` on the pool's images through loop devices. Each host command runs
/// under `timeout`, so a host whose kernel is in trouble fails the test instead of hanging it.
fn btrfs_check(disks: &[PathBuf]) {
    let mut loops = Vec::new();
    for d in disks {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(d)
            .output()
            .expect("losetup (util-linux)");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        loops.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    for l in &loops {
        let _ = Command::new("timeout")
            .args(["60", "btrfs", "device", "scan", l])
            .output();
    }
    let out = Command::new("btrfs")
        .args(["check", "--readonly", &loops[0]])
        .output()
        .expect("btrfs check (btrfs-progs)");
    for l in &loops {
        let _ = Command::new("losetup").args(["-d", l]).status();
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("no error found"),
        "btrfs check:\n{text}"
    );
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}
