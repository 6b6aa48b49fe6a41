//! ONC RPC services of the appliance, with no external daemon: rpcbind on port 111 and a
//! MOUNT service on port 20048, over TCP and UDP, IPv4 and IPv6.
//!
//! Why they exist: knfsd serves NFSv4 itself, but clients look for it through rpcbind.
//! Proxmox VE checks an NFS storage with `showmount --no-headers --exports SERVER` (rpcbind,
//! then MOUNT's EXPORT), or with `vers=4` in its options `rpcinfo -T tcp SERVER nfs 4`
//! (rpcbind GETADDR for 100003 v4 over TCP, then a NULL call that knfsd answers). knfsd's
//! listeners (`portlist` "tcp 2049") are never registered with rpcbind, so the init
//! registers nfs itself while nfsd runs, through [`RpcServices::register`].
//!
//! What lives here, one file per layer:
//! - `xdr.rs`: XDR (RFC 4506) primitives, a reader that never trusts a length and a bounded
//!   writer.
//! - `message.rs`: RPC version 2 (RFC 5531) calls with AUTH_NONE and AUTH_SYS credentials,
//!   accepted and denied replies.
//! - `record.rs`: TCP record marking (fragments, last-fragment bit, size bound).
//! - `registry.rs`: the rpcbind registry and universal addresses.
//! - `service.rs`: the request handler: header checks, dispatch to a program, failures as
//!   PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS or SYSTEM_ERR, rate-limited logs.
//! - `rpcbind.rs`: portmapper v2 and rpcbind v3/v4. `mount.rs`: MOUNT v1 and v3.
//! - `server.rs`: sockets, threads, connection bounds and timeouts, stop.
//!
//! What does not live here: knfsd's control files and export caches (the NFS module), and
//! deciding when nfs is registered (the engine). Nothing here touches the system beyond its
//! own sockets.
//!
//! Hand-written rather than a crate: the maintained ONC RPC crate (`onc-rpc`) covers only
//! the call and reply header, binds every message to TCP's record mark (no fragmented
//! records, no UDP form), fails a call with a bad RPC version or credential without giving
//! back the transaction id (so RPC_MISMATCH and AUTH_ERROR could not be answered), and asserts
//! (panics) when encoding an over-long auth body. The XDR crates are unmaintained
//! (`xdr-codec`, last released for an old `error-chain`) or GPL-3.0 (`serde-xdr`, which this
//! GPL-2.0-only program cannot link). The program bodies need an XDR codec either way, and
//! the header on top of it is a page.
//!
//! Every received byte is untrusted: decoding returns errors, never panics; a bad packet is
//! logged (rate-limited) and dropped or answered with the RPC error it deserves, and the
//! service goes on.

mod message;
mod mount;
mod record;
mod registry;
mod rpcbind;
mod server;
mod service;
mod xdr;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod host_tests;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

pub use registry::Netid;
pub use server::Timeouts;

use registry::Registry;
use server::{bind_tcp, bind_udp, Bound, Server};
use service::{LogLimit, Service};

/// The NFS program number, for [`RpcServices::register`].
pub const NFS_PROGRAM: u32 = 100_003;
/// The rpcbind program number and well-known port.
pub const RPCBIND_PROGRAM: u32 = rpcbind::PROGRAM;
pub const RPCBIND_PORT: u16 = 111;
/// The MOUNT program number and the port it is served on (the one Linux's rpc.mountd uses
/// when told to fix it, and firewall guides name).
pub const MOUNT_PROGRAM: u32 = mount::PROGRAM;
pub const MOUNT_PORT: u16 = 20048;

/// One exported directory as MOUNT's EXPORT lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportEntry {
    /// The path clients mount ("/mnt/tank/media").
    pub path: String,
    /// The client specifications allowed ("10.0.3.0/24", "*"); showmount prints an empty
    /// list as "(everyone)".
    pub groups: Vec<String>,
}

