//! SMB end to end: the appliance's ksmbd, driven by the init, against Samba's smbclient on the
//! host through a port forward (connections come from the forward's address, 10.0.2.2).
//! One boot covers listing, transfers with non-ASCII names, ownership, every refusal, dialects
//! and signing; a reboot shows users and shares come back.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tank_tests::console::{create_pool, fails, ok, poweroff, reboot};

const GIB: u64 = 1 << 30;

/// Runs smbclient against the forwarded port with extra arguments; returns its output.
fn smbclient(port: u16, args: &[&str]) -> Output {
    let mut cmd = Command::new("smbclient");
    // Names are UTF-8 on the command line: without a UTF-8 locale smbclient mangles them.
    cmd.env("LC_ALL", "C.UTF-8");
    cmd.arg("-p").arg(port.to_string()).args(args);
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run smbclient: {e}; install it with `apt-get install smbclient` (or `cargo xtask prereqs`)")
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// smbclient must succeed.
fn smb_ok(port: u16, args: &[&str]) -> String {
    let out = smbclient(port, args);
    let t = text(&out);
    assert!(out.status.success(), "smbclient {args:?} failed:\n{t}");
    t
}

/// smbclient must fail with `needle` in its output.
fn smb_fails(port: u16, args: &[&str], needle: &str) -> String {
    let out = smbclient(port, args);
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains(needle),
        "smbclient {args:?} should fail with {needle}:\n{t}"
    );
    t
}

/// Deterministic bytes that do not compress.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn entry_line<'a>(listing: &'a str, name: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{listing}"))
}

