//! The log that lasts: every kernel and init line of this boot, with wall-clock times, in
//! memory and, once a pool is mounted, in a bounded rotating store on the pool (the format is
//! in [`segment`]), so `log boot -1` shows the previous boot.
//!
//! One follower thread (`log`, supervised) reads `/dev/kmsg` from its first record: the
//! kernel's ring keeps the lines from before the pool mounted, and [`attach`] writes them all
//! once it does. Each line gets its wall-clock time when it is read (the kernel's monotonic
//! timestamp plus `CLOCK_REALTIME - CLOCK_MONOTONIC` at that moment). Records the ring
//! overwrote before they were read are counted in a line of their own. Lines are appended to
//! the store as they come and synced at most a second later, and at shutdown ([`close`],
//! before the pool is unmounted).
//!
//! A store that cannot be written (pool full, read-only) costs a warning, not a line: the
//! lines stay in memory (the newest [`MEMORY_LINES`]) and are written when the store opens
//! again (tried every minute). The console's readers never wait for the disk to take this
//! boot's lines: they hold only the memory lock, and the drain they do first only reads
//! `/dev/kmsg` without blocking.
//!
//! Times are shown by [`format_time`], in the time zone in force.

mod kmsg;
pub mod segment;

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use segment::{Line, Writer, LIMITS};

/// How many of this boot's lines memory keeps.
pub const MEMORY_LINES: usize = 20_000;
/// Appended lines are synced this long after the last sync at the latest.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How often a store that could not be written is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(60);
/// Records read in one go before the lock is let go.
const DRAIN_MAX: usize = 1000;
/// The store's directory inside the pool's metadata subvolume.
pub const DIR: &str = "log";

/// This boot's lines.
struct Memory {
    kmsg: Option<File>,
    /// Why `/dev/kmsg` could not be opened.
    kmsg_error: Option<String>,
    last_seq: Option<u64>,
    lines: VecDeque<Line>,
    /// Lines dropped from the front to stay within [`MEMORY_LINES`].
    dropped: u64,
}

/// The store on the pool.
struct Persist {
    /// The store's directory while a pool is mounted.
    dir: Option<PathBuf>,
    writer: Option<Writer>,
    /// This boot's number in the store, once it had one.
    boot: Option<u32>,
    /// How many of this boot's lines (counted from the first) are in the store.
    persisted: u64,
    unsynced: bool,
    last_sync: Option<Instant>,
    /// When writing failed, until it works again.
    failed_at: Option<Instant>,
}

static MEMORY: Mutex<Memory> = Mutex::new(Memory {
    kmsg: None,
    kmsg_error: None,
    last_seq: None,
    lines: VecDeque::new(),
    dropped: 0,
});

