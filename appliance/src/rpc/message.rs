//! ONC RPC version 2 messages (RFC 5531 section 9): decoding calls, with their AUTH_NONE or
//! AUTH_SYS credentials, and encoding accepted and denied replies.
//!
//! A call is decoded as far as it needs to be to answer it. A message too short to carry a
//! call header, or one that is not a call, is dropped without a reply ([`CallError::Drop`]):
//! there is nothing meaningful to answer, and answering garbage invites reflection. A call
//! whose RPC version is not 2 gets RPC_MISMATCH, and one whose credential cannot be accepted
//! gets AUTH_ERROR ([`CallError::Denied`]), because the transaction id is known by then. The
//! procedure's arguments stay undecoded bytes for the program (see [`super::service`]).
//! Credentials and verifiers are bounded by the RFC's 400 bytes, AUTH_SYS machine names by
//! 255 bytes and their group lists by 16 entries; the AUTH_SYS fields are parsed and kept for
//! logging but grant nothing: every procedure served here is either public or restricted by
//! the caller's address.

use super::xdr::{XdrError, XdrReader, XdrWriter};

pub const RPC_VERSION: u32 = 2;

const CALL: u32 = 0;
const REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;

/// Authentication flavors (RFC 5531 section 8.2 and the IANA registry).
pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;

/// The most bytes a credential or verifier body may have.
pub const MAX_AUTH_BYTES: u32 = 400;
/// AUTH_SYS limits (RFC 5531 appendix A).
pub const MAX_MACHINE_NAME: u32 = 255;
pub const MAX_AUTH_SYS_GIDS: usize = 16;

/// The bytes before an accepted reply's results: xid, REPLY, MSG_ACCEPTED, an AUTH_NONE
/// verifier (flavor and empty body) and the accept status.
pub const ACCEPTED_HEADER_LEN: usize = 24;

/// An AUTH_SYS credential (RFC 5531 appendix A).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSys {
    pub stamp: u32,
    pub machine: String,
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

/// The credential a call carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    Sys(AuthSys),
}

/// A decoded call: the header and the undecoded arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'a> {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub credential: Credential,
    pub args: &'a [u8],
}

/// Why a call is refused before any program sees it (RFC 5531 `reject_stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The RPC version is not 2; the reply names the range we speak (2 to 2).
    RpcMismatch,
    /// The credential or verifier cannot be accepted.
    Auth(AuthStat),
}

/// Authentication failures (RFC 5531 `auth_stat`), the ones this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStat {
    /// A malformed credential (bad AUTH_SYS body, body over 400 bytes).
    BadCred = 1,
    /// A credential flavor this server does not accept.
    RejectedCred = 2,
    /// A malformed verifier.
    BadVerf = 3,
}

/// Why a message gets no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("too short for a call header: {0}")]
    Short(XdrError),
    #[error("a reply message, not a call")]
    NotACall,
    #[error("message type {0} is neither CALL nor REPLY")]
    BadMessageType(u32),
}

/// A call that cannot be handed to a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("dropped: {0}")]
    Drop(DropReason),
    #[error("call {xid:#010x} denied ({denied:?}): {why}")]
    Denied {
        xid: u32,
        denied: Denied,
        why: String,
    },
}

/// The outcome of an accepted call (RFC 5531 `accept_stat`); the results of a success follow
/// the header separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Success,
    ProgUnavail,
    ProgMismatch { low: u32, high: u32 },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
}

impl Accepted {
    fn code(self) -> u32 {
        match self {
            Accepted::Success => 0,
            Accepted::ProgUnavail => 1,
            Accepted::ProgMismatch { .. } => 2,
            Accepted::ProcUnavail => 3,
            Accepted::GarbageArgs => 4,
            Accepted::SystemErr => 5,
        }
    }
}

