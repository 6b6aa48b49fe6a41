//! Sockets and threads: each service listens on TCP and UDP, on IPv4 and (when the kernel has
//! it) IPv6, with blocking sockets and one thread per listening socket.
//!
//! TCP connections get a thread each, up to a per-service bound; past it new connections are
//! closed at once. Every read has a deadline: a connection may sit idle between records for
//! [`IDLE_TIMEOUT`], and a record, once started, must arrive whole within
//! [`RECORD_TIMEOUT`], so a slow or silent client holds a connection slot for seconds, not
//! forever. Writes time out too. A record over [`MAX_RECORD`] or a framing error closes the
//! connection (the stream cannot be resynchronised); a bad message inside a good record only
//! costs that message. UDP sockets poll a stop flag between datagrams.
//!
//! Listening loops run under [`crate::init::guarded`], so a panic restarts the loop on the
//! same socket; a panic while serving one connection closes that connection. [`Server::stop`]
//! raises the stop flag, shuts the open connections down and joins the listening threads,
//! which closes the ports.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::record::{frame, read_record, RecordError};
use super::registry::Netid;
use super::service::{CallContext, LogLimit, Service};

/// The largest request record accepted over TCP. rpcbind and MOUNT requests are a few
/// hundred bytes; this leaves room for odd clients and stops memory exhaustion.
pub const MAX_RECORD: usize = 64 * 1024;
/// How long a connection may wait between records.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a record may take to arrive once its first byte has.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reply may take to leave.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the listening loops look at the stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long [`Server::stop`] waits for connection threads to finish.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What the threads of all services share.
#[derive(Default)]
pub struct Shared {
    stop: AtomicBool,
    next_id: AtomicU64,
}

/// One service's open connections (clones of their streams, to shut them down at stop).
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bound socket waiting for its thread.
pub enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Bound {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Bound::Tcp(l) => l.local_addr(),
            Bound::Udp(s) => s.local_addr(),
        }
    }
}

/// Binds a TCP listener (IPv6 sockets only take IPv6, so IPv4 can be bound beside them).
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(POLL_INTERVAL))?;
    Ok(socket.into())
}

/// The running listeners of all services.
pub struct Server {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    connections: Mutex<Vec<Arc<Connections>>>,
}

impl Server {
    pub fn new() -> Self {
        Self {
            shared: Arc::default(),
            threads: Mutex::default(),
            connections: Mutex::default(),
        }
    }

    /// Starts serving `service` on `sockets`, with at most `max_connections` TCP connections
    /// at once across them.
    pub fn spawn(
        &self,
        service: Arc<Service>,
        sockets: Vec<Bound>,
        max_connections: usize,
        log: Arc<LogLimit>,
    ) -> io::Result<()> {
        let connections = Arc::new(Connections::default());
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connections.clone());
        for socket in sockets {
            let local = socket.local_addr()?;
            let netid = Netid::of(matches!(socket, Bound::Tcp(_)), local.is_ipv6());
            let name = format!("{}-{}", service.name(), netid.as_str());
            let shared = self.shared.clone();
            let service = service.clone();
            let handle = match socket {
                Bound::Tcp(listener) => {
                    let tcp = Tcp {
                        listener,
                        local,
                        service,
                        shared,
                        connections: connections.clone(),
                        max_connections,
                        log: log.clone(),
                    };
                    let thread_name = name.clone();
                    std::thread::Builder::new()
                        .name(name)
                        .spawn(move || crate::init::guarded(&thread_name, || tcp.accept_loop()))?
                }
                Bound::Udp(socket) => {
                    let udp = Udp {
                        socket,
                        local,
                        netid,
                        service,
                        shared,
                    };
                    let thread_name = name.clone();
                    std::thread::Builder::new()
                        .name(name)
                        .spawn(move || crate::init::guarded(&thread_name, || udp.serve()))?
                }
            };
            self.threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(handle);
        }
        Ok(())
    }

    /// Stops every service: the listening threads end and their ports close; open connections
    /// are shut down. Calling it again does nothing.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let all: Vec<Arc<Connections>> = self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for connections in &all {
            for stream in connections.lock().values() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
        let threads: Vec<JoinHandle<()>> = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
        let start = Instant::now();
        while all.iter().any(|c| !c.lock().is_empty()) && start.elapsed() < STOP_WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A TCP listener and what its connections need.
struct Tcp {
    listener: TcpListener,
    local: SocketAddr,
    service: Arc<Service>,
    shared: Arc<Shared>,
    connections: Arc<Connections>,
    max_connections: usize,
    log: Arc<LogLimit>,
}

impl Tcp {
    fn accept_loop(&self) {
        let name = self.service.name();
        while !self.shared.stop.load(Ordering::SeqCst) {
            let mut fds = [rustix::event::PollFd::new(
                &self.listener,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: POLL_INTERVAL.as_nanos() as i64,
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    log::error!(
                        "{name}: waiting for connections on {} failed: {e}",
                        self.local
                    );
                    std::thread::sleep(POLL_INTERVAL);
                    continue;
                }
            }
            match self.listener.accept() {
                Ok((stream, peer)) => self.start_connection(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors or memory: wait rather than spin.
                    log::error!(
                        "{name}: accepting a connection on {} failed: {e}",
                        self.local
                    );
                    std::thread::sleep(POLL_INTERVAL);
                }
            }
        }
    }

