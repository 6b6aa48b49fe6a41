//! `cargo xtask bench`: image sizes (and the flashable disk image's), boot time under TCG
//! (direct kernel boot, and firmware to prompt under OVMF), memory at the prompt, the
//! smallest guest memory that reaches the prompt, storage, and NFS and SMB throughput against
//! plain TCP (`shares`). Prints a table and writes JSON.

mod shares;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tank_tests::guest::Guest;
use tank_tests::qemu::{Accel, QemuConfig, Uefi};

#[derive(Serialize, Default)]
struct BootFigures {
    memory_mib: u32,
    /// QEMU start to the first prompt, wall clock.
    wall_to_prompt_s: f64,
    /// Guest uptime when the init started and when the prompt appeared.
    guest_init_start_s: f64,
    guest_prompt_s: f64,
    /// The init's own start: exec to prompt, guest time.
    init_to_prompt_s: f64,
    /// Guest uptime when every boot module was loaded, and that minus the init's start.
    guest_modules_loaded_s: f64,
    init_to_modules_loaded_s: f64,
    mem_available_kib: u64,
    init_rss_kib: u64,
}

#[derive(Serialize, Default)]
struct Bench {
    board: String,
    kernel_release: String,
    kernel_bytes: u64,
    initramfs_bytes: u64,
    total_bytes: u64,
    modules: usize,
    boot: BootFigures,
    /// The smallest of 64/96/128 MiB that reached the prompt.
    smallest_ram_mib: Option<u32>,
    storage: StorageFigures,
    disk: DiskFigures,
    nfs: shares::NfsFigures,
    smb: shares::SmbFigures,
    /// The whole benchmark, builds included, wall clock.
    run_seconds: f64,
}

#[derive(Serialize, Default)]
struct DiskFigures {
    /// The flashable disk image: its length and the bytes it takes on disk (it is sparse).
    image_bytes: u64,
    image_allocated_bytes: u64,
    /// The release bundle.
    bundle_bytes: u64,
    /// QEMU start (OVMF reset) to the first prompt, wall clock, booting the disk image.
    firmware_to_prompt_s: f64,
    /// Guest uptime at the prompt on that boot (the kernel's share).
    uefi_guest_prompt_s: f64,
}

/// Boots the disk image under OVMF and times firmware start to prompt.
fn disk_figures(board: &'static board::Board, image_dir: &Path) -> Result<DiskFigures> {
    let version = env!("CARGO_PKG_VERSION");
    let image = image_dir.join(image::disk::image_name(version, board.name));
    let bundle = image_dir.join(format!(
        "{}.tar.gz",
        image::bundle::bundle_stem(version, board.name)
    ));
    let meta = std::fs::metadata(&image).with_context(|| format!("{}", image.display()))?;
    use std::os::unix::fs::MetadataExt;
    let mut fig = DiskFigures {
        image_bytes: meta.len(),
        image_allocated_bytes: meta.blocks() * 512,
        bundle_bytes: std::fs::metadata(&bundle).map(|m| m.len()).unwrap_or(0),
        ..Default::default()
    };
    let run = tank_tests::runs_dir().join("bench-uefi");
    let mut config = QemuConfig::new(board, image_dir.to_path_buf());
    config.uefi = Some(Uefi::fresh(&image, &run)?);
    config.accel = Accel::from_env().map_err(anyhow::Error::msg)?;
    let mut guest = Guest::start(config, "bench-uefi")?;
    guest.wait_prompt(Duration::from_secs(300))?;
    fig.firmware_to_prompt_s = guest.elapsed().as_secs_f64();
    let status = guest.run("status", Duration::from_secs(30))?;
    let mut boot = BootFigures::default();
    parse_status(&status, &mut boot);
    fig.uefi_guest_prompt_s = boot.guest_prompt_s;
    guest.send(b"poweroff\r")?;
    let _ = guest.wait_exit(Duration::from_secs(60));
    drop(guest);
    let _ = std::fs::remove_dir_all(&run);
    Ok(fig)
}

#[derive(Serialize, Default)]
struct StorageFigures {
    /// `pool create` on two blank 2 GiB disks, guest time as the appliance reports it.
    pool_create_s: f64,
    /// Scrub throughput over the pool (both members, one after the other), MiB/s.
    scrub_mib_s: f64,
    /// Raw sequential read of one member (O_DIRECT), MiB/s.
    raw_read_mib_s: f64,
    /// scrub / raw.
    scrub_to_raw_ratio: f64,
    /// The init's RSS on the fresh pool with no alert channels (watching off), and after
    /// mail and webhook channels to sinks on the host were set, `alert test` delivered through
    /// both and every disk's health was read (watching on).
    init_rss_watching_off_kib: u64,
    init_rss_watching_on_kib: u64,
    /// `alert test` through both channels, wall clock.
    alert_test_s: f64,
}

