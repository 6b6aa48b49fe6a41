//! Typed replies → console text.

use super::request::{Reply, StatusReport, Table};
use crate::net::LinkStatus;
use crate::storage::{DatasetInfo, Health, PoolStatus};
use crate::system::disks::{human_size, Disk};
use crate::system::health::{Detail, Reading};
use crate::system::info::human_duration;

/// The text for a reply, each line ending with `\n`.
pub fn reply(reply: &Reply) -> String {
    match reply {
        Reply::Done(line) => format!("{line}\n"),
        Reply::Status(status) => self::status(status),
        Reply::Disks(disks, roles) => self::disks(disks, roles),
        Reply::Network(links) => network(links),
        Reply::Pool(status) => pool(status),
        Reply::Datasets(list) => datasets(list),
        Reply::Confirm { question, .. } => format!("{question}\n"),
        Reply::Log(lines) => lines.iter().map(|l| format!("{l}\n")).collect(),
        Reply::Table(t) => table(t),
        Reply::DiskHealth(readings) => table(&health_table(readings)),
        Reply::DiskHealthDetail(reading) => health_detail(reading),
        Reply::AskSecret { prompt, .. } => format!("{prompt}\n"),
        Reply::Time(report) => super::time::render(report),
        Reply::Version(report) => super::version::render(report),
    }
}

/// Columns padded to their widest cell, two spaces apart; notes after.
pub fn table(t: &Table) -> String {
    let mut out = String::new();
    if t.rows.is_empty() {
        out.push_str(&t.empty);
        out.push('\n');
    } else {
        let mut widths: Vec<usize> = t.headers.iter().map(|h| h.chars().count()).collect();
        for row in &t.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    let pad = widths.get(i).copied().unwrap_or(0);
                    l.push_str(&format!("{cell:<pad$}  "));
                }
            }
            l.trim_end().to_owned() + "\n"
        };
        out.push_str(&line(t.headers.to_vec()));
        for row in &t.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
    }
    for note in &t.notes {
        out.push_str(note);
        out.push('\n');
    }
    out
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
    if let Some(line) = &s.internal_errors {
        out.push_str(&format!("{line}\n"));
    }
    out.push_str("disks:\n");
    out.push_str(&indent(&disks(&s.disks, &s.disk_roles)));
    match &s.pool {
        Some(p) => out.push_str(&format!(
            "pool:     {} {} ({} used of {}, {} free){}\n",
            p.name,
            p.health,
            human_size(p.used_bytes),
            human_size(p.size_bytes),
            human_size(p.free_bytes),
            p.job.as_ref().map(|j| format!("; {j}")).unwrap_or_default()
        )),
        None => {
            let state = s
                .services
                .iter()
                .find(|svc| svc.name == "pool")
                .map(|svc| svc.state.as_str())
                .unwrap_or("-");
            if state == "no pool" {
                out.push_str(
                    "pool:     none (create one with 'pool create NAME mirror DISK DISK')\n",
                );
            } else {
                out.push_str(&format!("pool:     {state}\n"));
            }
        }
    }
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

