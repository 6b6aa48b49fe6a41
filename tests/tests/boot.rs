//! Boot tests on the default board (qemu-x86_64) over the serial console: prompt, status with
//! disks and the DHCP address, garbage input, a burst of log lines that all reach `log`,
//! reboot, poweroff, the clock set by SNTP from a responder on the host and the time zone, and
//! the ACPI power button.
//!
//! They need the image from `cargo xtask image` (run them with `cargo xtask test`, which builds
//! it) and qemu-system-x86_64; without either they fail with the command to run.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tank_tests::guest::Guest;

const BOOT: Duration = Duration::from_secs(180);

fn boot(name: &str) -> Guest {
    tank_tests::boot_default(name, &tank_tests::fresh_disks(name, &[1 << 30, 2 << 30]))
}

fn boot_board(name: &str, board: &'static board::Board) -> Guest {
    tank_tests::boot_board(
        name,
        board,
        &tank_tests::fresh_disks(name, &[1 << 30, 2 << 30]),
    )
}

#[test]
fn console_status_garbage_reboot_poweroff() {
    let mut guest = boot("console");
    let t = Duration::from_secs(30);

    // status: both disks with their sizes, the DHCP address from QEMU's user network.
    let status = guest
        .run_until("status", Duration::from_secs(120), |s| {
            s.contains("10.0.2.15/24") && s.contains("sdb")
        })
        .expect("status shows the disks and the DHCP address");
    assert!(status.contains("Tank "), "{status}");
    assert!(status.contains("kernel 6.12."), "{status}");
    // Both disks by name, each with its own size, named in bus order whatever order the
    // kernel's probes ran in: the harness puts TANK-SDA on SCSI target 0 and TANK-SDB on 1.
    let disk_line = |serial: &str| {
        status
            .lines()
            .find(|l| l.contains(serial))
            .unwrap_or_else(|| panic!("no disk with serial {serial}:\n{status}"))
            .to_string()
    };
    let a = disk_line("TANK-SDA");
    let b = disk_line("TANK-SDB");
    assert!(a.contains("1.0 GiB"), "{a}");
    assert!(b.contains("2.0 GiB"), "{b}");
    assert!(a.trim_start().starts_with("sda "), "{status}");
    assert!(b.trim_start().starts_with("sdb "), "{status}");
    assert!(status.contains("dhcp"), "{status}");
    assert!(
        !status.contains("FAILED"),
        "a module failed to load:\n{status}"
    );
    let disks = guest.run("disks", t).unwrap();
    assert!(disks.contains("sda") && disks.contains("sdb"), "{disks}");
    // version: the image's version, build id and signer; a direct kernel boot has no slots.
    let version = guest.run("version", t).unwrap();
    tank_tests::check_version_lines(&version, board::default_board().name);
    assert_eq!(
        tank_tests::line_starting(&version, "slots "),
        "slots      no boot slots (the kernel was not started by the image's boot loader)"
    );
    // virtio-scsi has no ATA pass-through: health is "not available", never passed.
    let health = guest.run("disk health", t).unwrap();
    let sda = health
        .lines()
        .find(|l| l.starts_with("sda"))
        .unwrap_or_default();
    assert!(
        sda.contains("not available") && !sda.contains("PASSED"),
        "{health}"
    );

    // Garbage: unknown commands, bad arguments, control bytes, random binary, a long line.
    let out = guest.run("frobnicate the disks", t).unwrap();
    assert!(out.contains("error: unknown command 'frobnicate'"), "{out}");
    let out = guest.run("network static eth0 999.1.1.1/24", t).unwrap();
    assert!(out.contains("not an IPv4 address"), "{out}");
    let out = guest.run("status please", t).unwrap();
    assert!(out.contains("takes no arguments"), "{out}");
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut junk = Vec::new();
    for _ in 0..600 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = state as u8;
        // Keep enter out of the junk so it arrives as one line; ctrl-c (0x03) may cancel it.
        if b != b'\r' && b != b'\n' {
            junk.push(b);
        }
    }
    guest.send(&junk).unwrap();
    guest.send(b"\x15").unwrap(); // ctrl-u: drop whatever the junk left on the line
    let out = guest.run(&"x".repeat(700), t).unwrap();
    assert!(out.contains("error:"), "{out}");
    // ctrl-c cancels a line: the command never runs.
    guest.skip_output();
    guest.send(b"poweroff\x03").unwrap();
    guest.expect("^C", t).unwrap();
    guest.expect(tank_tests::guest::PROMPT, t).unwrap();
    let out = guest
        .run("help", t)
        .expect("the console is alive after garbage");
    assert!(out.contains("network static"), "{out}");

    // A burst of 200 log lines in about a second: every one reaches `log` (the kernel's
    // /dev/kmsg rate limit of 10 records per 5 s would drop all but a few).
    const BURST: usize = 200;
    let burst: String = (0..BURST)
        .map(|i| format!("log mark burst {i}\r"))
        .collect();
    guest.skip_output();
    let sent = Instant::now();
    guest.send(burst.as_bytes()).unwrap();
    eprintln!(
        "sent {BURST} marks in {:.2} s",
        sent.elapsed().as_secs_f64()
    );
    guest
        .run("log mark burst end", Duration::from_secs(120))
        .unwrap();
    let log = guest.run("log 1000", t).unwrap();
    let missing: Vec<usize> = (0..BURST)
        .filter(|i| {
            !log.lines()
                .any(|l| l.ends_with(&format!("tank: mark: burst {i}")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {BURST} log lines missing (first: {:?}):\n{log}",
        missing.len(),
        missing.first()
    );
    assert!(log.contains("tank: mark: burst end"), "{log}");
    // With wall-clock times: `2026-12-04 20:31:02 tank: mark: burst 0`.
    let first = log
        .lines()
        .find(|l| l.ends_with("tank: mark: burst 0"))
        .unwrap_or_default();
    let stamp = first.split(' ').take(2).collect::<Vec<_>>();
    assert!(
        stamp.len() == 2
            && stamp[0].len() == 10
            && stamp[0].starts_with("20")
            && stamp[1].len() == 8,
        "{first}"
    );

    // reboot comes back to the prompt.
    guest.skip_output();
    guest.send(b"reboot\r").unwrap();
    guest.expect("Rebooting", t).unwrap();
    guest.wait_prompt(BOOT).expect("the prompt after reboot");
    let status = guest.run("status", t).unwrap();
    assert!(status.contains("uptime:"), "{status}");
    // Without a pool no earlier boot is kept, and the console says why.
    let out = guest.run("log boot -1", t).unwrap();
    assert!(out.contains("no pool is mounted"), "{out}");

    // poweroff ends QEMU cleanly.
    guest.skip_output();
    guest.send(b"poweroff\r").unwrap();
    let asked = Instant::now();
    let exit = guest
        .wait_exit(Duration::from_secs(60))
        .expect("QEMU exits after poweroff");
    assert!(exit.success(), "QEMU exit status {exit}");
    eprintln!("poweroff took {:.1} s", asked.elapsed().as_secs_f64());
    let transcript = guest.transcript();
    assert!(transcript.contains("Powering off"), "no shutdown notice");
    assert!(
        !transcript.contains("Kernel panic"),
        "kernel panic:\n{transcript}"
    );
}

/// The host's clock plus this is what the SNTP responder answers.
const SNTP_OFFSET: f64 = 3600.0;

fn host_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An SNTP server on the host (the guest reaches it at 10.0.2.2 through QEMU's user network)
/// whose clock is [`SNTP_OFFSET`] ahead of the host's: stratum 2, echoing each request's
/// transmit timestamp as the origin. Runs until `stop` is set; returns its port.
fn sntp_responder(stop: Arc<AtomicBool>) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP port for the SNTP responder");
    let port = socket.local_addr().expect("its address").port();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    std::thread::spawn(move || {
        let ntp = |unix: f64| {
            let secs = unix.floor();
            (((secs as u64 + 2_208_988_800) & 0xffff_ffff) << 32)
                | (((unix - secs) * 4_294_967_296.0) as u64 & 0xffff_ffff)
        };
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::SeqCst) {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if len < 48 || buf[0] & 7 != 3 {
                continue;
            }
            let received = ntp(host_now() + SNTP_OFFSET);
            let mut answer = [0u8; 48];
            answer[0] = (4 << 3) | 4; // no leap warning, version 4, server
            answer[1] = 2;
            answer[2] = buf[2];
            answer[3] = 0xec;
            answer[12..16].copy_from_slice(&[10, 0, 2, 2]);
            answer[16..24].copy_from_slice(&received.to_be_bytes());
            answer[24..32].copy_from_slice(&buf[40..48]);
            answer[32..40].copy_from_slice(&received.to_be_bytes());
            answer[40..48].copy_from_slice(&ntp(host_now() + SNTP_OFFSET).to_be_bytes());
            let _ = socket.send_to(&answer, from);
        }
    });
    port
}

/// `2026-12-04 20:05:42 UTC (+00:00)` → seconds since the epoch.
fn parse_utc(text: &str) -> u64 {
    let bad = || -> ! { panic!("not a UTC time: {text:?}") };
    let text = text.trim();
    let (date, rest) = text.split_once(' ').unwrap_or_else(|| bad());
    let time = rest.split(' ').next().unwrap_or_else(|| bad());
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    if d.len() != 3 || t.len() != 3 || !rest.contains("UTC") {
        bad();
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    u64::try_from(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]).unwrap()
}

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no '{key}' line:\n{out}"))
        .trim()
}

