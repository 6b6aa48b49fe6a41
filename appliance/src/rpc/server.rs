//! Sockets and threads: each service listens on TCP and UDP, on IPv4 and (when the kernel has
//! it) IPv6, with blocking sockets and one thread per listening socket.
//!
//! TCP connections get a thread each, up to a per-service bound; past it new connections are
//! closed at once. Every read has a deadline ([`Timeouts`]): a connection may sit idle between
//! records for the idle timeout, and a record, once started, must arrive whole within the
//! record timeout, so a slow or silent client holds a connection slot for seconds, not
//! forever. Writes time out too. A record over [`MAX_RECORD`] or a framing error closes the
//! connection (the stream cannot be resynchronised); a bad message inside a good record only
//! costs that message.
//!
//! UDP sockets poll a stop flag between datagrams. A UDP reply leaves from the socket the
//! request came to, so on a wildcard socket the kernel picks its source address by route: on
//! a box with several addresses in one network a reply could come from another address than
//! the one asked. Answering from the asked address needs IP_PKTINFO, which rustix (and so
//! this `unsafe`-free crate) cannot receive; the appliance has one address per network, and
//! clients try TCP first.
//!
//! Listening loops are supervised threads ([`crate::supervise`], [`Policy::RESTART`]), so a
//! panic restarts the loop on the same socket and is counted in `status`; a panic while
//! serving one connection closes that connection. [`Server::stop`] raises the stop flag, shuts
//! the open connections down and joins the listening threads, which closes the ports.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::supervise::{self, Policy};

use super::record::{frame, read_record, RecordError};
use super::registry::Netid;
use super::service::{CallContext, LogLimit, Service};

/// The largest request record accepted over TCP. rpcbind and MOUNT requests are a few
/// hundred bytes; this leaves room for odd clients and stops memory exhaustion.
pub const MAX_RECORD: usize = 64 * 1024;

/// A TCP connection's deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a connection may wait between records.
    pub idle: Duration,
    /// How long a record may take to arrive once its first byte has.
    pub record: Duration,
    /// How long a reply may take to leave.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(10),
            record: Duration::from_secs(10),
            write: Duration::from_secs(10),
        }
    }
}

/// The stack of each service thread: the code is shallow and never recurses, and PID 1
/// should not reserve the default 2 MiB for each of up to a hundred threads.
const THREAD_STACK: usize = 256 * 1024;
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
        timeouts: Timeouts,
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
                        timeouts,
                        log: log.clone(),
                    };
                    supervise::spawn_supervised_with_stack(
                        name,
                        THREAD_STACK,
                        Policy::RESTART,
                        move || tcp.accept_loop(),
                    )?
                }
                Bound::Udp(socket) => {
                    let udp = Udp {
                        socket,
                        local,
                        netid,
                        service,
                        shared,
                    };
                    supervise::spawn_supervised_with_stack(
                        name,
                        THREAD_STACK,
                        Policy::RESTART,
                        move || udp.serve(),
                    )?
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
    /// are shut down. Returns false if they were stopped already.
    pub fn stop(&self) -> bool {
        if self.shared.stop.swap(true, Ordering::SeqCst) {
            return false;
        }
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
            // Cuts short a restart's backoff, so the thread sees the stop flag at once.
            thread.thread().unpark();
            let _ = thread.join();
        }
        let start = Instant::now();
        while all.iter().any(|c| !c.lock().is_empty()) && start.elapsed() < STOP_WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
        true
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
    timeouts: Timeouts,
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
            timeouts: self.timeouts,
            service: self.service.clone(),
            shared: self.shared.clone(),
        };
        let connections = self.connections.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-conn"))
            .stack_size(THREAD_STACK)
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
    timeouts: Timeouts,
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
            .set_write_timeout(Some(self.timeouts.write))
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
            timeouts: self.timeouts,
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

/// Reads from a stream with the connection's deadlines: the idle timeout for the first byte
/// of a record, then the record timeout for the whole record.
struct Deadlines<'a> {
    stream: &'a TcpStream,
    timeouts: Timeouts,
    deadline: Option<Instant>,
}

impl Deadlines<'_> {
    fn late(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the record did not arrive within {} ms",
                self.timeouts.record.as_millis()
            ),
        )
    }
}

