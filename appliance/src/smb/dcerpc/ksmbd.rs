//! The ksmbd side of the pipes: the KSMBD_RPC_* request flags and reply statuses of
//! `fs/smb/server/ksmbd_netlink.h` (6.12), which the `flags` field of a
//! KSMBD_EVENT_RPC_REQUEST's `struct ksmbd_rpc_command` and of its reply carry, and
//! [`Pipes::dispatch`], which turns one such request into its reply.
//!
//! What lives here: the flag decoding and the mapping of [`PipeError`]s to statuses. What
//! does not: generic netlink and the `ksmbd_rpc_command` layout (the daemon's `ipc`), and
//! DCE/RPC ([`super::pipe`]).
//!
//! What the kernel sends (transport_ipc.c, mgmt/user_session.c, smb2pdu.c in 6.12):
//! - `handle` is the pipe id, also the SMB2 VolatileFileId of the open; ids come from one
//!   global allocator, so a handle names one pipe across all sessions.
//! - `flags` is the pipe's bit (srvsvc 0x2, wkssvc 0x4, samr 0x400, lsarpc 0x800, LANMAN
//!   0x101) or'ed with the operation: OPEN 0x10, CLOSE 0x80, WRITE 0x20, READ 0x41, IOCTL
//!   (FSCTL_PIPE_TRANSCEIVE) 0x09; WRITE, READ and IOCTL add RESTRICTED_CONTEXT 0x200 for guest
//!   sessions. CLOSE carries no pipe bit: the kernel forgets the pipe before it sends the close.
//! - WRITE and IOCTL payloads are at most 4096 bytes (`KSMBD_IPC_MAX_PAYLOAD`); a longer one
//!   is dropped by the kernel, which still tells the client its write succeeded.
//! - The reply must come within 2 s and be exactly 12 + payload_sz bytes. OPEN and CLOSE
//!   replies are not looked at; WRITE needs OK (ENOTIMPLEMENTED gives the client
//!   STATUS_NOT_SUPPORTED, anything else STATUS_INVALID_HANDLE); READ needs OK (else
//!   STATUS_UNEXPECTED_IO_ERROR) and returns the whole payload whatever the client's read
//!   length; IOCTL needs OK and a non-empty payload (ENOTIMPLEMENTED gives
//!   STATUS_NOT_SUPPORTED, SOME_NOT_MAPPED passes through, anything else
//!   STATUS_INVALID_PARAMETER) and keeps only min(4096, MaxOutputResponse) bytes of it.

use super::pipe::{PipeError, Pipes};
use super::{Context, PipeName};

/// Request flag bits.
pub mod flags {
    pub const METHOD_RETURN: u32 = 1 << 0;
    pub const SRVSVC: u32 = 1 << 1;
    pub const WKSSVC: u32 = 1 << 2;
    pub const IOCTL: u32 = 1 << 3 | METHOD_RETURN;
    pub const OPEN: u32 = 1 << 4;
    pub const WRITE: u32 = 1 << 5;
    pub const READ: u32 = 1 << 6 | METHOD_RETURN;
    pub const CLOSE: u32 = 1 << 7;
    /// LANMAN (RAP), never served.
    pub const RAP: u32 = 1 << 8 | METHOD_RETURN;
    pub const RESTRICTED_CONTEXT: u32 = 1 << 9;
    pub const SAMR: u32 = 1 << 10;
    pub const LSARPC: u32 = 1 << 11;
}

/// Reply statuses.
pub mod status {
    pub const OK: u32 = 0;
    pub const EBAD_FUNC: u32 = 0x0000_0001;
    pub const EACCESS_DENIED: u32 = 0x0000_0005;
    pub const EBAD_FID: u32 = 0x0000_0006;
    pub const ENOMEM: u32 = 0x0000_0008;
    pub const EBAD_DATA: u32 = 0x0000_000d;
    pub const ENOTIMPLEMENTED: u32 = 0x0000_0040;
    pub const EINVALID_PARAMETER: u32 = 0x0000_0057;
    pub const EMORE_DATA: u32 = 0x0000_00ea;
    pub const EINVALID_LEVEL: u32 = 0x0000_007c;
    pub const SOME_NOT_MAPPED: u32 = 0x0000_0107;
}

