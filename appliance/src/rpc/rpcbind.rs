//! rpcbind: program 100000, portmapper version 2 (RFC 1833 section 3) and rpcbind versions 3
//! and 4 (RFC 1833 section 2), over the [`Registry`].
//!
//! Served: NULL, SET, UNSET, GETPORT and DUMP in version 2; NULL, SET, UNSET, GETADDR, DUMP,
//! GETTIME, UADDR2TADDR and TADDR2UADDR in versions 3 and 4; and GETVERSADDR, GETADDRLIST and
//! GETSTAT in version 4. Version 2 speaks of IPv4 ports only, so like rpcbind it is served on
//! the IPv4 transports and IPv6 callers get PROG_MISMATCH 3–4.
//!
//! Behaviour follows rpcbind where the RFC leaves room:
//! - SET and UNSET are accepted only from loopback callers; anyone else gets FALSE and a log
//!   line. Network callers own their entries as "unknown" and cannot remove the init's.
//! - GETADDR and GETVERSADDR ignore the argument's netid and answer for the transport the
//!   request came in on (RFC 1833 says so for GETADDR). A wildcard registration is answered
//!   with the caller's own view of our address (the argument's `r_addr`, which libtirpc and
//!   the kernel fill with the address they reached rpcbind at), or failing that with the local
//!   address the call arrived on; rpcbind picks a local interface on the caller's network
//!   instead, which breaks callers behind address translation.
//! - GETADDR and GETPORT fall back to another version of the program on the same transport,
//!   so a client asking for an unserved version learns the served range from the service.
//! - UADDR2TADDR and TADDR2UADDR use the transport's address family and Linux's `sockaddr`
//!   layout (family in host byte order), as rpcbind does; anything else yields the empty
//!   answer rpcbind gives.
//! - Indirect calls (CALLIT, BCAST, INDIRECT) are not forwarded: no reply over UDP (a
//!   broadcaster only listens for successes, and RFC 1833 has the port mapper stay silent on
//!   failure), PROC_UNAVAIL over TCP.
//! - GETSTAT counts calls per procedure, successful SETs and UNSETs, and lookup outcomes per
//!   program, version and netid (for at most 32 of them per version).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::message::Call;
use super::registry::{format_uaddr, parse_uaddr, Netid, Registry};
use super::service::{CallContext, Failure, LogLimit, Program};
use super::xdr::{XdrReader, XdrWriter};

pub const PROGRAM: u32 = 100_000;

/// The longest netid, universal address or owner string accepted in arguments.
const MAX_ARG_STRING: u32 = 1024;
/// The longest `netbuf` accepted by TADDR2UADDR (a `sockaddr_storage`).
const MAX_NETBUF: u32 = 128;
/// Procedures counted by GETSTAT (`RPCBSTAT_HIGHPROC`).
const STAT_PROCS: usize = 13;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// The rpcbind program's state: the shared registry and the call counters.
pub struct Rpcbind {
    registry: Arc<Mutex<Registry>>,
    stats: Mutex<[VersionStats; 3]>,
    log: Arc<LogLimit>,
}

/// The most programs, versions and netids GETSTAT keeps lookup counts for, per rpcbind
/// version; lookups of others are not counted (a caller could otherwise grow the list).
const MAX_ADDR_STATS: usize = 32;

#[derive(Debug, Default, Clone)]
struct VersionStats {
    calls: [u32; STAT_PROCS],
    sets: i32,
    unsets: i32,
    /// GETPORT, GETADDR and GETVERSADDR outcomes per program, version and netid.
    lookups: Vec<LookupStats>,
}

#[derive(Debug, Clone)]
struct LookupStats {
    prog: u32,
    vers: u32,
    netid: Netid,
    success: i32,
    failure: i32,
}

/// The `rpcb` argument of versions 3 and 4.
#[derive(Debug)]
struct Rpcb<'a> {
    prog: u32,
    vers: u32,
    netid: &'a str,
    addr: &'a str,
}

/// The `mapping` argument of version 2, with the protocol as a netid (`None` for protocols
/// other than TCP and UDP).
struct Pmap {
    prog: u32,
    vers: u32,
    netid: Option<Netid>,
    port: u32,
}

