//! The serial line: opening it raw, writing whole lines from many threads, the `log` facade
//! as `# ` lines, and forwarding the kernel's warnings.
//!
//! Every line the agent prints goes through one [`Output`] under a lock and ends with `\r\n`,
//! so a reply is never cut by a log line. The kernel console is kept quiet (`loglevel=1` on
//! the board's command line) because the kernel writes to the UART directly and would split
//! a reply in the middle; instead a thread reads `/dev/kmsg` and prints warnings and worse as
//! `# kernel: ...` lines. What does not live here: the protocol ([`crate::protocol`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, OnceLock};

/// A shared line writer.
#[derive(Clone)]
pub struct Output(Arc<Mutex<Box<dyn Write + Send>>>);

impl Output {
    pub fn new(w: impl Write + Send + 'static) -> Self {
        Output(Arc::new(Mutex::new(Box::new(w))))
    }

    /// Writes one line (a `\r\n` is added).
    pub fn line(&self, text: &str) {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = w.write_all(text.as_bytes());
        let _ = w.write_all(b"\r\n");
        let _ = w.flush();
    }
}

/// Opens `/dev/NAME` for reading and writing and puts it in raw mode (no echo, no line
/// editing, no newline translation), keeping its speed.
pub fn open_serial(name: &str) -> io::Result<File> {
    let path = format!("/dev/{name}");
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let mut t = rustix::termios::tcgetattr(&file)?;
    t.make_raw();
    rustix::termios::tcsetattr(&file, rustix::termios::OptionalActions::Now, &t)?;
    Ok(file)
}

/// Reads lines ending in `\n` or `\r` (either), skipping empty ones; `None` at EOF or on a
/// read error. A line longer than `limit` comes back cut to `limit` bytes, flagged `true`.
pub struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    line: Vec<u8>,
    cut: bool,
    limit: usize,
}

impl<R: Read> Lines<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        Lines {
            inner,
            buf: vec![0; 4096],
            pos: 0,
            filled: 0,
            line: Vec::new(),
            cut: false,
            limit,
        }
    }

    pub fn next_line(&mut self) -> Option<(Vec<u8>, bool)> {
        loop {
            while self.pos < self.filled {
                let b = self.buf[self.pos];
                self.pos += 1;
                if b == b'\n' || b == b'\r' {
                    if self.line.is_empty() && !self.cut {
                        continue;
                    }
                    let cut = std::mem::take(&mut self.cut);
                    return Some((std::mem::take(&mut self.line), cut));
                }
                if self.line.len() < self.limit {
                    self.line.push(b);
                } else {
                    self.cut = true;
                }
            }
            match self.inner.read(&mut self.buf) {
                Ok(0) => return None,
                Ok(n) => {
                    self.pos = 0;
                    self.filled = n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
}

static LOG_OUTPUT: OnceLock<Output> = OnceLock::new();

struct LineLogger;

impl log::Log for LineLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some(out) = LOG_OUTPUT.get() {
            let text = crate::protocol::sanitize(&record.args().to_string());
            out.line(&format!(
                "# {}: {text}",
                record.level().as_str().to_lowercase()
            ));
        }
    }

    fn flush(&self) {}
}

static LOGGER: LineLogger = LineLogger;

/// Sends `log` records to `out` as `# level: message` lines.
pub fn init_logging(out: Output) {
    let _ = LOG_OUTPUT.set(out);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// One `/dev/kmsg` record as `(level, text)`: `"4,123,456789,-;text"` → `(4, "text")`.
pub fn parse_kmsg(record: &[u8]) -> Option<(u8, String)> {
    let text = String::from_utf8_lossy(record);
    let (head, body) = text.split_once(';')?;
    let prio: u32 = head.split(',').next()?.parse().ok()?;
    // Continuation lines (" KEY=value") follow the first line of the message.
    let first = body.lines().next().unwrap_or("");
    Some(((prio & 7) as u8, first.to_string()))
}

/// Forwards kernel messages of level `max_level` or more urgent as `# kernel: ...` lines, from
/// the start of the kernel's buffer. Runs until `/dev/kmsg` fails.
pub fn forward_kmsg(out: Output, max_level: u8) {
    let Ok(mut kmsg) = File::open("/dev/kmsg") else {
        log::warn!("cannot open /dev/kmsg: kernel warnings will not be shown");
        return;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Some((level, text)) = parse_kmsg(&buf[..n]) {
                    if level <= max_level {
                        out.line(&format!(
                            "# kernel: <{level}> {}",
                            crate::protocol::sanitize(&text)
                        ));
                    }
                }
            }
            // EPIPE: records were overwritten before we read them; go on with the next.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_either_terminator() {
        let input: &[u8] = b"ping\r\n\r\n@1 stat /x\rlast\n";
        let mut l = Lines::new(input, 100);
        assert_eq!(l.next_line(), Some((b"ping".to_vec(), false)));
        assert_eq!(l.next_line(), Some((b"@1 stat /x".to_vec(), false)));
        assert_eq!(l.next_line(), Some((b"last".to_vec(), false)));
        assert_eq!(l.next_line(), None);
    }

    #[test]
    fn long_lines_are_cut_and_flagged() {
        let mut input = vec![b'x'; 20_000];
        input.extend_from_slice(b"\nping\n");
        let mut l = Lines::new(&input[..], 1000);
        let (line, cut) = l.next_line().unwrap();
        assert!(cut);
        assert!(line.len() <= 1000);
        assert_eq!(l.next_line(), Some((b"ping".to_vec(), false)));
    }

    #[test]
    fn kmsg_records() {
        assert_eq!(
            parse_kmsg(b"3,812,7066107,-;CIFS: VFS: cifs_mount failed w/return code = -13\n"),
            Some((3, "CIFS: VFS: cifs_mount failed w/return code = -13".into()))
        );
        assert_eq!(
            parse_kmsg(b"12,5,1,-;user message\n SUBSYSTEM=x\n"),
            Some((4, "user message".into()))
        );
        assert_eq!(parse_kmsg(b"garbage"), None);
    }
}
