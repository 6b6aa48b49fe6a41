//! Logging through `/dev/kmsg`, so the init's messages interleave with the kernel's.
//!
//! Errors also reach the console through the kernel's console log level (the board command
//! line sets `loglevel=4`: errors only); the rest stays in the kernel log, where the console's
//! `log` command shows it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

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

/// Routes the `log` facade to `/dev/kmsg` (or stderr while it cannot be opened).
pub fn init() {
    let file = OpenOptions::new().write(true).open("/dev/kmsg").ok();
    match LOGGER.kmsg.lock() {
        Ok(mut g) => *g = file,
        Err(poisoned) => *poisoned.into_inner() = file,
    }
    // A second call (after /dev appears) only swaps the file.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
