//! The agent as PID 1 of the test client: bring the guest up, say `tank-agent ready`, serve
//! the serial console forever.
//!
//! Order: mounts, the serial line in raw mode (and logging on it), the host name, every module
//! of the image, the network from `tank.agent.*` on the kernel command line, the kernel-warning
//! forwarder, the ready line. A step that fails is logged as a `# error:` line and the agent
//! goes on: the ready line says what is missing (`ip=none`, `modules_failed=N`), so the
//! harness can fail with the reason. PID 1 never exits: when the console ends it is opened
//! again.

use std::fs::File;
use std::time::Duration;

use crate::agent::{Agent, Next, State};
use crate::console::{self, Output};
use crate::protocol::Fields;
use crate::{net, system, tcp, VERSION};

/// Kernel messages of this level or more urgent are forwarded (4: warning).
const KMSG_LEVEL: u8 = 4;

/// Runs the test client. Never returns.
pub fn run() -> ! {
    rustix::process::umask(rustix::fs::Mode::empty());
    let mount_problems = system::early_mounts();
    // Guest uptime when the kernel started the agent (/proc is mounted now).
    let started = system::uptime();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (cfg, cmdline_problems) = system::parse_cmdline(&cmdline);
    let console_name = cfg.console.clone().unwrap_or_else(|| "ttyS0".into());
    let (serial, serial_problem) = open_console(&console_name);
    let out = match serial.as_ref().and_then(|f| f.try_clone().ok()) {
        Some(f) => Output::new(f),
        None => Output::new(std::io::stdout()),
    };
    console::init_logging(out.clone());
    std::panic::set_hook(Box::new(|info| log::error!("{info}")));
    for p in mount_problems
        .iter()
        .chain(&cmdline_problems)
        .chain(&serial_problem)
    {
        log::error!("{p}");
    }
    {
        let out = out.clone();
        std::thread::spawn(move || console::forward_kmsg(out, KMSG_LEVEL));
    }

    let hostname = cfg.hostname();
    if let Err(e) = system::set_hostname(&hostname) {
        log::error!("{e}");
    }
    let modules_started = system::uptime();
    let modules = match system::load_modules(&system::modules_dir()) {
        Ok(r) => r,
        Err(e) => {
            log::error!("modules: {e}");
            system::ModuleReport::default()
        }
    };
    for (name, why) in &modules.failed {
        log::error!("module {name} failed to load: {why}");
    }
    let modules_seconds = system::uptime() - modules_started;
    let slowest: Vec<String> = modules
        .slowest
        .iter()
        .map(|(n, s)| format!("{n} {s:.2} s"))
        .collect();
    log::info!("slowest modules: {}", slowest.join(", "));
    let mut ready = Fields::new()
        .put("version", VERSION)
        .secs("started", started)
        .put("hostname", &hostname)
        .num("modules", modules.loaded.len())
        .num("modules_failed", modules.failed.len())
        .secs("modules_seconds", modules_seconds);
    let iface = match net::configure(cfg.iface.as_deref(), cfg.address) {
        Ok(name) => Some(name),
        Err(e) => {
            log::error!("network: {e}");
            None
        }
    };
    let address = iface.as_ref().and(cfg.address);
    let mtu = iface
        .as_ref()
        .and_then(|i| std::fs::read_to_string(format!("/sys/class/net/{i}/mtu")).ok())
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| "none".into());
    ready = ready
        .put("iface", iface.as_deref().unwrap_or("none"))
        .put("mtu", mtu)
        .put(
            "ip",
            match address {
                Some((ip, p)) => format!("{ip}/{p}"),
                None => "none".into(),
            },
        )
        .secs("uptime", system::uptime());
    out.line(&format!("tank-agent ready {}", ready.render()));

    let about = Fields::new()
        .put("agent", "tank-agent")
        .put("version", VERSION)
        .put("hostname", &hostname)
        .put(
            "ip",
            address
                .map(|(ip, p)| format!("{ip}/{p}"))
                .unwrap_or_else(|| "none".into()),
        );
    let agent = Agent::new(
        State {
            listeners: tcp::Listeners::default(),
            address: address.map(|(ip, _)| ip),
            about,
        },
        out,
    );
    let mut serial = serial;
    loop {
        let next = match serial.take() {
            Some(f) => agent.serve(f),
            None => agent.serve(std::io::stdin()),
        };
        if next == Next::PowerOff {
            // Returns only if the kernel refused.
            log::error!("{}", system::poweroff());
        }
        // The console ended or failed: wait and open it again.
        std::thread::sleep(Duration::from_secs(1));
        serial = open_console(&console_name).0;
    }
}

fn open_console(name: &str) -> (Option<File>, Option<String>) {
    match console::open_serial(name) {
        Ok(f) => (Some(f), None),
        Err(e) => (
            None,
            Some(format!(
                "cannot open /dev/{name}: {e}; using the kernel console"
            )),
        ),
    }
}
