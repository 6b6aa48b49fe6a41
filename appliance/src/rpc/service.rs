//! One RPC service: the request handler that turns a received message into the reply to send
//! (or none), whatever the message holds.
//!
//! [`Service::handle`] decodes the call ([`super::message`]), refuses what the header alone
//! condemns (RPC_MISMATCH, AUTH_ERROR, PROG_UNAVAIL, PROG_MISMATCH), hands the rest to its
//! [`Program`] and turns the program's failures into PROC_UNAVAIL, GARBAGE_ARGS or SYSTEM_ERR.
//! A panic inside a program is caught and answered with SYSTEM_ERR, and a reply that does not
//! fit the transport also becomes SYSTEM_ERR. Problems caused by peers are logged through a
//! rate limit ([`LogLimit`]) so a flood of bad packets cannot flood the kernel log. Sockets
//! and threads live in `server.rs`; this file knows nothing of them, which is what lets the
//! fuzz test drive it directly.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use super::message::{
    accepted_reply, decode_call, denied_reply, Accepted, Call, CallError, ACCEPTED_HEADER_LEN,
};
use super::registry::Netid;
use super::xdr::{XdrError, XdrWriter};

/// The largest reply sent over TCP.
pub const MAX_TCP_REPLY: usize = 1 << 20;
/// The largest reply sent over UDP: what fits an IPv4 datagram.
pub const MAX_UDP_REPLY: usize = 65_507;

/// Where a call came from and on what it arrived.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub peer: SocketAddr,
    /// The local address the call arrived on; for a UDP socket bound to a wildcard address
    /// this is the wildcard (see [`CallContext::local_ip`]).
    pub local: SocketAddr,
    pub netid: Netid,
}

impl CallContext {
    /// Whether the caller is on this machine (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).
    pub fn peer_is_loopback(&self) -> bool {
        match self.peer.ip() {
            IpAddr::V4(ip) => ip.is_loopback(),
            IpAddr::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }

    /// The local address the caller reached us on, to fill wildcard registrations with. For a
    /// wildcard-bound UDP socket it is the source address the kernel picks to answer the
    /// caller (found by connecting a throwaway UDP socket, which sends nothing); if even that
    /// fails, the wildcard itself.
    pub fn local_ip(&self) -> IpAddr {
        let bound = self.local.ip();
        if !bound.is_unspecified() {
            return bound;
        }
        let probe = UdpSocket::bind(SocketAddr::new(bound, 0))
            .and_then(|s| s.connect(self.peer).map(|()| s))
            .and_then(|s| s.local_addr());
        match probe {
            Ok(addr) => addr.ip(),
            Err(e) => {
                log::debug!("no source address towards {}: {e}", self.peer);
                bound
            }
        }
    }

    /// The largest reply this transport carries.
    pub fn reply_limit(&self) -> usize {
        if self.netid.is_stream() {
            MAX_TCP_REPLY
        } else {
            MAX_UDP_REPLY
        }
    }
}

/// How a procedure failed.
#[derive(Debug)]
pub enum Failure {
    /// No such procedure in this version.
    ProcUnavail,
    /// The arguments did not decode.
    GarbageArgs(XdrError),
    /// The procedure sends no reply (portmapper CALLIT over UDP).
    NoReply,
}

impl From<XdrError> for Failure {
    fn from(e: XdrError) -> Self {
        Failure::GarbageArgs(e)
    }
}

/// An RPC program: its number, the versions it serves and its procedures.
pub trait Program: Send + Sync {
    /// The name for log lines ("rpcbind", "mountd").
    fn name(&self) -> &'static str;
    fn number(&self) -> u32;
    /// The lowest and highest version served on `netid`.
    fn versions(&self, netid: Netid) -> (u32, u32);
    /// Whether `vers` is served on `netid`; by default every version in the range.
    fn serves(&self, vers: u32, netid: Netid) -> bool {
        let (low, high) = self.versions(netid);
        (low..=high).contains(&vers)
    }
    /// Runs a procedure, writing its results to `out`.
    fn call(&self, ctx: &CallContext, call: &Call<'_>, out: &mut XdrWriter) -> Result<(), Failure>;
}

/// The log lines caused by peers' bad requests, limited as every peer-triggered line is
/// ([`crate::peer_log!`]): a burst, then one line saying how many were left out.
#[derive(Debug, Default)]
pub struct LogLimit;

impl LogLimit {
    /// Logs `line()` at `level` unless this window's burst of bad-request lines is spent.
    pub fn log(&self, level: log::Level, line: impl FnOnce() -> String) {
        crate::peer_log!(level, "rpc: bad requests", "{}", line());
    }
}

/// A program behind the RPC header checks.
pub struct Service {
    program: Arc<dyn Program>,
    log: Arc<LogLimit>,
}

impl Service {
    pub fn new(program: Arc<dyn Program>, log: Arc<LogLimit>) -> Self {
        Self { program, log }
    }