pub fn disks(disks: &[Disk], roles: &[(String, String)]) -> String {
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
        if d.kernel != d.name {
            // Kernel messages name the disk by the kernel's name.
            flags.push_str(&format!(" (kernel {})", d.kernel));
        }
        let role = roles
            .iter()
            .find(|(n, _)| *n == d.name)
            .map(|(_, r)| format!("  [{r}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<8} {:>10}  {:<24} serial {}{}{}{role}\n",
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

pub fn pool(p: &PoolStatus) -> String {
    let mut out = String::new();
    if p.health != Health::Online {
        out.push_str(&format!("*** POOL {} IS {} ***\n", p.name, p.health));
    }
    out.push_str(&format!(
        "pool {}  {}  uuid {}  datasets under {}\n",
        p.name, p.health, p.uuid, p.mountpoint
    ));
    out.push_str(&format!(
        "capacity: {} used, {} free, {} total\n",
        human_size(p.used_bytes),
        human_size(p.free_bytes),
        human_size(p.size_bytes)
    ));
    let profiles: Vec<String> = p.profiles.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out.push_str(&format!(
        "profiles: {}\n",
        if profiles.is_empty() {
            "-".into()
        } else {
            profiles.join(", ")
        }
    ));
    out.push_str(
        "members:  devid disk     serial               size        read write flush corrupt gen\n",
    );
    for m in &p.members {
        let e = m.errors;
        out.push_str(&format!(
            "          {:<5} {:<8} {:<20} {:>10}  {:>4} {:>5} {:>5} {:>7} {:>3}{}\n",
            m.devid,
            m.disk.as_deref().unwrap_or("MISSING"),
            if m.serial.is_empty() { "-" } else { &m.serial },
            human_size(m.size_bytes),
            e.read,
            e.write,
            e.flush,
            e.corruption,
            e.generation,
            if m.missing { "  MISSING" } else { "" }
        ));
    }
    if let Some(job) = &p.job {
        out.push_str(&format!("running:  {job}\n"));
    }
    match &p.last_scrub {
        Some(s) => out.push_str(&format!(
            "scrub:    last {} {}: {} scrubbed, corrected {}, uncorrectable {}\n",
            if s.cancelled { "cancelled" } else { "finished" },
            crate::system::clock::console_time(s.finished),
            human_size(s.bytes_scrubbed),
            s.corrected,
            s.uncorrectable
        )),
        None => out.push_str("scrub:    never run\n"),
    }
    out.push_str(&format!("schedule: scrub {}\n", p.scrub_schedule));
    for a in &p.advice {
        out.push_str(&format!("action:   {a}\n"));
    }
    out
}

pub fn datasets(list: &[DatasetInfo]) -> String {
    if list.is_empty() {
        return "no datasets (create one with 'dataset create NAME')\n".into();
    }
    let size = |v: Option<u64>| v.map(human_size).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:<8} {:<10} {:>5} {:<24}\n",
        "NAME", "USED", "REFER", "SNAPSHOTS", "QUOTA", "COMPRESS", "OWNER", "MODE", "MOUNTPOINT"
    );
    for d in list {
        let (held, complete) = d.snapshots;
        out.push_str(&format!(
            "{:<20} {:>10} {:>10} {:>10} {:>10} {:<8} {:<10} {:>5o} {}{}\n",
            d.name,
            size(d.used),
            size(d.referenced),
            format!("{}{}", if complete { "" } else { "≥" }, human_size(held)),
            d.quota.map(human_size).unwrap_or_else(|| "none".into()),
            d.compression,
            format!("{}:{}", d.uid, d.gid),
            d.mode,
            d.mountpoint,
            if d.mounted { "" } else { " (NOT MOUNTED)" }
        ));
    }
    out
}

fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `disk health`: one row per disk.
fn health_table(readings: &[Reading]) -> Table {
    let rows = readings
        .iter()
        .map(|r| {
            let (warning, media) = match &r.detail {
                Detail::Nvme { log, .. } => (
                    format!("{:#04x}", log.critical_warning),
                    log.media_errors.to_string(),
                ),
                _ => ("-".into(), "-".into()),
            };
            vec![
                r.disk.clone(),
                r.model.clone(),
                r.serial.clone(),
                r.health_text(),
                r.temperature_c().map_or("-".into(), |t| format!("{t} C")),
                or_dash(r.power_on_hours()),
                or_dash(r.ata_raw(5)),
                or_dash(r.ata_raw(197)),
                or_dash(r.ata_raw(198)),
                media,
                warning,
            ]
        })
        .collect();
    Table {
        headers: vec![
            "DISK",
            "MODEL",
            "SERIAL",
            "HEALTH",
            "TEMP",
            "POWER-ON-H",
            "REALLOC",
            "PENDING",
            "UNCORR",
            "MEDIA-ERR",
            "CRIT-WARN",
        ],
        rows,
        empty: "no disks".into(),
        notes: Vec::new(),
    }
}

/// `disk health DISK`: the verdict, then everything the disk reported.
fn health_detail(r: &Reading) -> String {
    let mut out = format!("disk {}: {} (serial {})\n", r.disk, r.model, r.serial);
    out.push_str(&format!("health: {}\n", r.health_text()));
    out.push_str(&format!("read at: {} (unix time)\n", r.at));
    if let Some(t) = r.temperature_c() {
        out.push_str(&format!("temperature: {t} C\n"));
    }
    if let Some(h) = r.power_on_hours() {
        out.push_str(&format!("power-on hours: {h}\n"));
    }
    match &r.detail {
        Detail::None => {}
        Detail::Ata(smart) => {
            if let Some(data) = &smart.data {
                let running = data.self_test_status >> 4 == 15;
                out.push_str(&format!(
                    "self-test: {}{}\n",
                    crate::system::health::ata::self_test_status_text(data.self_test_status >> 4),
                    if running {
                        format!(" ({}% left)", (data.self_test_status & 0x0F) * 10)
                    } else {
                        String::new()
                    }
                ));
                out.push_str(&format!(
                    "self-tests: {} (short about {} min, extended about {} min)\n",
                    if data.self_test_supported {
                        "supported"
                    } else {
                        "not supported"
                    },
                    data.short_test_minutes,
                    data.long_test_minutes
                ));
                out.push_str("attributes:\n");
                out.push_str(&table(&Table {
                    headers: vec![
                        "ID", "NAME", "FLAGS", "VALUE", "WORST", "THRESH", "TYPE", "RAW", "STATE",
                    ],
                    rows: data
                        .attributes
                        .iter()
                        .map(|a| {
                            vec![
                                a.id.to_string(),
                                if a.name().is_empty() {
                                    "Unknown_Attribute".into()
                                } else {
                                    a.name().into()
                                },
                                format!("{:#06x}", a.flags),
                                a.current.to_string(),
                                a.worst.to_string(),
                                or_dash(a.threshold),
                                if a.prefailure() {
                                    "pre-fail"
                                } else {
                                    "old-age"
                                }
                                .into(),
                                a.raw.to_string(),
                                if a.failing() { "FAILING" } else { "ok" }.into(),
                            ]
                        })
                        .collect(),
                    empty: "(no attributes)".into(),
                    notes: Vec::new(),
                }));
            }
            out.push_str("self-test log:\n");
            out.push_str(&self_test_log(
                vec!["TYPE", "STATUS", "REMAINING", "HOURS", "FIRST-ERROR-LBA"],
                smart.self_tests.iter().map(|t| {
                    vec![
                        t.kind_name().into(),
                        t.status_text().into(),
                        format!("{}%", t.remaining_percent),
                        t.power_on_hours.to_string(),
                        or_dash(t.failing_lba),
                    ]
                }),
            ));
            for note in &smart.notes {
                out.push_str(&format!("note: {note}\n"));
            }
        }
        Detail::Nvme { log, self_tests } => {
            let warnings = log.warnings();
            out.push_str(&format!(
                "critical warning: {:#04x}{}\n",
                log.critical_warning,
                if warnings.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", warnings.join(", "))
                }
            ));
            out.push_str(&format!(
                "available spare: {}% (threshold {}%)\n",
                log.available_spare, log.spare_threshold
            ));
            out.push_str(&format!("percentage used: {}%\n", log.percentage_used));
            out.push_str(&format!("media errors: {}\n", log.media_errors));
            out.push_str(&format!("error log entries: {}\n", log.error_log_entries));
            out.push_str(&format!("power cycles: {}\n", log.power_cycles));
            out.push_str(&format!("unsafe shutdowns: {}\n", log.unsafe_shutdowns));
            out.push_str(&format!(
                "data read: {} units, written: {} units (1000 x 512 bytes)\n",
                log.data_units_read, log.data_units_written
            ));
            out.push_str(&format!(
                "minutes above the warning / critical temperature: {} / {}\n",
                log.warning_temp_minutes, log.critical_temp_minutes
            ));
            match self_tests {
                None => out.push_str("self-tests: not supported\n"),
                Some(st) => {
                    if st.current != 0 {
                        out.push_str(&format!(
                            "self-test: {} running ({}% done)\n",
                            if st.current == 2 { "extended" } else { "short" },
                            st.completion_percent
                        ));
                    }
                    out.push_str("self-test log:\n");
                    out.push_str(&self_test_log(
                        vec!["TYPE", "RESULT", "HOURS"],
                        st.results.iter().map(|t| {
                            vec![
                                t.kind_name().into(),
                                t.result_text().into(),
                                t.power_on_hours.to_string(),
                            ]
                        }),
                    ));
                }
            }
        }
    }
    out
}