impl Read for Deadlines<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.deadline {
            None => self.timeouts.idle,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        };
        if timeout.is_zero() {
            return Err(self.late());
        }
        self.stream.set_read_timeout(Some(timeout))?;
        match self.stream.read(buf) {
            Ok(n) => {
                if n > 0 && self.deadline.is_none() {
                    self.deadline = Some(Instant::now() + self.timeouts.record);
                }
                Ok(n)
            }
            Err(e) if self.deadline.is_some() && e.kind() == io::ErrorKind::WouldBlock => {
                Err(self.late())
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::Timeouts;
    use crate::rpc::message::client::{encode_call, Reply};
    use crate::rpc::message::{Accepted, Credential};
    use crate::rpc::test_util::{
        be, call_on, closed_by_server, sample_exports, tcp_call, udp_call, words,
    };
    use crate::rpc::{start_with, RpcConfig, RpcServices, MOUNT_PROGRAM, RPCBIND_PROGRAM};

    const SHORT: Duration = Duration::from_millis(300);

    /// The services on loopback, on ports the kernel picks, with short timeouts.
    fn services(max_connections: usize) -> RpcServices {
        let config = RpcConfig {
            ipv4: Some(Ipv4Addr::LOCALHOST),
            ipv6: Some(Ipv6Addr::LOCALHOST),
            rpcbind_port: 0,
            mount_port: 0,
            max_connections,
            timeouts: Timeouts {
                idle: SHORT,
                record: SHORT,
                write: SHORT,
            },
        };
        start_with(&config, Arc::new(sample_exports)).unwrap()
    }

    fn rpcbind_addr(s: &RpcServices) -> std::net::SocketAddr {
        (Ipv4Addr::LOCALHOST, s.rpcbind_port()).into()
    }

    fn null_ok() -> Reply {
        Reply::Accepted(Accepted::Success, vec![])
    }

    #[test]
    fn calls_over_every_transport() {
        let s = services(8);
        let v4 = rpcbind_addr(&s);
        let v6: std::net::SocketAddr = (Ipv6Addr::LOCALHOST, s.rpcbind_port()).into();
        let mount: std::net::SocketAddr = (Ipv4Addr::LOCALHOST, s.mount_port()).into();
        for addr in [v4, v6] {
            assert_eq!(tcp_call(addr, RPCBIND_PROGRAM, 4, 0, &[]), null_ok());
            assert_eq!(udp_call(addr, RPCBIND_PROGRAM, 3, 0, &[]), null_ok());
        }
        assert_eq!(tcp_call(mount, MOUNT_PROGRAM, 3, 0, &[]), null_ok());
        assert_eq!(udp_call(mount, MOUNT_PROGRAM, 1, 0, &[]), null_ok());
        // rpcbind knows MOUNT's port on each transport.
        let port = Reply::Accepted(Accepted::Success, be(u32::from(s.mount_port())).to_vec());
        let getport = |prot| words(&[MOUNT_PROGRAM, 3, prot, 0]);
        assert_eq!(udp_call(v4, RPCBIND_PROGRAM, 2, 3, &getport(17)), port);
        assert_eq!(tcp_call(v4, RPCBIND_PROGRAM, 2, 3, &getport(6)), port);
        // Each port serves its own program only.
        assert_eq!(
            tcp_call(mount, RPCBIND_PROGRAM, 4, 0, &[]),
            Reply::Accepted(Accepted::ProgUnavail, vec![])
        );
        // Several calls on one connection, and a call split into fragments sent in pieces.
        let mut stream = TcpStream::connect(v4).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        for vers in 2..=4 {
            assert_eq!(
                call_on(&mut stream, RPCBIND_PROGRAM, vers, 0, &[]),
                null_ok()
            );
        }
        let msg = encode_call(99, RPCBIND_PROGRAM, 4, 0, &Credential::None, &[]);
        let (a, b) = msg.split_at(10);
        let mut framed = (a.len() as u32).to_be_bytes().to_vec();
        framed.extend(a);
        framed.extend((b.len() as u32 | 0x8000_0000).to_be_bytes());
        framed.extend(b);
        for chunk in framed.chunks(7) {
            stream.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let reply = crate::rpc::record::read_record(&mut stream, 1024)
            .unwrap()
            .unwrap();
        assert_eq!(&reply[..4], &be(99));
        s.stop();
    }

    #[test]
    fn slow_idle_and_oversized_connections_are_closed() {
        let s = services(8);
        let addr = rpcbind_addr(&s);
        // Idle: closed after the idle timeout.
        let mut idle = TcpStream::connect(addr).unwrap();
        let start = Instant::now();
        assert!(closed_by_server(&mut idle, Duration::from_secs(3)));
        assert!(start.elapsed() >= SHORT - Duration::from_millis(50));
        // A record that starts and never finishes: closed after the record timeout, although
        // the client keeps sending a byte now and then.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(&[0x80, 0, 0, 100]).unwrap();
        let start = Instant::now();
        let mut closed = false;
        while start.elapsed() < Duration::from_secs(3) {
            if slow.write_all(&[0]).is_err() || closed_by_server(&mut slow, SHORT / 3) {
                closed = true;
                break;
            }
        }
        assert!(closed, "a trickling record kept its connection");
        // A record over the maximum: closed at once.
        let mut big = TcpStream::connect(addr).unwrap();
        big.write_all(&[0x80, 0x10, 0, 0]).unwrap();
        assert!(closed_by_server(&mut big, Duration::from_secs(1)));
        // The service goes on.
        assert_eq!(tcp_call(addr, RPCBIND_PROGRAM, 4, 0, &[]), null_ok());
        s.stop();
    }

    #[test]
    fn connections_are_bounded() {
        let s = services(2);
        let addr = rpcbind_addr(&s);
        let mut held: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                assert_eq!(call_on(&mut c, RPCBIND_PROGRAM, 4, 0, &[]), null_ok());
                c
            })
            .collect();
        // A third is closed at once, while UDP is still served.
        // It gets no answer to a call: a served connection would answer long before the idle
        // timeout could close it.
        let mut third = TcpStream::connect(addr).unwrap();
        let msg = encode_call(5, RPCBIND_PROGRAM, 4, 0, &Credential::None, &[]);
        let _ = third.write_all(&crate::rpc::record::frame(&msg).unwrap());
        assert!(closed_by_server(&mut third, Duration::from_secs(2)));
        assert_eq!(udp_call(addr, RPCBIND_PROGRAM, 4, 0, &[]), null_ok());
        // Once one is closed, there is room again.
        drop(held.pop());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(tcp_call(addr, RPCBIND_PROGRAM, 4, 0, &[]), null_ok());
        s.stop();
    }

    #[test]
    fn a_taken_port_fails_the_start_loudly() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = RpcConfig {
            ipv4: Some(Ipv4Addr::LOCALHOST),
            ipv6: None,
            rpcbind_port: taken.local_addr().unwrap().port(),
            mount_port: 0,
            ..RpcConfig::default()
        };
        let err = match start_with(&config, Arc::new(Vec::new)) {
            Ok(_) => panic!("started on a taken port"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.starts_with("rpcbind: cannot listen on 127.0.0.1:"),
            "{err}"
        );
        assert!(
            err.contains("(tcp)") && err.contains("holds the port: stop it"),
            "{err}"
        );
        // With no address at all, the start says so.
        let config = RpcConfig {
            ipv4: None,
            ipv6: None,
            ..config
        };
        assert!(matches!(
            start_with(&config, Arc::new(Vec::new)),
            Err(crate::rpc::RpcError::NoAddress)
        ));
    }

    #[test]
    fn stop_closes_the_ports() {
        let s = services(8);
        let addr = rpcbind_addr(&s);
        let mount: std::net::SocketAddr = (Ipv4Addr::LOCALHOST, s.mount_port()).into();
        let mut open = TcpStream::connect(addr).unwrap();
        let start = Instant::now();
        s.stop();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "stop took {:?}",
            start.elapsed()
        );
        // The open connection was shut down, and the ports are free.
        let mut byte = [0u8; 1];
        open.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        assert!(matches!(open.read(&mut byte), Ok(0) | Err(_)));
        for a in [addr, mount] {
            assert!(TcpStream::connect(a).is_err(), "{a} still accepts");
            std::net::TcpListener::bind(a).unwrap();
            std::net::UdpSocket::bind(a).unwrap();
        }
        s.stop();
    }
}
