//! `cargo xtask`: build the Tank image, boot it in QEMU, run the tests, benchmark, soak it
//! under power cuts.

mod bench;
mod flash;
mod keys;
mod prereqs;
mod soak;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tank_tests::qemu::{self, Accel, Forward, QemuConfig};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, run, test, benchmark and soak the Tank appliance image"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the image for a board (kernel, initramfs, command line, manifest); `--board
    /// test-client` builds the NFS and SMB tests' client guest.
    Image {
        #[arg(long, default_value = "qemu-x86_64")]
        board: String,
        /// Refresh the Debian package lists even if they are recent.
        #[arg(long)]
        refresh: bool,
        /// The ed25519 private key (PKCS#8 PEM, from `cargo xtask keygen`) that signs the
        /// release manifest; default: $TANK_SIGNING_KEY, else the development key
        /// target/tank-keys/dev.key (made once).
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
        /// A build label stamped into the version (0.1.0+LABEL): letters, digits, '.', '-'.
        #[arg(long)]
        label: Option<String>,
    },
    /// Make an ed25519 key pair for signing releases: DIR/release.key (private, mode 0600)
    /// and DIR/release.pub. Existing keys are never overwritten.
    Keygen { dir: PathBuf },
    /// Build if needed and boot the image in QEMU with two data disks; the serial console is
    /// this terminal (ctrl-a x quits QEMU).
    Run {
        #[arg(long, default_value = "qemu-x86_64")]
        board: String,
        /// tcg (default; works under nested virtualisation) or kvm.
        #[arg(long)]
        accel: Option<String>,
        /// Guest memory in MiB (default: the board's).
        #[arg(long)]
        memory: Option<u32>,
        /// Size of each data disk when it is created (sparse).
        #[arg(long, default_value = "8G")]
        disk_size: String,
        /// Start with new blank disks.
        #[arg(long)]
        fresh_disks: bool,
        /// First host port of the forwards (NFS = base+0, SMB = base+1, rpcbind = base+2).
        #[arg(long, default_value_t = 10000)]
        port_base: u16,
    },
    /// Run the unit tests and the QEMU end-to-end tests.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure sizes, boot time and memory; print a table and write JSON.
    Bench {
        #[arg(long, default_value = "qemu-x86_64")]
        board: String,
        #[arg(long, default_value = "target/tank/bench.json")]
        json: PathBuf,
    },
    /// Write the disk image to a boot device (a USB stick or SSD) and verify it by reading it
    /// back. Refuses mounted devices; a device holding anything is only written after you type
    /// its model or serial.
    Flash {
        /// The whole-disk device, e.g. /dev/sdc (or an image file).
        device: PathBuf,
        #[arg(long, default_value = "pc-x86_64")]
        board: String,
        /// The disk image to write (default: build the board's and use it).
        #[arg(long)]
        image: Option<PathBuf>,
        /// The device's model or serial, to confirm without a question.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Power cuts under load: boot the appliance, write and fsync files over NFS and SMB,
    /// change the configuration, then kill QEMU at a random moment, boot again and check that
    /// nothing confirmed was lost (files, configuration, `btrfs check`); N times.
    Soak {
        /// How many power cuts.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        power_cuts: u32,
        /// The seed of the cut schedule (default: from the clock; printed to repeat a run).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value = "qemu-x86_64")]
        board: String,
    },
    /// Install the host packages the tools need (as root) or print the command.
    Prereqs,
}

/// Prints the image builder's progress (`log` records) on stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            match record.level() {
                log::Level::Error | log::Level::Warn => {
                    eprintln!(
                        "xtask: {}: {}",
                        record.level().as_str().to_lowercase(),
                        record.args()
                    )
                }
                _ => eprintln!("xtask: {}", record.args()),
            }
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