    pub fn name(&self) -> &'static str {
        self.program.name()
    }

    /// The reply to `msg` (without record marking), or `None` when nothing is to be sent.
    pub fn handle(&self, msg: &[u8], ctx: &CallContext) -> Option<Vec<u8>> {
        let name = self.program.name();
        let call = match decode_call(msg) {
            Ok(call) => call,
            Err(CallError::Drop(why)) => {
                self.log.log(log::Level::Warn, || {
                    format!("{name}: dropped a message from {}: {why}", ctx.peer)
                });
                return None;
            }
            Err(CallError::Denied { xid, denied, why }) => {
                self.log.log(log::Level::Warn, || {
                    format!("{name}: refused a call from {}: {why}", ctx.peer)
                });
                return Some(denied_reply(xid, denied));
            }
        };
        let xid = call.xid;
        if call.prog != self.program.number() {
            log::debug!(
                "{name}: program {} is not served here ({})",
                call.prog,
                ctx.peer
            );
            return Some(accepted_reply(xid, Accepted::ProgUnavail, &[]));
        }
        if !self.program.serves(call.vers, ctx.netid) {
            let (low, high) = self.program.versions(ctx.netid);
            log::debug!("{name}: version {} is not served ({})", call.vers, ctx.peer);
            return Some(accepted_reply(
                xid,
                Accepted::ProgMismatch { low, high },
                &[],
            ));
        }
        let mut out = XdrWriter::new(ctx.reply_limit() - ACCEPTED_HEADER_LEN);
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.program.call(ctx, &call, &mut out)));
        let status = match result {
            Ok(Ok(())) => match out.finish() {
                Ok(results) => return Some(accepted_reply(xid, Accepted::Success, &results)),
                Err(e) => {
                    log::error!(
                        "{name}: the reply to procedure {} of version {} for {} is too large \
                         for {}: {e}",
                        call.proc_,
                        call.vers,
                        ctx.peer,
                        ctx.netid.as_str()
                    );
                    Accepted::SystemErr
                }
            },
            Ok(Err(Failure::ProcUnavail)) => {
                log::debug!(
                    "{name}: no procedure {} in version {}",
                    call.proc_,
                    call.vers
                );
                Accepted::ProcUnavail
            }
            Ok(Err(Failure::GarbageArgs(e))) => {
                self.log.log(log::Level::Warn, || {
                    format!(
                        "{name}: bad arguments to procedure {} of version {} from {}: {e}",
                        call.proc_, call.vers, ctx.peer
                    )
                });
                Accepted::GarbageArgs
            }
            Ok(Err(Failure::NoReply)) => return None,
            Err(_) => {
                log::error!(
                    "{name}: internal error (panic) in procedure {} of version {}; answered \
                     SYSTEM_ERR",
                    call.proc_,
                    call.vers
                );
                Accepted::SystemErr
            }
        };
        Some(accepted_reply(xid, status, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::message::client::{decode_reply, encode_call, Reply};
    use crate::rpc::message::Credential;
    use crate::rpc::test_util::{be, words};

    /// A program that echoes its argument word, serves versions 1 and 3 and panics on
    /// procedure 9.
    struct Echo;

    impl Program for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn number(&self) -> u32 {
            400_000
        }
        fn versions(&self, _: Netid) -> (u32, u32) {
            (1, 3)
        }
        fn serves(&self, vers: u32, _: Netid) -> bool {
            vers == 1 || vers == 3
        }
        fn call(
            &self,
            _: &CallContext,
            call: &Call<'_>,
            out: &mut XdrWriter,
        ) -> Result<(), Failure> {
            match call.proc_ {
                0 => Ok(()),
                1 => {
                    let v = crate::rpc::xdr::XdrReader::new(call.args).u32()?;
                    out.u32(v);
                    Ok(())
                }
                2 => {
                    for _ in 0..MAX_UDP_REPLY {
                        out.u32(0);
                    }
                    Ok(())
                }
                9 => panic!("boom"),
                _ => Err(Failure::ProcUnavail),
            }
        }
    }

    fn ctx(netid: Netid) -> CallContext {
        CallContext {
            peer: "10.0.3.7:800".parse().unwrap(),
            local: "10.0.3.1:111".parse().unwrap(),
            netid,
        }
    }

    fn ask(prog: u32, vers: u32, proc_: u32, args: &[u8], netid: Netid) -> Reply {
        let service = Service::new(Arc::new(Echo), Arc::default());
        let msg = encode_call(42, prog, vers, proc_, &Credential::None, args);
        let reply = service.handle(&msg, &ctx(netid)).expect("a reply");
        let (xid, reply) = decode_reply(&reply).unwrap();
        assert_eq!(xid, 42);
        reply
    }

    #[test]
    fn dispatch_outcomes() {
        let tcp = Netid::Tcp;
        assert_eq!(
            ask(400_000, 1, 1, &be(77), tcp),
            Reply::Accepted(Accepted::Success, be(77).to_vec())
        );
        assert_eq!(
            ask(400_001, 1, 0, &[], tcp),
            Reply::Accepted(Accepted::ProgUnavail, vec![])
        );
        assert_eq!(
            ask(400_000, 2, 0, &[], tcp),
            Reply::Accepted(Accepted::ProgMismatch { low: 1, high: 3 }, vec![])
        );
        assert_eq!(
            ask(400_000, 3, 5, &[], tcp),
            Reply::Accepted(Accepted::ProcUnavail, vec![])
        );
        assert_eq!(
            ask(400_000, 3, 1, &[0, 0], tcp),
            Reply::Accepted(Accepted::GarbageArgs, vec![])
        );
        // A panic and an oversized reply become SYSTEM_ERR; TCP carries what UDP cannot.
        assert_eq!(
            ask(400_000, 3, 9, &[], tcp),
            Reply::Accepted(Accepted::SystemErr, vec![])
        );
        assert_eq!(
            ask(400_000, 3, 2, &[], Netid::Udp),
            Reply::Accepted(Accepted::SystemErr, vec![])
        );
        assert!(matches!(
            ask(400_000, 3, 2, &[], tcp),
            Reply::Accepted(Accepted::Success, r) if r.len() == 4 * MAX_UDP_REPLY
        ));
    }

    #[test]
    fn header_refusals_and_drops() {
        let service = Service::new(Arc::new(Echo), Arc::default());
        let c = ctx(Netid::Udp);
        // RPC version 1: RPC_MISMATCH.
        let reply = service.handle(&words(&[5, 0, 1, 400_000, 1, 0, 0, 0, 0, 0]), &c);
        assert_eq!(reply, Some(words(&[5, 1, 1, 0, 2, 2])));
        // A reply message, and garbage: nothing.
        assert_eq!(service.handle(&words(&[5, 1, 0, 0, 0, 0, 0]), &c), None);
        assert_eq!(service.handle(b"GET / HTTP/1.0\r\n\r\n", &c), None);
    }

    #[test]
    fn loopback_peers() {
        let mut c = ctx(Netid::Tcp);
        assert!(!c.peer_is_loopback());
        for peer in [
            "127.0.0.1:700",
            "127.8.9.1:700",
            "[::1]:700",
            "[::ffff:127.0.0.1]:700",
        ] {
            c.peer = peer.parse().unwrap();
            assert!(c.peer_is_loopback(), "{peer}");
        }
        c.peer = "[::ffff:10.0.0.1]:700".parse().unwrap();
        assert!(!c.peer_is_loopback());
    }

    #[test]
    fn wildcard_udp_finds_its_source_address() {
        let c = CallContext {
            peer: "127.0.0.1:700".parse().unwrap(),
            local: "0.0.0.0:111".parse().unwrap(),
            netid: Netid::Udp,
        };
        assert_eq!(c.local_ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