fn read_pmap(r: &mut XdrReader<'_>) -> Result<Pmap, Failure> {
    Ok(Pmap {
        prog: r.u32()?,
        vers: r.u32()?,
        netid: Netid::from_pmap_protocol(r.u32()?),
        port: r.u32()?,
    })
}

fn read_rpcb<'a>(r: &mut XdrReader<'a>) -> Result<Rpcb<'a>, Failure> {
    let prog = r.u32()?;
    let vers = r.u32()?;
    let netid = r.string(MAX_ARG_STRING)?;
    let addr = r.string(MAX_ARG_STRING)?;
    let _owner = r.string(MAX_ARG_STRING)?;
    Ok(Rpcb {
        prog,
        vers,
        netid,
        addr,
    })
}

impl Rpcbind {
    pub fn new(registry: Arc<Mutex<Registry>>, log: Arc<LogLimit>) -> Self {
        Self {
            registry,
            stats: Mutex::default(),
            log,
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, vers: u32, f: impl FnOnce(&mut VersionStats)) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = vers.checked_sub(2).and_then(|i| stats.get_mut(i as usize)) {
            f(s);
        }
    }

    /// Counts a lookup's outcome for GETSTAT.
    fn count_lookup(&self, vers: u32, prog: u32, pvers: u32, netid: Netid, found: bool) {
        self.count(vers, |s| {
            let at = s
                .lookups
                .iter()
                .position(|l| (l.prog, l.vers, l.netid) == (prog, pvers, netid));
            let entry = match at {
                Some(i) => &mut s.lookups[i],
                None if s.lookups.len() < MAX_ADDR_STATS => {
                    s.lookups.push(LookupStats {
                        prog,
                        vers: pvers,
                        netid,
                        success: 0,
                        failure: 0,
                    });
                    let last = s.lookups.len() - 1;
                    &mut s.lookups[last]
                }
                None => return,
            };
            if found {
                entry.success = entry.success.saturating_add(1);
            } else {
                entry.failure = entry.failure.saturating_add(1);
            }
        });
    }

    /// Whether a SET or UNSET may go ahead; logs the refusal otherwise.
    fn may_change(&self, ctx: &CallContext, what: &str, prog: u32, vers: u32) -> bool {
        if ctx.peer_is_loopback() {
            return true;
        }
        self.log.log(log::Level::Warn, || {
            format!(
                "rpcbind: refused {what} of program {prog} version {vers} from {}: only programs \
                 on this machine may change registrations",
                ctx.peer
            )
        });
        false
    }

    fn set(
        &self,
        ctx: &CallContext,
        vers: u32,
        prog: u32,
        pvers: u32,
        netid: Netid,
        addr: SocketAddr,
    ) -> bool {
        if !self.may_change(ctx, "SET", prog, pvers) {
            return false;
        }
        let done = self.registry().set(prog, pvers, netid, addr);
        if done {
            self.count(vers, |s| s.sets += 1);
            log::info!(
                "rpcbind: {} registered program {prog} version {pvers} {} at {}",
                ctx.peer,
                netid.as_str(),
                format_uaddr(addr)
            );
        }
        done
    }

    fn unset(&self, ctx: &CallContext, vers: u32, prog: u32, pvers: u32, netids: &[Netid]) -> bool {
        if !self.may_change(ctx, "UNSET", prog, pvers) {
            return false;
        }
        let mut registry = self.registry();
        let mut done = false;
        for netid in netids {
            done |= registry.unset(prog, pvers, Some(*netid));
        }
        drop(registry);
        if done {
            self.count(vers, |s| s.unsets += 1);
            log::info!(
                "rpcbind: {} unregistered program {prog} version {pvers}",
                ctx.peer
            );
        } else {
            log::debug!(
                "rpcbind: UNSET of {prog} v{pvers} from {} removed nothing",
                ctx.peer
            );
        }
        done
    }

    /// GETADDR and GETVERSADDR: the merged universal address, or "".
    fn getaddr(&self, ctx: &CallContext, vers: u32, args: &Rpcb<'_>, exact: bool) -> String {
        let found = self
            .registry()
            .lookup(args.prog, args.vers, ctx.netid, exact)
            .map(|m| m.address_for(server_ip(ctx, args)));
        self.count_lookup(vers, args.prog, args.vers, ctx.netid, found.is_some());
        found.map(format_uaddr).unwrap_or_default()
    }

