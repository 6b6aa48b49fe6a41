//! Snapshots end to end, in two boots of one appliance, with the test client in the first.
//!
//! Boot 1 starts a task every minute keeping 3 at once, so its minutes pass while the rest
//! runs: refused input (nothing changes), a file deleted over SMB and copied back from
//! `.snapshots/` over SMB (smbclient on the host) and NFS (the kernel client in the test
//! client guest), writes into snapshots and into `.snapshots/` refused on both, the space
//! snapshots hold in `dataset list`, a snapshot appearing and going under a mounted client, a
//! rollback under mounted NFS and CIFS clients, a clone. Then a daily task is added for a
//! minute or two ahead and the appliance is powered off across that time. Boot 2 shows
//! exactly one catch-up snapshot per task, that snapshots, tasks and the clone survived, and
//! (as task 1 goes on running) that its retention keeps exactly its 3 newest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tank_test_agent::pattern;
use tank_tests::client::{self, Client, Link};
use tank_tests::console::{create_pool, fails, ok, poweroff, wait_pool, T};
use tank_tests::guest::Guest;
use tank_tests::qemu::{self, Forward};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const PASSWORD: &str = "alice-Pw1";

/// The file deleted and brought back: big enough to show in the space snapshots hold.
const DOC_SIZE: u64 = 4 * MIB;
const DOC_SEED: u64 = 61;
const KEEP_TEXT: &[u8] = b"the original text\n";