/// Decodes a call message (without TCP record marking).
pub fn decode_call(msg: &[u8]) -> Result<Call<'_>, CallError> {
    let short = |e| CallError::Drop(DropReason::Short(e));
    let mut r = XdrReader::new(msg);
    let xid = r.u32().map_err(short)?;
    match r.u32().map_err(short)? {
        CALL => {}
        REPLY => return Err(CallError::Drop(DropReason::NotACall)),
        other => return Err(CallError::Drop(DropReason::BadMessageType(other))),
    }
    let denied = |denied, why: String| CallError::Denied { xid, denied, why };
    let rpcvers = r.u32().map_err(short)?;
    if rpcvers != RPC_VERSION {
        return Err(denied(
            Denied::RpcMismatch,
            format!("RPC version {rpcvers}, only {RPC_VERSION} is spoken"),
        ));
    }
    let prog = r.u32().map_err(short)?;
    let vers = r.u32().map_err(short)?;
    let proc_ = r.u32().map_err(short)?;
    let (flavor, body) = auth_field(&mut r).map_err(|e| match e {
        e @ XdrError::TooLong { .. } => denied(Denied::Auth(AuthStat::BadCred), e.to_string()),
        e => short(e),
    })?;
    // The verifier is read to find the arguments; AUTH_NONE and AUTH_SYS calls carry an
    // AUTH_NONE verifier, and like the reference servers we do not check its flavor.
    auth_field(&mut r).map_err(|e| match e {
        e @ XdrError::TooLong { .. } => denied(Denied::Auth(AuthStat::BadVerf), e.to_string()),
        e => short(e),
    })?;
    let credential = match flavor {
        AUTH_NONE => Credential::None,
        AUTH_SYS => Credential::Sys(decode_auth_sys(body).map_err(|e| {
            denied(
                Denied::Auth(AuthStat::BadCred),
                format!("AUTH_SYS credential: {e}"),
            )
        })?),
        other => {
            return Err(denied(
                Denied::Auth(AuthStat::RejectedCred),
                format!("credential flavor {other}; only AUTH_NONE and AUTH_SYS are accepted"),
            ))
        }
    };
    Ok(Call {
        xid,
        prog,
        vers,
        proc_,
        credential,
        args: r.rest(),
    })
}

/// An `opaque_auth`: the flavor and a body of at most 400 bytes.
fn auth_field<'a>(r: &mut XdrReader<'a>) -> Result<(u32, &'a [u8]), XdrError> {
    let flavor = r.u32()?;
    let body = r.opaque(MAX_AUTH_BYTES)?;
    Ok((flavor, body))
}

/// The body of an AUTH_SYS credential. Bytes after the group list are tolerated, as the
/// reference implementations do.
pub fn decode_auth_sys(body: &[u8]) -> Result<AuthSys, XdrError> {
    let mut r = XdrReader::new(body);
    let stamp = r.u32()?;
    let machine = r.string(MAX_MACHINE_NAME)?.to_string();
    let uid = r.u32()?;
    let gid = r.u32()?;
    let at = r.position();
    let count = r.u32()?;
    if count as usize > MAX_AUTH_SYS_GIDS {
        return Err(XdrError::TooManyEntries {
            at,
            max: MAX_AUTH_SYS_GIDS,
        });
    }
    let gids = (0..count).map(|_| r.u32()).collect::<Result<Vec<_>, _>>()?;
    Ok(AuthSys {
        stamp,
        machine,
        uid,
        gid,
        gids,
    })
}

/// The header of an accepted reply, with an AUTH_NONE verifier.
fn accepted_header(w: &mut XdrWriter, xid: u32, status: Accepted) {
    w.u32(xid);
    w.u32(REPLY);
    w.u32(MSG_ACCEPTED);
    w.u32(AUTH_NONE);
    w.u32(0);
    w.u32(status.code());
    if let Accepted::ProgMismatch { low, high } = status {
        w.u32(low);
        w.u32(high);
    }
}

/// An accepted reply; `results` (already XDR) follow a SUCCESS status and are ignored for the
/// others.
pub fn accepted_reply(xid: u32, status: Accepted, results: &[u8]) -> Vec<u8> {
    let mut w = XdrWriter::new(usize::MAX);
    accepted_header(&mut w, xid, status);
    if status == Accepted::Success {
        w.raw(results);
    }
    w.finish().unwrap_or_default()
}

/// A denied reply.
pub fn denied_reply(xid: u32, denied: Denied) -> Vec<u8> {
    let mut w = XdrWriter::new(64);
    w.u32(xid);
    w.u32(REPLY);
    w.u32(MSG_DENIED);
    match denied {
        Denied::RpcMismatch => {
            w.u32(0);
            w.u32(RPC_VERSION);
            w.u32(RPC_VERSION);
        }
        Denied::Auth(stat) => {
            w.u32(1);
            w.u32(stat as u32);
        }
    }
    w.finish().unwrap_or_default()
}

/// Client-side helpers for the tests: encoding calls and decoding replies.
#[cfg(test)]
pub mod client {
    use super::*;