/// The most payload the kernel takes or forwards in one pipe operation
/// (`KSMBD_IPC_MAX_PAYLOAD`); reads and transceives return at most this much.
pub const MAX_PAYLOAD: usize = 4096;

/// The pipe operation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcOp {
    Open,
    Close,
    Write,
    Read,
    /// FSCTL_PIPE_TRANSCEIVE: a write, then a read.
    Transceive,
}

/// A request's flags, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcCommand {
    pub op: RpcOp,
    /// The pipe the request names; always there for OPEN, never for CLOSE.
    pub pipe: Option<PipeName>,
    /// KSMBD_RPC_RESTRICTED_CONTEXT: the session is a guest's.
    pub restricted: bool,
}

/// Why a request's flags were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    #[error("RPC request flags {0:#x} have bits no 6.12 kernel sets")]
    UnknownBits(u32),
    #[error("RPC request flags {0:#x} name no operation, or several")]
    Operation(u32),
    #[error("RPC request flags {0:#x} name several pipes")]
    SeveralPipes(u32),
    #[error("RPC request flags {0:#x} open a pipe without naming it")]
    NoPipe(u32),
    #[error("RPC request flags {0:#x} are for the LANMAN (RAP) pipe, which is not served")]
    Lanman(u32),
}

impl FlagsError {
    /// The reply status.
    pub fn ksmbd_status(&self) -> u32 {
        match self {
            FlagsError::Lanman(_) => status::ENOTIMPLEMENTED,
            _ => status::EINVALID_PARAMETER,
        }
    }
}

impl RpcCommand {
    /// Decodes `flags`. Bit 0 (METHOD_RETURN) is ignored: it only marks operations that
    /// return data.
    pub fn from_flags(bits: u32) -> Result<RpcCommand, FlagsError> {
        const OPS: u32 = 0x08 | 0x10 | 0x20 | 0x40 | 0x80;
        const PIPES: u32 = flags::SRVSVC | flags::WKSSVC | flags::SAMR | flags::LSARPC;
        const KNOWN: u32 =
            OPS | PIPES | flags::METHOD_RETURN | flags::RAP | flags::RESTRICTED_CONTEXT;
        if bits & !KNOWN != 0 {
            return Err(FlagsError::UnknownBits(bits));
        }
        if bits & (flags::RAP & !flags::METHOD_RETURN) != 0 {
            return Err(FlagsError::Lanman(bits));
        }
        let op = match bits & OPS {
            0x08 => RpcOp::Transceive,
            0x10 => RpcOp::Open,
            0x20 => RpcOp::Write,
            0x40 => RpcOp::Read,
            0x80 => RpcOp::Close,
            _ => return Err(FlagsError::Operation(bits)),
        };
        let pipe = match bits & PIPES {
            0 => None,
            flags::SRVSVC => Some(PipeName::Srvsvc),
            flags::WKSSVC => Some(PipeName::Wkssvc),
            flags::SAMR => Some(PipeName::Samr),
            flags::LSARPC => Some(PipeName::Lsarpc),
            _ => return Err(FlagsError::SeveralPipes(bits)),
        };
        if op == RpcOp::Open && pipe.is_none() {
            return Err(FlagsError::NoPipe(bits));
        }
        Ok(RpcCommand {
            op,
            pipe,
            restricted: bits & flags::RESTRICTED_CONTEXT != 0,
        })
    }
}

impl PipeError {
    /// The reply status for this error.
    pub fn ksmbd_status(&self) -> u32 {
        match self {
            PipeError::UnknownHandle(_) | PipeError::Broken { .. } => status::EBAD_FID,
            PipeError::TooManyPipes { .. }
            | PipeError::WriteTooLarge { .. }
            | PipeError::OutputFull { .. } => status::ENOMEM,
            PipeError::NothingToRead(_) => status::EBAD_DATA,
        }
    }
}

/// The answer to one request: a status and the bytes a read or transceive returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcReply {
    pub status: u32,
    pub payload: Vec<u8>,
}

impl RpcReply {
    fn error(status: u32) -> Self {
        RpcReply {
            status,
            payload: Vec::new(),
        }
    }
}

