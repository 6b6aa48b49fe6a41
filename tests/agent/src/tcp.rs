//! Plain TCP stream tests: the baseline a file protocol's throughput is compared with.
//!
//! The connecting side either sends N bytes (`tcp send`: write, shut down its sending half,
//! wait for the peer to close, so the time covers delivery) or receives until the peer closes
//! (`tcp recv`). The listening side is two steps, so a test can order two guests without
//! races: `tcp listen PORT` binds at once and keeps the socket (the kernel queues connections
//! from then on), `tcp accept PORT sink|source N` takes one connection and runs it. Every wait
//! is bounded by the request's deadline. What does not live here: the appliance's own
//! sink and source.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::command::StreamRole;
use crate::ops::{check, timing, OpError};
use crate::pattern;
use crate::protocol::Fields;

/// The size of each read and write.
const BLOCK: usize = 256 << 10;

/// How long `tcp send` waits for the peer to close after the last byte.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Listening sockets by port, kept between `tcp listen` and `tcp accept`.
#[derive(Default)]
pub struct Listeners(Mutex<HashMap<u16, TcpListener>>);

fn remaining(deadline: Instant) -> Result<Duration, OpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(OpError::Deadline("tcp"));
    }
    Ok(left)
}

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u16, TcpListener>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `tcp listen PORT` (0 picks a free port; the reply says which).
    pub fn listen(&self, port: u16) -> Result<Fields, OpError> {
        if self.lock().contains_key(&port) && port != 0 {
            return Err(OpError::Failed(format!(
                "already listening on port {port}; 'tcp close {port}' first"
            )));
        }
        let listener = TcpListener::bind(("0.0.0.0", port))
            .map_err(OpError::io(format!("listen on port {port}")))?;
        let port = listener
            .local_addr()
            .map_err(OpError::io("listening address"))?
            .port();
        self.lock().insert(port, listener);
        Ok(Fields::new().num("port", port))
    }

    /// `tcp close PORT`.
    pub fn close(&self, port: u16) -> Result<Fields, OpError> {
        match self.lock().remove(&port) {
            Some(_) => Ok(Fields::new()),
            None => Err(OpError::Failed(format!(
                "not listening on port {port}; 'tcp listen {port}' first"
            ))),
        }
    }

    /// `tcp accept PORT sink|source N`.
    pub fn accept(
        &self,
        port: u16,
        role: StreamRole,
        deadline: Instant,
    ) -> Result<Fields, OpError> {
        let listener = {
            let map = self.lock();
            let l = map.get(&port).ok_or_else(|| {
                OpError::Failed(format!(
                    "not listening on port {port}; 'tcp listen {port}' first"
                ))
            })?;
            l.try_clone().map_err(OpError::io("listening socket"))?
        };
        // Wait for a connection no longer than the deadline (a thread left in accept() would
        // take the next test's connection).
        let mut fds = [rustix::event::PollFd::new(
            &listener,
            rustix::event::PollFlags::IN,
        )];
        loop {
            let left = remaining(deadline)?;
            let slice = left.min(Duration::from_millis(500));
            let timeout = rustix::time::Timespec {
                tv_sec: slice.as_secs() as i64,
                tv_nsec: slice.subsec_nanos() as i64,
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => continue,
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(OpError::io(format!("wait on port {port}"))(e.into())),
            }
        }
        let (stream, peer) = listener
            .accept()
            .map_err(OpError::io(format!("accept on port {port}")))?;
        let fields = match role {
            StreamRole::Sink => sink(stream, deadline)?,
            StreamRole::Source(n) => source(stream, n, deadline)?,
        };
        Ok(fields.put("peer", peer.to_string()))
    }
}

fn connect(addr: SocketAddr, deadline: Instant) -> Result<(TcpStream, Duration), OpError> {
    let started = Instant::now();
    let stream = TcpStream::connect_timeout(&addr, remaining(deadline)?)
        .map_err(OpError::io(format!("connect to {addr}")))?;
    Ok((stream, started.elapsed()))
}

