//! The log store's on-disk format: segment files of framed records, the reader that skips
//! what is torn or damaged, and the appending writer that rotates and bounds the store.
//!
//! ```text
//! <dir>/00000001.seg, 00000002.seg, ...   numbered in the order they were started
//!   header   8 bytes   "TANKLOG" and the format version (1)
//!   records, back to back:
//!     0   4  magic FF 'T' 'L' 'R'  (0xFF never occurs in UTF-8 text)
//!     4   2  payload length, u16 LE (14 to 14 + MAX_TEXT)
//!     6   4  CRC-32 (IEEE) of the length bytes and the payload
//!    10      payload:
//!             0  4  boot number, u32 LE
//!             4  8  wall-clock time, µs since the Unix epoch, i64 LE
//!            12  1  priority (syslog 0-7)
//!            13  1  source: 0 kernel, 1 init
//!            14     the text, UTF-8
//! ```
//!
//! Crash safety: segments are only appended to, so a power cut can leave at most a torn last
//! record, which the reader skips (and the writer cuts off before appending again). A record
//! that fails its checks anywhere else is skipped and the reader resynchronises on the next
//! record whose magic, fields and CRC are all good; a segment whose header is wrong is skipped
//! whole. Nothing the reader meets is fatal. The store is bounded: a segment is closed when the
//! next record would take it past [`Limits::segment_bytes`], and once more than
//! [`Limits::segments`] exist the oldest are deleted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A segment's first bytes: the name and the format version.
pub const HEADER: &[u8; 8] = b"TANKLOG\x01";
/// The first bytes of every record.
const MAGIC: [u8; 4] = [0xFF, b'T', b'L', b'R'];
/// Magic, length and CRC.
const FRAME: usize = 10;
/// Boot, time, priority and source.
const FIELDS: usize = 14;
/// The longest text a record holds (longer lines are cut at a character boundary).
pub const MAX_TEXT: usize = 4000;

/// How large the store may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A segment is closed before a record would take it past this size.
    pub segment_bytes: u64,
    /// How many segments are kept; the oldest go first.
    pub segments: usize,
}

/// The appliance's store: 8 segments of 1 MiB.
pub const LIMITS: Limits = Limits {
    segment_bytes: 1 << 20,
    segments: 8,
};

/// Who wrote a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Kernel,
    Init,
}

/// One line of the log, as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Microseconds since the Unix epoch, as the clock said when the line was read.
    pub wall_us: i64,
    /// Syslog priority, 0 (emergency) to 7 (debug).
    pub priority: u8,
    pub source: Source,
    pub text: String,
}

/// A line and the boot it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub boot: u32,
    pub line: Line,
}

/// Appends the framed record for `line` of boot `boot` to `out`.
pub fn encode(boot: u32, line: &Line, out: &mut Vec<u8>) {
    let mut cut = line.text.len().min(MAX_TEXT);
    while !line.text.is_char_boundary(cut) {
        cut -= 1;
    }
    let text = &line.text.as_bytes()[..cut];
    let len = (FIELDS + text.len()) as u16;
    let mut payload = Vec::with_capacity(usize::from(len));
    payload.extend_from_slice(&boot.to_le_bytes());
    payload.extend_from_slice(&line.wall_us.to_le_bytes());
    payload.push(line.priority.min(7));
    payload.push(match line.source {
        Source::Kernel => 0,
        Source::Init => 1,
    });
    payload.extend_from_slice(text);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(&payload);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Why the bytes at a position are not a record.
enum Bad {
    /// They end before the record does: a torn tail, or a damaged length.
    Short,
    /// Wrong magic, length, field or CRC.
    Damaged,
}

/// The record at `pos` and where the next one starts.
fn record_at(bytes: &[u8], pos: usize) -> Result<(Record, usize), Bad> {
    let rest = bytes.get(pos..).unwrap_or_default();
    if rest.len() < FRAME {
        return Err(if MAGIC.starts_with(&rest[..rest.len().min(4)]) {
            Bad::Short
        } else {
            Bad::Damaged
        });
    }
    if rest[..4] != MAGIC {
        return Err(Bad::Damaged);
    }
    let len = usize::from(u16::from_le_bytes([rest[4], rest[5]]));
    if !(FIELDS..=FIELDS + MAX_TEXT).contains(&len) {
        return Err(Bad::Damaged);
    }
    let Some(payload) = rest.get(FRAME..FRAME + len) else {
        return Err(Bad::Short);
    };
    let (priority, source) = (payload[12], payload[13]);
    if priority > 7 || source > 1 {
        return Err(Bad::Damaged);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&rest[4..6]);
    crc.update(payload);
    if crc.finalize() != u32::from_le_bytes([rest[6], rest[7], rest[8], rest[9]]) {
        return Err(Bad::Damaged);
    }
    let mut boot = [0u8; 4];
    boot.copy_from_slice(&payload[0..4]);
    let mut wall = [0u8; 8];
    wall.copy_from_slice(&payload[4..12]);
    let record = Record {
        boot: u32::from_le_bytes(boot),
        line: Line {
            wall_us: i64::from_le_bytes(wall),
            priority,
            source: if source == 0 {
                Source::Kernel
            } else {
                Source::Init
            },
            text: String::from_utf8_lossy(&payload[FIELDS..]).into_owned(),
        },
    };
    Ok((record, pos + FRAME + len))
}

/// The next position after `from` where a whole, good record starts.
fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while let Some(found) = bytes
        .get(pos..)?
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
    {
        let at = pos + found;
        if record_at(bytes, at).is_ok() {
            return Some(at);
        }
        pos = at + 1;
    }
    None
}