    /// A reply as a client sees it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Reply {
        Accepted(Accepted, Vec<u8>),
        Denied(Denied),
        /// AUTH_ERROR with a status this server never sends.
        OtherAuth(u32),
    }

    pub fn encode_call(
        xid: u32,
        prog: u32,
        vers: u32,
        proc_: u32,
        cred: &Credential,
        args: &[u8],
    ) -> Vec<u8> {
        let mut w = XdrWriter::new(usize::MAX);
        for word in [xid, CALL, RPC_VERSION, prog, vers, proc_] {
            w.u32(word);
        }
        match cred {
            Credential::None => {
                w.u32(AUTH_NONE);
                w.u32(0);
            }
            Credential::Sys(sys) => {
                let mut body = XdrWriter::new(usize::MAX);
                body.u32(sys.stamp);
                body.string(&sys.machine);
                body.u32(sys.uid);
                body.u32(sys.gid);
                body.u32(sys.gids.len() as u32);
                for g in &sys.gids {
                    body.u32(*g);
                }
                w.u32(AUTH_SYS);
                w.opaque(&body.finish().unwrap());
            }
        }
        w.u32(AUTH_NONE);
        w.u32(0);
        w.raw(args);
        w.finish().unwrap()
    }

    pub fn decode_reply(msg: &[u8]) -> Result<(u32, Reply), XdrError> {
        let mut r = XdrReader::new(msg);
        let xid = r.u32()?;
        assert_eq!(r.u32()?, REPLY, "not a reply");
        let reply = match r.u32()? {
            MSG_ACCEPTED => {
                let _flavor = r.u32()?;
                let _body = r.opaque(MAX_AUTH_BYTES)?;
                let status = match r.u32()? {
                    0 => Accepted::Success,
                    1 => Accepted::ProgUnavail,
                    2 => Accepted::ProgMismatch {
                        low: r.u32()?,
                        high: r.u32()?,
                    },
                    3 => Accepted::ProcUnavail,
                    4 => Accepted::GarbageArgs,
                    5 => Accepted::SystemErr,
                    other => panic!("accept_stat {other}"),
                };
                Reply::Accepted(status, r.rest().to_vec())
            }
            MSG_DENIED => match r.u32()? {
                0 => {
                    assert_eq!((r.u32()?, r.u32()?), (2, 2));
                    Reply::Denied(Denied::RpcMismatch)
                }
                1 => match r.u32()? {
                    1 => Reply::Denied(Denied::Auth(AuthStat::BadCred)),
                    2 => Reply::Denied(Denied::Auth(AuthStat::RejectedCred)),
                    3 => Reply::Denied(Denied::Auth(AuthStat::BadVerf)),
                    other => Reply::OtherAuth(other),
                },
                other => panic!("reject_stat {other}"),
            },
            other => panic!("reply_stat {other}"),
        };
        Ok((xid, reply))
    }
}

#[cfg(test)]
mod tests {
    use super::client::*;
    use super::*;
    use crate::rpc::test_util::{be, words};

    /// showmount's EXPORT call as glibc/libtirpc sends it: MOUNT (100005) version 1 procedure
    /// 5 with an AUTH_SYS credential (stamp, machine "nas-client", uid 0, gid 0, one group 0),
    /// an AUTH_NONE verifier and no arguments.
    fn showmount_export_call() -> Vec<u8> {
        let mut m = words(&[0x5eed_0001, 0, 2, 100_005, 1, 5]);
        m.extend(words(&[1, 36])); // AUTH_SYS, body length 36
        m.extend(words(&[0x6543_2100, 10])); // stamp, machine name length
        m.extend(b"nas-client\0\0"); // the name and two bytes of padding
        m.extend(words(&[0, 0, 1, 0])); // uid, gid, one group: 0
        m.extend(words(&[0, 0])); // AUTH_NONE verifier
        m
    }

    #[test]
    fn decodes_an_auth_sys_call() {
        let bytes = showmount_export_call();
        let call = decode_call(&bytes).unwrap();
        assert_eq!(
            call,
            Call {
                xid: 0x5eed_0001,
                prog: 100_005,
                vers: 1,
                proc_: 5,
                credential: Credential::Sys(AuthSys {
                    stamp: 0x6543_2100,
                    machine: "nas-client".into(),
                    uid: 0,
                    gid: 0,
                    gids: vec![0],
                }),
                args: &[],
            }
        );
        // The test encoder writes the same bytes.
        assert_eq!(
            encode_call(0x5eed_0001, 100_005, 1, 5, &call.credential, &[]),
            bytes
        );
    }

