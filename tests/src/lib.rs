//! The QEMU side of Tank's tests and tools: how a board is started in QEMU ([`qemu`]), a
//! harness that drives a guest over its serial console ([`guest`]) and the test client guest
//! that mounts the appliance with the kernel's NFS and CIFS clients ([`client`]), and the
//! servers on the host that alerts are delivered to ([`sinks`]: SMTP and a webhook). `xtask
//! run`, `xtask bench` and the end-to-end tests in `tests/` all start guests through here.

pub mod client;
pub mod console;
pub mod guest;
pub mod qemu;
pub mod sinks;

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `cargo xtask image` writes a board's image.
pub fn image_dir(board: &str) -> PathBuf {
    match std::env::var_os("TANK_IMAGE_ROOT") {
        Some(root) => PathBuf::from(root).join(board),
        None => workspace_root().join("target/tank").join(board),
    }
}

/// The line of console output `out` that starts with `prefix`, trimmed; panics naming both
/// when there is none.
pub fn line_starting<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .map(str::trim_end)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

/// Checks `system version`'s lines for the image in `image_dir(board)`: its version, build id
/// and signer as its `manifest.json` records them.
pub fn check_version_lines(out: &str, board: &str) -> image::Manifest {
    let manifest = image::Manifest::load(&image_dir(board).join("manifest.json"))
        .expect("the image's manifest.json");
    assert_eq!(
        line_starting(out, "version "),
        format!("version    {}", manifest.tank_version),
        "{out}"
    );
    assert_eq!(
        line_starting(out, "build id "),
        format!("build id   {}", manifest.build_id),
        "{out}"
    );
    let signer = manifest
        .signer
        .clone()
        .expect("manifest.json names the signer");
    let expected = format!(
        "signer     {} key {}",
        signer.kind.as_str(),
        signer.fingerprint
    );
    assert!(
        line_starting(out, "signer ").starts_with(&expected),
        "{out}"
    );
    assert!(
        line_starting(out, "trusts ").contains(&signer.fingerprint),
        "{out}"
    );
    manifest
}

/// Where the tests' guests and files live: `target/tank-test-runs`.
pub fn runs_dir() -> PathBuf {
    workspace_root().join("target/tank-test-runs")
}

/// An empty folder for one test's files, `target/tank-test-runs/<name>-<pid>/`.
pub fn fresh_run_dir(name: &str) -> PathBuf {
    let dir = runs_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}

/// Fresh sparse disk images for one test, under `target/tank-test-runs/<name>-<pid>/`:
/// `sda.img`, `sdb.img`, ... with the given sizes.
pub fn fresh_disks(name: &str, sizes: &[u64]) -> Vec<PathBuf> {
    let dir = fresh_run_dir(name);
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let path = dir.join(format!("sd{}.img", (b'a' + i as u8) as char));
            if let Err(e) = qemu::ensure_disk(&path, size) {
                panic!("cannot create {}: {e}", path.display());
            }
            path
        })
        .collect()
}

/// Boots the default board with `disks` and waits for the prompt.
pub fn boot_default(name: &str, disks: &[PathBuf]) -> guest::Guest {
    boot_board(name, board::default_board(), disks)
}

/// Boots the default board with `disks`, forwarding a free host port on 127.0.0.1 to each of
/// `guest_ports` (TCP), and waits for the prompt. Returns the guest and the host ports, in
/// the order of `guest_ports`.
pub fn boot_forwarding(
    name: &str,
    disks: &[PathBuf],
    guest_ports: &[u16],
) -> (guest::Guest, Vec<u16>) {
    let board = board::default_board();
    let mut config = qemu::QemuConfig::new(board, image_dir(board.name));
    config.disks = disks.to_vec();
    let mut hosts = Vec::new();
    for &guest in guest_ports {
        let host = qemu::free_port().unwrap_or_else(|e| panic!("no free port: {e}"));
        config.forwards.push(qemu::Forward {
            udp: false,
            host,
            guest,
        });
        hosts.push(host);
    }
    let mut guest = match guest::Guest::start(config, name) {
        Ok(g) => g,
        Err(e) => panic!("cannot start QEMU: {e:#}"),
    };
    if let Err(e) = guest.wait_prompt(std::time::Duration::from_secs(180)) {
        panic!("no prompt: {e:#}");
    }
    (guest, hosts)
}

/// Boots `board` with `disks` and waits for the prompt.
pub fn boot_board(name: &str, board: &'static board::Board, disks: &[PathBuf]) -> guest::Guest {
    let mut config = qemu::QemuConfig::new(board, image_dir(board.name));
    config.disks = disks.to_vec();
    let mut guest = match guest::Guest::start(config, name) {
        Ok(g) => g,
        Err(e) => panic!("cannot start QEMU: {e:#}"),
    };
    if let Err(e) = guest.wait_prompt(std::time::Duration::from_secs(180)) {
        panic!("no prompt: {e:#}");
    }
    guest
}