    fn pmap(&self, ctx: &CallContext, call: &Call<'_>, out: &mut XdrWriter) -> Result<(), Failure> {
        let mut r = XdrReader::new(call.args);
        match call.proc_ {
            0 => {}
            1 => {
                let m = read_pmap(&mut r)?;
                let result = match (m.netid, u16::try_from(m.port)) {
                    (Some(n), Ok(port)) => self.set(ctx, 2, m.prog, m.vers, n, n.wildcard(port)),
                    _ => false,
                };
                out.bool(result);
            }
            2 => {
                // Version 2's UNSET removes the version on every IPv4 transport.
                let m = read_pmap(&mut r)?;
                out.bool(self.unset(ctx, 2, m.prog, m.vers, &[Netid::Tcp, Netid::Udp]));
            }
            3 => {
                let m = read_pmap(&mut r)?;
                let port = m.netid.and_then(|n| {
                    self.registry()
                        .lookup(m.prog, m.vers, n, false)
                        .map(|found| found.addr.port())
                });
                let counted = m.netid.unwrap_or(ctx.netid);
                self.count_lookup(2, m.prog, m.vers, counted, port.is_some());
                out.u32(u32::from(port.unwrap_or(0)));
            }
            4 => {
                let registry = self.registry();
                let entries = registry
                    .entries()
                    .iter()
                    .filter_map(|m| Some((m, m.netid.pmap_protocol()?)));
                out.list(entries, |w, (m, prot)| {
                    w.u32(m.prog);
                    w.u32(m.vers);
                    w.u32(prot);
                    w.u32(u32::from(m.addr.port()));
                });
            }
            5 => return Err(indirect(ctx)),
            _ => return Err(Failure::ProcUnavail),
        }
        Ok(())
    }

    fn rpcb(&self, ctx: &CallContext, call: &Call<'_>, out: &mut XdrWriter) -> Result<(), Failure> {
        let vers = call.vers;
        let mut r = XdrReader::new(call.args);
        match (call.proc_, vers) {
            (0, _) => {}
            (1, _) => {
                let a = read_rpcb(&mut r)?;
                let result = match Netid::parse(a.netid) {
                    Some(n) => match parse_uaddr(a.addr, n) {
                        Some(addr) => self.set(ctx, vers, a.prog, a.vers, n, addr),
                        None => false,
                    },
                    None => false,
                };
                out.bool(result);
            }
            (2, _) => {
                let a = read_rpcb(&mut r)?;
                let all = [Netid::Tcp, Netid::Udp, Netid::Tcp6, Netid::Udp6];
                let result = if a.netid.is_empty() {
                    self.unset(ctx, vers, a.prog, a.vers, &all)
                } else {
                    match Netid::parse(a.netid) {
                        Some(n) => self.unset(ctx, vers, a.prog, a.vers, &[n]),
                        None => false,
                    }
                };
                out.bool(result);
            }
            (3, _) | (9, 4) => {
                let a = read_rpcb(&mut r)?;
                let addr = self.getaddr(ctx, vers, &a, call.proc_ == 9);
                log::debug!(
                    "rpcbind: {} asked for {} v{} on {}: {addr:?}",
                    ctx.peer,
                    a.prog,
                    a.vers,
                    ctx.netid.as_str()
                );
                out.string(&addr);
            }
            (4, _) => {
                let registry = self.registry();
                out.list(registry.entries(), |w, m| {
                    w.u32(m.prog);
                    w.u32(m.vers);
                    w.string(m.netid.as_str());
                    w.string(&format_uaddr(m.addr));
                    w.string(m.owner.as_str());
                });
            }
            (5, _) | (10, 4) => return Err(indirect(ctx)),
            (6, _) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                out.u32(now as u32);
            }
            (7, _) => {
                let uaddr = r.string(MAX_ARG_STRING)?;
                let sockaddr = parse_uaddr(uaddr, ctx.netid)
                    .map(sockaddr_bytes)
                    .unwrap_or_default();
                out.u32(sockaddr.len() as u32);
                out.opaque(&sockaddr);
            }
            (8, _) => {
                let _maxlen = r.u32()?;
                let buf = r.opaque(MAX_NETBUF)?;
                let uaddr = parse_sockaddr(buf, ctx.netid.is_v6())
                    .map(format_uaddr)
                    .unwrap_or_default();
                out.string(&uaddr);
            }
            (11, 4) => {
                let a = read_rpcb(&mut r)?;
                let local = server_ip(ctx, &a);
                let registry = self.registry();
                let entries = registry.entries().iter().filter(|m| {
                    m.prog == a.prog && m.vers == a.vers && m.netid.is_v6() == ctx.netid.is_v6()
                });
                out.list(entries, |w, m| {
                    w.string(&format_uaddr(m.address_for(local)));
                    w.string(m.netid.as_str());
                    w.u32(m.netid.semantics());
                    w.string(m.netid.protofmly());
                    w.string(m.netid.proto());
                });
            }
            (12, 4) => {
                let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for s in stats {
                    for calls in s.calls {
                        out.u32(calls);
                    }
                    out.i32(s.sets);
                    out.i32(s.unsets);
                    out.list(&s.lookups, |w, l| {
                        w.u32(l.prog);
                        w.u32(l.vers);
                        w.i32(l.success);
                        w.i32(l.failure);
                        w.string(l.netid.as_str());
                    });
                    out.bool(false); // no indirect calls, so no statistics of them
                }
            }
            _ => return Err(Failure::ProcUnavail),
        }
        Ok(())
    }
}

