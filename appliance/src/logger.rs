//! Logging through `/dev/kmsg`, so the init's messages interleave with the kernel's.
//!
//! Errors also reach the console through the kernel's console log level (the board command
//! line sets `loglevel=4`: errors only); the rest stays in the kernel log, where the console's
//! `log` command shows it.
//!
//! The kernel rate-limits writes to `/dev/kmsg` (10 records per 5 s) unless `printk.devkmsg=on`
//! is on the command line or `/proc/sys/kernel/printk_devkmsg` says `on`: the boards' command
//! lines say so and [`init`] sets the sysctl too, so no line of the init is dropped. What the
//! init does limit is the lines that network peers can make it write (an unknown user's login,
//! a malformed packet): [`peer_log!`] lets a burst of each kind through, then counts the rest
//! and reports them as one "N similar messages suppressed" line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct KmsgLogger {
    kmsg: Mutex<Option<File>>,
}

static LOGGER: KmsgLogger = KmsgLogger {
    kmsg: Mutex::new(None),
};

impl log::Log for KmsgLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prio = match record.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        // /dev/kmsg takes one record per write; keep it below its 1 KiB line limit.
        let mut line = format!("<{prio}>tank: {}", record.args());
        if line.len() > 1000 {
            let mut cut = 1000;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        line.push('\n');
        let mut guard = match self.kmsg.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match guard.as_mut() {
            Some(kmsg) => {
                let _ = kmsg.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// Routes the `log` facade to `/dev/kmsg` (or stderr while it cannot be opened), and exempts
/// the init's records from the kernel's rate limit on that file.
pub fn init() {
    let file = OpenOptions::new().write(true).open("/dev/kmsg").ok();
    // Refused (EINVAL) when the command line already set `printk.devkmsg`: then it says `on`.
    let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n");
    match LOGGER.kmsg.lock() {
        Ok(mut g) => *g = file,
        Err(poisoned) => *poisoned.into_inner() = file,
    }
    // A second call (after /dev appears) only swaps the file.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// How many messages of one kind pass in a window before the rest are counted.
const PEER_BURST: u32 = 10;
/// The window of [`PEER_BURST`].
const PEER_WINDOW: Duration = Duration::from_secs(5);

/// Rate limits for messages that network peers can trigger, one per kind (a static key).
pub struct PeerLimiter {
    kinds: Mutex<Vec<Window>>,
}

struct Window {
    key: &'static str,
    started: Instant,
    passed: u32,
    suppressed: u64,
}

/// The one limiter [`peer_log!`] uses.
pub static PEER: PeerLimiter = PeerLimiter {
    kinds: Mutex::new(Vec::new()),
};

impl PeerLimiter {
    /// Whether a message of kind `key` may be logged now. When a window closes with messages
    /// suppressed, returns their count too, to be reported before this one.
    pub fn admit(&self, key: &'static str, now: Instant) -> (bool, Option<u64>) {
        let mut kinds = match self.kinds.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let w = match kinds.iter().position(|w| w.key == key) {
            Some(i) => &mut kinds[i],
            None => {
                kinds.push(Window {
                    key,
                    started: now,
                    passed: 0,
                    suppressed: 0,
                });
                let last = kinds.len() - 1;
                &mut kinds[last]
            }
        };
        let mut report = None;
        if now.duration_since(w.started) >= PEER_WINDOW {
            if w.suppressed > 0 {
                report = Some(w.suppressed);
            }
            w.started = now;
            w.passed = 0;
            w.suppressed = 0;
        }
        if w.passed < PEER_BURST {
            w.passed += 1;
            (true, report)
        } else {
            w.suppressed += 1;
            (false, report)
        }
    }

    /// Reports and resets the counts of windows that closed with messages suppressed and no
    /// message since (the minute tick calls this, so a burst's count is never lost).
    pub fn flush(&self, now: Instant) -> Vec<(&'static str, u64)> {
        let mut kinds = match self.kinds.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = Vec::new();
        for w in kinds.iter_mut() {
            if w.suppressed > 0 && now.duration_since(w.started) >= PEER_WINDOW {
                out.push((w.key, w.suppressed));
                w.suppressed = 0;
                w.passed = 0;
                w.started = now;
            }
        }
        out
    }
}

/// Logs the counts [`PeerLimiter::flush`] returns.
pub fn flush_suppressed() {
    for (key, n) in PEER.flush(Instant::now()) {
        log::warn!("{n} similar messages suppressed ({key})");
    }
}

/// `log::log!` for a message a network peer can trigger, limited per `key` (a `&'static str`
/// naming the kind): the first 10 in 5 s are logged, the rest counted and reported as one line.
#[macro_export]
macro_rules! peer_log {
    ($level:expr, $key:expr, $($arg:tt)+) => {{
        let (pass, report) = $crate::logger::PEER.admit($key, std::time::Instant::now());
        if let Some(n) = report {
            log::warn!("{} similar messages suppressed ({})", n, $key);
        }
        if pass {
            log::log!($level, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rest_is_counted_and_reported() {
        let limiter = PeerLimiter {
            kinds: Mutex::new(Vec::new()),
        };
        let t0 = Instant::now();
        let passed = (0..200)
            .filter(|_| limiter.admit("smb unknown user", t0).0)
            .count();
        assert_eq!(passed, PEER_BURST as usize);
        // Another kind has its own window.
        assert_eq!(limiter.admit("rpc malformed", t0), (true, None));
        // The next window reports what the last one suppressed, once.
        let t1 = t0 + PEER_WINDOW;
        assert_eq!(limiter.admit("smb unknown user", t1), (true, Some(190)));
        assert_eq!(limiter.admit("smb unknown user", t1), (true, None));
    }

    #[test]
    fn flush_reports_a_quiet_kind_once() {
        let limiter = PeerLimiter {
            kinds: Mutex::new(Vec::new()),
        };
        let t0 = Instant::now();
        for _ in 0..15 {
            limiter.admit("nfs upcall", t0);
        }
        assert!(limiter.flush(t0).is_empty(), "the window is still open");
        let later = t0 + PEER_WINDOW * 2;
        assert_eq!(limiter.flush(later), vec![("nfs upcall", 5)]);
        assert!(limiter.flush(later + PEER_WINDOW).is_empty());
    }
}