/// Taken before [`MEMORY`] when both are.
static PERSIST: Mutex<Persist> = Mutex::new(Persist {
    dir: None,
    writer: None,
    boot: None,
    persisted: 0,
    unsynced: false,
    last_sync: None,
    failed_at: None,
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Memory {
    fn total(&self) -> u64 {
        self.dropped + self.lines.len() as u64
    }

    fn push(&mut self, line: Line) {
        self.lines.push_back(line);
        while self.lines.len() > MEMORY_LINES {
            self.lines.pop_front();
            self.dropped += 1;
        }
    }

    /// Takes in what `/dev/kmsg` holds beyond what was read, without waiting.
    fn drain(&mut self) {
        let Some(kmsg) = self.kmsg.as_mut() else {
            return;
        };
        let mut buf = [0u8; 8192];
        let mut read = Vec::new();
        for _ in 0..DRAIN_MAX {
            match std::io::Read::read(kmsg, &mut buf) {
                Ok(0) => break,
                Ok(n) => read.extend(kmsg::parse(&buf[..n])),
                // Records were overwritten before they were read: the next read gives the
                // oldest one left, and the gap in sequence numbers says how many were lost.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if read.is_empty() {
            return;
        }
        let offset = kmsg::wall_offset_us();
        for record in read {
            let lost = match self.last_seq {
                Some(last) => record.seq.saturating_sub(last + 1),
                None => record.seq,
            };
            if lost > 0 {
                self.push(Line {
                    wall_us: i64::try_from(record.usec)
                        .unwrap_or(0)
                        .saturating_add(offset),
                    priority: 4,
                    source: segment::Source::Init,
                    text: format!(
                        "tank: log: {lost} kernel log record(s) were overwritten before they could be read"
                    ),
                });
            }
            self.last_seq = Some(record.seq);
            self.push(record.line(offset));
        }
    }

    /// The lines from line `index` of this boot on, how many before them are gone from memory,
    /// and the index after the last.
    fn since(&self, index: u64) -> (Vec<Line>, u64, u64) {
        let skip = index.saturating_sub(self.dropped);
        let lines = self
            .lines
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        (lines, self.dropped.saturating_sub(index), self.total())
    }
}

impl Persist {
    /// When the follower must wake without a new line: to sync, or to try the store again.
    fn next_wake(&self, now: Instant) -> Option<Duration> {
        if self.unsynced {
            let since = self.last_sync.map_or(SYNC_EVERY, |t| now.duration_since(t));
            return Some(SYNC_EVERY.saturating_sub(since));
        }
        match (self.writer.is_none(), &self.dir, self.failed_at) {
            (true, Some(_), Some(t)) => Some(RETRY_EVERY.saturating_sub(now.duration_since(t))),
            _ => None,
        }
    }

    fn fail(&mut self, error: &segment::StoreError, now: Instant) {
        if self.failed_at.is_none() {
            log::warn!(
                "{error}; the log is kept in memory only until the store can be written (tried every minute)"
            );
        }
        self.writer = None;
        self.unsynced = false;
        self.failed_at = Some(now);
    }

    /// Opens the store in `dir` and gives this boot its number there.
    fn open(&mut self, now: Instant) {
        let Some(dir) = self.dir.clone() else {
            return;
        };
        match Writer::open(&dir, LIMITS) {
            Ok((writer, last)) => {
                let last = last.unwrap_or(0);
                let boot = match self.boot {
                    // Still this boot's number (the same store opened again).
                    Some(b) if b >= last => b,
                    _ => last.saturating_add(1),
                };
                if self.failed_at.take().is_some() {
                    log::info!("log: writing to {} again", dir.display());
                }
                self.boot = Some(boot);
                self.writer = Some(writer);
                self.last_sync = Some(now);
            }
            Err(e) => self.fail(&e, now),
        }
    }

    /// Whether there is a store to write to, opening it again when a retry is due.
    fn ready(&mut self, now: Instant) -> bool {
        if self.writer.is_none()
            && self.dir.is_some()
            && self
                .failed_at
                .is_none_or(|t| now.duration_since(t) >= RETRY_EVERY)
        {
            self.open(now);
        }
        self.writer.is_some()
    }

    /// Writes `lines` (this boot's from `self.persisted`, up to `upto`) and syncs when due.
    fn write(&mut self, lines: &[Line], lost: u64, upto: u64, force_sync: bool, now: Instant) {
        let (Some(writer), Some(boot)) = (self.writer.as_mut(), self.boot) else {
            return;
        };
        if let Err(e) = writer.append(boot, lines) {
            self.fail(&e, now);
            return;
        }
        if lost > 0 {
            log::warn!(
                "log: {lost} line(s) of this boot left memory before they could be written to the pool"
            );
        }
        if !lines.is_empty() {
            self.unsynced = true;
        }
        self.persisted = upto;
        let due = self
            .last_sync
            .is_none_or(|t| now.duration_since(t) >= SYNC_EVERY);
        if self.unsynced && (force_sync || due) {
            let synced = writer.sync();
            self.last_sync = Some(now);
            match synced {
                Ok(()) => self.unsynced = false,
                Err(e) => self.fail(&e, now),
            }
        }
    }
}

/// Reads what is new and writes it to the store (syncing when due, or now with `force_sync`).
fn flush(force_sync: bool) {
    let mut persist = lock(&PERSIST);
    let now = Instant::now();
    let ready = persist.ready(now);
    let mut memory = lock(&MEMORY);
    memory.drain();
    if !ready {
        return;
    }
    let (lines, lost, upto) = memory.since(persist.persisted);
    drop(memory);
    persist.write(&lines, lost, upto, force_sync, now);
}

/// Opens `/dev/kmsg` from its first record and starts the follower. Called at boot, once the
/// logger writes to `/dev/kmsg`.
pub fn start() {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")
        .and_then(|f| f.try_clone().map(|poll| (f, poll)));
    let (kmsg, poll_fd) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            log::error!("cannot read /dev/kmsg ({e}): the log is neither shown nor kept");
            lock(&MEMORY).kmsg_error = Some(e.to_string());
            return;
        }
    };
    lock(&MEMORY).kmsg = Some(kmsg);
    let spawned =
        crate::supervise::spawn_supervised("log", crate::supervise::Policy::RESTART, move || {
            follow(&poll_fd)
        });
    if let Err(e) = spawned {
        log::error!("cannot start the log follower: {e}; 'log' still reads the kernel log, but nothing is kept on the pool");
    }
}

/// Waits for new records (or a sync or retry that is due) and flushes, forever.
fn follow(kmsg: &File) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    loop {
        let wake = lock(&PERSIST).next_wake(Instant::now());
        let timeout = wake.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let mut fds = [PollFd::new(kmsg, PollFlags::IN)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                log::error!("log: waiting on /dev/kmsg: {e}");
                std::thread::sleep(SYNC_EVERY);
            }
        }
        flush(false);
    }
}

