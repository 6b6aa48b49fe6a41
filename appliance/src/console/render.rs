//! Typed replies → console text.

use super::request::{Reply, StatusReport};
use crate::net::LinkStatus;
use crate::system::disks::{human_size, Disk};
use crate::system::info::human_duration;

/// The text for a reply, each line ending with `\n`.
pub fn reply(reply: &Reply) -> String {
    match reply {
        Reply::Done(line) => format!("{line}\n"),
        Reply::Status(status) => self::status(status),
        Reply::Disks(disks) => self::disks(disks),
        Reply::Network(links) => network(links),
        Reply::Log(lines) => lines.iter().map(|l| format!("{l}\n")).collect(),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub fn status(s: &StatusReport) -> String {
    let mut out = String::new();
    for alert in &s.alerts {
        out.push_str(&format!("ALERT: {alert}\n"));
    }
    out.push_str(&format!(
        "Tank {} on {}, host {}, kernel {}\n",
        s.version, s.board, s.hostname, s.kernel
    ));
    let prompt = s
        .prompt_at
        .map(|p| format!("{p:.2} s"))
        .unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "uptime:   {} (init started at {:.2} s, prompt at {prompt})\n",
        human_duration(s.uptime_secs as u64),
        s.init_started_at
    ));
    out.push_str(&format!(
        "memory:   {} total, {} available, init RSS {} KiB\n",
        mib(s.mem_total_kib),
        mib(s.mem_available_kib),
        s.init_rss_kib
    ));
    out.push_str(&format!(
        "entropy:  {}\n",
        if s.entropy_ready {
            "ready"
        } else {
            "NOT READY: the kernel's random pool is not initialised; add a hardware RNG (virtio-rng, TPM) or wait"
        }
    ));
    out.push_str("disks:\n");
    out.push_str(&indent(&disks(&s.disks)));
    out.push_str("network:\n");
    out.push_str(&indent(&network(&s.links)));
    out.push_str("services:\n");
    for svc in &s.services {
        out.push_str(&format!("  {:<10} {}\n", svc.name, svc.state));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

pub fn disks(disks: &[Disk]) -> String {
    if disks.is_empty() {
        return "no disks found\n".into();
    }
    let mut out = String::new();
    for d in disks {
        let mut flags = String::new();
        if d.removable {
            flags.push_str(" removable");
        }
        if d.read_only {
            flags.push_str(" read-only");
        }
        out.push_str(&format!(
            "{:<8} {:>10}  {:<24} serial {}{}{}\n",
            d.name,
            human_size(d.size_bytes),
            if d.model.is_empty() { "-" } else { &d.model },
            if d.serial.is_empty() { "-" } else { &d.serial },
            if d.wwn.is_empty() {
                String::new()
            } else {
                format!(" wwn {}", d.wwn)
            },
            flags
        ));
    }
    out
}

pub fn network(links: &[LinkStatus]) -> String {
    if links.is_empty() {
        return "no network interfaces\n".into();
    }
    links.iter().map(|l| format!("{l}\n")).collect()
}
