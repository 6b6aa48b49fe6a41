//! The records of `/dev/kmsg`: `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;TEXT` followed by
//! dictionary lines (` KEY=VALUE`), one record per `read`.
//!
//! The priority field holds the facility too (`facility << 3 | level`): the kernel's own lines
//! have facility 0; a line written to `/dev/kmsg` from user space (the init's) has at least 1,
//! as the kernel makes facility 0 into LOG_USER there. The time is the kernel's monotonic
//! clock since boot.

use super::segment::{Line, Source};

/// One parsed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub priority: u8,
    pub source: Source,
    pub seq: u64,
    /// Microseconds since boot.
    pub usec: u64,
    pub text: String,
}

impl Record {
    /// The line as kept, with the wall-clock time `offset_us` after the monotonic one.
    pub fn line(self, offset_us: i64) -> Line {
        Line {
            wall_us: i64::try_from(self.usec)
                .unwrap_or(i64::MAX)
                .saturating_add(offset_us),
            priority: self.priority,
            source: self.source,
            text: self.text,
        }
    }
}

/// Parses one record as read; `None` for anything that is not one.
pub fn parse(record: &[u8]) -> Option<Record> {
    let text = String::from_utf8_lossy(record);
    let (header, message) = text.split_once(';')?;
    let mut fields = header.split(',');
    let prefix: u32 = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let usec = fields.next()?.parse().ok()?;
    Some(Record {
        priority: (prefix & 7) as u8,
        source: if prefix >> 3 == 0 {
            Source::Kernel
        } else {
            Source::Init
        },
        seq,
        usec,
        text: message.lines().next().unwrap_or("").to_string(),
    })
}

/// Microseconds to add to a kernel timestamp to make it wall-clock time: `CLOCK_REALTIME`
/// minus `CLOCK_MONOTONIC`, now. A clock stepped later moves the lines read after the step.
pub fn wall_offset_us() -> i64 {
    use rustix::time::{clock_gettime, ClockId};
    let us = |t: rustix::time::Timespec| t.tv_sec * 1_000_000 + t.tv_nsec / 1_000;
    let real = us(clock_gettime(ClockId::Realtime));
    let mono = us(clock_gettime(ClockId::Monotonic));
    real - mono
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_and_init_records() {
        assert_eq!(
            parse(b"14,123,2412345,-;tank: hello\n SUBSYSTEM=x\n"),
            Some(Record {
                priority: 6,
                source: Source::Init,
                seq: 123,
                usec: 2_412_345,
                text: "tank: hello".into(),
            })
        );
        let k = parse(b"3,7,100,-,caller=T1;sd 0:0:0:0: [sda] error\n").unwrap();
        assert_eq!((k.priority, k.source, k.seq), (3, Source::Kernel, 7));
        assert_eq!(k.clone().line(1_000).wall_us, 1_100);
        assert_eq!(k.text, "sd 0:0:0:0: [sda] error");
        assert_eq!(parse(b"6,1,2,-;").unwrap().text, "");
    }

    #[test]
    fn garbage_is_not_a_record_and_never_panics() {
        for bad in [
            &b"garbage"[..],
            b";text",
            b"6,x,1,-;t",
            b"6,1;t",
            b"-1,1,1,-;t",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let mut state = 0xdec0_de00_u64;
        for len in 0..2000 {
            let _ = parse(&tank_probe::samples::noise(&mut state, len % 300));
        }
    }

    #[test]
    fn the_offset_is_about_the_time_since_the_epoch_minus_uptime() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        let offset = wall_offset_us();
        assert!(offset <= now && offset > 1_000_000_000_000_000, "{offset}");
    }
}