/// Keeps the log in `dir` (the pool's, just mounted) from now on, this boot's earlier lines
/// first.
pub fn attach(dir: PathBuf) {
    {
        let mut persist = lock(&PERSIST);
        persist.dir = Some(dir.clone());
        persist.writer = None;
        persist.failed_at = None;
        persist.open(Instant::now());
        if let Some(boot) = persist.boot.filter(|_| persist.writer.is_some()) {
            log::info!("log: kept in {} (boot {boot})", dir.display());
        }
    }
    flush(true);
}

/// Writes and syncs everything read so far and closes the store, before the pool is
/// unmounted. Later lines stay in memory.
pub fn close() {
    flush(true);
    let mut persist = lock(&PERSIST);
    persist.writer = None;
    persist.dir = None;
}

/// Keeps the log in the pool whose metadata subvolume is `meta` (in its `log/` directory),
/// when there is one.
pub fn attach_to(meta: &Path) {
    if meta.is_dir() {
        attach(meta.join(DIR));
    } else {
        log::warn!(
            "log: {} is not there: the log is kept in memory only",
            meta.display()
        );
    }
}

/// `2026-12-04 20:31:02`: how the console shows a line's time, on the wall clock of the time
/// zone in force (`time` names it).
pub fn format_time(wall_us: i64) -> String {
    format_time_in(&crate::system::clock::zone(), wall_us)
}

fn format_time_in(zone: &jiff::tz::TimeZone, wall_us: i64) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(wall_us.div_euclid(1_000_000)) else {
        return format!("@{}", wall_us.div_euclid(1_000_000));
    };
    let dt = zone.to_datetime(ts);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn format_line(line: &Line) -> String {
    format!("{} {}", format_time(line.wall_us), line.text)
}

fn last<'a>(lines: impl ExactSizeIterator<Item = &'a Line>, n: usize) -> Vec<String> {
    let skip = lines.len().saturating_sub(n);
    lines.skip(skip).map(format_line).collect()
}

/// The last `n` lines of this boot.
pub fn this_boot(n: usize) -> Vec<String> {
    let mut memory = lock(&MEMORY);
    if let Some(e) = &memory.kmsg_error {
        return vec![format!("cannot read /dev/kmsg: {e}")];
    }
    memory.drain();
    last(memory.lines.iter(), n)
}

