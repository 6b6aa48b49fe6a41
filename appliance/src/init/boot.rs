//! The boot sequence: named steps from the first instruction of PID 1 to a working prompt.
//!
//! Only the steps the prompt needs run before it (mounts, logging, consoles); modules, the
//! network and the power button come up in the background and report back as events, so a
//! slow driver or an absent DHCP server never holds the console.

use std::sync::mpsc;

use super::engine::Appliance;
use super::Event;
use crate::console::Consoles;
use crate::kmod::{self, LoadReport, Loader, ModDb};
use crate::supervise::{self, Policy};
use crate::system::{info, mounts};

/// The host name until the configuration says otherwise.
pub const DEFAULT_HOSTNAME: &str = "tank";

/// The board named by `tank.board=` on the kernel command line, or the default board.
fn board_from_cmdline(cmdline: &str) -> &'static board::Board {
    let named = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tank.board="));
    match named.map(|n| (n, board::find(n))) {
        Some((_, Some(b))) => b,
        Some((n, None)) => {
            log::error!(
                "unknown board '{n}' on the kernel command line (known: {}); using {}",
                board::names().join(", "),
                board::default_board().name
            );
            board::default_board()
        }
        None => board::default_board(),
    }
}

fn step(name: &str, result: Result<(), String>) {
    match result {
        Ok(()) => log::info!("boot: {name}: done"),
        Err(e) => log::error!("boot: {name}: {e}"),
    }
}

/// Runs the boot steps and returns the appliance ready for its event loop.
pub fn boot() -> Appliance {
    let started_at = info::uptime_secs();
    // Step: early mounts. Nothing can be logged before /dev exists.
    let mount_errors = mounts::early();
    crate::logger::init();
    crate::logstore::start();
    for e in &mount_errors {
        log::error!("boot: early mounts: {e}");
    }
    std::panic::set_hook(Box::new(|p| log::error!("internal error: {p}")));
    log::info!(
        "Tank {} init started at {started_at:.2} s",
        crate::version()
    );

    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let board = board_from_cmdline(&cmdline);

    step(
        "modprobe helper",
        std::fs::write("/proc/sys/kernel/modprobe", "/sbin/modprobe\n").map_err(|e| {
            format!("cannot point /proc/sys/kernel/modprobe at the init: {e}; the kernel cannot load modules on demand")
        }),
    );
    step(
        "hostname",
        rustix::system::sethostname(DEFAULT_HOSTNAME.as_bytes()).map_err(|e| e.to_string()),
    );
    crate::system::power::trap_ctrl_alt_del();

    let (tx, rx) = mpsc::channel();
    install_panic_reporter(tx.clone());
    spawn_signal_thread(tx.clone());
    let consoles = Consoles::start(board.consoles, DEFAULT_HOSTNAME, tx.clone());
    spawn_module_loader(board, tx.clone());
    spawn_uevent_thread(tx.clone());

    let mut appliance = Appliance::new(board, started_at, rx, tx, consoles);
    appliance.start_alert_delivery();
    appliance
}

/// Turns every panic of a supervised thread into an event for the engine.
fn install_panic_reporter(tx: mpsc::Sender<Event>) {
    supervise::add_reporter(move |p| {
        let _ = tx.send(Event::ThreadPanicked {
            name: p.name.clone(),
            message: p.message.clone(),
            restarted: p.restarted,
        });
    });
}

fn spawn_signal_thread(tx: mpsc::Sender<Event>) {
    use signal_hook::consts::*;
    let signals = signal_hook::iterator::Signals::new([
        SIGTERM,
        SIGINT,
        SIGCHLD,
        libc::SIGPWR,
        SIGHUP,
        SIGUSR1,
        SIGUSR2,
    ]);
    let mut signals = match signals {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot watch signals: {e}; shut down from the console");
            return;
        }
    };
    let spawned = supervise::spawn_supervised("signals", Policy::RESTART, move || {
        for signal in signals.forever() {
            if tx.send(Event::Signal(signal)).is_err() {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        log::error!("cannot start the signal thread: {e}");
    }
}

/// Watches kernel uevents for whole disks added or removed (a pool member pulled at run time).
fn spawn_uevent_thread(tx: mpsc::Sender<Event>) {
    let spawned = supervise::spawn_supervised("uevents", Policy::RESTART, move || {
        let result = crate::alerts::uevent::listen(&|action, disk| {
            let _ = tx.send(Event::DiskChanged {
                action: action.to_owned(),
                disk: disk.to_owned(),
            });
        });
        if let Err(e) = result {
            // The supervisor starts it again after its backoff.
            log::error!("uevents: {e}; disks removed at run time are found by the minute check");
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    });
    if let Err(e) = spawned {
        log::error!("cannot start the uevent thread: {e}");
    }
}

/// Loads the board's modules, then coldplugs its drivers, then reports.
fn spawn_module_loader(board: &'static board::Board, tx: mpsc::Sender<Event>) {
    let spawned = supervise::spawn_job(
        "modules",
        move || {
            let mut report = LoadReport::default();
            match ModDb::load(&kmod::modules_dir()) {
                Ok(db) => {
                    let requests: Vec<&str> = board.boot_modules().collect();
                    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                    report = kmod::load_parallel(&db, &requests, cpus.max(2));
                    if !board.coldplug_modules.is_empty() {
                        Loader::new(db).coldplug(board.coldplug_modules, &mut report);
                    }
                }
                Err(e) => report
                    .failed
                    .push(("module database".into(), e.to_string())),
            }
            report.finished_at = info::uptime_secs();
            report
        },
        // A panic still reports, so the network and the pool come up with what is loaded.
        move |end| {
            let report = end.unwrap_or_else(|message| {
                let mut report = LoadReport::default();
                report.failed.push((
                    "module loader".into(),
                    format!("internal error (panic): {message}"),
                ));
                report.finished_at = info::uptime_secs();
                report
            });
            let _ = tx.send(Event::ModulesLoaded(report));
        },
    );
    if let Err(e) = spawned {
        log::error!("cannot start the module loader: {e}");
    }
}

/// Starts a watcher thread per power button device.
pub fn spawn_power_button(tx: mpsc::Sender<Event>) -> Vec<String> {
    let devices = crate::system::power::power_button_devices();
    for device in &devices {
        let tx = tx.clone();
        let watched = device.clone();
        let spawned = supervise::spawn_supervised("power-button", Policy::RESTART, move || {
            crate::system::power::watch_button(&watched, || {
                let _ = tx.send(Event::PowerButton);
            })
        });
        if let Err(e) = spawned {
            log::error!("cannot watch the power button {}: {e}", device.display());
        }
    }
    devices.iter().map(|d| d.display().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_selection() {
        assert_eq!(
            board_from_cmdline("console=ttyS0 tank.board=pc-x86_64").name,
            "pc-x86_64"
        );
        assert_eq!(
            board_from_cmdline("console=ttyS0").name,
            board::default_board().name
        );
        assert_eq!(
            board_from_cmdline("tank.board=nonsense").name,
            board::default_board().name
        );
    }
}
