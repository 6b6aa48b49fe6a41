//! The QEMU side of Tank's tests and tools: how a board is started in QEMU ([`qemu`]) and a
//! harness that drives a guest over its serial console ([`guest`]). `xtask run`, `xtask bench`
//! and the end-to-end tests in `tests/` all start guests through here.

pub mod guest;
pub mod qemu;

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