/// The store's directory and this boot's number in it, or why no earlier boot is kept.
fn store() -> Result<(PathBuf, Option<u32>), String> {
    let persist = lock(&PERSIST);
    match &persist.dir {
        Some(dir) => Ok((dir.clone(), persist.boot)),
        None => Err(
            "no earlier boot is kept: no pool is mounted, and the log is kept on the pool \
             ('log' shows this boot, from memory)"
                .into(),
        ),
    }
}

/// The earlier boots in `records`, oldest first: the boot numbers below `current`.
fn earlier_boots(records: &[segment::Record], current: Option<u32>) -> Vec<u32> {
    let mut boots: Vec<u32> = records
        .iter()
        .map(|r| r.boot)
        .filter(|b| current.is_none_or(|c| *b < c))
        .collect();
    boots.sort_unstable();
    boots.dedup();
    boots
}

/// The lines of boot `-back` (0 is this one), the last `n` of them when given.
pub fn boot(back: u32, n: Option<usize>) -> Result<Vec<String>, String> {
    if back == 0 {
        return Ok(this_boot(n.unwrap_or(usize::MAX)));
    }
    let (dir, current) = store()?;
    let contents = segment::read(&dir).map_err(|e| e.to_string())?;
    let boots = earlier_boots(&contents.records, current);
    let index = boots.len().checked_sub(back as usize);
    let Some(wanted) = index.and_then(|i| boots.get(i)).copied() else {
        return Err(match boots.len() {
            0 => "no earlier boot is kept yet: the log store on the pool holds only this boot"
                .to_string(),
            kept => format!(
                "boot -{back} is not kept: the log store holds {kept} earlier boot(s), -1 to -{kept} ('log boots' lists them)"
            ),
        });
    };
    let lines: Vec<&Line> = contents
        .records
        .iter()
        .filter(|r| r.boot == wanted)
        .map(|r| &r.line)
        .collect();
    Ok(last(lines.into_iter(), n.unwrap_or(usize::MAX)))
}

/// One row of `log boots`.
fn boot_row(back: &str, lines: &[&Line]) -> String {
    let time = |l: Option<&&Line>| l.map_or_else(|| "-".to_string(), |l| format_time(l.wall_us));
    format!(
        "{back:>5}  {:19}  {:19}  {:>6}",
        time(lines.first()),
        time(lines.last()),
        lines.len()
    )
}

/// The boots kept: number (0 is this one, -1 the one before), first and last time, lines.
pub fn boots() -> Vec<String> {
    let mut out = vec![format!(
        "{:>5}  {:19}  {:19}  {:>6}",
        "BOOT", "FIRST", "LAST", "LINES"
    )];
    let mut notes = Vec::new();
    match store() {
        Ok((dir, current)) => match segment::read(&dir) {
            Ok(contents) => {
                let boots = earlier_boots(&contents.records, current);
                for (i, boot) in boots.iter().enumerate() {
                    let lines: Vec<&Line> = contents
                        .records
                        .iter()
                        .filter(|r| r.boot == *boot)
                        .map(|r| &r.line)
                        .collect();
                    out.push(boot_row(&format!("-{}", boots.len() - i), &lines));
                }
                if contents.skipped_bytes > 0 || contents.skipped_segments > 0 {
                    notes.push(format!(
                        "damaged parts of the store were skipped: {} byte(s), {} segment(s)",
                        contents.skipped_bytes, contents.skipped_segments
                    ));
                }
            }
            Err(e) => notes.push(e.to_string()),
        },
        Err(_) => notes.push(
            "earlier boots are not kept: no pool is mounted, and the log is kept on the pool"
                .into(),
        ),
    }
    let memory = lock(&MEMORY);
    let lines: Vec<&Line> = memory.lines.iter().collect();
    let mut row = boot_row("0", &lines);
    if memory.dropped > 0 {
        row.push_str(&format!(" (and {} older)", memory.dropped));
    }
    out.push(row);
    out.extend(notes);
    out
}