/// The host part for a wildcard registration: the caller's own view of our address, which
/// it passes in `r_addr` (libtirpc and the kernel send the address they reached rpcbind at),
/// when that is an address of the transport's family; otherwise the local address the call
/// arrived on. The caller's view is what it can reach, also through address translation.
fn server_ip(ctx: &CallContext, args: &Rpcb<'_>) -> IpAddr {
    parse_uaddr(args.addr, ctx.netid)
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or_else(|| ctx.local_ip())
}

/// Indirect calls are not forwarded.
fn indirect(ctx: &CallContext) -> Failure {
    if ctx.netid.is_stream() {
        Failure::ProcUnavail
    } else {
        Failure::NoReply
    }
}

/// A Linux `sockaddr_in` or `sockaddr_in6` for UADDR2TADDR.
fn sockaddr_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.extend_from_slice(&AF_INET.to_ne_bytes());
            out.extend_from_slice(&addr.port().to_be_bytes());
            out.extend_from_slice(&ip.octets());
            out.extend_from_slice(&[0; 8]);
        }
        IpAddr::V6(ip) => {
            out.extend_from_slice(&AF_INET6.to_ne_bytes());
            out.extend_from_slice(&addr.port().to_be_bytes());
            out.extend_from_slice(&[0; 4]); // flow information
            out.extend_from_slice(&ip.octets());
            out.extend_from_slice(&[0; 4]); // scope id
        }
    }
    out
}

/// The inverse of [`sockaddr_bytes`], for TADDR2UADDR.
fn parse_sockaddr(buf: &[u8], v6: bool) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*buf.first()?, *buf.get(1)?]);
    let port = u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]);
    if v6 {
        let octets: [u8; 16] = buf.get(8..24)?.try_into().ok()?;
        (family == AF_INET6).then(|| SocketAddr::new(IpAddr::from(octets), port))
    } else {
        let octets: [u8; 4] = buf.get(4..8)?.try_into().ok()?;
        (family == AF_INET).then(|| SocketAddr::new(IpAddr::from(octets), port))
    }
}

