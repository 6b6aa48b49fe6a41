//! The flashable disk image booted the way a real box boots it: OVMF (UEFI firmware) from the
//! image as the boot disk, systemd-boot, no `-kernel`. One guest's three power-ons share the
//! assertions (TCG boots are slow): the first boot marks slot A good and creates a pool on the
//! two data disks while the boot disk is refused; the second assembles that pool; before the
//! third, slot B is made newer with a kernel that cannot start its init, and systemd-boot
//! tries it until its tries run out and falls back to slot A, which `status` reports.
//! `system version` shows the image's version, build id and signer and both slots' states.
//!
//! They need the image from `cargo xtask image` and Debian's `ovmf`; run them with
//! `cargo xtask test`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::esp::{self, Entry, Slot};
use tank_tests::guest::Guest;
use tank_tests::qemu::{QemuConfig, Uefi};

const T: Duration = Duration::from_secs(60);
const BOOT: Duration = Duration::from_secs(300);

fn disk_image(board: &board::Board) -> PathBuf {
    tank_tests::image_dir(board.name).join(image::disk::image_name(
        env!("CARGO_PKG_VERSION"),
        board.name,
    ))
}

fn start(board: &'static board::Board, uefi: &Uefi, disks: &[PathBuf], name: &str) -> Guest {
    let mut config = QemuConfig::new(board, tank_tests::image_dir(board.name));
    config.disks = disks.to_vec();
    config.uefi = Some(uefi.clone());
    let cmd = config.command().expect("QEMU command");
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        !args.iter().any(|a| a == "-kernel" || a == "-initrd"),
        "a UEFI boot must not hand QEMU the kernel: {args:?}"
    );
    Guest::start(config, name).expect("QEMU starts")
}

fn entries(image: &Path) -> Vec<String> {
    let fs = image::disk::open_esp(image).expect("the ESP opens");
    let names = esp::entry_names(&fs.root_dir()).expect("loader/entries");
    names
}

/// The name of the disk whose line in `disks` carries `serial`.
fn disk_named(disks: &str, serial: &str) -> String {
    disks
        .lines()
        .find(|l| l.contains(serial))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no disk with serial {serial}:\n{disks}"))
        .to_string()
}

fn power_off(guest: &mut Guest) {
    guest.send(b"poweroff\r").unwrap();
    let exit = guest.wait_exit(T).expect("QEMU exits after poweroff");
    assert!(exit.success(), "QEMU exit status {exit}");
}