#[cfg(test)]
mod tests {
    use super::segment::{Record, Source};
    use super::*;

    fn line(text: &str, wall_us: i64) -> Line {
        Line {
            wall_us,
            priority: 6,
            source: Source::Init,
            text: text.into(),
        }
    }

    #[test]
    fn times_are_utc_to_the_second() {
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(format_time_in(&utc, 0), "1970-01-01 00:00:00");
        // 2026-12-04 20:31:02.999999 UTC.
        assert_eq!(
            format_time_in(&utc, 1_796_416_262_999_999),
            "2026-12-04 20:31:02"
        );
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            format_time_in(&berlin, 1_796_416_262_999_999),
            "2026-12-04 21:31:02"
        );
        assert_eq!(format_time(-1), "1969-12-31 23:59:59");
        assert_eq!(
            format_line(&line("tank: mark: x", 1_796_416_262_000_000)),
            "2026-12-04 20:31:02 tank: mark: x"
        );
    }

    #[test]
    fn memory_is_bounded_and_tells_what_left_before_it_was_written() {
        let mut m = Memory {
            kmsg: None,
            kmsg_error: None,
            last_seq: None,
            lines: VecDeque::new(),
            dropped: 0,
        };
        for i in 0..MEMORY_LINES + 5 {
            m.push(line(&format!("{i}"), i as i64));
        }
        assert_eq!(m.lines.len(), MEMORY_LINES);
        assert_eq!(m.total(), (MEMORY_LINES + 5) as u64);
        let (lines, lost, upto) = m.since(2);
        assert_eq!((lost, upto), (3, (MEMORY_LINES + 5) as u64));
        assert_eq!(lines.first().map(|l| l.text.as_str()), Some("5"));
        let (lines, lost, _) = m.since(upto - 1);
        assert_eq!((lines.len(), lost), (1, 0));
    }

    #[test]
    fn earlier_boots_are_those_below_this_one() {
        let r = |boot| Record {
            boot,
            line: line("x", 0),
        };
        let records = [r(2), r(2), r(3), r(5), r(4), r(6)];
        assert_eq!(earlier_boots(&records, Some(6)), [2, 3, 4, 5]);
        assert_eq!(earlier_boots(&records, None), [2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_store_that_cannot_be_written_keeps_the_lines_for_later() {
        let dir = std::env::temp_dir().join(format!("tank-logstore-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A file where the directory should be: the store cannot open.
        std::fs::write(&dir, b"in the way").unwrap();
        let mut p = Persist {
            dir: Some(dir.clone()),
            writer: None,
            boot: None,
            persisted: 0,
            unsynced: false,
            last_sync: None,
            failed_at: None,
        };
        let t0 = Instant::now();
        let lines = [line("a", 1), line("b", 2)];
        assert!(!p.ready(t0));
        assert!(p.writer.is_none() && p.failed_at.is_some());
        assert_eq!(p.persisted, 0, "nothing was written");
        assert_eq!(p.next_wake(t0), Some(RETRY_EVERY));
        // Not retried before the minute is up; then it works and writes the backlog.
        std::fs::remove_file(&dir).unwrap();
        assert!(!p.ready(t0 + Duration::from_secs(1)));
        assert!(p.ready(t0 + RETRY_EVERY));
        p.write(&lines, 0, 2, true, t0 + RETRY_EVERY);
        assert_eq!((p.boot, p.persisted, p.unsynced), (Some(1), 2, false));
        let kept = segment::read(&dir).unwrap().records;
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].line, lines[1]);
        // The same store opened again this boot keeps the boot's number; a new boot gets the next.
        p.open(t0);
        assert_eq!(p.boot, Some(1));
        p.boot = None;
        p.open(t0);
        assert_eq!(p.boot, Some(2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