/// The `init RSS N KiB` figure of `status`.
fn rss_kib(guest: &mut Guest) -> Result<u64> {
    let status = guest.run("status", Duration::from_secs(60))?;
    number_after(&status, "init RSS")
        .map(|k| k as u64)
        .with_context(|| format!("no init RSS in status:\n{status}"))
}

/// RSS with watching off and on (see [`StorageFigures`]).
fn watching_figures(guest: &mut Guest, fig: &mut StorageFigures) -> Result<()> {
    use tank_tests::sinks::{HttpSink, SmtpSink, HOST_FROM_GUEST};
    let t = Duration::from_secs(120);
    fig.init_rss_watching_off_kib = rss_kib(guest)?;
    let smtp = SmtpSink::start(None)?;
    let http = HttpSink::start(None)?;
    guest.run(
        &format!(
            "alert mail to owner@example.com server {HOST_FROM_GUEST} port {} tls off",
            smtp.port()
        ),
        t,
    )?;
    guest.run(&format!("alert webhook {}", http.guest_url("/bench")), t)?;
    let started = Instant::now();
    let out = guest.run("alert test", t)?;
    fig.alert_test_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.contains("mail: delivered") && out.contains("webhook: delivered"),
        "alert test failed:\n{out}"
    );
    guest.run("disk health", t)?;
    fig.init_rss_watching_on_kib = rss_kib(guest)?;
    Ok(())
}

/// The first number after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<f64> {
    let i = text.find(key)? + key.len();
    text[i..]
        .trim_start()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?
        .parse()
        .ok()
}

/// Waits until the appliance has looked for a pool and found none, then creates `tank`
/// mirrored over the first two disks; returns what `pool create` printed and the members.
pub(crate) fn create_pool(guest: &mut Guest) -> Result<(String, [String; 2])> {
    let t = Duration::from_secs(600);
    guest.run_until("status", Duration::from_secs(120), |s| {
        s.contains("no pool")
    })?;
    let disks = guest.run("disks", t)?;
    let names: Vec<String> = disks
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(
        names.len() >= 2,
        "the guest shows fewer than two disks:\n{disks}"
    );
    let out = guest.run(
        &format!("pool create tank mirror {} {}", names[0], names[1]),
        t,
    )?;
    anyhow::ensure!(out.contains("created"), "pool create failed:\n{out}");
    Ok((out, [names[0].clone(), names[1].clone()]))
}

/// Pool creation time and scrub throughput against a raw read of one member.
fn storage_figures(board: &'static board::Board, image_dir: &Path) -> Result<StorageFigures> {
    let disks = tank_tests::fresh_disks("bench-storage", &[2 << 30, 2 << 30]);
    let mut config = QemuConfig::new(board, image_dir.to_path_buf());
    config.disks = disks;
    config.accel = Accel::from_env().map_err(anyhow::Error::msg)?;
    let mut guest = Guest::start(config, "bench-storage")?;
    guest.wait_prompt(Duration::from_secs(120))?;
    let t = Duration::from_secs(600);
    let (out, members) = create_pool(&mut guest)?;
    let mut fig = StorageFigures {
        pool_create_s: number_after(&out, "created in")
            .with_context(|| format!("pool create: {out}"))?,
        ..Default::default()
    };
    watching_figures(&mut guest, &mut fig)?;
    guest.run("dataset create bench compression none", t)?;
    let out = guest.run("file write bench/data.bin 128M seed bench", t)?;
    anyhow::ensure!(out.contains("sha256"), "writing test data failed: {out}");
    guest.run("pool scrub start", t)?;
    let out = guest.run_until("pool scrub status", t, |s| {
        s.contains("last scrub finished")
    })?;
    fig.scrub_mib_s = number_after(&out, "scrubbed at").with_context(|| format!("scrub: {out}"))?;
    let out = guest.run(&format!("disk readtest {} 256M", members[0]), t)?;
    fig.raw_read_mib_s =
        number_after(&out, "sequential read").with_context(|| format!("readtest: {out}"))?;
    fig.scrub_to_raw_ratio = fig.scrub_mib_s / fig.raw_read_mib_s.max(1e-9);
    guest.send(b"poweroff\r")?;
    let _ = guest.wait_exit(Duration::from_secs(60));
    Ok(fig)
}

