//! The Tank init: PID 1 and the whole userland of the appliance.
//!
//! One binary with two faces: as PID 1 it runs the appliance (see [`init`]); started by the kernel
//! as `/sbin/modprobe` (a symlink to `/init`) it loads the module the kernel asked for (see
//! [`kmod::modprobe_main`]) and exits.
#![forbid(unsafe_code)]

mod alerts;
mod config;
mod console;
mod init;
mod kmod;
mod logger;
mod logstore;
mod net;
mod nfs;
mod rpc;
mod smb;
mod storage;
mod supervise;
mod system;
#[cfg(test)]
mod testing;
mod upgrade;

use std::path::Path;

/// The init's own version (the crate's); the image's, with its build label, is [`version`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The running image's version, `0.1.0` or `0.1.0+LABEL`, from `/etc/tank-release`.
pub fn version() -> &'static str {
    system::release::running().version.as_str()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("init");
    if name == "modprobe" {
        std::process::exit(kmod::modprobe_main(&args[1..]));
    }
    if rustix::process::getpid().is_init() {
        init::run();
    }
    eprintln!(
        "tank init {VERSION}: this program is the appliance's PID 1 and only runs as such \
         (or as /sbin/modprobe for the kernel); boot the image with `cargo xtask run`."
    );
    std::process::exit(2);
}
