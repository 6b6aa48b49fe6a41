//! A diagnostic TCP sink and source, to measure what the network itself carries (the yardstick
//! for NFS and SMB throughput). Armed from the console for a short while, then closed again:
//! the appliance never keeps a port open for it.
//!
//! - port [`SINK_PORT`]: reads everything a client sends until it closes, then writes one
//!   line `received N bytes` back;
//! - port [`SOURCE_PORT`]: writes the armed number of bytes, then closes.
//!
//! The bytes never pass through the init: the sink splices the socket into `/dev/null`
//! through a pipe, the source sends a file of the pattern with `sendfile`, so the figure is
//! the network's and the kernel's (like NFS and SMB, served by the kernel), not that of a
//! user-space copy loop. Where splicing is not possible they fall back to copying.

use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Where the sink listens.
pub const SINK_PORT: u16 = 5001;
/// Where the source listens.
pub const SOURCE_PORT: u16 = 5002;
/// How long the ports stay open once armed.
pub const ARMED_FOR: Duration = Duration::from_secs(300);
/// The most connections served per arming, on each port.
pub const MAX_TRANSFERS: usize = 8;

/// Opens both ports for [`ARMED_FOR`]; each finished transfer is reported through `report`.
pub fn arm(
    source_bytes: u64,
    report: impl Fn(String) + Send + Sync + Clone + 'static,
) -> std::io::Result<()> {
    let any = |port| SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let sink = TcpListener::bind(any(SINK_PORT))?;
    let source = TcpListener::bind(any(SOURCE_PORT))?;
    for (listener, is_sink) in [(sink, true), (source, false)] {
        listener.set_nonblocking(true)?;
        let report = report.clone();
        crate::supervise::spawn_supervised(
            if is_sink { "diag-sink" } else { "diag-source" },
            crate::supervise::Policy::Once,
            move || serve(&listener, is_sink, source_bytes, &report),
        )?;
    }
    Ok(())
}

fn serve(listener: &TcpListener, is_sink: bool, bytes: u64, report: &dyn Fn(String)) {
    let until = Instant::now() + ARMED_FOR;
    // Made before the first client comes, so no transfer waits for it.
    let pattern = (!is_sink).then(Pattern::new);
    let mut served = 0;
    while served < MAX_TRANSFERS {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Woken as a client connects: a poll sleep would count against the stream's time.
        let mut fds = [rustix::event::PollFd::new(
            listener,
            rustix::event::PollFlags::IN,
        )];
        let wait = rustix::time::Timespec {
            tv_sec: left.as_secs().min(60) as i64,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&wait)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                report(format!("network perf: waiting for clients failed: {e}"));
                return;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                served += 1;
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
                let result = match &pattern {
                    None => sink(stream),
                    Some(pattern) => source(stream, bytes, pattern),
                };
                match result {
                    Ok((n, secs)) => report(format!(
                        "network perf: {} {n} bytes {} {peer} in {secs:.2} s ({:.1} MiB/s)",
                        if is_sink { "received" } else { "sent" },
                        if is_sink { "from" } else { "to" },
                        n as f64 / 1048576.0 / secs.max(1e-6)
                    )),
                    Err(e) => report(format!("network perf: transfer with {peer} failed: {e}")),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                report(format!("network perf: accept failed: {e}"));
                return;
            }
        }
    }
}

fn sink(mut stream: TcpStream) -> std::io::Result<(u64, f64)> {
    let started = Instant::now();
    let total = match splice_to_null(&stream) {
        Ok(n) => n,
        Err(SpliceError::Unsupported) => copy_to_nothing(&mut stream)?,
        Err(SpliceError::Io(e)) => return Err(e),
    };
    let secs = started.elapsed().as_secs_f64();
    let _ = stream.write_all(format!("received {total} bytes\n").as_bytes());
    Ok((total, secs))
}

enum SpliceError {
    /// The kernel cannot splice these files: copy instead (nothing was consumed).
    Unsupported,
    Io(std::io::Error),
}

/// Moves everything the socket receives into `/dev/null` inside the kernel.
fn splice_to_null(stream: &TcpStream) -> Result<u64, SpliceError> {
    use rustix::pipe::{pipe, splice, SpliceFlags};
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|_| SpliceError::Unsupported)?;
    let (read_end, write_end) = pipe().map_err(|_| SpliceError::Unsupported)?;
    let mut total = 0u64;
    loop {
        let n = match splice(stream, None, &write_end, None, 1 << 20, SpliceFlags::MOVE) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::INVAL) if total == 0 => return Err(SpliceError::Unsupported),
            Err(e) => return Err(SpliceError::Io(e.into())),
        };
        let mut left = n;
        while left > 0 {
            match splice(&read_end, None, &null, None, left, SpliceFlags::MOVE) {
                Ok(0) => break,
                Ok(m) => left -= m,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(SpliceError::Io(e.into())),
            }
        }
        total += n as u64;
    }
}

fn copy_to_nothing(stream: &mut TcpStream) -> std::io::Result<u64> {
    std::io::copy(stream, &mut std::io::sink())
}

/// The pattern the source sends: random-looking (a compressing link must not flatter the
/// figure), one block written to a file once and sent again and again.
fn pattern_block() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..PATTERN_BLOCK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

const PATTERN_BLOCK: usize = 1 << 20;

/// The block the source sends, in memory and, for `sendfile`, in an unlinked file.
struct Pattern {
    block: Vec<u8>,
    file: Option<std::fs::File>,
}

impl Pattern {
    fn new() -> Pattern {
        let block = pattern_block();
        let path = std::env::temp_dir().join(format!("tank-diag-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&block).map(|()| f))
            .ok();
        let _ = std::fs::remove_file(&path);
        Pattern { block, file }
    }
}

fn source(mut stream: TcpStream, bytes: u64, pattern: &Pattern) -> std::io::Result<(u64, f64)> {
    let started = Instant::now();
    let mut left = bytes;
    let mut kernel_side = pattern.file.is_some();
    while left > 0 {
        let n = usize::try_from(left.min(PATTERN_BLOCK as u64)).unwrap_or(PATTERN_BLOCK);
        match (&pattern.file, kernel_side) {
            (Some(file), true) => {
                let mut offset = 0u64;
                while (offset as usize) < n {
                    let count = n - offset as usize;
                    match rustix::fs::sendfile(&stream, file, Some(&mut offset), count) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(rustix::io::Errno::INTR) => {}
                        Err(rustix::io::Errno::INVAL) if offset == 0 => {
                            kernel_side = false;
                            break;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if !kernel_side {
                    continue;
                }
            }
            _ => stream.write_all(&pattern.block[..n])?,
        }
        left -= n as u64;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok((bytes, started.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The sink counts what a client sends, the source sends what was armed (on loopback).
    #[test]
    fn sink_and_source_on_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || sink(listener.accept().unwrap().0).unwrap());
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.write_all(&vec![7u8; 1 << 20]).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, format!("received {} bytes\n", 1 << 20));
        assert_eq!(server.join().unwrap().0, 1 << 20);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            source(listener.accept().unwrap().0, 300_000, &Pattern::new()).unwrap()
        });
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 300_000);
        assert_eq!(&got[..], &pattern_block()[..300_000]);
        assert_eq!(server.join().unwrap().0, 300_000);
    }
}