    #[test]
    fn decodes_an_auth_none_call_with_arguments() {
        // rpcinfo's PMAPPROC_GETPORT for MOUNT v3 over TCP: prog, vers, prot, port.
        let mut bytes = words(&[7, 0, 2, 100_000, 2, 3, 0, 0, 0, 0]);
        bytes.extend(words(&[100_005, 3, 6, 0]));
        let call = decode_call(&bytes).unwrap();
        assert_eq!((call.prog, call.vers, call.proc_), (100_000, 2, 3));
        assert_eq!(call.credential, Credential::None);
        assert_eq!(call.args, &words(&[100_005, 3, 6, 0])[..]);
    }

    #[test]
    fn refusals_keep_the_xid() {
        let denied = |bytes: &[u8]| match decode_call(bytes) {
            Err(CallError::Denied { xid, denied, .. }) => (xid, denied),
            other => panic!("{other:?}"),
        };
        // RPC version 3.
        assert_eq!(
            denied(&words(&[9, 0, 3, 100_000, 2, 0, 0, 0, 0, 0])),
            (9, Denied::RpcMismatch)
        );
        // RPCSEC_GSS (6) is not accepted.
        assert_eq!(
            denied(&words(&[9, 0, 2, 100_000, 4, 0, 6, 0, 0, 0])),
            (9, Denied::Auth(AuthStat::RejectedCred))
        );
        // A credential body over 400 bytes.
        assert_eq!(
            denied(&words(&[9, 0, 2, 100_000, 4, 0, 1, 404])),
            (9, Denied::Auth(AuthStat::BadCred))
        );
        // An AUTH_SYS body with 17 groups.
        let mut bytes = words(&[9, 0, 2, 100_005, 3, 0, 1, 88, 0, 0, 0, 0, 17]);
        bytes.extend(words(&[0; 17]));
        bytes.extend(words(&[0, 0]));
        assert_eq!(denied(&bytes), (9, Denied::Auth(AuthStat::BadCred)));
        // A verifier body over 400 bytes.
        assert_eq!(
            denied(&words(&[9, 0, 2, 100_000, 4, 0, 0, 0, 0, 4000])),
            (9, Denied::Auth(AuthStat::BadVerf))
        );
    }

    #[test]
    fn non_calls_are_dropped() {
        for bytes in [
            &[0u8, 0, 0][..],
            &be(9)[..],
            &words(&[9, 1, 0])[..],
            &words(&[9, 2])[..],
            &words(&[9, 0, 2, 100_000, 2])[..],
            &words(&[9, 0, 2, 100_000, 2, 0, 0, 8, 0])[..],
        ] {
            assert!(
                matches!(decode_call(bytes), Err(CallError::Drop(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn reply_goldens() {
        // SUCCESS with a result word.
        assert_eq!(
            accepted_reply(7, Accepted::Success, &be(20048)),
            words(&[7, 1, 0, 0, 0, 0, 20048])
        );
        // PROG_MISMATCH names the versions served.
        assert_eq!(
            accepted_reply(7, Accepted::ProgMismatch { low: 2, high: 4 }, &be(1)),
            words(&[7, 1, 0, 0, 0, 2, 2, 4])
        );
        for (status, code) in [
            (Accepted::ProgUnavail, 1),
            (Accepted::ProcUnavail, 3),
            (Accepted::GarbageArgs, 4),
            (Accepted::SystemErr, 5),
        ] {
            assert_eq!(
                accepted_reply(7, status, &[]),
                words(&[7, 1, 0, 0, 0, code])
            );
        }
        // MSG_DENIED: RPC_MISMATCH with low 2 and high 2, AUTH_ERROR with its status.
        assert_eq!(
            denied_reply(7, Denied::RpcMismatch),
            words(&[7, 1, 1, 0, 2, 2])
        );
        assert_eq!(
            denied_reply(7, Denied::Auth(AuthStat::BadCred)),
            words(&[7, 1, 1, 1, 1])
        );
        assert_eq!(
            denied_reply(7, Denied::Auth(AuthStat::RejectedCred)),
            words(&[7, 1, 1, 1, 2])
        );
        assert_eq!(
            accepted_reply(7, Accepted::Success, &[]).len(),
            ACCEPTED_HEADER_LEN
        );
    }
}