/// What one segment holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub records: Vec<Record>,
    /// Bytes skipped between good records (damage).
    pub skipped: usize,
    /// Bytes at the end that are not a whole record (a torn last write).
    pub torn: usize,
    /// Where the last good record ends (the header's end when there is none).
    pub good_end: usize,
}

/// The records of one segment's bytes; `None` when the header is not a log segment's.
pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    if bytes.get(..HEADER.len())? != HEADER {
        return None;
    }
    let mut out = Decoded {
        good_end: HEADER.len(),
        ..Decoded::default()
    };
    let mut pos = HEADER.len();
    while pos < bytes.len() {
        match record_at(bytes, pos) {
            Ok((record, next)) => {
                out.records.push(record);
                pos = next;
                out.good_end = next;
            }
            Err(bad) => match resync(bytes, pos + 1) {
                Some(next) => {
                    out.skipped += next - pos;
                    pos = next;
                }
                None => {
                    match bad {
                        Bad::Short => out.torn += bytes.len() - pos,
                        Bad::Damaged => out.skipped += bytes.len() - pos,
                    }
                    break;
                }
            },
        }
    }
    Some(out)
}

/// A store operation that failed, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("log store {}: {source}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError {
        path: path.to_path_buf(),
        source,
    }
}

/// The segment files in `dir`, oldest first, with their numbers.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .filter(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        out.push((number, entry.path()));
    }
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:08}.seg"))
}

/// Everything the store holds, oldest first.
#[derive(Debug, Default)]
pub struct Contents {
    pub records: Vec<Record>,
    /// Damaged bytes skipped, and segments skipped whole for a wrong header.
    pub skipped_bytes: usize,
    pub skipped_segments: usize,
}

/// Reads every segment in `dir`. A segment that cannot be read or is not a log segment is
/// counted and skipped.
pub fn read(dir: &Path) -> Result<Contents, StoreError> {
    let mut out = Contents::default();
    for (_, path) in segments(dir)? {
        match std::fs::read(&path).ok().as_deref().and_then(decode) {
            Some(d) => {
                out.records.extend(d.records);
                out.skipped_bytes += d.skipped;
            }
            None => out.skipped_segments += 1,
        }
    }
    Ok(out)
}

/// Appends records to the newest segment, starting a new one when it is full and deleting
/// the oldest beyond the limit.
pub struct Writer {
    dir: PathBuf,
    limits: Limits,
    file: File,
    number: u64,
    size: u64,
}