/// Pulls `init started at X s, prompt at Y s` and the memory line out of `status`.
fn parse_status(status: &str, fig: &mut BootFigures) {
    let num_after = |key: &str| -> Option<f64> {
        let i = status.find(key)? + key.len();
        status[i..]
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?
            .parse()
            .ok()
    };
    fig.guest_init_start_s = num_after("init started at ").unwrap_or(0.0);
    fig.guest_prompt_s = num_after("prompt at ").unwrap_or(0.0);
    fig.init_to_prompt_s = fig.guest_prompt_s - fig.guest_init_start_s;
    fig.guest_modules_loaded_s = num_after("loaded at ").unwrap_or(0.0);
    fig.init_to_modules_loaded_s = fig.guest_modules_loaded_s - fig.guest_init_start_s;
    fig.init_rss_kib = num_after("init RSS ").unwrap_or(0.0) as u64;
    // "memory:   227.1 MiB total, 190.3 MiB available"
    if let Some(line) = status.lines().find(|l| l.starts_with("memory:")) {
        if let Some(avail) = line.split(", ").nth(1) {
            let mib: f64 = avail
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            fig.mem_available_kib = (mib * 1024.0) as u64;
        }
    }
}

fn boot_once(
    board: &'static board::Board,
    image_dir: &Path,
    memory: u32,
    timeout: Duration,
) -> Result<(Guest, f64)> {
    let mut config = QemuConfig::new(board, image_dir.to_path_buf());
    config.memory_mib = memory;
    config.accel = Accel::from_env().map_err(anyhow::Error::msg)?;
    let mut guest = Guest::start(config, &format!("bench-{memory}"))?;
    guest.wait_prompt(timeout)?;
    let wall = guest.elapsed().as_secs_f64();
    Ok((guest, wall))
}