impl Program for Rpcbind {
    fn name(&self) -> &'static str {
        "rpcbind"
    }

    fn number(&self) -> u32 {
        PROGRAM
    }

    fn versions(&self, netid: Netid) -> (u32, u32) {
        if netid.is_v6() {
            (3, 4)
        } else {
            (2, 4)
        }
    }

    fn call(&self, ctx: &CallContext, call: &Call<'_>, out: &mut XdrWriter) -> Result<(), Failure> {
        if let Some(slot) = usize::try_from(call.proc_).ok().filter(|p| *p < STAT_PROCS) {
            self.count(call.vers, |s| {
                s.calls[slot] = s.calls[slot].saturating_add(1)
            });
        }
        if call.vers == 2 {
            self.pmap(ctx, call, out)
        } else {
            self.rpcb(ctx, call, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::message::client::{decode_reply, encode_call, Reply};
    use crate::rpc::message::{Accepted, Credential};
    use crate::rpc::service::Service;
    use crate::rpc::test_util::{be, rpcb, sample_registry, words, xdr_string};

    struct Rig {
        registry: Arc<Mutex<Registry>>,
        program: Arc<Rpcbind>,
        service: Service,
    }

    fn rig() -> Rig {
        let registry = Arc::new(Mutex::new(sample_registry()));
        let log = Arc::new(LogLimit);
        let program = Arc::new(Rpcbind::new(registry.clone(), log.clone()));
        let service = Service::new(program.clone(), log);
        Rig {
            registry,
            program,
            service,
        }
    }

    fn ctx(peer: &str, local: &str, netid: Netid) -> CallContext {
        CallContext {
            peer: peer.parse().unwrap(),
            local: local.parse().unwrap(),
            netid,
        }
    }

    fn remote_tcp() -> CallContext {
        ctx("10.0.3.7:1023", "10.0.3.1:111", Netid::Tcp)
    }

    fn local_udp() -> CallContext {
        ctx("127.0.0.1:900", "127.0.0.1:111", Netid::Udp)
    }

    impl Rig {
        fn registered(&self, prog: u32, vers: u32, netid: Netid) -> bool {
            let registry = self.registry.lock().unwrap();
            registry.lookup(prog, vers, netid, true).is_some()
        }

        /// The result bytes of a successful call.
        fn ok(&self, ctx: &CallContext, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
            let msg = encode_call(0x1234, PROGRAM, vers, proc_, &Credential::None, args);
            let reply = self.service.handle(&msg, ctx).expect("a reply");
            match decode_reply(&reply).unwrap() {
                (0x1234, Reply::Accepted(Accepted::Success, results)) => results,
                other => panic!("{other:?}"),
            }
        }

        fn status(&self, ctx: &CallContext, vers: u32, proc_: u32, args: &[u8]) -> Option<Reply> {
            let msg = encode_call(0x1234, PROGRAM, vers, proc_, &Credential::None, args);
            let reply = self.service.handle(&msg, ctx)?;
            Some(decode_reply(&reply).unwrap().1)
        }
    }

    /// An `rpcb` argument.
    #[test]
    fn pmap_getport_golden() {
        // The reply to rpcinfo's GETPORT of MOUNT v3 over TCP (prog, vers, IPPROTO_TCP, 0) is
        // the port; an unknown program gets 0.
        let rig = rig();
        let c = remote_tcp();
        assert_eq!(rig.ok(&c, 2, 3, &words(&[100_005, 3, 6, 0])), be(20048));
        assert_eq!(rig.ok(&c, 2, 3, &words(&[100_005, 3, 17, 0])), be(0));
        assert_eq!(rig.ok(&c, 2, 3, &words(&[100_021, 4, 6, 0])), be(0));
        // Another version on the same transport: the service will say what it serves.
        assert_eq!(rig.ok(&c, 2, 3, &words(&[100_005, 1, 6, 0])), be(20048));
        // Truncated arguments.
        assert_eq!(
            rig.status(&c, 2, 3, &words(&[100_005, 3, 6])),
            Some(Reply::Accepted(Accepted::GarbageArgs, vec![]))
        );
    }

    #[test]
    fn pmap_dump_golden() {
        let rig = rig();
        rig.registry
            .lock()
            .unwrap()
            .register(100_003, 4, Netid::Tcp6, 2049);
        let mut want = Vec::new();
        for (prog, vers, prot, port) in [
            (100_000, 2, 6, 111),
            (100_000, 2, 17, 111),
            (100_000, 3, 6, 111),
            (100_000, 3, 17, 111),
            (100_000, 4, 6, 111),
            (100_000, 4, 17, 111),
            (100_005, 3, 6, 20048),
            (100_003, 4, 6, 2049),
        ] {
            want.extend(words(&[1, prog, vers, prot, port]));
        }
        want.extend(be(0));
        // The tcp6 entry has no version 2 form.
        assert_eq!(rig.ok(&remote_tcp(), 2, 4, &[]), want);
    }

    #[test]
    fn getaddr_golden() {
        // rpcinfo -T tcp SERVER nfs 4: GETADDR (rpcb v4 proc 3) for 100003 v4; the netid in
        // the argument is ignored and the wildcard is answered with the address the caller
        // reached: 10.0.3.1 port 2049 = "10.0.3.1.8.1".
        let rig = rig();
        let args = rpcb(100_003, 4, "tcp", "10.0.3.1.0.111", "");
        assert_eq!(
            args,
            [
                words(&[100_003, 4, 3]),
                b"tcp\0".to_vec(),
                words(&[14]),
                b"10.0.3.1.0.111\0\0".to_vec(),
                words(&[0]),
            ]
            .concat()
        );
        for vers in [3, 4] {
            assert_eq!(
                rig.ok(&remote_tcp(), vers, 3, &args),
                xdr_string("10.0.3.1.8.1")
            );
        }
        // The caller's view of our address wins (a client behind address translation), and
        // without one the local address serves.
        let natted = rpcb(100_003, 4, "tcp", "127.0.0.1.39.18", "");
        assert_eq!(
            rig.ok(&remote_tcp(), 4, 3, &natted),
            xdr_string("127.0.0.1.8.1")
        );
        for hint in ["", "0.0.0.0.0.111", "::1.0.111", "garbage"] {
            let a = rpcb(100_003, 4, "tcp", hint, "");
            assert_eq!(
                rig.ok(&remote_tcp(), 4, 3, &a),
                xdr_string("10.0.3.1.8.1"),
                "{hint}"
            );
        }
        // Over UDP nfs is not registered: "".
        let udp = ctx("10.0.3.7:1023", "10.0.3.1:111", Netid::Udp);
        assert_eq!(rig.ok(&udp, 4, 3, &args), be(0));
        // GETVERSADDR wants the exact version; GETADDR falls back to another.
        let v3 = rpcb(100_003, 3, "tcp", "", "");
        assert_eq!(rig.ok(&remote_tcp(), 4, 3, &v3), xdr_string("10.0.3.1.8.1"));
        assert_eq!(rig.ok(&remote_tcp(), 4, 9, &v3), be(0));
        assert_eq!(
            rig.ok(&remote_tcp(), 4, 9, &args),
            xdr_string("10.0.3.1.8.1")
        );
    }

    #[test]
    fn rpcb_dump_golden() {
        let rig = rig();
        rig.registry.lock().unwrap().unregister(PROGRAM, 2, None);
        rig.registry.lock().unwrap().unregister(PROGRAM, 3, None);
        let mut want = Vec::new();
        for (prog, vers, netid, addr) in [
            (100_000, 4, "tcp", "0.0.0.0.0.111"),
            (100_000, 4, "udp", "0.0.0.0.0.111"),
            (100_005, 3, "tcp", "0.0.0.0.78.80"),
            (100_003, 4, "tcp", "0.0.0.0.8.1"),
        ] {
            want.extend(words(&[1, prog, vers]));
            want.extend(xdr_string(netid));
            want.extend(xdr_string(addr));
            want.extend(xdr_string("superuser"));
        }
        want.extend(be(0));
        assert_eq!(rig.ok(&remote_tcp(), 3, 4, &[]), want);
        assert_eq!(rig.ok(&remote_tcp(), 4, 4, &[]), want);
    }

    #[test]
    fn set_and_unset_only_from_loopback() {
        let rig = rig();
        let nlm = rpcb(100_021, 4, "udp", "0.0.0.0.3.232", "");
        // From the network: FALSE, nothing changes.
        let remote = ctx("10.0.3.7:700", "10.0.3.1:111", Netid::Udp);
        assert_eq!(rig.ok(&remote, 4, 1, &nlm), be(0));
        assert_eq!(
            rig.ok(&remote, 2, 1, &words(&[100_021, 4, 17, 1000])),
            be(0)
        );
        assert!(!rig.registered(100_021, 4, Netid::Udp));
        // From loopback: TRUE, and GETADDR finds it (port 1000 = 3.232).
        assert_eq!(rig.ok(&local_udp(), 4, 1, &nlm), be(1));
        assert_eq!(rig.ok(&local_udp(), 4, 1, &nlm), be(0), "taken");
        assert_eq!(
            rig.ok(&local_udp(), 4, 3, &nlm),
            xdr_string("127.0.0.1.3.232")
        );
        // The remote caller cannot remove it; the local one can, with an empty netid.
        assert_eq!(rig.ok(&remote, 4, 2, &rpcb(100_021, 4, "", "", "")), be(0));
        assert_eq!(
            rig.ok(&local_udp(), 4, 2, &rpcb(100_021, 4, "", "", "")),
            be(1)
        );
        assert_eq!(rig.ok(&local_udp(), 4, 3, &nlm), be(0));
        // The kernel's UNSET of nfs when nfsd starts leaves the init's entry alone.
        assert_eq!(
            rig.ok(&local_udp(), 4, 2, &rpcb(100_003, 4, "", "", "")),
            be(0)
        );
        assert!(rig.registered(100_003, 4, Netid::Tcp));
        // Version 2 SET and UNSET from loopback.
        assert_eq!(
            rig.ok(&local_udp(), 2, 1, &words(&[100_021, 1, 6, 4045])),
            be(1)
        );
        assert_eq!(
            rig.ok(&local_udp(), 2, 3, &words(&[100_021, 1, 6, 0])),
            be(4045)
        );
        assert_eq!(
            rig.ok(&local_udp(), 2, 2, &words(&[100_021, 1, 0, 0])),
            be(1)
        );
        assert_eq!(
            rig.ok(&local_udp(), 2, 3, &words(&[100_021, 1, 6, 0])),
            be(0)
        );
        // Bad netids and addresses are refused.
        for bad in [
            rpcb(100_021, 4, "local", "/run/x", ""),
            rpcb(100_021, 4, "tcp", "::1.0.1", ""),
            rpcb(100_021, 4, "tcp6", "1.2.3.4.0.1", ""),
        ] {
            assert_eq!(rig.ok(&local_udp(), 4, 1, &bad), be(0));
        }
        assert_eq!(
            rig.ok(&local_udp(), 2, 1, &words(&[100_021, 1, 6, 70_000])),
            be(0)
        );
    }

    #[test]
    fn getstat_golden() {
        let rig = rig();
        let c = local_udp();
        rig.ok(&c, 2, 3, &words(&[100_005, 3, 6, 0])); // found
        rig.ok(&c, 2, 3, &words(&[100_021, 1, 17, 0])); // not found
        rig.ok(&c, 4, 3, &rpcb(100_003, 4, "", "", "")); // not on udp
        rig.ok(&c, 4, 1, &rpcb(100_021, 4, "udp", "0.0.0.0.3.232", "")); // set
        rig.ok(&c, 3, 2, &rpcb(100_021, 9, "", "", "")); // nothing to unset
        let stat = rig.ok(&c, 4, 12, &[]);
        let calls = |counted: &[(usize, u32)]| {
            let mut calls = [0u32; STAT_PROCS];
            for (proc_, n) in counted {
                calls[*proc_] = *n;
            }
            words(&calls)
        };
        let lookup = |prog, vers, success, failure, netid| {
            let mut l = words(&[1, prog, vers, success, failure]);
            l.extend(xdr_string(netid));
            l
        };
        let mut want = calls(&[(3, 2)]);
        want.extend(words(&[0, 0])); // SETs, UNSETs
        want.extend(lookup(100_005, 3, 1, 0, "tcp"));
        want.extend(lookup(100_021, 1, 0, 1, "udp"));
        want.extend(words(&[0, 0])); // end of lookups, no indirect calls
        want.extend(calls(&[(2, 1)]));
        want.extend(words(&[0, 0, 0, 0]));
        want.extend(calls(&[(1, 1), (3, 1), (12, 1)]));
        want.extend(words(&[1, 0]));
        want.extend(lookup(100_003, 4, 0, 1, "udp"));
        want.extend(words(&[0, 0]));
        assert_eq!(stat, want);
    }

    #[test]
    fn lookup_statistics_are_bounded() {
        let rig = rig();
        let c = local_udp();
        for prog in 0..100 {
            rig.ok(&c, 3, 3, &rpcb(500_000 + prog, 1, "", "", ""));
        }
        let stats = rig.program.stats.lock().unwrap().clone();
        assert_eq!(stats[1].lookups.len(), MAX_ADDR_STATS);
        assert_eq!(stats[1].calls[3], 100);
    }

    #[test]
    fn getaddrlist_golden() {
        let rig = rig();
        rig.registry
            .lock()
            .unwrap()
            .register(100_003, 4, Netid::Udp, 2049);
        rig.registry
            .lock()
            .unwrap()
            .register(100_003, 4, Netid::Tcp6, 2049);
        let mut want = Vec::new();
        for (netid, semantics) in [("tcp", 3), ("udp", 1)] {
            want.extend(be(1));
            want.extend(xdr_string("10.0.3.1.8.1"));
            want.extend(xdr_string(netid));
            want.extend(be(semantics));
            want.extend(xdr_string("inet"));
            want.extend(xdr_string(netid));
        }
        want.extend(be(0));
        assert_eq!(
            rig.ok(&remote_tcp(), 4, 11, &rpcb(100_003, 4, "", "", "")),
            want
        );
        // Over IPv6 only the IPv6 entry, with the local IPv6 address.
        let v6 = ctx("[fd00::7]:700", "[fd00::1]:111", Netid::Tcp6);
        let mut want = be(1).to_vec();
        want.extend(xdr_string("fd00::1.8.1"));
        want.extend(xdr_string("tcp6"));
        want.extend(be(3));
        want.extend(xdr_string("inet6"));
        want.extend(xdr_string("tcp"));
        want.extend(be(0));
        assert_eq!(rig.ok(&v6, 4, 11, &rpcb(100_003, 4, "", "", "")), want);
    }

    #[test]
    fn address_translation_golden() {
        let rig = rig();
        // UADDR2TADDR "10.0.3.1.8.1" over tcp: a netbuf of 16 bytes holding sockaddr_in.
        let mut sin = AF_INET.to_ne_bytes().to_vec();
        sin.extend([8, 1, 10, 0, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut want = words(&[16, 16]);
        want.extend(&sin);
        assert_eq!(
            rig.ok(&remote_tcp(), 3, 7, &xdr_string("10.0.3.1.8.1")),
            want
        );
        // And back.
        let mut netbuf = words(&[16, 16]);
        netbuf.extend(&sin);
        assert_eq!(
            rig.ok(&remote_tcp(), 4, 8, &netbuf),
            xdr_string("10.0.3.1.8.1")
        );
        // Garbage either way gives the empty answer.
        assert_eq!(
            rig.ok(&remote_tcp(), 3, 7, &xdr_string("nonsense")),
            words(&[0, 0])
        );
        assert_eq!(rig.ok(&remote_tcp(), 3, 8, &words(&[4, 4, 0])), be(0));
        // IPv6.
        let v6 = ctx("[fd00::7]:700", "[fd00::1]:111", Netid::Udp6);
        let taddr = rig.ok(&v6, 4, 7, &xdr_string("fd00::1.0.111"));
        assert_eq!(&taddr[..8], &words(&[28, 28])[..]);
        assert_eq!(&taddr[10..12], &[0, 111]);
        assert_eq!(rig.ok(&v6, 4, 8, &taddr), xdr_string("fd00::1.0.111"));
    }

    #[test]
    fn versions_procedures_and_indirect_calls() {
        let rig = rig();
        // Version 2 is IPv4 only.
        let v6 = ctx("[::1]:700", "[::1]:111", Netid::Tcp6);
        assert_eq!(
            rig.status(&v6, 2, 0, &[]),
            Some(Reply::Accepted(
                Accepted::ProgMismatch { low: 3, high: 4 },
                vec![]
            ))
        );
        assert_eq!(
            rig.status(&remote_tcp(), 5, 0, &[]),
            Some(Reply::Accepted(
                Accepted::ProgMismatch { low: 2, high: 4 },
                vec![]
            ))
        );
        // GETVERSADDR, INDIRECT, GETADDRLIST and GETSTAT are version 4's.
        for proc_ in [9, 10, 11, 12, 13] {
            assert_eq!(
                rig.status(&remote_tcp(), 3, proc_, &[]),
                Some(Reply::Accepted(Accepted::ProcUnavail, vec![])),
                "{proc_}"
            );
        }
        // CALLIT: silence over UDP, PROC_UNAVAIL over TCP.
        let udp = ctx("10.0.3.7:700", "10.0.3.1:111", Netid::Udp);
        assert_eq!(rig.status(&udp, 2, 5, &words(&[100_005, 3, 0, 0])), None);
        assert_eq!(rig.status(&udp, 4, 5, &[]), None);
        assert_eq!(
            rig.status(&remote_tcp(), 2, 5, &[]),
            Some(Reply::Accepted(Accepted::ProcUnavail, vec![]))
        );
        // GETTIME is near our clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t = rig.ok(&remote_tcp(), 3, 6, &[]);
        let t = u64::from(u32::from_be_bytes(t.try_into().unwrap()));
        assert!(t.abs_diff(now) < 5);
    }
}
