//! Configuration backup end to end: one box with a pool, datasets, an NFS and an SMB share, a
//! user, a group and a snapshot task exports its configuration; the file is fetched with
//! smbclient through a port forward and put on a second box with a fresh pool on new disks,
//! which refuses a damaged and a foreign file without changing anything, then imports the
//! export after confirmation and lists the same datasets, shares, users and groups, also
//! after a reboot.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tank_tests::console::{create_pool, fails, ok, poweroff, reboot, T};
use tank_tests::guest::Guest;

const GIB: u64 = 1 << 30;

/// Runs smbclient against the forwarded port; it must succeed. Returns its output.
fn smb(port: u16, user: &str, command: &str) -> String {
    let out = Command::new("smbclient")
        .env("LC_ALL", "C.UTF-8")
        .args(["//127.0.0.1/media", "-p", &port.to_string(), "-U", user, "-c", command])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run smbclient: {e}; install it with `apt-get install smbclient` (or `cargo xtask prereqs`)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "smbclient {command:?} failed:\n{text}"
    );
    text
}

/// `dataset list` without the columns that count bytes (USED, REFER, SNAPSHOTS), which differ
/// between two pools: name, quota, compression, owner, mode and mount point per line.
fn dataset_settings(guest: &mut Guest) -> Vec<String> {
    ok(guest, "dataset list")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let chars: Vec<char> = l.chars().collect();
            let name: String = chars.iter().take(20).collect();
            let rest: String = chars.iter().skip(54).collect();
            format!(
                "{} {}",
                name.trim_end(),
                rest.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect()
}

/// What the import must reproduce: datasets' settings and the share, user and group lists.
fn settings(guest: &mut Guest) -> Vec<String> {
    let mut all = dataset_settings(guest);
    for list in ["nfs list", "smb share list", "user list", "group list"] {
        all.push(format!("--- {list}"));
        all.extend(ok(guest, list).lines().map(str::to_owned));
    }
    all
}

#[test]
fn config_export_then_import_on_a_fresh_pool() {
    let run = tank_tests::fresh_run_dir("backup-files");

    // The first box.
    let disks = tank_tests::fresh_disks("backup-a", &[GIB, GIB]);
    let (mut a, ports) = tank_tests::boot_forwarding("backup-a", &disks, &[445]);
    create_pool(&mut a);
    ok(&mut a, "group add media");
    a.run_with_password("user add alice", "alice-Pw1").unwrap();
    ok(&mut a, "user set alice groups media");
    ok(
        &mut a,
        "dataset create media compression zstd quota 2G owner 0:1000 mode 2775",
    );
    ok(&mut a, "dataset create vms quota 500M compression none");
    ok(
        &mut a,
        "nfs share add vms clients 10.0.3.0/24 no_root_squash",
    );
    ok(
        &mut a,
        "smb share add media users @media create_mask 0664 directory_mask 0775",
    );
    ok(&mut a, "snapshot task add media every 1h keep 48");

    fails(
        &mut a,
        "system config export ../etc/x",
        "not a path inside a dataset",
    );
    fails(
        &mut a,
        "system config export nope/x",
        "there is no dataset 'nope'",
    );
    let out = ok(&mut a, "system config export media/backup/tank.exp");
    assert!(
        out.contains("configuration exported to media/backup/tank.exp")
            && out.contains("2 datasets")
            && out.contains("without password hashes"),
        "{out}"
    );
    let out = ok(
        &mut a,
        "system config export media/backup/secret.exp secrets",
    );
    assert!(out.contains("readable by root only"), "{out}");
    let listing = ok(&mut a, "file list media/backup");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("tank.exp ") && l.contains("0644 0:")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("secret.exp ") && l.contains("0600 0:")),
        "{listing}"
    );
    let expected = settings(&mut a);
    let tasks = ok(&mut a, "snapshot task list");
    assert!(
        tasks.contains("media") && tasks.contains("keep 48"),
        "{tasks}"
    );

    // The export leaves the box over SMB; the one with secrets is root's alone.
    let good = run.join("tank.exp");
    let port = ports[0];
    smb(
        port,
        "alice%alice-Pw1",
        &format!("get backup/tank.exp {}", good.display()),
    );
    let denied = Command::new("smbclient")
        .args([
            "//127.0.0.1/media",
            "-p",
            &port.to_string(),
            "-U",
            "alice%alice-Pw1",
            "-c",
        ])
        .arg(format!(
            "get backup/secret.exp {}",
            run.join("secret.exp").display()
        ))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&denied.stdout).to_string()
        + &String::from_utf8_lossy(&denied.stderr);
    assert!(said.contains("NT_STATUS_ACCESS_DENIED"), "{said}");
    poweroff(&mut a);

    let bytes = std::fs::read(&good).unwrap();
    assert!(bytes.starts_with(b"TANKEXP\0"), "not an export");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    let bad = run.join("bad.exp");
    std::fs::write(&bad, &damaged).unwrap();
    let foreign = run.join("notes.txt");
    std::fs::write(&foreign, b"just some notes, not an export\n").unwrap();

    // The second box: new disks, a fresh pool, its own alice and a media dataset to copy into.
    let disks = tank_tests::fresh_disks("backup-b", &[GIB, GIB]);
    let (mut b, ports) = tank_tests::boot_forwarding("backup-b", &disks, &[445]);
    let port = ports[0];
    create_pool(&mut b);
    ok(&mut b, "dataset create media mode 0777");
    b.run_with_password("user add alice", "other-Pw2").unwrap();
    ok(&mut b, "smb share add media users alice");
    for (local, remote) in [
        (&good, "tank.exp"),
        (&bad, "bad.exp"),
        (&foreign, "notes.txt"),
    ] {
        smb(
            port,
            "alice%other-Pw2",
            &format!("put {} {remote}", local.display()),
        );
    }

    let before = settings(&mut b);
    fails(
        &mut b,
        "system config import media/bad.exp",
        "checksum does not match",
    );
    fails(
        &mut b,
        "system config import media/notes.txt",
        "not a Tank configuration export",
    );
    fails(
        &mut b,
        "system config import media/missing.exp",
        "cannot read the export",
    );
    assert_eq!(
        settings(&mut b),
        before,
        "a refused import changed something"
    );

    // Not confirmed: nothing changes.
    b.skip_output();
    b.send(b"system config import media/tank.exp\r").unwrap();
    let question = b.expect("confirm> ", T).unwrap();
    for says in [
        "pool: stays tank",
        "~ media: quota none, compression",
        "+ vms (quota 500.0 MiB, compression none",
        "+ nfs vms",
        "~ smb media",
        "~ alice: uid 1000",
        "+ media (gid 1000)",
        "+ task 1 (media every hour, keep 48)",
        "Type 'yes' to apply it",
    ] {
        assert!(question.contains(says), "{says:?} not asked:\n{question}");
    }
    b.send(b"no\r").unwrap();
    let answer = b.expect("tank> ", T).unwrap();
    assert!(
        answer.contains("not confirmed: nothing changed"),
        "{answer}"
    );
    assert_eq!(settings(&mut b), before);

    b.skip_output();
    b.send(b"system config import media/tank.exp\r").unwrap();
    b.expect("confirm> ", T).unwrap();
    b.send(b"yes\r").unwrap();
    let done = b.expect("tank> ", Duration::from_secs(120)).unwrap();
    assert!(
        done.contains("configuration imported from media/tank.exp")
            && done.contains("datasets created: vms")
            && done.contains("datasets changed: media")
            && !done.contains("error:"),
        "{done}"
    );
    assert_eq!(settings(&mut b), expected);
    let tasks = ok(&mut b, "snapshot task list");
    assert!(
        tasks.contains("media") && tasks.contains("keep 48"),
        "{tasks}"
    );
    // alice kept this box's password (the file has no hashes) and is now in @media.
    let listing = smb(port, "alice%other-Pw2", "ls");
    assert!(listing.contains("tank.exp"), "{listing}");
    let again = ok(&mut b, "system config import media/tank.exp");
    assert!(again.contains("nothing to change"), "{again}");

    // Saved through the store: the same after a reboot.
    reboot(&mut b);
    assert_eq!(settings(&mut b), expected);
    poweroff(&mut b);
    let _ = std::fs::remove_dir_all(Path::new(&run));
}