/// How long before the daily task's slot the appliance is powered off (its shutdown takes a
/// few seconds).
const OFF_MARGIN: u64 = 30;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-12-01 18:05 UTC` → seconds since the epoch.
fn parse_utc(text: &str) -> u64 {
    let bad = || -> ! { panic!("not a UTC time: {text:?}") };
    let text = text.trim().strip_suffix(" UTC").unwrap_or_else(|| bad());
    let (date, time) = text.split_once(' ').unwrap_or_else(|| bad());
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    let days = days_from_civil(d[0], d[1], d[2]);
    u64::try_from(days * 86_400 + t[0] * 3600 + t[1] * 60).unwrap()
}

/// The cells of a console table row (columns are two or more spaces apart).
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One row of `snapshot list`.
#[derive(Debug, Clone)]
struct Snap {
    /// `dataset@name`.
    full: String,
    created: u64,
    by: String,
}

impl Snap {
    fn name(&self) -> &str {
        self.full.split_once('@').map_or("", |(_, n)| n)
    }
}

fn snapshot_list(guest: &mut Guest, dataset: &str) -> Vec<Snap> {
    let out = ok(guest, &format!("snapshot list {dataset}"));
    let prefix = format!("{dataset}@");
    out.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| {
            let c = cells(l);
            assert_eq!(c.len(), 4, "a snapshot row with 4 cells: {l:?}\n{out}");
            Snap {
                full: c[0].clone(),
                created: parse_utc(&c[1]),
                by: c[3].clone(),
            }
        })
        .collect()
}

fn by_task(list: &[Snap], task: u32) -> Vec<Snap> {
    let by = format!("task {task}");
    let prefix = format!("auto-t{task}-");
    list.iter()
        .filter(|s| {
            assert_eq!(s.by == by, s.name().starts_with(&prefix), "{s:?}");
            s.by == by
        })
        .cloned()
        .collect()
}

fn manual(list: &[Snap]) -> Vec<String> {
    list.iter()
        .filter(|s| s.by == "manual")
        .map(|s| s.full.clone())
        .collect()
}

/// The tasks as `(id, dataset, schedule, retention)`, without the columns that move with
/// the clock.
fn task_list(guest: &mut Guest) -> Vec<Vec<String>> {
    let out = ok(guest, "snapshot task list");
    out.lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| cells(l).into_iter().take(4).collect())
        .collect()
}

/// The line of `task` in `snapshot task list`.
fn task_line(guest: &mut Guest, task: u32) -> String {
    let out = ok(guest, "snapshot task list");
    out.lines()
        .find(|l| l.starts_with(&format!("{task} ")))
        .unwrap_or_else(|| panic!("task {task} not listed:\n{out}"))
        .to_owned()
}

/// The SNAPSHOTS cell of `dataset` in `dataset list`, in bytes (a leading `≥` means "at
/// least" and is dropped).
fn snapshot_space(guest: &mut Guest, dataset: &str) -> u64 {
    let out = ok(guest, "dataset list");
    let header = out
        .lines()
        .find(|l| l.starts_with("NAME"))
        .unwrap_or_else(|| panic!("no header:\n{out}"));
    let column = header
        .split_whitespace()
        .position(|h| h == "SNAPSHOTS")
        .unwrap_or_else(|| panic!("dataset list has no SNAPSHOTS column:\n{out}"));
    let row = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(dataset))
        .unwrap_or_else(|| panic!("{dataset} not listed:\n{out}"));
    // Every size before it is two words ("4.0 MiB", "0 B", "-" is one).
    let words: Vec<&str> = row.split_whitespace().collect();
    let mut i = 1;
    for _ in 1..column {
        i += if words[i] == "-" || words[i] == "none" {
            1
        } else {
            2
        };
    }
    let number = words[i].trim_start_matches('≥');
    if number == "-" {
        return 0;
    }
    let value: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("{number:?}: {row}"));
    let unit = match words[i + 1] {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => MIB as f64,
        "GiB" => GIB as f64,
        other => panic!("unit {other:?} in {row}"),
    };
    (value * unit) as u64
}

/// The `snapshots` line of `status`.
fn snapshots_status(status: &str) -> String {
    status
        .lines()
        .find(|l| l.trim_start().starts_with("snapshots "))
        .unwrap_or_else(|| panic!("no snapshots line in status:\n{status}"))
        .to_owned()
}

/// Types a command that asks for confirmation, answers it, and returns the outcome.
fn confirmed(guest: &mut Guest, line: &str, answer: &str) -> String {
    guest.skip_output();
    guest.send(format!("{line}\r").as_bytes()).unwrap();
    let question = guest.expect("confirm> ", T).unwrap();
    assert!(!question.contains("error:"), "'{line}' failed:\n{question}");
    let out = guest.run(answer, Duration::from_secs(300)).unwrap();
    assert!(!out.contains("error:"), "'{line}' failed:\n{out}");
    out
}

/// smbclient against one share through the host forward, as alice.
struct Smb {
    port: u16,
    share: String,
}

impl Smb {
    fn run(&self, commands: &str) -> (bool, String) {
        let out = Command::new("smbclient")
            .env("LC_ALL", "C.UTF-8")
            .arg(format!("//127.0.0.1/{}", self.share))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(format!("alice%{PASSWORD}"))
            .arg("-c")
            .arg(commands)
            .output()
            .unwrap_or_else(|e| panic!("cannot run smbclient: {e}; install smbclient"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn ok(&self, commands: &str) -> String {
        let (success, text) = self.run(commands);
        assert!(success, "smbclient '{commands}' failed:\n{text}");
        text
    }

    /// A command the server must refuse with an NT status (smbclient exits with 0 after some
    /// refusals, `del` for one, so its output decides). The caller checks that nothing
    /// changed.
    fn refused(&self, commands: &str) -> String {
        let (_, text) = self.run(commands);
        let status = text
            .split_whitespace()
            .find(|w| w.starts_with("NT_STATUS_"))
            .unwrap_or_else(|| panic!("smbclient '{commands}' should have been refused:\n{text}"));
        eprintln!("smbclient '{commands}': {status}");
        text
    }
}

/// The appliance with eth1 on `link` and SMB forwarded from a free host port.
fn boot_appliance(name: &str, disks: &[PathBuf], link: &Link) -> (Guest, u16) {
    let mut config = client::appliance_config(disks, std::slice::from_ref(link));
    let port = qemu::free_port().unwrap();
    config.forwards.push(Forward {
        udp: false,
        host: port,
        guest: 445,
    });
    (client::boot_appliance_config(name, config), port)
}

fn code<T: std::fmt::Debug>(r: client::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or("(harness)").to_string(),
    }
}

/// The init logged no failure about snapshots (a prune that failed, a snapshot taken but not
/// browsable, a task that failed). The kernel's own lines (ksmbd refusing the test's writes)
/// do not count. As a positive control, the log must hold `expected`, a line the test knows
/// the init wrote (a task's run): a log that lost or never read lines fails here instead of
/// passing for want of trouble.
fn assert_no_snapshot_trouble(guest: &mut Guest, expected: &str) {
    let log = ok(guest, "log 1000");
    assert!(
        log.lines().any(|l| l.contains(expected)),
        "the log lacks the line the test expects ({expected:?}):\n{log}"
    );
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tank:") && l.contains("snapshot"))
        .filter(|l| {
            ["cannot", "fail", "FAIL", "not browsable", "error"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        trouble.is_empty(),
        "snapshot trouble in the log:\n{}",
        trouble.join("\n")
    );
}

/// Polls `snapshot list` until `check` accepts it.
fn wait_snapshots(
    guest: &mut Guest,
    dataset: &str,
    timeout: Duration,
    mut check: impl FnMut(&[Snap]) -> bool,
) -> Vec<Snap> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = snapshot_list(guest, dataset);
        if check(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "snapshots never got there in {timeout:?}: {list:#?}"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
}

#[test]
fn snapshots_tasks_browsing_rollback_catch_up() {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    let disks = tank_tests::fresh_disks("snapshots", &[GIB, GIB]);
    let link = Link::new().unwrap();
    let (mut nas, port) = boot_appliance("snapshots", &disks, &link);
    // The client boots while the appliance is set up.
    let client_spec = link.client();
    let client_boot = std::thread::spawn(move || Client::boot("snapshots-client", &client_spec));
    create_pool(&mut nas);
    phase("pool created");

    // A task every minute keeping 3, first, so its minutes pass during the rest.
    ok(&mut nas, "dataset create media mode 0777");
    let out = ok(&mut nas, "snapshot task add media every minute keep 3");
    assert!(out.contains("snapshot task 1"), "{out}");
    let task_added = unix_now();
    nas.run_with_password("user add alice", PASSWORD).unwrap();
    ok(&mut nas, "smb share add media users alice");
    ok(&mut nas, "nfs share add media clients 10.0.3.0/24");
    client::configure_appliance_link(&mut nas, &link).unwrap();
    let smb = Smb {
        port,
        share: "media".into(),
    };

    // Files: the document written from the host, a small text.
    let dir = tank_tests::fresh_run_dir("snapshots-files");
    let doc = pattern::bytes(DOC_SEED, DOC_SIZE as usize);
    let doc_sha = pattern::sha256_hex(DOC_SEED, DOC_SIZE);
    std::fs::write(dir.join("doc.bin"), &doc).unwrap();
    std::fs::write(dir.join("keep.txt"), KEEP_TEXT).unwrap();
    std::fs::write(dir.join("intruder.txt"), b"must not land\n").unwrap();
    let files_at = unix_now();
    smb.ok(&format!(
        "put {} doc.bin; put {} keep.txt; put {} same.txt",
        dir.join("doc.bin").display(),
        dir.join("keep.txt").display(),
        dir.join("keep.txt").display()
    ));
    let before_space = snapshot_space(&mut nas, "media");
    let out = ok(&mut nas, "snapshot create media@before");
    assert!(out.contains(".snapshots/before"), "{out}");
    phase("task 1 added, files written, media@before taken");

    // Refused input changes nothing.
    let manual_before = manual(&snapshot_list(&mut nas, "media"));
    assert_eq!(manual_before, ["media@before"]);
    let tasks_before = task_list(&mut nas);
    assert_eq!(
        tasks_before,
        [vec!["1", "media", "every minute", "keep 3"]],
        "{tasks_before:?}"
    );
    for (line, says) in [
        ("snapshot create nothere@x", "no dataset 'nothere'"),
        ("snapshot create media@before", "exists"),
        ("snapshot create media@auto-t1-20260101-0000", "periodic"),
        ("snapshot create media@bad/name", "'/'"),
        (
            "snapshot destroy media@missing",
            "no snapshot media@missing",
        ),
        (
            "snapshot rollback media@missing",
            "no snapshot media@missing",
        ),
        (
            "snapshot clone media@missing copy",
            "no snapshot media@missing",
        ),
        ("snapshot clone media@before media", "already exists"),
        ("snapshot list nothere", "no dataset 'nothere'"),
        (
            "snapshot task add nothere every minute keep 3",
            "no dataset 'nothere'",
        ),
        ("snapshot task add media every 0m keep 3", "1 to 1440"),
        ("snapshot task add media every 25h keep 3", "1 to 24"),
        (
            "snapshot task add media every soon keep 3",
            "not a schedule",
        ),
        ("snapshot task add media daily 24:00 keep 3", "not a time"),
        (
            "snapshot task add media weekly funday 03:00 keep 3",
            "day of the week",
        ),
        ("snapshot task add media hourly keep 3", "not a schedule"),
        (
            "snapshot task add media every minute keep 0",
            "keep at least 1",
        ),
        (
            "snapshot task add media every minute keep 30s",
            "not a retention",
        ),
        ("snapshot task add media every minute", "needs a retention"),
        ("snapshot task remove 7", "no snapshot task 7"),
    ] {
        fails(&mut nas, line, says);
    }
    assert_eq!(manual(&snapshot_list(&mut nas, "media")), manual_before);
    assert_eq!(task_list(&mut nas), tasks_before);
    let datasets = ok(&mut nas, "dataset list");
    assert!(
        !datasets.contains("nothere") && !datasets.contains("copy"),
        "{datasets}"
    );
    phase("bad input refused");

    // Browsing over SMB: the snapshot directory lists the snapshot and its files.
    let listing = smb.ok("ls .snapshots/*");
    assert!(listing.contains("before"), "{listing}");
    let listing = smb.ok("ls .snapshots/before/*");
    assert!(
        listing.contains("doc.bin") && listing.contains("keep.txt"),
        "{listing}"
    );
    // Delete the file over SMB, get it back from the snapshot, put it back.
    smb.ok("del doc.bin");
    let listing = smb.ok("ls");
    assert!(!listing.contains("doc.bin"), "{listing}");
    let fetched = dir.join("fetched.bin");
    smb.ok(&format!(
        "get .snapshots/before/doc.bin {}",
        fetched.display()
    ));
    assert!(
        std::fs::read(&fetched).unwrap() == doc,
        "the copy from the snapshot differs"
    );
    smb.ok(&format!("put {} doc.bin", fetched.display()));
    // Writes into a snapshot and into the snapshot directory are refused, and change nothing.
    let intruder = dir.join("intruder.txt");
    smb.refused(&format!(
        "put {} .snapshots/before/intruder.txt",
        intruder.display()
    ));
    smb.refused(&format!(
        "put {} .snapshots/before/keep.txt",
        intruder.display()
    ));
    smb.refused("del .snapshots/before/keep.txt");
    smb.refused("mkdir .snapshots/before/newdir");
    smb.refused("rename .snapshots/before/keep.txt .snapshots/before/moved.txt");
    smb.refused(&format!(
        "put {} .snapshots/intruder.txt",
        intruder.display()
    ));
    smb.refused("mkdir .snapshots/fake");
    smb.refused("rmdir .snapshots/before");
    smb.refused("setmode .snapshots/before/keep.txt +h");
    let listing = smb.ok("ls .snapshots/before/*");
    assert!(
        !listing.contains("intruder") && !listing.contains("newdir"),
        "{listing}"
    );
    let listing = smb.ok("ls .snapshots/*");
    assert!(
        !listing.contains("intruder") && !listing.contains("fake"),
        "{listing}"
    );
    let kept = dir.join("kept-smb.txt");
    smb.ok(&format!(
        "get .snapshots/before/keep.txt {}",
        kept.display()
    ));
    assert_eq!(std::fs::read(&kept).unwrap(), KEEP_TEXT);
    phase("SMB: copied back from the snapshot, writes refused");

    // The space snapshots hold: the deleted file's extents live on in the snapshots only.
    let held = snapshot_space(&mut nas, "media");
    assert!(
        before_space < MIB && (DOC_SIZE..DOC_SIZE + 2 * MIB).contains(&held),
        "snapshot space {before_space} before deleting a {DOC_SIZE}-byte file, {held} after"
    );
    phase("dataset list shows the space snapshots hold");

    // NFS: the kernel client in the client guest.
    let mut c = client_boot
        .join()
        .expect("the client boot thread")
        .expect("the test client boots");
    c.timeout = Duration::from_secs(120);
    c.mount("nfs4", "10.0.3.1:/mnt/tank/media", "/mnt/nfs", "vers=4.2")
        .expect("NFS mount");
    let names = c.ls("/mnt/nfs/.snapshots").unwrap();
    assert!(names.contains(&"before".to_string()), "{names:?}");
    let copy = c
        .copy(
            "/mnt/nfs/.snapshots/before/doc.bin",
            "/mnt/nfs/doc-nfs.bin",
            false,
        )
        .expect("copy out of the snapshot over NFS");
    assert_eq!(copy.sha256, doc_sha);
    assert_eq!(
        c.sha256("/mnt/nfs/doc-nfs.bin").unwrap(),
        (DOC_SIZE, doc_sha.clone())
    );
    assert_eq!(
        c.cat("/mnt/nfs/.snapshots/before/keep.txt").unwrap(),
        KEEP_TEXT
    );
    for path in [
        "/mnt/nfs/.snapshots/before/intruder.txt",
        "/mnt/nfs/.snapshots/before/keep.txt",
        "/mnt/nfs/.snapshots/intruder.txt",
    ] {
        assert_eq!(code(c.put(path, b"must not land\n")), "EROFS", "{path}");
    }
    assert_eq!(code(c.rm("/mnt/nfs/.snapshots/before/keep.txt")), "EROFS");
    assert_eq!(
        code(c.mkdir("/mnt/nfs/.snapshots/before/d", 0o755)),
        "EROFS"
    );
    assert_eq!(code(c.mkdir("/mnt/nfs/.snapshots/fake", 0o755)), "EROFS");
    assert_eq!(
        code(c.chmod("/mnt/nfs/.snapshots/before/keep.txt", 0o777)),
        "EROFS"
    );
    assert_eq!(
        code(c.truncate("/mnt/nfs/.snapshots/before/keep.txt", 0)),
        "EROFS"
    );
    assert_eq!(
        code(c.rename(
            "/mnt/nfs/.snapshots/before/keep.txt",
            "/mnt/nfs/.snapshots/before/moved.txt"
        )),
        "EROFS"
    );
    let names = c.ls("/mnt/nfs/.snapshots/before").unwrap();
    assert!(
        names.contains(&"keep.txt".to_string()) && !names.contains(&"intruder.txt".to_string()),
        "{names:?}"
    );
    assert_eq!(
        c.cat("/mnt/nfs/.snapshots/before/keep.txt").unwrap(),
        KEEP_TEXT
    );
    phase("NFS: copied out of the snapshot, writes refused");

    // A snapshot taken while the client is mounted shows up in it; once destroyed it is gone
    // for both protocols, and the client that was in it gets an error, not a hang.
    ok(&mut nas, "snapshot create media@browse");
    assert_eq!(
        c.cat("/mnt/nfs/.snapshots/browse/same.txt").unwrap(),
        KEEP_TEXT
    );
    let browse_got = dir.join("browse.txt");
    smb.ok(&format!(
        "get .snapshots/browse/same.txt {}",
        browse_got.display()
    ));
    assert_eq!(std::fs::read(&browse_got).unwrap(), KEEP_TEXT);
    let out = ok(&mut nas, "snapshot destroy media@browse");
    assert!(out.contains("snapshot media@browse destroyed"), "{out}");
    let e = code(
        c.with_timeout(Duration::from_secs(30), |c| {
            c.read("/mnt/nfs/.snapshots/browse/same.txt")
        })
        .map(|t| t.sha256),
    );
    assert!(
        ["ENOENT", "ESTALE", "EIO"].contains(&e.as_str()),
        "reading a destroyed snapshot over NFS: {e}"
    );
    eprintln!("NFS read of a destroyed snapshot: {e}");
    smb.refused(&format!(
        "get .snapshots/browse/same.txt {}",
        browse_got.display()
    ));
    assert_eq!(manual(&snapshot_list(&mut nas, "media")), manual_before);
    phase("a snapshot taken and destroyed under a mounted client");

    // Rollback while NFS and CIFS clients stay mounted.
    c.mount(
        "cifs",
        "//10.0.3.1/media",
        "/mnt/smb",
        &format!("vers=3.1.1,username=alice,password={PASSWORD}"),
    )
    .expect("CIFS mount");
    // keep.txt is alice's (written over SMB): change it as alice, over CIFS.
    c.put("/mnt/smb/keep.txt", b"changed after the snapshot\n")
        .unwrap();
    c.put("/mnt/nfs/after.txt", b"written after the snapshot\n")
        .unwrap();
    assert_eq!(
        c.cat("/mnt/nfs/keep.txt").unwrap(),
        b"changed after the snapshot\n"
    );
    assert!(c.ls("/mnt/smb").unwrap().contains(&"after.txt".to_string()));
    let inode =
        |c: &mut Client, path: &str| -> u64 { c.stat(path).unwrap().fields.parse("ino").unwrap() };
    let same_ino = inode(&mut c, "/mnt/nfs/same.txt");
    let keep_ino = inode(&mut c, "/mnt/nfs/keep.txt");
    let out = confirmed(&mut nas, "snapshot rollback media@before", "media");
    assert!(out.contains("media rolled back to before"), "{out}");
    phase("rolled back");
    for mount in ["/mnt/nfs", "/mnt/smb"] {
        // The kernel clients cache attributes for a second or so; they must then see the
        // snapshot's content without a remount.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let names = c.ls(mount).unwrap();
            let text = c.cat(&format!("{mount}/keep.txt"));
            let restored = !names.contains(&"after.txt".to_string())
                && !names.contains(&"doc-nfs.bin".to_string())
                && names.contains(&"doc.bin".to_string())
                && text.as_deref().ok() == Some(KEEP_TEXT);
            if restored {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{mount} does not show the rolled back content: {names:?}, keep.txt {text:?}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        assert_eq!(
            c.sha256(&format!("{mount}/doc.bin")).unwrap(),
            (DOC_SIZE, doc_sha.clone()),
            "{mount}"
        );
    }
    // The file that did not change and the one restored are the same inodes as before: the
    // clients' handles to them stay valid.
    assert_eq!(inode(&mut c, "/mnt/nfs/same.txt"), same_ino);
    assert_eq!(inode(&mut c, "/mnt/nfs/keep.txt"), keep_ino);
    assert!(out.contains("1 files unchanged"), "{out}");
    // The restored content shares the snapshot's extents: nothing was copied.
    assert!(out.contains("no data copied"), "{out}");
    // Both shares keep working: writes go through.
    c.put("/mnt/nfs/post-nfs.txt", b"nfs after rollback\n")
        .unwrap();
    c.put("/mnt/smb/post-smb.txt", b"smb after rollback\n")
        .unwrap();
    assert_eq!(
        c.cat("/mnt/smb/post-nfs.txt").unwrap(),
        b"nfs after rollback\n"
    );
    assert_eq!(
        c.cat("/mnt/nfs/post-smb.txt").unwrap(),
        b"smb after rollback\n"
    );
    let from_host = dir.join("after-rollback.txt");
    smb.ok(&format!("get keep.txt {}", from_host.display()));
    assert_eq!(std::fs::read(&from_host).unwrap(), KEEP_TEXT);
    // The snapshot itself is still browsable.
    assert_eq!(
        c.cat("/mnt/nfs/.snapshots/before/keep.txt").unwrap(),
        KEEP_TEXT
    );
    phase("both shares show the rolled back content and take writes");

    // A clone is a working dataset of its own.
    let out = ok(&mut nas, "snapshot clone media@before restored");
    assert!(out.contains("dataset restored created"), "{out}");
    assert!(ok(&mut nas, "dataset list").contains("restored"));
    let sum = ok(&mut nas, "file checksum restored/doc.bin");
    assert!(sum.contains(&doc_sha), "{sum}");
    ok(&mut nas, "file write restored/new.bin 64K seed clone");
    ok(&mut nas, "smb share add restored users alice");
    let restored = Smb {
        port,
        share: "restored".into(),
    };
    let got = dir.join("from-clone.txt");
    restored.ok(&format!(
        "put {} from-host.txt; get keep.txt {}",
        intruder.display(),
        got.display()
    ));
    assert_eq!(std::fs::read(&got).unwrap(), KEEP_TEXT);
    let listing = restored.ok("ls");
    assert!(
        listing.contains("from-host.txt") && listing.contains("new.bin"),
        "{listing}"
    );
    // The source is untouched by writes to the clone.
    assert!(!smb.ok("ls").contains("from-host.txt"));
    phase("clone works");

    // What boot 1 shows of the tasks: the first one listed with its next run.
    let status = ok(&mut nas, "status");
    let line = snapshots_status(&status);
    assert!(
        line.contains("1 task(s)") && line.contains("next run"),
        "{line}"
    );
    // On a fast machine boot 1 gets here inside its first minute: wait for task 1's first
    // snapshot so the log holds the line the trouble check needs as its positive control.
    wait_snapshots(&mut nas, "media", Duration::from_secs(150), |list| {
        !by_task(list, 1).is_empty()
    });
    assert_no_snapshot_trouble(&mut nas, "tank: snapshot task 1: took media@auto-t1-");
    c.poweroff().expect("the client powers off");

    // A daily task due a minute or two from now; the appliance is off at that time. Task 1
    // goes on running in boot 2, so the minutes its retention needs pass over both boots.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let slot = (unix_now() + OFF_MARGIN + 5).div_ceil(60) * 60;
    let hhmm = format!("{:02}:{:02}", slot / 3600 % 24, slot / 60 % 60);
    let out = ok(
        &mut nas,
        &format!("snapshot task add media daily {hhmm} keep 2"),
    );
    assert!(out.contains("snapshot task 2"), "{out}");
    let tasks = task_list(&mut nas);
    let daily = format!("daily at {hhmm} UTC");
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert_eq!(tasks[1], ["2", "media", daily.as_str(), "keep 2"]);
    // Stay up until shortly before the slot: the ticks until then still run task 1.
    loop {
        let list = snapshot_list(&mut nas, "media");
        assert!(by_task(&list, 2).is_empty(), "{list:#?}");
        seen.extend(by_task(&list, 1).iter().map(|s| s.name().to_owned()));
        if unix_now() + OFF_MARGIN >= slot {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    poweroff(&mut nas);
    drop(nas);
    let off_at = unix_now();
    assert!(
        off_at < slot,
        "the appliance took until {off_at} to power off, after the slot {slot}: the catch-up \
         cannot be shown"
    );
    phase(&format!("off; waiting for {hhmm} UTC to pass"));
    while unix_now() < slot + 2 {
        std::thread::sleep(Duration::from_secs(1));
    }

    // Boot 2: one catch-up snapshot per task, however many slots passed while it was off;
    // snapshots, tasks and the clone are back.
    let link = Link::new().unwrap();
    let (mut nas, port) = boot_appliance("snapshots-2", &disks, &link);
    wait_pool(&mut nas, "tank mounted");
    let booted = unix_now();
    phase("booted again");
    let list = snapshot_list(&mut nas, "media");
    let daily = by_task(&list, 2);
    assert_eq!(daily.len(), 1, "one catch-up snapshot: {list:#?}");
    assert!(
        daily[0].created >= slot && daily[0].created <= booted + 60,
        "the catch-up was taken at boot: {daily:?}, slot {slot}, booted {booted}"
    );
    // Task 1 caught up in the same run, once (a second snapshot of the same minute would be
    // named with a suffix); any other new one is from a later tick.
    let stamp = daily[0].name().trim_start_matches("auto-t2-").to_owned();
    let caught_up = format!("auto-t1-{stamp}");
    let new: Vec<String> = by_task(&list, 1)
        .iter()
        .map(|s| s.name().to_owned())
        .filter(|n| !seen.contains(n))
        .collect();
    assert_eq!(
        new.iter().filter(|n| n.starts_with(&caught_up)).count(),
        1,
        "task 1 caught up once: {list:#?}"
    );
    assert!(new.iter().all(|n| n >= &caught_up), "{list:#?}");
    assert_eq!(manual(&list), manual_before);
    assert_eq!(task_list(&mut nas)[..], tasks[..]);
    let line = task_line(&mut nas, 2);
    assert!(line.contains("took media@auto-t2-"), "{line}");
    let datasets = ok(&mut nas, "dataset list");
    assert!(datasets.contains("restored"), "{datasets}");
    let smb = Smb {
        port,
        share: "media".into(),
    };
    let listing = smb.ok("ls .snapshots/*");
    for s in &list {
        assert!(
            listing.contains(s.name()),
            "{} not browsable:\n{listing}",
            s.name()
        );
    }
    let again = dir.join("again.bin");
    smb.ok(&format!(
        "get .snapshots/before/doc.bin {}",
        again.display()
    ));
    assert!(std::fs::read(&again).unwrap() == doc);
    phase("catch-up once; snapshots, tasks and the clone survived");

    // The task every minute: after several runs exactly 3 of its snapshots remain, the
    // newest recent, and the manual snapshot is untouched; at least one tick of boot 2 ran
    // it, and did not run the daily task again. Each new snapshot is readable over SMB, one
    // pruned is gone.
    let same_got = dir.join("same-auto.txt");
    let mut browsed = BTreeSet::new();
    let mut gone = 0;
    let list = wait_snapshots(&mut nas, "media", Duration::from_secs(300), |list| {
        let own = by_task(list, 1);
        for s in &own {
            seen.insert(s.name().to_owned());
            // Only those surely taken after same.txt was written hold it.
            if s.created >= files_at / 60 * 60 + 60 && browsed.insert(s.name().to_owned()) {
                smb.ok(&format!(
                    "get .snapshots/{}/same.txt {}",
                    s.name(),
                    same_got.display()
                ));
                assert_eq!(std::fs::read(&same_got).unwrap(), KEEP_TEXT);
            }
        }
        let current: BTreeSet<&str> = own.iter().map(Snap::name).collect();
        let pruned: Vec<String> = browsed
            .iter()
            .filter(|n| !current.contains(n.as_str()))
            .cloned()
            .collect();
        for name in pruned {
            smb.refused(&format!(
                "get .snapshots/{name}/same.txt {}",
                same_got.display()
            ));
            browsed.remove(&name);
            gone += 1;
        }
        let ticked = own.iter().any(|s| s.name() > caught_up.as_str());
        seen.len() >= 4 && ticked
    });
    let own = by_task(&list, 1);
    let names: Vec<&str> = own.iter().map(Snap::name).collect();
    let newest: Vec<&str> = seen
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(names, newest, "task 1 keeps its 3 newest of {seen:?}");
    let latest = own.iter().map(|s| s.created).max().unwrap();
    let now = unix_now();
    assert!(
        latest + 150 >= now,
        "the newest snapshot of task 1 is from {latest}, now is {now}: {own:?}"
    );
    assert!(own.iter().all(|s| s.created >= task_added - 60), "{own:?}");
    assert_eq!(manual(&list), manual_before);
    assert_eq!(by_task(&list, 2).len(), 1, "{list:#?}");
    let line = task_line(&mut nas, 1);
    assert!(
        line.contains("took media@auto-t1-") && line.contains("pruned"),
        "{line}"
    );
    let status = ok(&mut nas, "status");
    let line = snapshots_status(&status);
    assert!(
        line.contains("2 task(s)")
            && line.contains("next run")
            && line.contains("(task 1, media)")
            && line.contains("last: task 1")
            && line.contains("took media@auto-t1-"),
        "{line}"
    );
    phase(&format!(
        "task 1 kept {names:?} of {} taken ({gone} seen pruned)",
        seen.len()
    ));

    // A dataset in use cannot be destroyed; a clone with a snapshot of its own can, and takes
    // its snapshots along; the snapshot a clone came from can go while the clone stays.
    fails(&mut nas, "dataset destroy media", "snapshot task 1");
    ok(&mut nas, "snapshot create restored@mine");
    ok(&mut nas, "smb share remove restored");
    let out = confirmed(&mut nas, "dataset destroy restored", "restored");
    assert!(out.contains("dataset restored destroyed"), "{out}");
    let all = ok(&mut nas, "snapshot list");
    assert!(!all.contains("restored@"), "{all}");
    let out = ok(&mut nas, "snapshot destroy media@before");
    assert!(out.contains("destroyed"), "{out}");
    assert!(manual(&snapshot_list(&mut nas, "media")).is_empty());
    assert!(!smb.ok("ls .snapshots/*").contains("before"));
    assert_no_snapshot_trouble(&mut nas, "tank: snapshot task 1: took media@auto-t1-");
    phase("destroyed a clone with its snapshots and a manual snapshot");
    poweroff(&mut nas);
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