/// Where the services listen. The defaults are the appliance's: every address, ports 111
/// and 20048.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcConfig {
    /// The IPv4 address to bind, or none for no IPv4.
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 address to bind, or none for no IPv6. If the kernel has no IPv6 (or the
    /// address is not there) the services run on IPv4 alone and say so in the log.
    pub ipv6: Option<Ipv6Addr>,
    pub rpcbind_port: u16,
    /// 0 picks a free port (tests); rpcbind then registers the port that was given.
    pub mount_port: u16,
    /// The most TCP connections each service serves at once.
    pub max_connections: usize,
    /// TCP connections' idle, record and write timeouts (10 s each).
    pub timeouts: Timeouts,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            ipv4: Some(Ipv4Addr::UNSPECIFIED),
            ipv6: Some(Ipv6Addr::UNSPECIFIED),
            rpcbind_port: RPCBIND_PORT,
            mount_port: MOUNT_PORT,
            max_connections: 64,
            timeouts: Timeouts::default(),
        }
    }
}

/// Starting the services failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{service}: cannot listen on {addr} ({proto}): {source}{hint}")]
    Bind {
        service: &'static str,
        addr: SocketAddr,
        proto: &'static str,
        source: io::Error,
        hint: &'static str,
    },
    #[error("{service}: cannot start its threads: {source}")]
    Spawn {
        service: &'static str,
        source: io::Error,
    },
    #[error("the RPC services have no address to listen on: IPv4 and IPv6 are both off")]
    NoAddress,
}

/// The running rpcbind and MOUNT services. Dropping it stops them.
pub struct RpcServices {
    registry: Arc<Mutex<Registry>>,
    server: Server,
    rpcbind_port: u16,
    mount_port: u16,
}

/// Starts rpcbind and MOUNT on the appliance's addresses and ports. `exports` is asked for
/// the export list at every EXPORT call.
pub fn start(
    exports: Arc<dyn Fn() -> Vec<ExportEntry> + Send + Sync>,
) -> Result<RpcServices, RpcError> {
    start_with(&RpcConfig::default(), exports)
}

