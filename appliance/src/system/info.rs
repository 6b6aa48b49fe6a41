//! Uptime, memory, kernel release and entropy readiness, read from `/proc`.

/// Seconds since the kernel started (`CLOCK_BOOTTIME`, the clock of `/proc/uptime`; readable
/// before `/proc` is mounted).
pub fn uptime_secs() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// `MemTotal` and `MemAvailable` in KiB.
pub fn memory_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    (
        field_kib(&text, "MemTotal:"),
        field_kib(&text, "MemAvailable:"),
    )
}

/// The init's resident set size in KiB.
pub fn own_rss_kib() -> u64 {
    field_kib(
        &std::fs::read_to_string("/proc/self/status").unwrap_or_default(),
        "VmRSS:",
    )
}

fn field_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The running kernel's release, e.g. `6.12.118+deb13-amd64`.
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// Whether the kernel's random pool is initialised (a non-blocking `getrandom` succeeds).
pub fn entropy_ready() -> bool {
    let mut buf = [0u8; 1];
    rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::NONBLOCK).is_ok()
}

/// `93784` → `1d 2h 3m 4s`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields() {
        let text = "MemTotal:         230000 kB\nMemFree: 1 kB\nMemAvailable:     190000 kB\n";
        assert_eq!(field_kib(text, "MemTotal:"), 230000);
        assert_eq!(field_kib(text, "MemAvailable:"), 190000);
        assert_eq!(field_kib(text, "Missing:"), 0);
    }

    #[test]
    fn timestamps() {
        let utc = |secs| super::super::clock::format_in(&jiff::tz::TimeZone::UTC, secs, false);
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_795_766_383), "2026-11-27 07:59 UTC");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(4), "4s");
        assert_eq!(human_duration(64), "1m 4s");
        assert_eq!(human_duration(3600), "1h 0m 0s");
        assert_eq!(human_duration(93784), "1d 2h 3m 4s");
    }
}