#[test]
fn smb_shares_users_and_access() {
    let disks = tank_tests::fresh_disks("smb", &[GIB, GIB]);
    let (mut guest, ports) = tank_tests::boot_forwarding("smb", &disks, &[445]);
    let port = ports[0];
    create_pool(&mut guest);

    // Accounts: passwords are asked twice and never echoed.
    let out = guest
        .run_with_password("user add alice", "alice-Pw1")
        .unwrap();
    assert!(out.contains("uid 1000"), "{out}");
    guest.run_with_password("user add bob", "bob-Pw1").unwrap();
    guest
        .run_with_password("user add sonarr", "sonarr-Pw1")
        .unwrap();
    ok(&mut guest, "group add media");
    ok(&mut guest, "user set alice groups media");
    fails(&mut guest, "user add alice", "exists");
    fails(&mut guest, "user set alice groups nothere", "nothere");
    let users = ok(&mut guest, "user list");
    assert!(
        users.contains("alice") && users.contains("media"),
        "{users}"
    );

    ok(&mut guest, "dataset create media mode 0777");
    ok(&mut guest, "dataset create public mode 0755");
    ok(&mut guest, "file write public/readme.txt 4K seed readme");
    ok(
        &mut guest,
        "smb share add media users @media comment \"films and series\"",
    );
    ok(
        &mut guest,
        "smb share add arr dataset media users alice force_user sonarr",
    );
    ok(&mut guest, "smb share add public ro guest yes");
    ok(
        &mut guest,
        "smb share add lan dataset public hosts_allow 10.0.3.0/24",
    );
    fails(&mut guest, "smb share add nope dataset nothere", "nothere");
    fails(&mut guest, "smb share add media", "exists");
    fails(
        &mut guest,
        "smb share set media force_user nobodyhere",
        "nobodyhere",
    );
    let shares = ok(&mut guest, "smb share list");
    assert!(
        shares.contains("media") && shares.contains("@media"),
        "{shares}"
    );

    let alice = "alice%alice-Pw1";
    // Put and get, byte for byte, with non-ASCII names; list a directory.
    let dir = tank_tests::fresh_run_dir("smb-files");
    let local = dir.join("up.bin");
    let data = pattern(3 << 20, 7);
    std::fs::write(&local, &data).unwrap();
    let name = "é-日本.bin";
    smb_ok(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "-c",
            &format!("mkdir série; put {} \"série/{name}\"", local.display()),
        ],
    );
    let back = dir.join("down.bin");
    let ls = smb_ok(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "-c",
            &format!("ls série/*; get \"série/{name}\" {}", back.display()),
        ],
    );
    assert!(ls.contains(name), "{ls}");
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the file came back different"
    );
    // Files belong to the user who wrote them, or to the forced user.
    let owners = ok(&mut guest, "file list media/série");
    assert!(entry_line(&owners, name).contains("1000:1000"), "{owners}");
    smb_ok(
        port,
        &[
            "//127.0.0.1/arr",
            "-U",
            alice,
            "-c",
            &format!("put {} forced.bin", local.display()),
        ],
    );
    let owners = ok(&mut guest, "file list media");
    assert!(
        entry_line(&owners, "forced.bin").contains("1002:1002"),
        "{owners}"
    );

    // Refusals.
    smb_fails(
        port,
        &["//127.0.0.1/media", "-U", "alice%wrong", "-c", "ls"],
        "NT_STATUS_LOGON_FAILURE",
    );
    smb_fails(
        port,
        &["//127.0.0.1/media", "-U", "mallory%x", "-c", "ls"],
        "NT_STATUS_LOGON_FAILURE",
    );
    smb_fails(
        port,
        &["//127.0.0.1/media", "-U", "bob%bob-Pw1", "-c", "ls"],
        "NT_STATUS_ACCESS_DENIED",
    );
    smb_fails(
        port,
        &[
            "//127.0.0.1/public",
            "-U",
            alice,
            "-c",
            &format!("put {} x.bin", local.display()),
        ],
        "NT_STATUS_ACCESS_DENIED",
    );
    smb_fails(
        port,
        &["//127.0.0.1/media", "-N", "-c", "ls"],
        "NT_STATUS_ACCESS_DENIED",
    );
    let guest_ls = smb_ok(port, &["//127.0.0.1/public", "-N", "-c", "ls"]);
    assert!(guest_ls.contains("readme.txt"), "{guest_ls}");
    smb_fails(
        port,
        &["//127.0.0.1/lan", "-U", alice, "-c", "ls"],
        "NT_STATUS_ACCESS_DENIED",
    );

    // Supplementary groups reach the kernel: alice may write where only her group may.
    ok(&mut guest, "dataset create team owner 0:1003 mode 0770");
    ok(&mut guest, "smb share add team veto *.tmp browseable no");
    let put = |name: &str| format!("put {} {name}", local.display());
    smb_ok(
        port,
        &["//127.0.0.1/team", "-U", alice, "-c", &put("plan.bin")],
    );
    smb_fails(
        port,
        &[
            "//127.0.0.1/team",
            "-U",
            "bob%bob-Pw1",
            "-c",
            &put("bob.bin"),
        ],
        "NT_STATUS_ACCESS_DENIED",
    );
    // A vetoed name can be neither created nor seen.
    let vetoed = smbclient(
        port,
        &["//127.0.0.1/team", "-U", alice, "-c", &put("scratch.tmp")],
    );
    assert!(
        !vetoed.status.success(),
        "a vetoed file was written:\n{}",
        text(&vetoed)
    );
    let team = ok(&mut guest, "file list team");
    assert!(
        team.contains("plan.bin") && !team.contains("scratch.tmp"),
        "{team}"
    );

    // Browsing lists the shares (srvsvc over IPC$), but not the hidden one.
    let listing = smb_ok(port, &["-L", "//127.0.0.1", "-U", alice]);
    for share in ["media", "arr", "public", "lan", "IPC$"] {
        assert!(listing.contains(share), "{share} not listed:\n{listing}");
    }
    assert!(
        !listing.contains("team"),
        "a hidden share is listed:\n{listing}"
    );
    assert!(listing.contains("films and series"), "{listing}");

    // Encryption when the client asks for it.
    smb_ok(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "--client-protection=encrypt",
            "-c",
            "ls",
        ],
    );

    // Repeated bad passwords: after three, the server makes each failure wait 5 s.
    for _ in 0..3 {
        smb_fails(
            port,
            &["//127.0.0.1/media", "-U", "bob%nope", "-c", "ls"],
            "NT_STATUS_LOGON_FAILURE",
        );
    }
    let started = Instant::now();
    smb_fails(
        port,
        &["//127.0.0.1/media", "-U", "bob%nope", "-c", "ls"],
        "NT_STATUS_LOGON_FAILURE",
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the fourth bad password was answered in {:?}",
        started.elapsed()
    );

    // Dialects: SMB 3.1.1 by default, SMB1 refused.
    let negotiated = smb_ok(
        port,
        &["//127.0.0.1/media", "-U", alice, "-d", "5", "-c", "ls"],
    );
    assert!(
        negotiated.contains("negotiated dialect[SMB3_11]"),
        "no SMB 3.1.1 negotiation seen:\n{negotiated}"
    );
    // A client that speaks only SMB1 (its minimum lowered too, or it refuses by itself).
    smb_fails(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "--option=client min protocol=NT1",
            "-m",
            "NT1",
            "-c",
            "ls",
        ],
        "protocol negotiation failed",
    );

    // A password change takes effect at once, without dropping the server.
    guest
        .run_with_password("user passwd alice", "alice-Pw2")
        .unwrap();
    smb_fails(
        port,
        &["//127.0.0.1/media", "-U", alice, "-c", "ls"],
        "NT_STATUS_LOGON_FAILURE",
    );
    let alice = "alice%alice-Pw2";
    smb_ok(port, &["//127.0.0.1/media", "-U", alice, "-c", "ls"]);

    // Mandatory signing: a client that requires signing works.
    ok(&mut guest, "smb set signing mandatory");
    smb_ok(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "--client-protection=sign",
            "-c",
            "ls",
        ],
    );

    // Encryption required: SMB 3.0 becomes the minimum, an SMB 2.1 client is refused and an
    // encrypting SMB 3 client works.
    let said = ok(&mut guest, "smb set encryption required");
    assert!(said.contains("SMB 3.0 the minimum"), "{said}");
    let show = ok(&mut guest, "smb show");
    assert!(show.contains("protocols:   SMB 3.0 to SMB 3.1.1"), "{show}");
    smb_fails(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "-m",
            "SMB2_10",
            "-c",
            "ls",
        ],
        "protocol negotiation failed",
    );
    let encrypted = smb_ok(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "--client-protection=encrypt",
            "-d",
            "5",
            "-c",
            "ls",
        ],
    );
    assert!(
        encrypted.contains("negotiated dialect[SMB3_11]"),
        "{encrypted}"
    );
    ok(&mut guest, "smb set encryption auto");
    smb_ok(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "-m",
            "SMB2_10",
            "-c",
            "ls",
        ],
    );

    // Share changes are live: a removed share is gone from the listing.
    ok(&mut guest, "smb share remove lan");
    let listing = smb_ok(port, &["-L", "//127.0.0.1", "-U", alice]);
    assert!(!listing.contains("lan"), "{listing}");

    // After a reboot users, shares and the password are back.
    reboot(&mut guest);
    let got = dir.join("again.bin");
    smb_ok(
        port,
        &[
            "//127.0.0.1/media",
            "-U",
            alice,
            "--client-protection=sign",
            "-c",
            &format!("get \"série/{name}\" {}", got.display()),
        ],
    );
    assert!(std::fs::read(&got).unwrap() == data);
    let status = ok(&mut guest, "status");
    assert!(
        status.contains("smb") && status.contains("running as TANK"),
        "{status}"
    );
    poweroff(&mut guest);
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