impl Writer {
    /// Opens the store in `dir` (creating it), and returns the writer and the highest boot
    /// number the store holds. The newest segment is appended to if it is a good segment with
    /// room, after cutting off a torn tail; otherwise a new segment is started.
    pub fn open(dir: &Path, limits: Limits) -> Result<(Writer, Option<u32>), StoreError> {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let existing = segments(dir)?;
        let mut last_boot = None;
        let mut newest = None;
        for (i, (number, path)) in existing.iter().enumerate() {
            let decoded = std::fs::read(path).ok().as_deref().and_then(decode);
            if let Some(d) = &decoded {
                last_boot = d.records.iter().map(|r| r.boot).chain(last_boot).max();
            }
            if i + 1 == existing.len() {
                newest = Some((*number, path.clone(), decoded));
            }
        }
        let mut writer = match newest {
            Some((number, path, Some(d))) if (d.good_end as u64) < limits.segment_bytes => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(at(&path))?;
                let size = d.good_end as u64;
                if file.metadata().map_err(at(&path))?.len() != size {
                    // A torn tail (or damage after the last good record): appending after
                    // it would leave it in the middle.
                    file.set_len(size).map_err(at(&path))?;
                    file.sync_data().map_err(at(&path))?;
                }
                Writer {
                    dir: dir.to_path_buf(),
                    limits,
                    file,
                    number,
                    size,
                }
            }
            other => {
                let next = other.map(|(n, _, _)| n + 1).unwrap_or(1);
                Writer::start(dir, limits, next)?
            }
        };
        writer.prune()?;
        Ok((writer, last_boot))
    }

    /// Starts segment `number`: the header, synced, and the directory entry, synced.
    fn start(dir: &Path, limits: Limits, number: u64) -> Result<Writer, StoreError> {
        let path = segment_path(dir, number);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(at(&path))?;
        file.write_all(HEADER).map_err(at(&path))?;
        file.sync_all().map_err(at(&path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(at(dir))?;
        Ok(Writer {
            dir: dir.to_path_buf(),
            limits,
            file,
            number,
            size: HEADER.len() as u64,
        })
    }

    /// Deletes the oldest segments beyond the limit.
    fn prune(&mut self) -> Result<(), StoreError> {
        let all = segments(&self.dir)?;
        let excess = all.len().saturating_sub(self.limits.segments.max(1));
        for (_, path) in all.iter().take(excess) {
            std::fs::remove_file(path).map_err(at(path))?;
        }
        Ok(())
    }

    /// Appends `lines` as records of boot `boot` (written, not yet synced).
    pub fn append(&mut self, boot: u32, lines: &[Line]) -> Result<(), StoreError> {
        let mut batch = Vec::new();
        let mut record = Vec::new();
        for line in lines {
            record.clear();
            encode(boot, line, &mut record);
            let len = record.len() as u64;
            let header = HEADER.len() as u64;
            if self.size + batch.len() as u64 + len > self.limits.segment_bytes
                && self.size + (batch.len() as u64) > header
            {
                self.write(&batch)?;
                batch.clear();
                self.rotate()?;
            }
            batch.extend_from_slice(&record);
        }
        self.write(&batch)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.number);
        self.file.write_all(bytes).map_err(at(&path))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Closes the full segment (synced) and starts the next one.
    fn rotate(&mut self) -> Result<(), StoreError> {
        self.sync()?;
        let next = Writer::start(&self.dir, self.limits, self.number + 1)?;
        *self = next;
        self.prune()
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let path = segment_path(&self.dir, self.number);
        self.file.sync_data().map_err(at(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> Line {
        Line {
            wall_us: 1_796_000_000_000_000 + i as i64,
            priority: 6,
            source: if i.is_multiple_of(2) {
                Source::Init
            } else {
                Source::Kernel
            },
            text: format!("tank: line {i}"),
        }
    }

    fn segment(boot: u32, lines: &[Line]) -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        for l in lines {
            encode(boot, l, &mut bytes);
        }
        bytes
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tank-logstore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn golden_record() {
        let mut out = Vec::new();
        encode(
            3,
            &Line {
                wall_us: 1,
                priority: 4,
                source: Source::Init,
                text: "hi".into(),
            },
            &mut out,
        );
        let mut payload = vec![3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 1, b'h', b'i'];
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[16, 0]);
        crc.update(&payload);
        let mut expect = vec![0xFF, b'T', b'L', b'R', 16, 0];
        expect.extend_from_slice(&crc.finalize().to_le_bytes());
        expect.append(&mut payload);
        assert_eq!(out, expect);
    }

    #[test]
    fn records_round_trip_and_long_text_is_cut_at_a_character() {
        let mut lines: Vec<Line> = (0..5).map(line).collect();
        lines[2].text = "é".repeat(MAX_TEXT);
        let d = decode(&segment(7, &lines)).unwrap();
        assert_eq!(d.skipped, 0);
        assert_eq!(d.torn, 0);
        assert_eq!(d.records.len(), 5);
        assert!(d.records.iter().all(|r| r.boot == 7));
        assert_eq!(d.records[4].line, lines[4]);
        assert_eq!(d.records[2].line.text.len(), MAX_TEXT);
        assert!(d.records[2].line.text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_torn_last_record_is_skipped_at_every_cut() {
        let lines: Vec<Line> = (0..3).map(line).collect();
        let whole = segment(1, &lines);
        let two = segment(1, &lines[..2]).len();
        for cut in two + 1..whole.len() {
            let d = decode(&whole[..cut]).unwrap();
            assert_eq!(d.records.len(), 2, "cut at {cut}");
            assert_eq!(d.good_end, two);
            assert_eq!(d.torn + d.skipped, cut - two, "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_middle_record_is_skipped_and_the_rest_read() {
        let lines: Vec<Line> = (0..5).map(line).collect();
        let mut bytes = segment(1, &lines);
        let start = segment(1, &lines[..2]).len();
        let end = segment(1, &lines[..3]).len();
        // A flipped bit in the text, then a wrong length: both skipped, the rest read.
        for (offset, byte) in [(end - 1, 0x01u8), (start + 4, 0x40)] {
            let mut damaged = bytes.clone();
            damaged[offset] ^= byte;
            let d = decode(&damaged).unwrap();
            let texts: Vec<&str> = d.records.iter().map(|r| r.line.text.as_str()).collect();
            assert_eq!(
                texts,
                [
                    "tank: line 0",
                    "tank: line 1",
                    "tank: line 3",
                    "tank: line 4"
                ]
            );
            assert_eq!(d.skipped, end - start);
            assert_eq!(d.torn, 0);
        }
        // Garbage in place of a record.
        bytes.splice(start..end, std::iter::repeat_n(0xAB, 37));
        let d = decode(&bytes).unwrap();
        assert_eq!(d.records.len(), 4);
        assert_eq!(d.skipped, 37);
    }

    #[test]
    fn a_segment_with_a_wrong_header_is_skipped_whole() {
        let mut bytes = segment(1, &[line(0)]);
        bytes[7] = 2;
        assert_eq!(decode(&bytes), None);
        assert_eq!(decode(b"TANK"), None);
        let d = decode(HEADER).unwrap();
        assert!(d.records.is_empty());
    }

    #[test]
    fn random_bytes_never_panic_the_reader() {
        let mut state = 0x5eed_1095_70e5_u64;
        for len in (0..4096).step_by(7) {
            let mut bytes = HEADER.to_vec();
            bytes.extend(tank_probe::samples::noise(&mut state, len));
            let d = decode(&bytes).unwrap();
            assert!(d.good_end <= bytes.len());
            let _ = decode(&tank_probe::samples::noise(&mut state, len));
        }
        // Good records with noise spliced in: the good ones around it are still read.
        let lines: Vec<Line> = (0..20).map(line).collect();
        let good = segment(9, &lines);
        for _ in 0..200 {
            let mut bytes = good.clone();
            let noise = tank_probe::samples::noise(&mut state, 64);
            let at = HEADER.len() + (noise[0] as usize * 7) % (good.len() - HEADER.len());
            let n = 1 + noise[1] as usize % 60;
            bytes.splice(at..at, noise[2..2 + n].iter().copied());
            let d = decode(&bytes).unwrap();
            assert!(d.records.len() >= 18, "{} records", d.records.len());
            assert!(d
                .records
                .iter()
                .all(|r| r.boot == 9 && lines.contains(&r.line)));
        }
    }

    #[test]
    fn the_writer_rotates_bounds_the_store_and_reopens_after_a_torn_tail() {
        let dir = scratch("rotate");
        let limits = Limits {
            segment_bytes: 600,
            segments: 3,
        };
        let (mut w, last) = Writer::open(&dir, limits).unwrap();
        assert_eq!(last, None);
        let lines: Vec<Line> = (0..100).map(line).collect();
        w.append(1, &lines).unwrap();
        w.sync().unwrap();
        let segs = segments(&dir).unwrap();
        assert_eq!(segs.len(), 3, "{segs:?}");
        for (_, path) in &segs {
            assert!(std::fs::metadata(path).unwrap().len() <= 600);
        }
        // The newest lines are kept, in order, the oldest deleted.
        let contents = read(&dir).unwrap();
        let kept: Vec<&Line> = contents.records.iter().map(|r| &r.line).collect();
        assert!(kept.len() > 10 && kept.len() < 100);
        assert_eq!(kept.last(), Some(&&lines[99]));
        let first = lines.iter().position(|l| l == kept[0]).unwrap();
        assert!(kept.iter().zip(&lines[first..]).all(|(a, b)| *a == b));
        drop(w);

        // A torn tail: the next open cuts it off and appends after the last good record.
        let newest = segs.last().unwrap().1.clone();
        let mut bytes = std::fs::read(&newest).unwrap();
        let mut partial = Vec::new();
        encode(1, &line(500), &mut partial);
        bytes.extend_from_slice(&partial[..partial.len() / 2]);
        std::fs::write(&newest, &bytes).unwrap();
        let (mut w, last) = Writer::open(&dir, limits).unwrap();
        assert_eq!(last, Some(1));
        w.append(2, &[line(1000)]).unwrap();
        w.sync().unwrap();
        let contents = read(&dir).unwrap();
        assert_eq!(contents.skipped_bytes, 0);
        let tail = contents.records.last().unwrap();
        assert_eq!((tail.boot, &tail.line), (2, &line(1000)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_segment_header_starts_a_new_segment() {
        let dir = scratch("header");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000004.seg"), b"TANK").unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a segment").unwrap();
        let (mut w, last) = Writer::open(&dir, LIMITS).unwrap();
        assert_eq!(last, None);
        w.append(1, &[line(0)]).unwrap();
        let names: Vec<u64> = segments(&dir).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(names, [4, 5]);
        let contents = read(&dir).unwrap();
        assert_eq!(contents.skipped_segments, 1);
        assert_eq!(contents.records.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