/// The clock from SNTP, the time zone, then the power button. One boot for both: the power
/// button's shutdown also writes the synchronized clock to the hardware clock.
#[test]
fn sntp_sets_the_clock_then_the_power_button_shuts_down() {
    let stop = Arc::new(AtomicBool::new(false));
    let port = sntp_responder(Arc::clone(&stop));
    let mut guest = boot("acpi");
    let t = Duration::from_secs(30);

    // Before any server answers: not synchronized, the default server, UTC.
    let out = guest.run("time", t).unwrap();
    assert!(out.contains("zone:         UTC"), "{out}");
    assert!(out.contains("pool.ntp.org (default)"), "{out}");
    let out = guest
        .run(&format!("time server 10.0.2.2:{port}"), t)
        .unwrap();
    assert!(
        out.contains("asking now") && !out.contains("error:"),
        "{out}"
    );
    let out = guest
        .run_until("time", Duration::from_secs(120), |s| {
            s.contains("synchronized: yes")
        })
        .expect("the clock synchronizes from the host's SNTP responder");
    let expected = host_now() + SNTP_OFFSET;
    let guest_utc = parse_utc(field(&out, "UTC:")) as f64;
    assert!(
        (guest_utc - expected).abs() < 10.0,
        "the guest's UTC time {guest_utc} is not the responder's {expected}:\n{out}"
    );
    assert!(
        field(&out, "server:").starts_with(&format!(
            "10.0.2.2:{port} (10.0.2.2:{port}, configured, stratum 2)"
        )),
        "{out}"
    );
    assert!(field(&out, "last offset:").contains("stepped"), "{out}");
    eprintln!("time after the sync:\n{out}");

    // The time zone: from the database, shown with its abbreviation; unknown zones refused.
    let out = guest.run("time zone Mars/Olympus", t).unwrap();
    assert!(
        out.contains("error:") && out.contains("not in the time zone database"),
        "{out}"
    );
    let out = guest.run("time zone Europe/Berlin", t).unwrap();
    assert!(!out.contains("error:"), "{out}");
    let out = guest.run("date", t).unwrap();
    assert!(out.contains("zone:         Europe/Berlin"), "{out}");
    let local = field(&out, "local time:");
    assert!(
        local.contains("CET (+01:00)") || local.contains("CEST (+02:00)"),
        "{out}"
    );
    let out = guest.run("help time", t).unwrap();
    assert!(out.contains("time server HOST[:PORT]"), "{out}");

    guest
        .run_until("status", Duration::from_secs(120), |s| {
            s.contains("watching /dev/input/event")
        })
        .expect("the init watches the power button");
    guest.qmp("system_powerdown").expect("QMP system_powerdown");
    stop.store(true, Ordering::SeqCst);
    let exit = guest
        .wait_exit(Duration::from_secs(60))
        .expect("QEMU exits after the power button");
    assert!(exit.success(), "QEMU exit status {exit}");
    let transcript = guest.transcript();
    assert!(
        transcript.contains("Powering off"),
        "no shutdown notice:\n{transcript}"
    );
    assert!(
        !transcript.contains("Kernel panic"),
        "kernel panic:\n{transcript}"
    );
}

/// The real-box board under QEMU's q35 machine: SATA disks on AHCI and an e1000e NIC, whose
/// drivers are loaded by modalias coldplug, and a VGA console beside the serial one.
#[test]
fn pc_board_coldplugs_its_drivers() {
    let mut guest = boot_board("pc", &board::PC_X86_64);
    let status = guest
        .run_until("status", Duration::from_secs(120), |s| {
            s.contains("10.0.2.15/24") && s.contains("TANK-SDB")
        })
        .expect("status shows the AHCI disks and the DHCP address on e1000e");
    assert!(status.contains("on pc-x86_64"), "{status}");
    assert!(status.contains("ttyS0, tty1"), "{status}");
    assert!(
        !status.contains("FAILED"),
        "a module failed to load:\n{status}"
    );
    let log = guest.run("log 400", Duration::from_secs(30)).unwrap();
    assert!(
        log.contains("ahci") && log.contains("e1000e"),
        "coldplug did not load ahci and e1000e:\n{log}"
    );
    guest.send(b"poweroff\r").unwrap();
    let exit = guest
        .wait_exit(Duration::from_secs(60))
        .expect("QEMU exits after poweroff");
    assert!(exit.success(), "QEMU exit status {exit}");
}
