//! Reading the kernel log (`/dev/kmsg`) for the console's `log` command.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// The last `lines` records of the kernel log (which holds the init's own messages too), as
/// `[seconds] message`.
pub fn tail(lines: usize) -> Vec<String> {
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")
    {
        Ok(f) => f,
        Err(e) => return vec![format!("cannot read /dev/kmsg: {e}")],
    };
    let mut records = std::collections::VecDeque::with_capacity(lines);
    let mut buf = vec![0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if records.len() == lines {
                    records.pop_front();
                }
                records.push_back(format_record(&String::from_utf8_lossy(&buf[..n])));
            }
            // EPIPE: records were overwritten while reading; go on with the next one.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => continue,
            Err(_) => break,
        }
    }
    records.into()
}

/// `6,123,2412345,-;tank: hello\n` → `[   2.412345] tank: hello`.
pub fn format_record(record: &str) -> String {
    let Some((header, message)) = record.split_once(';') else {
        return record.trim_end().to_string();
    };
    let micros: u64 = header
        .split(',')
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let message = message.lines().next().unwrap_or("");
    format!(
        "[{:5}.{:06}] {message}",
        micros / 1_000_000,
        micros % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn records() {
        assert_eq!(
            super::format_record("6,123,2412345,-;tank: hello\n SUBSYSTEM=x\n"),
            "[    2.412345] tank: hello"
        );
        assert_eq!(super::format_record("garbage"), "garbage");
    }
}