/// [`start`] with other addresses or ports.
pub fn start_with(
    config: &RpcConfig,
    exports: Arc<dyn Fn() -> Vec<ExportEntry> + Send + Sync>,
) -> Result<RpcServices, RpcError> {
    let addrs: Vec<IpAddr> = config
        .ipv4
        .map(IpAddr::V4)
        .into_iter()
        .chain(config.ipv6.map(IpAddr::V6))
        .collect();
    if addrs.is_empty() {
        return Err(RpcError::NoAddress);
    }
    // Bind everything first, so a taken port fails the start before any thread runs.
    let (rpcbind_sockets, rpcbind_port) = bind_all("rpcbind", &addrs, config.rpcbind_port)?;
    let (mount_sockets, mount_port) = bind_all("mountd", &addrs, config.mount_port)?;

    let registry = Arc::new(Mutex::new(Registry::default()));
    {
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        for netid in netids(&rpcbind_sockets) {
            // Version 2 names IPv4 ports only.
            let first = if netid.is_v6() { 3 } else { 2 };
            for vers in (first..=4).rev() {
                r.register(RPCBIND_PROGRAM, vers, netid, rpcbind_port);
            }
        }
        for netid in netids(&mount_sockets) {
            for vers in [3, 1] {
                r.register(MOUNT_PROGRAM, vers, netid, mount_port);
            }
        }
    }

    let services = RpcServices {
        registry: registry.clone(),
        server: Server::new(),
        rpcbind_port,
        mount_port,
    };
    // "0.0.0.0:111 [::]:111": each address once, for TCP and UDP alike.
    let listening = |sockets: &[Bound]| {
        let mut addrs: Vec<String> = Vec::new();
        for addr in sockets.iter().filter_map(|s| s.local_addr().ok()) {
            let addr = addr.to_string();
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        addrs.join(" ")
    };
    let rpcbind_where = listening(&rpcbind_sockets);
    let mount_where = listening(&mount_sockets);

    let log = Arc::new(LogLimit);
    let rpcbind = rpcbind::Rpcbind::new(registry, log.clone());
    let rpcbind = Arc::new(Service::new(Arc::new(rpcbind), log.clone()));
    let mount = Arc::new(Service::new(
        Arc::new(mount::Mount::new(exports, log.clone())),
        log.clone(),
    ));
    let (max, timeouts) = (config.max_connections, config.timeouts);
    services
        .server
        .spawn(rpcbind, rpcbind_sockets, max, timeouts, log.clone())
        .map_err(|source| RpcError::Spawn {
            service: "rpcbind",
            source,
        })?;
    services
        .server
        .spawn(mount, mount_sockets, max, timeouts, log)
        .map_err(|source| RpcError::Spawn {
            service: "mountd",
            source,
        })?;
    log::info!("rpc: rpcbind listening on {rpcbind_where} (tcp and udp), mountd on {mount_where}");
    Ok(services)
}

/// The netids of a service's sockets, in binding order, each once.
fn netids(sockets: &[Bound]) -> Vec<Netid> {
    let mut out = Vec::new();
    for socket in sockets {
        if let Ok(addr) = socket.local_addr() {
            let netid = Netid::of(matches!(socket, Bound::Tcp(_)), addr.is_ipv6());
            if !out.contains(&netid) {
                out.push(netid);
            }
        }
    }
    out
}

/// Binds a service's TCP and UDP sockets on every address, on one port (the first socket's
/// when `port` is 0). IPv6 failures only cost IPv6.
fn bind_all(
    service: &'static str,
    addrs: &[IpAddr],
    mut port: u16,
) -> Result<(Vec<Bound>, u16), RpcError> {
    let mut sockets = Vec::new();
    for ip in addrs {
        for proto in ["tcp", "udp"] {
            let addr = SocketAddr::new(*ip, port);
            let bound = if proto == "tcp" {
                bind_tcp(addr).map(Bound::Tcp)
            } else {
                bind_udp(addr).map(Bound::Udp)
            };
            let socket = match bound {
                Ok(socket) => socket,
                Err(source) if ip.is_ipv6() && !sockets.is_empty() => {
                    log::warn!(
                        "{service}: no IPv6 service: cannot listen on {addr} ({proto}): \
                         {source}; serving IPv4 only"
                    );
                    continue;
                }
                Err(source) => {
                    let hint = if source.kind() == io::ErrorKind::AddrInUse {
                        "; another program (an rpcbind or portmap daemon?) holds the port: \
                         stop it"
                    } else {
                        ""
                    };
                    return Err(RpcError::Bind {
                        service,
                        addr,
                        proto,
                        source,
                        hint,
                    });
                }
            };
            if port == 0 {
                port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
            }
            sockets.push(socket);
        }
    }
    Ok((sockets, port))
}

impl RpcServices {
    /// Registers a program version on a transport at `port` of every local address (nfs:
    /// `register(NFS_PROGRAM, 4, Netid::Tcp, 2049)` once nfsd runs). Registering again is a
    /// no-op; a different port replaces the old one.
    pub fn register(&self, prog: u32, vers: u32, netid: Netid, port: u16) {
        let changed = self.registry().register(prog, vers, netid, port);
        if changed {
            log::info!(
                "rpcbind: program {prog} version {vers} registered on {} port {port}",
                netid.as_str()
            );
        }
    }

    /// Removes a registration made with [`RpcServices::register`]; returns whether there was
    /// one.
    pub fn unregister(&self, prog: u32, vers: u32, netid: Netid) -> bool {
        let removed = self.registry().unregister(prog, vers, Some(netid));
        if removed {
            log::info!(
                "rpcbind: program {prog} version {vers} on {} unregistered",
                netid.as_str()
            );
        }
        removed
    }

    /// The port rpcbind listens on.
    pub fn rpcbind_port(&self) -> u16 {
        self.rpcbind_port
    }

    /// The port MOUNT listens on.
    pub fn mount_port(&self) -> u16 {
        self.mount_port
    }

    /// Stops both services and closes their ports (waits up to about 2 s for open
    /// connections). Calling it again does nothing.
    pub fn stop(&self) {
        if self.server.stop() {
            log::info!("rpc: rpcbind and mountd stopped");
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RpcServices {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Byte helpers for the golden tests and a small client for the socket tests.
#[cfg(test)]
pub mod test_util {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream, UdpSocket};
    use std::time::Duration;

    use super::message::client::{decode_reply, encode_call, Reply};
    use super::message::Credential;
    use super::record::{frame, read_record};

    /// How long the test client waits for a reply.
    pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

    /// One call over a new TCP connection; the reply's xid must match.
    pub fn tcp_call(addr: SocketAddr, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Reply {
        let mut stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        call_on(&mut stream, prog, vers, proc_, args)
    }

    /// One call on an open TCP connection.
    pub fn call_on(stream: &mut TcpStream, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Reply {
        let xid = 0x7e57_0000 ^ proc_ ^ (vers << 8);
        let msg = encode_call(xid, prog, vers, proc_, &Credential::None, args);
        stream.write_all(&frame(&msg).unwrap()).unwrap();
        let reply = read_record(stream, 1 << 20)
            .unwrap()
            .expect("a reply record");
        let (got, reply) = decode_reply(&reply).unwrap();
        assert_eq!(got, xid);
        reply
    }

    /// One call over UDP, retransmitted each second as RPC clients do (a datagram may be
    /// dropped while the server's receive queue is full), for up to [`CLIENT_TIMEOUT`] and
    /// five more seconds.
    pub fn udp_call(addr: SocketAddr, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Reply {
        let any: SocketAddr = if addr.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        }
        .parse()
        .unwrap();
        let socket = UdpSocket::bind(any).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let xid = 0x0dd_0000 ^ proc_ ^ (vers << 8);
        let msg = encode_call(xid, prog, vers, proc_, &Credential::None, args);
        let mut buf = vec![0; 65_536];
        let tries = CLIENT_TIMEOUT.as_secs() + 5;
        let (len, from) = (0..tries)
            .find_map(|_| {
                socket.send_to(&msg, addr).unwrap();
                socket.recv_from(&mut buf).ok()
            })
            .expect("a UDP reply");
        assert_eq!(from, addr);
        let (got, reply) = decode_reply(&buf[..len]).unwrap();
        assert_eq!(got, xid);
        reply
    }

    /// Whether the server closed `stream` (end of stream or reset) within `within`.
    pub fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
        stream.set_read_timeout(Some(within)).unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
    /// A word in XDR (big-endian).
    pub fn be(v: u32) -> [u8; 4] {
        v.to_be_bytes()
    }

    /// Words in XDR.
    pub fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// The export list the socket and host tests serve.
    pub fn sample_exports() -> Vec<super::ExportEntry> {
        vec![
            super::ExportEntry {
                path: "/mnt/tank/media".into(),
                groups: vec!["10.0.3.0/24".into(), "*".into()],
            },
            super::ExportEntry {
                path: "/mnt/tank/vms".into(),
                groups: vec!["10.0.3.7".into()],
            },
        ]
    }

    /// A registry as the services start it on IPv4, with nfs registered: rpcbind versions 2
    /// to 4 on tcp and udp port 111, MOUNT v3 on tcp 20048, nfs v4 on tcp 2049.
    pub fn sample_registry() -> super::Registry {
        let mut r = super::Registry::default();
        for vers in 2..=4 {
            r.register(super::RPCBIND_PROGRAM, vers, super::Netid::Tcp, 111);
            r.register(super::RPCBIND_PROGRAM, vers, super::Netid::Udp, 111);
        }
        r.register(super::MOUNT_PROGRAM, 3, super::Netid::Tcp, 20048);
        r.register(super::NFS_PROGRAM, 4, super::Netid::Tcp, 2049);
        r
    }

    /// An rpcbind v3/v4 `rpcb` argument.
    pub fn rpcb(prog: u32, vers: u32, netid: &str, addr: &str, owner: &str) -> Vec<u8> {
        let mut a = words(&[prog, vers]);
        a.extend(xdr_string(netid));
        a.extend(xdr_string(addr));
        a.extend(xdr_string(owner));
        a
    }

    /// A string in XDR: length, bytes, zero padding.
    pub fn xdr_string(s: &str) -> Vec<u8> {
        let mut out = words(&[s.len() as u32]);
        out.extend(s.as_bytes());
        out.resize(out.len() + (4 - s.len() % 4) % 4, 0);
        out
    }
}
