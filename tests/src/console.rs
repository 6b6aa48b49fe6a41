//! Console helpers shared by the end-to-end tests: run a command that must succeed or fail,
//! wait for the pool, create the standard two-disk pool, power off.

use std::time::Duration;

use crate::guest::Guest;

/// The timeout of a console command that must fail fast.
pub const T: Duration = Duration::from_secs(60);

/// Runs a command that must succeed (its output has no `error:`).
pub fn ok(guest: &mut Guest, line: &str) -> String {
    let out = guest
        .run(line, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{line}: {e:#}"));
    assert!(!out.contains("error:"), "'{line}' failed:\n{out}");
    out
}

/// Runs a command that must fail with a message containing `needle`.
pub fn fails(guest: &mut Guest, line: &str, needle: &str) -> String {
    let out = guest
        .run(line, T)
        .unwrap_or_else(|e| panic!("{line}: {e:#}"));
    assert!(
        out.contains("error:") && out.contains(needle),
        "'{line}' should fail with '{needle}':\n{out}"
    );
    out
}

/// Waits until the services table shows the pool in `state`.
pub fn wait_pool(guest: &mut Guest, state: &str) -> String {
    guest
        .run_until("status", Duration::from_secs(120), |s| {
            s.lines()
                .any(|l| l.trim_start().starts_with("pool ") && l.contains(state))
        })
        .unwrap_or_else(|e| panic!("pool never reached '{state}': {e:#}"))
}

/// The SHA-256 a `file write` or `file checksum` printed.
pub fn sha256_of_file(out: &str) -> String {
    out.split("sha256 ")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Powers the guest off from its console and checks that QEMU exits cleanly.
pub fn poweroff(guest: &mut Guest) {
    guest.send(b"poweroff\r").unwrap();
    let exit = guest
        .wait_exit(Duration::from_secs(60))
        .expect("QEMU exits after poweroff");
    assert!(exit.success(), "QEMU exit status {exit}");
}

/// The kernel name of the disk the harness gave `serial`.
pub fn disk_named(guest: &mut Guest, serial: &str) -> String {
    let out = ok(guest, "disks");
    out.lines()
        .find(|l| l.contains(serial))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no disk with serial {serial}:\n{out}"))
        .to_string()
}

/// Creates the pool `tank` mirrored over the harness's first two disks.
pub fn create_pool(guest: &mut Guest) {
    wait_pool(guest, "no pool");
    let a = disk_named(guest, "TANK-SDA");
    let b = disk_named(guest, "TANK-SDB");
    let out = ok(guest, &format!("pool create tank mirror {a} {b}"));
    assert!(out.contains("pool tank created"), "{out}");
}

/// Reboots from the console and waits for the pool to be mounted again.
pub fn reboot(guest: &mut Guest) {
    guest.send(b"reboot\r").unwrap();
    guest.expect("Rebooting", T).unwrap();
    guest.wait_prompt(Duration::from_secs(180)).unwrap();
    wait_pool(guest, "tank mounted");
}
