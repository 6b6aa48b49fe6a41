//! Disk health on the pc-x86_64 board in one boot: a SATA disk on AHCI (QEMU's IDE emulation
//! answers SMART RETURN STATUS, READ DATA, READ THRESHOLDS, READ LOG and EXECUTE OFF-LINE
//! IMMEDIATE, reached through SG_IO and libata's ATA PASS-THROUGH translation) and an NVMe
//! disk (QEMU's controller answers the health log page). Setting QEMU's NVMe
//! `smart_critical_warning` over QMP raises a critical alert that reaches a webhook sink on the
//! host, and clearing it clears the alert. The virtio-scsi board's "not available" is checked
//! in `boot.rs`'s console test.
//!
//! Needs the image from `cargo xtask image` (`cargo xtask test` builds it) and
//! qemu-system-x86_64.

use std::time::Duration;

use tank_tests::guest::Guest;
use tank_tests::qemu::QemuConfig;
use tank_tests::sinks::HttpSink;

#[test]
fn sata_and_nvme_health() {
    let board = &board::PC_X86_64;
    let disks = tank_tests::fresh_disks("health", &[1 << 30, 1 << 30]);
    let mut config = QemuConfig::new(board, tank_tests::image_dir(board.name));
    config.disks = vec![disks[0].clone()];
    config.nvme_disks = vec![disks[1].clone()];
    let mut guest =
        Guest::start(config, "health").unwrap_or_else(|e| panic!("cannot start QEMU: {e:#}"));
    guest
        .wait_prompt(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}"));
    let t = Duration::from_secs(60);

    // Coldplug loads ahci and nvme after the prompt: wait for both disks.
    let health = guest
        .run_until("disk health", Duration::from_secs(120), |s| {
            s.lines().any(|l| l.starts_with("sda")) && s.lines().any(|l| l.starts_with("nvme0n1"))
        })
        .expect("disk health lists the SATA and the NVMe disk");
    let line = |name: &str| {
        health
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let sda = line("sda");
    assert!(
        sda.contains("TANK-SDA") && sda.contains("PASSED"),
        "{health}"
    );
    // QEMU's attribute 190 (airflow temperature) has 31 in its raw value's lowest byte.
    assert!(
        sda.contains("31 C"),
        "no temperature read over SG_IO:\n{health}"
    );
    let nvme = line("nvme0n1");
    assert!(
        nvme.contains("TANK-NVME0") && nvme.contains("PASSED"),
        "{health}"
    );
    assert!(
        nvme.split_whitespace().any(|w| w == "C"),
        "no NVMe temperature:\n{health}"
    );

    let detail = guest.run("disk health sda", t).unwrap();
    assert!(detail.contains("health: PASSED"), "{detail}");
    // Attribute 5 with QEMU's threshold 0x24 = 36 and its raw value.
    let realloc = detail
        .lines()
        .find(|l| l.starts_with("5 "))
        .unwrap_or_default();
    assert!(
        realloc.contains("Reallocated_Sector_Ct") && realloc.contains(" 36 "),
        "{detail}"
    );
    assert!(detail.contains("Airflow_Temperature_Cel"), "{detail}");

    // A short self-test, then the self-test log shows it.
    let started = guest.run("disk test sda short", t).unwrap();
    assert!(
        started.contains("short SMART self-test started"),
        "{started}"
    );
    let detail = guest.run("disk health sda", t).unwrap();
    let log = detail.split("self-test log:").nth(1).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.starts_with("1 ") && l.contains("short")),
        "{detail}"
    );

    let detail = guest.run("disk health nvme0n1", t).unwrap();
    assert!(detail.contains("available spare:"), "{detail}");
    assert!(detail.contains("critical warning: 0x00"), "{detail}");
    assert!(detail.contains("temperature:"), "{detail}");
    // QEMU's controller may or may not offer Device Self-test: started or refused plainly.
    let nvme_test = guest.run("disk test nvme0n1 short", t).unwrap();
    assert!(
        nvme_test.contains("device self-test started")
            || nvme_test.contains("does not support Device Self-test"),
        "{nvme_test}"
    );

    // A critical warning set on the NVMe controller (QEMU's `smart_critical_warning`)
    // raises a critical alert that reaches the webhook; clearing it clears the alert.
    let http = HttpSink::start(None).expect("HTTP sink");
    let set = guest
        .run(&format!("alert webhook {}", http.guest_url("/nvme")), t)
        .unwrap();
    assert!(set.contains("alerts are posted to"), "{set}");
    guest
        .qom_set("/machine/peripheral/nvme0", "smart_critical_warning", 1)
        .expect("QMP qom-set smart_critical_warning");
    let health = guest.run("disk health", t).unwrap();
    assert!(
        health
            .lines()
            .any(|l| l.starts_with("nvme0n1") && l.contains("FAILING")),
        "{health}"
    );
    let raised = http
        .wait_for(
            |r| {
                r.json()
                    .is_ok_and(|j| j["id"] == "disk.nvme0n1.health" && j["state"] == "raised")
            },
            Duration::from_secs(60),
        )
        .expect("the NVMe critical warning reaches the webhook");
    let json = raised.json().unwrap();
    assert_eq!(json["severity"], "critical", "{json}");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("TANK-NVME0") && m.contains("spare")),
        "{json}"
    );
    let list = guest.run("alert list", t).unwrap();
    assert!(
        list.contains("disk.nvme0n1.health") && list.contains("CRITICAL"),
        "{list}"
    );
    guest
        .qom_set("/machine/peripheral/nvme0", "smart_critical_warning", 0)
        .expect("QMP qom-set smart_critical_warning 0");
    let health = guest.run("disk health", t).unwrap();
    assert!(
        health
            .lines()
            .any(|l| l.starts_with("nvme0n1") && l.contains("PASSED")),
        "{health}"
    );
    http.wait_for(
        |r| {
            r.json()
                .is_ok_and(|j| j["id"] == "disk.nvme0n1.health" && j["state"] == "cleared")
        },
        Duration::from_secs(60),
    )
    .expect("the cleared NVMe alert reaches the webhook");

    guest.send(b"poweroff\r").unwrap();
    let exit = guest
        .wait_exit(Duration::from_secs(60))
        .expect("QEMU exits after poweroff");
    assert!(exit.success(), "QEMU exit status {exit}");
}