#[test]
fn uefi_boot_marks_slot_good_assembles_pool_and_falls_back() {
    let board = board::default_board();
    let run = tank_tests::fresh_run_dir("uefi-boot");
    let uefi = Uefi::fresh(&disk_image(board), &run).expect("a copy of the disk image");
    let disks = tank_tests::fresh_disks("uefi", &[1 << 30, 1 << 30]);
    assert_eq!(
        entries(&uefi.boot_disk),
        vec!["tank-a+3.conf", "tank-b+3.conf"]
    );

    // First boot: firmware, boot loader, slot A with its first try.
    let mut guest = start(board, &uefi, &disks, "uefi-1");
    guest.wait_prompt(BOOT).expect("the prompt, booted by OVMF");
    let firmware_to_prompt = guest.elapsed();
    let status = guest
        .run_until("status", T, |s| s.contains("boot       slot A (good"))
        .expect("slot A marks itself good once assembly found no pool");
    assert!(
        status.contains("slot A (good, marked this boot)"),
        "{status}"
    );
    // system version: this image's version, build id and signer; slot A running and good
    // (or still trying), slot B the same build, never tried, both from the disk image.
    let version = guest.run("system version", T).unwrap();
    let manifest = tank_tests::check_version_lines(&version, board.name);
    let v = &manifest.tank_version;
    let slot_a = tank_tests::line_starting(&version, "slot A ");
    assert!(
        slot_a.starts_with(&format!("slot A     running, {v}, good,"))
            || slot_a.starts_with(&format!("slot A     running, {v}, trying")),
        "{version}"
    );
    assert!(
        slot_a.ends_with("installed with the disk image (flashed)"),
        "{version}"
    );
    assert_eq!(
        tank_tests::line_starting(&version, "slot B "),
        format!(
            "slot B     {v}, trying (3 tries left, none used), installed with the disk image (flashed)"
        ),
        "{version}"
    );
    let listing = guest.run("disks", T).unwrap();
    let boot = disk_named(&listing, "TANK-BOOT");
    let (a, b) = (
        disk_named(&listing, "TANK-SDA"),
        disk_named(&listing, "TANK-SDB"),
    );
    let boot_line = listing.lines().find(|l| l.contains("TANK-BOOT")).unwrap();
    assert!(boot_line.contains("[boot device]"), "{listing}");
    let out = guest
        .run(&format!("pool create tank mirror {boot} {a}"), T)
        .unwrap();
    assert!(
        out.contains(&format!("{boot} is the boot device")),
        "pool create must refuse the boot disk:\n{out}"
    );
    let out = guest
        .run(&format!("pool create tank mirror {boot} {a} force"), T)
        .unwrap();
    assert!(
        out.contains("is the boot device"),
        "force does not override:\n{out}"
    );
    let out = guest
        .run(
            &format!("pool create tank mirror {a} {b}"),
            Duration::from_secs(180),
        )
        .unwrap();
    assert!(out.contains("created"), "{out}");
    let out = guest.run("dataset create keep", T).unwrap();
    assert!(!out.contains("error"), "{out}");
    power_off(&mut guest);
    drop(guest);
    // The box remembers its pool on the ESP.
    {
        let fs = image::disk::open_esp(&uefi.boot_disk).unwrap();
        let mut text = String::new();
        fs.root_dir()
            .open_file("tank/pool")
            .expect("tank/pool on the ESP")
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.trim_end().ends_with(" tank"), "{text:?}");
    }
    assert_eq!(
        entries(&uefi.boot_disk),
        vec!["tank-a.conf", "tank-b+3.conf"],
        "slot A's entry lost its counter"
    );

    // Second boot, with a disk from another box (its own pool) added: the pool created in the
    // first assembles, as the one this box remembers; slot A is good already.
    let foreign = tank_tests::fresh_disks("uefi-foreign", &[1 << 30]);
    let made = std::process::Command::new("mkfs.btrfs")
        .args(["-q", "-f", "-L", "other"])
        .arg(&foreign[0])
        .status()
        .expect("mkfs.btrfs (btrfs-progs) runs");
    assert!(made.success());
    let with_foreign = [disks[0].clone(), disks[1].clone(), foreign[0].clone()];
    let mut guest = start(board, &uefi, &with_foreign, "uefi-2");
    guest
        .wait_prompt(BOOT)
        .expect("the prompt on the second boot");
    let status = guest
        .run_until("status", Duration::from_secs(120), |s| {
            s.contains("tank mounted") && s.contains("boot       slot A (good)")
        })
        .expect("the pool assembles and slot A stays good");
    assert!(!status.contains("fell back"), "{status}");
    let out = guest.run("dataset list", T).unwrap();
    assert!(out.contains("keep"), "{out}");
    let log = guest.run("log 400", T).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("'other'") && l.contains("not this box's pool")),
        "{log}"
    );
    power_off(&mut guest);
    drop(guest);

    // An upgrade written to slot B that never comes up: newer than A, two tries, and a
    // kernel command line whose init does not exist (the kernel panics and, with panic=10,
    // restarts the machine).
    {
        let fs = image::disk::open_esp(&uefi.boot_disk).unwrap();
        {
            let root = fs.root_dir();
            root.remove("loader/entries/tank-b+3.conf").unwrap();
            let broken = Entry {
                slot: Slot::B,
                generation: 3,
                tank_version: env!("CARGO_PKG_VERSION").into(),
                options: format!(
                    "{} rdinit=/nonexistent",
                    esp::slot_cmdline(board.cmdline, Slot::B)
                ),
                tries_left: Some(2),
                tries_done: 0,
            };
            esp::write_file(
                &root,
                &format!("{}/{}", esp::ENTRIES_DIR, broken.file_name()),
                broken.text().as_bytes(),
            )
            .unwrap();
        }
        fs.unmount().unwrap();
    }
    assert_eq!(
        entries(&uefi.boot_disk),
        vec!["tank-a.conf", "tank-b+2.conf"]
    );

    let started = Instant::now();
    let mut guest = start(board, &uefi, &disks, "uefi-3");
    guest
        .expect("Kernel panic", BOOT)
        .expect("slot B is tried first and fails");
    guest
        .wait_prompt(Duration::from_secs(600))
        .expect("slot A boots once slot B ran out of tries");
    // Three starts by the firmware: slot B twice (each ending in a panic), then slot A.
    let transcript = guest.transcript();
    let count = |needle: &str| transcript.matches(needle).count();
    assert_eq!(count("BdsDxe: starting"), 3, "{transcript}");
    assert_eq!(count("VFS: Unable to mount root fs"), 2, "{transcript}");
    let status = guest
        .run_until("status", Duration::from_secs(120), |s| {
            s.contains("tank mounted") && s.contains("fell back")
        })
        .expect("status says why slot A runs");
    assert!(
        status.contains("boot       slot A (good): fell back, slot B ran out of tries"),
        "{status}"
    );
    // system version shows slot B bad after its two tries.
    let version = guest.run("version", T).unwrap();
    assert!(
        tank_tests::line_starting(&version, "slot A ").starts_with("slot A     running, "),
        "{version}"
    );
    assert!(
        tank_tests::line_starting(&version, "slot B ")
            .contains(", bad (no tries left after 2), installed with the disk image"),
        "{version}"
    );
    power_off(&mut guest);
    drop(guest);
    assert_eq!(
        entries(&uefi.boot_disk),
        vec!["tank-a.conf", "tank-b+0-2.conf"],
        "systemd-boot counted slot B's two tries"
    );
    eprintln!(
        "uefi: firmware to prompt {:.1} s (first boot); fallback boot (two failed tries, then A) {:.1} s",
        firmware_to_prompt.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&run).unwrap();
}