pub fn run(board: &'static board::Board, json: &Path) -> Result<()> {
    let started = Instant::now();
    let image_dir = crate::build_image(board, false)?;
    // The NFS figures' client guest.
    crate::build_test_client()?;
    let manifest = image::Manifest::load(&image_dir.join("manifest.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let size = |f: &str| {
        std::fs::metadata(image_dir.join(f))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let mut bench = Bench {
        board: board.name.to_string(),
        kernel_release: manifest.kernel.release.clone(),
        kernel_bytes: size("vmlinuz"),
        initramfs_bytes: size("initramfs.img"),
        modules: manifest.modules.len(),
        ..Default::default()
    };
    bench.total_bytes = bench.kernel_bytes + bench.initramfs_bytes;

    eprintln!("bench: booting with 128 MiB");
    let (mut guest, wall) = boot_once(board, &image_dir, 128, Duration::from_secs(120))?;
    // Wait until the boot modules are in, so the figures include them.
    let status = guest.run_until("status", Duration::from_secs(120), |s| {
        s.contains("modules    ") && !s.contains("modules    loading")
    })?;
    bench.boot.memory_mib = 128;
    bench.boot.wall_to_prompt_s = wall;
    parse_status(&status, &mut bench.boot);
    guest.send(b"poweroff\r")?;
    let _ = guest.wait_exit(Duration::from_secs(30));
    drop(guest);

    for memory in [64, 96, 128] {
        eprintln!("bench: trying {memory} MiB");
        // A guest that boots at all reaches the prompt in seconds; one short of memory stalls.
        match boot_once(board, &image_dir, memory, Duration::from_secs(45)) {
            Ok((mut guest, _)) => {
                let _ = guest.send(b"poweroff\r");
                let _ = guest.wait_exit(Duration::from_secs(30));
                bench.smallest_ram_mib = Some(memory);
                break;
            }
            Err(e) => eprintln!(
                "bench: {memory} MiB did not reach the prompt: {}",
                e.to_string().lines().next().unwrap_or("")
            ),
        }
    }

    eprintln!("bench: storage (pool creation, scrub against raw read)");
    bench.storage = storage_figures(board, &image_dir)?;

    eprintln!("bench: the disk image under OVMF (firmware to prompt)");
    bench.disk = disk_figures(board, &image_dir)?;

    eprintln!(
        "bench: NFS from the test client and SMB from smbclient, against plain TCP ({} MiB)",
        shares::PAYLOAD >> 20
    );
    let scratch = tank_tests::runs_dir().join("bench-shares-files");
    (bench.nfs, bench.smb) = shares::share_figures(board, &image_dir, &scratch)?;
    bench.run_seconds = started.elapsed().as_secs_f64();

    let rows = [
        (
            "kernel",
            format!("{:.2} MiB", bench.kernel_bytes as f64 / 1048576.0),
        ),
        (
            "initramfs",
            format!(
                "{:.2} MiB (budget 8 MiB)",
                bench.initramfs_bytes as f64 / 1048576.0
            ),
        ),
        (
            "total",
            format!("{:.2} MiB", bench.total_bytes as f64 / 1048576.0),
        ),
        ("modules", bench.modules.to_string()),
        (
            "QEMU start to prompt (wall)",
            format!("{:.2} s", bench.boot.wall_to_prompt_s),
        ),
        (
            "guest uptime at init start",
            format!("{:.2} s", bench.boot.guest_init_start_s),
        ),
        (
            "guest uptime at prompt",
            format!("{:.2} s", bench.boot.guest_prompt_s),
        ),
        (
            "init exec to prompt (guest)",
            format!("{:.2} s (budget 1 s)", bench.boot.init_to_prompt_s),
        ),
        (
            "init exec to modules loaded (guest)",
            format!("{:.2} s", bench.boot.init_to_modules_loaded_s),
        ),
        (
            "MemAvailable at prompt (128 MiB)",
            format!("{:.1} MiB", bench.boot.mem_available_kib as f64 / 1024.0),
        ),
        (
            "init RSS",
            format!("{:.1} MiB", bench.boot.init_rss_kib as f64 / 1024.0),
        ),
        (
            "init RSS, watching off / on",
            format!(
                "{:.1} / {:.1} MiB (on: mail and webhook set, alert test delivered, disks read)",
                bench.storage.init_rss_watching_off_kib as f64 / 1024.0,
                bench.storage.init_rss_watching_on_kib as f64 / 1024.0
            ),
        ),
        (
            "alert test (mail and webhook)",
            format!("{:.2} s", bench.storage.alert_test_s),
        ),
        (
            "pool create (2 x 2 GiB)",
            format!("{:.2} s", bench.storage.pool_create_s),
        ),
        (
            "scrub throughput",
            format!("{:.1} MiB/s", bench.storage.scrub_mib_s),
        ),
        (
            "raw sequential read, one member",
            format!("{:.1} MiB/s", bench.storage.raw_read_mib_s),
        ),
        (
            "scrub / raw read",
            format!("{:.2}", bench.storage.scrub_to_raw_ratio),
        ),
        (
            "disk image",
            format!(
                "{:.1} MiB ({:.1} MiB allocated, sparse)",
                bench.disk.image_bytes as f64 / 1048576.0,
                bench.disk.image_allocated_bytes as f64 / 1048576.0
            ),
        ),
        (
            "release bundle",
            format!("{:.1} MiB", bench.disk.bundle_bytes as f64 / 1048576.0),
        ),
        (
            "OVMF firmware start to prompt (wall)",
            format!("{:.2} s", bench.disk.firmware_to_prompt_s),
        ),
        (
            "guest uptime at prompt (UEFI boot)",
            format!("{:.2} s", bench.disk.uefi_guest_prompt_s),
        ),
        (
            "smallest RAM reaching the prompt",
            bench
                .smallest_ram_mib
                .map(|m| format!("{m} MiB"))
                .unwrap_or_else(|| "none of 64/96/128".into()),
        ),
        (
            "NFS payload (client guest, vers=4.2)",
            format!(
                "{} MiB, link MTU {}",
                bench.nfs.payload_bytes >> 20,
                bench
                    .nfs
                    .link_mtu
                    .map_or_else(|| "1500".to_string(), |m| m.to_string())
            ),
        ),
        ("NFS sequential write", bench.nfs.write.show()),
        ("NFS sequential read", bench.nfs.read.show()),
        (
            "SMB payload (host smbclient)",
            format!("{} MiB", bench.smb.payload_bytes >> 20),
        ),
        ("SMB put", bench.smb.put.show()),
        ("SMB get", bench.smb.get.show()),
        (
            "bench run time (builds included)",
            format!("{:.0} s", bench.run_seconds),
        ),
    ];
    println!(
        "Tank benchmark: board {}, kernel {}",
        bench.board, bench.kernel_release
    );
    for (k, v) in rows {
        println!("  {k:<36} {v}");
    }
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(crate::root().join(dir))?;
    }
    let path = crate::root().join(json);
    std::fs::write(&path, serde_json::to_string_pretty(&bench)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("  written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_figures() {
        let status = "Tank 0.1.0 on qemu-x86_64, host tank, kernel 6.12\n\
                      uptime:   3s (init started at 2.41 s, prompt at 2.63 s)\n\
                      memory:   227.1 MiB total, 190.5 MiB available, init RSS 3120 KiB\n";
        let mut fig = BootFigures::default();
        parse_status(status, &mut fig);
        assert_eq!(fig.guest_init_start_s, 2.41);
        assert_eq!(fig.guest_prompt_s, 2.63);
        assert!((fig.init_to_prompt_s - 0.22).abs() < 1e-9);
        assert_eq!(fig.init_rss_kib, 3120);
        assert_eq!(fig.mem_available_kib, (190.5f64 * 1024.0) as u64);
    }
}