/// A self-test log as a table, its entries numbered from 1 (newest first).
fn self_test_log(headers: Vec<&'static str>, entries: impl Iterator<Item = Vec<String>>) -> String {
    table(&Table {
        headers: std::iter::once("#").chain(headers).collect(),
        rows: entries
            .enumerate()
            .map(|(i, row)| std::iter::once((i + 1).to_string()).chain(row).collect())
            .collect(),
        empty: "(no self-tests logged)".into(),
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(internal_errors: Option<String>) -> StatusReport {
        StatusReport {
            version: "0.1.0",
            board: "pc-x86_64",
            kernel: "6.12.0".into(),
            hostname: "tank".into(),
            uptime_secs: 60.0,
            init_started_at: 0.5,
            prompt_at: Some(0.7),
            mem_total_kib: 1 << 20,
            mem_available_kib: 1 << 19,
            init_rss_kib: 4096,
            entropy_ready: true,
            disks: Vec::new(),
            disk_roles: Vec::new(),
            pool: None,
            links: Vec::new(),
            internal_errors,
            services: Vec::new(),
            alerts: Vec::new(),
        }
    }

    #[test]
    fn status_shows_internal_errors_only_when_a_thread_panicked() {
        assert!(!status(&report(None)).contains("internal errors"));
        let line = "internal errors: 1 (scrub panicked at 12:03 UTC: boom)";
        let shown = status(&report(Some(line.into())));
        assert!(shown.lines().any(|l| l == line), "{shown}");
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;
    use crate::system::health::{ata, Verdict};

    fn sata() -> Reading {
        let attribute = |id, raw, threshold| ata::Attribute {
            id,
            flags: 0x0033,
            current: 100,
            worst: 100,
            raw,
            threshold: Some(threshold),
        };
        Reading {
            disk: "sda".into(),
            model: "QEMU HARDDISK".into(),
            serial: "TANK-DISK0".into(),
            verdict: Verdict::Passed,
            asleep: false,
            at: 1,
            detail: Detail::Ata(ata::Smart {
                data: Some(ata::SmartData {
                    attributes: vec![
                        attribute(5, 2, 36),
                        attribute(9, 4321, 0),
                        attribute(194, 0x1F, 0),
                    ],
                    self_test_status: 0,
                    self_test_supported: true,
                    short_test_minutes: 2,
                    long_test_minutes: 54,
                    checksum_ok: true,
                }),
                self_tests: vec![ata::SelfTest {
                    kind: 1,
                    status: 0,
                    remaining_percent: 0,
                    power_on_hours: 4300,
                    failing_lba: None,
                }],
                notes: vec![],
            }),
        }
    }

    #[test]
    fn one_line_per_disk_and_no_health_is_not_passed() {
        let virtio = Reading {
            disk: "sdb".into(),
            verdict: Verdict::NotAvailable("the disk does not accept ATA pass-through".into()),
            detail: Detail::None,
            ..sata()
        };
        let text = reply(&Reply::DiskHealth(vec![sata(), virtio]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].starts_with("sda") && lines[1].contains("PASSED"),
            "{text}"
        );
        assert!(
            lines[1].contains("31 C") && lines[1].contains("4321"),
            "{text}"
        );
        assert!(
            lines[2].contains("not available: the disk does not accept"),
            "{text}"
        );
        assert!(!lines[2].contains("PASSED"), "{text}");
    }

    #[test]
    fn the_detail_lists_attributes_thresholds_and_self_tests() {
        let text = reply(&Reply::DiskHealthDetail(Box::new(sata())));
        assert!(text.contains("health: PASSED"), "{text}");
        let realloc = text.lines().find(|l| l.starts_with("5 ")).unwrap();
        assert!(
            realloc.contains("Reallocated_Sector_Ct") && realloc.contains("36"),
            "{text}"
        );
        assert!(realloc.trim_end().ends_with("ok"), "{text}");
        assert!(text.contains("Power_On_Hours"), "{text}");
        assert!(
            text.contains("short") && text.contains("completed without error"),
            "{text}"
        );
    }
}