/// Reads until EOF; the time runs from the first read to EOF.
fn sink(mut stream: TcpStream, deadline: Instant) -> Result<Fields, OpError> {
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    let started = Instant::now();
    loop {
        check(deadline, "tcp")?;
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(OpError::io("socket timeout"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(OpError::io("receive")(e)),
        }
    }
    Ok(timing(Fields::new(), total, started.elapsed()))
}

/// Sends `size` bytes of the pattern (seed 0), shuts down the sending half and waits (briefly)
/// for the peer to close; `acked=yes` when it did, and then the time covers delivery.
fn source(mut stream: TcpStream, size: u64, deadline: Instant) -> Result<Fields, OpError> {
    let mut buf = vec![0u8; BLOCK];
    pattern::fill(0, 0, &mut buf);
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(OpError::io("socket timeout"))?;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < size {
        check(deadline, "tcp")?;
        let n = (size - sent).min(BLOCK as u64) as usize;
        stream.write_all(&buf[..n]).map_err(OpError::io("send"))?;
        sent += n as u64;
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(OpError::io("shutdown"))?;
    let wait = remaining(deadline)?.min(CLOSE_WAIT);
    stream
        .set_read_timeout(Some(wait))
        .map_err(OpError::io("socket timeout"))?;
    let acked = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
    };
    Ok(timing(Fields::new(), sent, started.elapsed())
        .put("acked", if acked { "yes" } else { "no" }))
}

/// `tcp send HOST:PORT N`.
pub fn send(addr: SocketAddr, size: u64, deadline: Instant) -> Result<Fields, OpError> {
    let (stream, took) = connect(addr, deadline)?;
    Ok(source(stream, size, deadline)?.secs("connect_seconds", took.as_secs_f64()))
}

/// `tcp recv HOST:PORT`.
pub fn recv(addr: SocketAddr, deadline: Instant) -> Result<Fields, OpError> {
    let (stream, took) = connect(addr, deadline)?;
    Ok(sink(stream, deadline)?.secs("connect_seconds", took.as_secs_f64()))
}

/// `tcp connect HOST:PORT`: connects and closes; a closed port answers `err ECONNREFUSED`.
pub fn probe(addr: SocketAddr, deadline: Instant) -> Result<Fields, OpError> {
    let (stream, took) = connect(addr, deadline)?;
    let local = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    Ok(Fields::new()
        .secs("seconds", took.as_secs_f64())
        .put("local", local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn send_to_sink_and_receive_from_source() {
        let l = Listeners::default();
        let port: u16 = l.listen(0).unwrap().parse("port").unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        std::thread::scope(|s| {
            let acc = s.spawn(|| l.accept(port, StreamRole::Sink, later()).unwrap());
            let sent = send(addr, 5 << 20, later()).unwrap();
            let got = acc.join().unwrap();
            assert_eq!(sent.parse::<u64>("bytes"), Some(5 << 20));
            assert_eq!(sent.text("acked").unwrap(), "yes");
            assert_eq!(got.parse::<u64>("bytes"), Some(5 << 20));
            assert!(got.text("peer").unwrap().starts_with("127.0.0.1:"));
        });
        std::thread::scope(|s| {
            let acc = s.spawn(|| {
                l.accept(port, StreamRole::Source(3 << 20), later())
                    .unwrap()
            });
            let got = recv(addr, later()).unwrap();
            assert_eq!(got.parse::<u64>("bytes"), Some(3 << 20));
            assert_eq!(acc.join().unwrap().text("acked").unwrap(), "yes");
        });
        l.close(port).unwrap();
        assert!(l.close(port).is_err());
        let e = probe(addr, later()).unwrap_err();
        assert_eq!(e.code(), "ECONNREFUSED");
        // An accept with nobody connecting ends at its deadline.
        let port: u16 = l.listen(0).unwrap().parse("port").unwrap();
        let e = l
            .accept(
                port,
                StreamRole::Sink,
                Instant::now() + Duration::from_millis(200),
            )
            .unwrap_err();
        assert_eq!(e.code(), "timeout");
        assert!(l.accept(1, StreamRole::Sink, later()).is_err());
    }
}