fn main() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    if let Err(e) = real_main() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Image { board, .. } if board == board::TEST_CLIENT.name => {
            build_test_client()?;
        }
        Cmd::Image {
            board,
            refresh,
            signing_key,
            label,
        } => {
            build_image_with(
                find_board(&board)?,
                refresh,
                &ImageOptions { signing_key, label },
            )?;
        }
        Cmd::Keygen { dir } => keys::keygen(&dir)?,
        Cmd::Run {
            board,
            accel,
            memory,
            disk_size,
            fresh_disks,
            port_base,
        } => run(
            find_board(&board)?,
            accel,
            memory,
            &disk_size,
            fresh_disks,
            port_base,
        )?,
        Cmd::Test { args } => test(&args)?,
        Cmd::Bench { board, json } => bench::run(find_board(&board)?, &json)?,
        Cmd::Flash {
            device,
            board,
            image,
            confirm,
        } => {
            let image = match image {
                Some(path) => path,
                None => {
                    let board = find_board(&board)?;
                    build_image(board, false)?.join(image::disk::image_name(
                        env!("CARGO_PKG_VERSION"),
                        board.name,
                    ))
                }
            };
            flash::run(&device, &image, confirm)?
        }
        Cmd::Soak {
            power_cuts,
            seed,
            board,
        } => soak::run(
            find_board(&board)?,
            soak::Options {
                power_cuts,
                seed: seed.unwrap_or_else(clock_seed),
            },
        )?,
        Cmd::Prereqs => prereqs::ensure()?,
    }
    Ok(())
}

/// A seed from the clock, for a soak run without `--seed`.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() % 1_000_000)
}

pub fn root() -> PathBuf {
    tank_tests::workspace_root()
}

fn find_board(name: &str) -> Result<&'static board::Board> {
    board::find(name).with_context(|| {
        format!(
            "unknown board '{name}'; the boards are: {}",
            board::names().join(", ")
        )
    })
}

/// Runs a command, printing it first; fails with the command and its status.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", show(cmd));
    }
    Ok(())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The static init binary, built for the image.
fn build_init() -> Result<PathBuf> {
    eprintln!("xtask: [1/2] building the init (static, release)");
    build_static("appliance", "appliance")
}

/// Builds `package`'s binary `bin` statically linked, in release mode, and returns its path.
fn build_static(package: &str, bin: &str) -> Result<PathBuf> {
    let target = "x86_64-unknown-linux-gnu";
    run_cmd(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
                "-C target-feature=+crt-static",
            )
            .args([
                "build",
                "--release",
                "--package",
                package,
                "--bin",
                bin,
                "--target",
                target,
            ]),
    )?;
    let path = root().join("target").join(target).join("release").join(bin);
    if !path.exists() {
        bail!("the build finished but {} is missing", path.display());
    }
    Ok(path)
}

