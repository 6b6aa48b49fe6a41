//! The ACPI power button (an input device once the `button` and `evdev` modules are in) and the
//! final step of a shutdown: sync, unmount, power off or restart.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::system::{reboot, RebootCommand};

/// What the machine does at the end of a shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    PowerOff,
    Reboot,
}

/// The input event devices whose name says they are a power button.
pub fn power_button_devices() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/class/input") else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("event") {
            continue;
        }
        let dev_name =
            std::fs::read_to_string(entry.path().join("device/name")).unwrap_or_default();
        if dev_name.trim() == "Power Button" {
            out.push(Path::new("/dev/input").join(name));
        }
    }
    out.sort();
    out
}

/// Size of `struct input_event` on 64-bit Linux: a 16-byte timeval, type, code, value.
const INPUT_EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;

/// Whether one `struct input_event` is a press of the power key.
pub fn is_power_press(event: &[u8; INPUT_EVENT_SIZE]) -> bool {
    let ty = u16::from_ne_bytes([event[16], event[17]]);
    let code = u16::from_ne_bytes([event[18], event[19]]);
    let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
    ty == EV_KEY && code == KEY_POWER && value == 1
}

/// Reads `device` until it fails, calling `on_press` for each press of the power key.
pub fn watch_button(device: &Path, on_press: impl Fn()) {
    let mut file = match std::fs::File::open(device) {
        Ok(f) => f,
        Err(e) => {
            log::warn!(
                "power button {}: {e}; use the console's poweroff",
                device.display()
            );
            return;
        }
    };
    let mut event = [0u8; INPUT_EVENT_SIZE];
    loop {
        match file.read_exact(&mut event) {
            Ok(()) if is_power_press(&event) => on_press(),
            Ok(()) => {}
            Err(e) => {
                log::warn!("power button {}: {e}", device.display());
                return;
            }
        }
    }
}

/// Disables ctrl-alt-del's immediate reboot, so the kernel sends SIGINT to the init instead.
pub fn trap_ctrl_alt_del() {
    if let Err(e) = reboot(RebootCommand::CadOff) {
        log::warn!("cannot route ctrl-alt-del to the init: {e}");
    }
}

/// What a shutdown asks of the kernel.
pub trait PowerControl {
    /// Whether the kernel lets the init power off or restart, asked before anything stops.
    fn may_power_off(&self) -> Result<(), String>;
    /// Syncs, unmounts everything, then powers off or restarts. Returns only when the kernel
    /// refused, with the reason.
    fn finish(&self, action: PowerAction) -> String;
    /// Mounts proc, sys, devtmpfs, /run and /tmp again after a refused power-off.
    fn remount_system(&self) -> Vec<String>;
    /// Writes the system time to the hardware clock (before the unmounts take `/dev`).
    fn write_hardware_clock(&self) -> Result<(), String>;
}

/// The running kernel.
pub struct Kernel;

impl PowerControl for Kernel {
    /// The ctrl-alt-del setting needs the same capability (`CAP_SYS_BOOT`) as a power-off, and
    /// setting it to what the boot set changes nothing.
    fn may_power_off(&self) -> Result<(), String> {
        reboot(RebootCommand::CadOff).map_err(|e| format!("the kernel refuses power control ({e})"))
    }

    fn finish(&self, action: PowerAction) -> String {
        finish(action)
    }

    fn remount_system(&self) -> Vec<String> {
        super::mounts::early()
    }

    fn write_hardware_clock(&self) -> Result<(), String> {
        super::clock::write_rtc()?;
        log::info!("shutdown: hardware clock set from the system clock");
        Ok(())
    }
}

/// The last step of every shutdown: sync, unmount in reverse order, sync, power off or restart.
/// Only returns if the kernel refuses, which leaves the caller at a working prompt.
pub fn finish(action: PowerAction) -> String {
    rustix::fs::sync();
    for problem in super::mounts::unmount_all() {
        log::warn!("shutdown: could not unmount {problem}");
    }
    rustix::fs::sync();
    let cmd = match action {
        PowerAction::PowerOff => RebootCommand::PowerOff,
        PowerAction::Reboot => RebootCommand::Restart,
    };
    match reboot(cmd) {
        Ok(()) => "the kernel returned from a power-off".to_string(),
        Err(e) => format!("the kernel refused to {action:?}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ty: u16, code: u16, value: i32) -> [u8; INPUT_EVENT_SIZE] {
        let mut e = [0u8; INPUT_EVENT_SIZE];
        e[16..18].copy_from_slice(&ty.to_ne_bytes());
        e[18..20].copy_from_slice(&code.to_ne_bytes());
        e[20..24].copy_from_slice(&value.to_ne_bytes());
        e
    }

    #[test]
    fn power_key() {
        assert!(is_power_press(&event(EV_KEY, KEY_POWER, 1)));
        assert!(!is_power_press(&event(EV_KEY, KEY_POWER, 0)));
        assert!(!is_power_press(&event(EV_KEY, 30, 1)));
        assert!(!is_power_press(&event(0, 0, 0)));
    }
}