impl Pipes {
    /// Answers one KSMBD_EVENT_RPC_REQUEST: decodes `flags`, runs the operation on `handle`
    /// and returns the reply. Never fails: every error becomes a status (and a log line).
    pub fn dispatch(&mut self, handle: u32, flags: u32, payload: &[u8], ctx: &Context) -> RpcReply {
        match RpcCommand::from_flags(flags) {
            Ok(cmd) => self.execute(handle, &cmd, payload, ctx),
            Err(e) => {
                log::warn!("ksmbd RPC request for pipe handle {handle}: {e}");
                RpcReply::error(e.ksmbd_status())
            }
        }
    }

    /// Runs an already decoded request (for a daemon that looks at
    /// [`RpcCommand::restricted`] to choose the [`Context`]).
    pub fn execute(
        &mut self,
        handle: u32,
        cmd: &RpcCommand,
        payload: &[u8],
        ctx: &Context,
    ) -> RpcReply {
        let outcome = match (cmd.op, cmd.pipe) {
            (RpcOp::Open, Some(pipe)) => self.open(handle, pipe).map(|()| Vec::new()),
            (RpcOp::Open, None) => return RpcReply::error(status::EINVALID_PARAMETER),
            (RpcOp::Close, _) => self.close(handle).map(|()| Vec::new()),
            (RpcOp::Write, _) => self.write(handle, payload, ctx).map(|()| Vec::new()),
            (RpcOp::Read, _) => self.read(handle, MAX_PAYLOAD),
            (RpcOp::Transceive, _) => self.transceive(handle, payload, MAX_PAYLOAD, ctx),
        };
        match outcome {
            Ok(payload) => RpcReply {
                status: status::OK,
                payload,
            },
            Err(e) => {
                if matches!(e, PipeError::TooManyPipes { .. }) {
                    log::warn!("{e}");
                } else {
                    log::debug!("{e}");
                }
                RpcReply::error(e.ksmbd_status())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_the_kernel_sends() {
        let cases = [
            (0x12, RpcOp::Open, Some(PipeName::Srvsvc), false),
            (0x14, RpcOp::Open, Some(PipeName::Wkssvc), false),
            (0x410, RpcOp::Open, Some(PipeName::Samr), false),
            (0x810, RpcOp::Open, Some(PipeName::Lsarpc), false),
            (0x80, RpcOp::Close, None, false),
            (0x22, RpcOp::Write, Some(PipeName::Srvsvc), false),
            (0x222, RpcOp::Write, Some(PipeName::Srvsvc), true),
            (0x43, RpcOp::Read, Some(PipeName::Srvsvc), false),
            (0x245, RpcOp::Read, Some(PipeName::Wkssvc), true),
            (0x0b, RpcOp::Transceive, Some(PipeName::Srvsvc), false),
            (0x20b, RpcOp::Transceive, Some(PipeName::Srvsvc), true),
            // A handle the session does not know: the kernel sends the operation alone.
            (0x20, RpcOp::Write, None, false),
        ];
        for (bits, op, pipe, restricted) in cases {
            assert_eq!(
                RpcCommand::from_flags(bits),
                Ok(RpcCommand {
                    op,
                    pipe,
                    restricted
                }),
                "flags {bits:#x}"
            );
        }
    }

    #[test]
    fn flags_refused() {
        assert_eq!(
            RpcCommand::from_flags(0x111),
            Err(FlagsError::Lanman(0x111))
        );
        assert_eq!(
            RpcCommand::from_flags(0x101),
            Err(FlagsError::Lanman(0x101))
        );
        assert_eq!(RpcCommand::from_flags(0x10), Err(FlagsError::NoPipe(0x10)));
        assert_eq!(
            RpcCommand::from_flags(0x16),
            Err(FlagsError::SeveralPipes(0x16))
        );
        assert_eq!(RpcCommand::from_flags(0x2), Err(FlagsError::Operation(0x2)));
        assert_eq!(
            RpcCommand::from_flags(0x32),
            Err(FlagsError::Operation(0x32))
        );
        assert_eq!(
            RpcCommand::from_flags(0x1012),
            Err(FlagsError::UnknownBits(0x1012))
        );
        assert_eq!(
            FlagsError::Lanman(0x111).ksmbd_status(),
            status::ENOTIMPLEMENTED
        );
    }
}