/// Builds the test client image (`board::TEST_CLIENT`, the test agent as its init) into
/// `target/tank/test-client` and returns that folder.
pub fn build_test_client() -> Result<PathBuf> {
    let board = &board::TEST_CLIENT;
    eprintln!("xtask: building the test agent (static, release)");
    let agent = build_static("tank-test-agent", "tank-agent")?;
    let out_dir = tank_tests::image_dir(board.name);
    let manifest = image::build(&image::BuildRequest {
        board,
        init_binary: &agent,
        cache_dir: &root().join("target/kernel-cache"),
        out_dir: &out_dir,
        version: env!("CARGO_PKG_VERSION"),
        signer: &keys::signer(None, &root().join("target"))?,
        refresh: false,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "xtask: test client image in {}: {} modules",
        out_dir.display(),
        manifest.modules.len()
    );
    Ok(out_dir)
}

/// How `cargo xtask image` signs and labels a build.
#[derive(Default)]
pub struct ImageOptions {
    pub signing_key: Option<PathBuf>,
    pub label: Option<String>,
}

/// Builds the image for `board` into `target/tank/<board>` and returns that folder.
pub fn build_image(board: &'static board::Board, refresh: bool) -> Result<PathBuf> {
    build_image_with(board, refresh, &ImageOptions::default())
}

/// [`build_image`] with a signing key and a build label.
pub fn build_image_with(
    board: &'static board::Board,
    refresh: bool,
    options: &ImageOptions,
) -> Result<PathBuf> {
    let version =
        image::sign::labelled_version(env!("CARGO_PKG_VERSION"), options.label.as_deref())?;
    let signer = keys::signer(options.signing_key.as_deref(), &root().join("target"))?;
    prereqs::ensure()?;
    let started = Instant::now();
    let init = build_init()?;
    eprintln!("xtask: [2/2] assembling the {} image", board.name);
    let out_dir = tank_tests::image_dir(board.name);
    let cache_dir = root().join("target/kernel-cache");
    let manifest = image::build(&image::BuildRequest {
        board,
        init_binary: &init,
        cache_dir: &cache_dir,
        out_dir: &out_dir,
        version: &version,
        signer: &signer,
        refresh,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "xtask: image {version} for {} in {} ({:.1} s): kernel {}, {} modules, build id {}, \
         signed with the {} key {}",
        board.name,
        out_dir.display(),
        started.elapsed().as_secs_f64(),
        manifest.kernel.release,
        manifest.modules.len(),
        manifest.build_id,
        signer.kind.as_str(),
        signer.fingerprint()
    );
    Ok(out_dir)
}

fn run(
    board: &'static board::Board,
    accel: Option<String>,
    memory: Option<u32>,
    disk_size: &str,
    fresh: bool,
    port_base: u16,
) -> Result<()> {
    let image_dir = build_image(board, false)?;
    let size = qemu::parse_size(disk_size).map_err(anyhow::Error::msg)?;
    let disk_dir = root().join("target/disks").join(board.name);
    let mut disks = Vec::new();
    for name in ["sda.img", "sdb.img"] {
        let path = disk_dir.join(name);
        if fresh {
            let _ = std::fs::remove_file(&path);
        }
        if qemu::ensure_disk(&path, size)? {
            eprintln!(
                "xtask: created blank disk {} ({disk_size}, sparse)",
                path.display()
            );
        }
        disks.push(path);
    }
    let mut config = QemuConfig::new(board, image_dir);
    config.disks = disks;
    config.interactive = true;
    config.accel = match accel {
        Some(a) => Accel::parse(&a).map_err(anyhow::Error::msg)?,
        None => Accel::from_env().map_err(anyhow::Error::msg)?,
    };
    if let Some(m) = memory {
        config.memory_mib = m;
    }
    let forwards = [
        ("NFS", false, port_base, 2049),
        ("SMB", false, port_base + 1, 445),
        ("rpcbind", false, port_base + 2, 111),
        ("rpcbind (udp)", true, port_base + 2, 111),
    ];
    for (what, udp, host, guest) in forwards {
        config.forwards.push(Forward { udp, host, guest });
        eprintln!(
            "xtask: {what:<14} 127.0.0.1:{host} -> guest {}/{guest}",
            if udp { "udp" } else { "tcp" }
        );
    }
    eprintln!(
        "xtask: booting {} ({:?}); ctrl-a x quits QEMU",
        board.name, config.accel
    );
    let mut cmd = config.command().map_err(anyhow::Error::msg)?;
    let status = cmd.status().context("cannot start qemu-system-x86_64")?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}

/// The host ports the NFS tests forward as they are (Proxmox VE's probes use the well-known
/// ports): nothing else may hold them.
const WELL_KNOWN_PORTS: [(u16, &str); 3] = [(111, "rpcbind"), (2049, "nfsd"), (20048, "mountd")];

fn check_ports_free() -> Result<()> {
    for (port, who) in WELL_KNOWN_PORTS {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
                "port {port} on 127.0.0.1 is taken (a host {who}?): the NFS tests forward it to \
                 the appliance; stop it first (for rpcbind: systemctl stop rpcbind.socket \
                 rpcbind.service)"
            ),
            Err(e) => bail!(
                "cannot bind port {port} on 127.0.0.1 ({e}): the tests need root (loop devices, \
                 well-known ports)"
            ),
        }
    }
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    prereqs::ensure()?;
    check_ports_free()?;
    // Every board has a boot test, so every board's image is built.
    let mut image_dir = PathBuf::new();
    for board in board::BOARDS.iter().rev() {
        image_dir = build_image(board, false)?;
    }
    // The second guest of the NFS and SMB tests.
    build_test_client()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let skip_log = root().join("target/tank/skipped.txt");
    let _ = std::fs::remove_file(&skip_log);
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .env(
            "TANK_IMAGE_ROOT",
            image_dir.parent().unwrap_or(Path::new(".")),
        )
        .env("TANK_KERNEL_CACHE", root().join("target/kernel-cache"))
        .env(
            "TANK_INIT_BINARY",
            root().join("target/x86_64-unknown-linux-gnu/release/appliance"),
        )
        // The gated host suites run here, and a suite that lacks a tool fails with the line
        // that installs it (tests/gate). Skips are recorded apart from the passes.
        .env("TANK_HOST_BTRFS", "1")
        .env("TANK_NETNS_TESTS", "1")
        .env(tank_test_gate::REQUIRE_ALL, "1")
        .env(tank_test_gate::SKIP_LOG, &skip_log)
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .stdout(Stdio::piped());
    eprintln!("xtask: $ {}", show(&cmd));
    let mut child = cmd.spawn().context("cannot start cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some((p, f)) = parse_test_result(&line) {
            passed += p;
            failed += f;
        }
    }
    let status = child.wait()?;
    let skipped: Vec<String> = std::fs::read_to_string(&skip_log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for line in &skipped {
        println!("skipped: {line}");
    }
    let summary = summary(passed, failed, skipped.len() as u64);
    println!("{summary}");
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// The closing line: a test that recorded a skip passed as far as cargo knows, so it is
/// counted as skipped, not passed.
fn summary(passed: u64, failed: u64, skipped: u64) -> String {
    format!(
        "tests: {} passed, {failed} failed, {skipped} skipped",
        passed.saturating_sub(skipped)
    )
}

/// `test result: ok. 59 passed; 0 failed; ...` → (59, 0).
fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| -> Option<u64> {
        let end = rest.find(&format!(" {word}"))?;
        rest[..end]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((count("passed")?, count("failed")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_result_lines() {
        assert_eq!(
            super::parse_test_result("test result: ok. 59 passed; 0 failed; 0 ignored; 0 measured"),
            Some((59, 0))
        );
        assert_eq!(
            super::parse_test_result("test result: FAILED. 1 passed; 2 failed; 0 ignored"),
            Some((1, 2))
        );
        assert_eq!(super::parse_test_result("running 3 tests"), None);
    }

    #[test]
    fn soak_arguments() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            super::Cli::try_parse_from(["cargo xtask", "soak"].iter().chain(args))
                .map(|c| c.command)
        };
        match parse(&["--power-cuts", "20", "--seed", "1234"]) {
            Ok(super::Cmd::Soak {
                power_cuts,
                seed,
                board,
            }) => assert_eq!(
                (power_cuts, seed, board.as_str()),
                (20, Some(1234), "qemu-x86_64")
            ),
            Ok(_) => panic!("not the soak command"),
            Err(e) => panic!("{e}"),
        }
        assert!(matches!(
            parse(&["--power-cuts", "3"]),
            Ok(super::Cmd::Soak { seed: None, .. })
        ));
        for bad in [
            &[][..],
            &["--power-cuts", "0"],
            &["--power-cuts", "many"],
            &["--power-cuts", "2", "--seed", "-1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_and_keygen_arguments() {
        use clap::Parser;
        let parse = |args: &[&str]| super::Cli::try_parse_from(["cargo xtask"].iter().chain(args));
        match parse(&["image", "--signing-key", "k.key", "--label", "rc1"]).map(|c| c.command) {
            Ok(super::Cmd::Image {
                signing_key, label, ..
            }) => {
                assert_eq!(signing_key.as_deref(), Some(std::path::Path::new("k.key")));
                assert_eq!(label.as_deref(), Some("rc1"));
            }
            _ => panic!("not the image command"),
        }
        assert!(matches!(
            parse(&["keygen", "keys"]).map(|c| c.command),
            Ok(super::Cmd::Keygen { .. })
        ));
        assert!(parse(&["keygen"]).is_err());
    }

    #[test]
    fn skipped_tests_are_not_counted_as_passed() {
        assert_eq!(
            super::summary(10, 1, 2),
            "tests: 8 passed, 1 failed, 2 skipped"
        );
    }
}