    fn start_connection(&self, stream: TcpStream, peer: SocketAddr) {
        let name = self.service.name();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut open = self.connections.lock();
            if open.len() >= self.max_connections {
                self.log.log(log::Level::Warn, || {
                    format!(
                        "{name}: closed a connection from {peer}: {} connections are open \
                         already, the most this service takes",
                        self.max_connections
                    )
                });
                return;
            }
            match stream.try_clone() {
                Ok(clone) => {
                    open.insert(id, clone);
                }
                Err(e) => {
                    log::error!("{name}: cannot keep track of a connection from {peer}: {e}");
                    return;
                }
            }
        }
        let conn = Connection {
            stream,
            peer,
            listener: self.local,
            service: self.service.clone(),
            shared: self.shared.clone(),
        };
        let connections = self.connections.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-conn"))
            .spawn(move || {
                if std::panic::catch_unwind(AssertUnwindSafe(|| conn.serve())).is_err() {
                    log::error!(
                        "{}: internal error (panic) serving {}; connection closed",
                        conn.service.name(),
                        conn.peer
                    );
                }
                connections.lock().remove(&id);
            });
        if let Err(e) = spawned {
            log::error!("{name}: cannot start a thread for a connection from {peer}: {e}");
            self.connections.lock().remove(&id);
        }
    }
}

/// One TCP connection.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    /// The listener's address, in case the connection cannot tell its own.
    listener: SocketAddr,
    service: Arc<Service>,
    shared: Arc<Shared>,
}

impl Connection {
    fn serve(&self) {
        let name = self.service.name();
        // The connection's own local address is the one the client reached, even on a
        // wildcard listener.
        let local = self.stream.local_addr().unwrap_or(self.listener);
        let ctx = CallContext {
            peer: self.peer,
            local,
            netid: Netid::of(true, local.is_ipv6()),
        };
        if let Err(e) = self
            .stream
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .and_then(|()| self.stream.set_nodelay(true))
        {
            log::warn!(
                "{name}: cannot set up the connection from {}: {e}",
                self.peer
            );
            return;
        }
        let mut reader = Deadlines {
            stream: &self.stream,
            deadline: None,
        };
        while !self.shared.stop.load(Ordering::SeqCst) {
            reader.deadline = None;
            let record = match read_record(&mut reader, MAX_RECORD) {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(RecordError::Io(e))
                    if reader.deadline.is_none()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    log::debug!("{name}: closed the idle connection from {}", self.peer);
                    return;
                }
                Err(e) => {
                    log::warn!("{name}: closed the connection from {}: {e}", self.peer);
                    return;
                }
            };
            let Some(reply) = self.service.handle(&record, &ctx) else {
                continue;
            };
            let Some(framed) = frame(&reply) else {
                log::error!("{name}: a reply of {} bytes cannot be framed", reply.len());
                return;
            };
            if let Err(e) = (&self.stream).write_all(&framed) {
                log::warn!("{name}: sending a reply to {} failed: {e}", self.peer);
                return;
            }
        }
    }
}

/// Reads from a stream with the connection's deadlines: [`IDLE_TIMEOUT`] for the first byte
/// of a record, then [`RECORD_TIMEOUT`] for the whole record.
struct Deadlines<'a> {
    stream: &'a TcpStream,
    deadline: Option<Instant>,
}

impl Read for Deadlines<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.deadline {
            None => IDLE_TIMEOUT,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        };
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the record did not arrive within {} s",
                    RECORD_TIMEOUT.as_secs()
                ),
            ));
        }
        self.stream.set_read_timeout(Some(timeout))?;
        match self.stream.read(buf) {
            Ok(n) => {
                if n > 0 && self.deadline.is_none() {
                    self.deadline = Some(Instant::now() + RECORD_TIMEOUT);
                }
                Ok(n)
            }
            Err(e) if self.deadline.is_some() && e.kind() == io::ErrorKind::WouldBlock => {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the record did not arrive within {} s",
                        RECORD_TIMEOUT.as_secs()
                    ),
                ))
            }
            Err(e) => Err(e),
        }
    }
}

/// A UDP socket.
struct Udp {
    socket: UdpSocket,
    local: SocketAddr,
    netid: Netid,
    service: Arc<Service>,
    shared: Arc<Shared>,
}

impl Udp {
    fn serve(&self) {
        let name = self.service.name();
        let mut buf = vec![0u8; 65_536];
        while !self.shared.stop.load(Ordering::SeqCst) {
            let (len, peer) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // ICMP errors from earlier replies surface here (ECONNREFUSED); they say
                    // nothing about the next datagram.
                    log::debug!("{name}: receiving on {} failed: {e}", self.local);
                    continue;
                }
            };
            let ctx = CallContext {
                peer,
                local: self.local,
                netid: self.netid,
            };
            let Some(reply) = self.service.handle(&buf[..len], &ctx) else {
                continue;
            };
            if let Err(e) = self.socket.send_to(&reply, peer) {
                log::debug!("{name}: sending a reply to {peer} failed: {e}");
            }
        }
    }
}
