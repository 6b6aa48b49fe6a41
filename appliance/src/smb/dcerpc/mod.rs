//! DCE/RPC on the named pipes ksmbd forwards to the daemon, so that `smbclient -L`, Windows
//! Explorer (`\\tank`) and macOS Finder can list the shares.
//!
//! ksmbd hands every open, write, read, transceive (FSCTL_PIPE_TRANSCEIVE) and close on the
//! IPC$ pipes `srvsvc`, `wkssvc`, `samr` and `lsarpc` to the daemon as a
//! KSMBD_EVENT_RPC_REQUEST; the bytes written and read are connection-oriented DCE/RPC
//! (C706, MS-RPCE) with NDR 2.0 stubs. This module is the whole server side of that, pure
//! (no I/O, no clock): [`Pipes`] keeps one association per pipe handle and turns the bytes a
//! client writes into the bytes it reads back; [`ksmbd`] maps the KSMBD_RPC_* flags and
//! statuses, so the daemon's netlink code stays a thin
//! shell around [`handle_ksmbd`].
//!
//! What lives here: PDUs ([`pdu`]), NDR ([`ndr`]), the association state machine with
//! fragment reassembly and splitting ([`pipe`]), and the calls: srvsvc NetrShareEnum (opnum
//! 15, Samba's NetShareEnumAll), NetrShareGetInfo (16), NetrServerGetInfo (21) and
//! NetrShareEnumSticky (36) in [`srvsvc`], wkssvc NetrWkstaGetInfo (0) in [`wkssvc`]. What
//! does not: which shares a session may see and what the server is called (the daemon
//! decides and passes them in a [`Context`]), netlink, and authentication (none is
//! negotiated: a PDU with an auth trailer is refused). samr and lsarpc pipes open and answer
//! binds, but serve no interface, so clients get a clean rejection.
//!
//! Why this is written here rather than taken from crates.io: the `dcerpc` crate is a client
//! (it encodes binds and requests and decodes bind_acks and responses, the opposite of what a
//! server needs) and brings tokio and an SMB client; `ms-ndr` has only integer and string
//! primitives (no unions, pointer deferral or arrays of structures), decodes strings lossily
//! without checking their terminator, and is a few months old with one maintainer. The NDR
//! subset the five calls need is small enough to write with every length checked, as PID 1
//! requires.

// The daemon calls `handle_ksmbd`; the finer API (the per-operation methods, `RpcCommand`
// for choosing a context by guest status, `buffered`) is there for it to grow into, and the
// tests exercise all of it.
#![allow(dead_code, unused_imports)]

pub mod ksmbd;
pub mod ndr;
pub mod pdu;
pub mod pipe;
pub mod srvsvc;
pub mod wkssvc;

#[cfg(test)]
mod tests;

pub use ksmbd::{RpcCommand, RpcOp, RpcReply};
pub use pipe::{Limits, PipeError, Pipes};

/// The pipes ksmbd forwards (`create_smb2_pipe` accepts these names, with or without a
/// leading backslash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipeName {
    Srvsvc,
    Wkssvc,
    Samr,
    Lsarpc,
}

impl PipeName {
    /// The pipe's name as a client opens it.
    pub fn as_str(self) -> &'static str {
        match self {
            PipeName::Srvsvc => "srvsvc",
            PipeName::Wkssvc => "wkssvc",
            PipeName::Samr => "samr",
            PipeName::Lsarpc => "lsarpc",
        }
    }

    /// The secondary address a BIND_ACK names: the pipe's endpoint.
    pub fn secondary_address(self) -> &'static str {
        match self {
            PipeName::Srvsvc => "\\PIPE\\srvsvc",
            PipeName::Wkssvc => "\\PIPE\\wkssvc",
            PipeName::Samr => "\\PIPE\\samr",
            PipeName::Lsarpc => "\\PIPE\\lsarpc",
        }
    }
}

impl std::fmt::Display for PipeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a share is, as far as a listing tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareKind {
    /// A directory tree (STYPE_DISKTREE, 0).
    Disk,
    /// The IPC$ share (STYPE_IPC | STYPE_SPECIAL, 0x80000003, as Windows lists it).
    Ipc,
}

impl ShareKind {
    /// The shiN_type value.
    pub fn share_type(self) -> u32 {
        match self {
            ShareKind::Disk => 0,
            ShareKind::Ipc => 0x8000_0003,
        }
    }
}

/// One share as a client may list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareListing {
    pub name: String,
    pub comment: String,
    pub kind: ShareKind,
}

/// What the server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The NetBIOS name, upper case (`TANK`).
    pub name: String,
    /// The workgroup or domain (`WORKGROUP`).
    pub workgroup: String,
    /// The server comment Explorer shows.
    pub comment: String,
    /// The (major, minor) version reported in sv101_version_* and wki10x_ver_*.
    pub version: (u32, u32),
}

/// What the calls answer from: the daemon builds it for each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub server: ServerInfo,
    /// The shares this client may see, in listing order; the daemon has already left out
    /// the ones that are not browseable or not visible to the session (ksmbd tells which
    /// sessions are guests through [`RpcCommand::restricted`]). Include IPC$: clients list
    /// it, and Windows shows it as a special share.
    pub shares: Vec<ShareListing>,
}

/// Answers one KSMBD_EVENT_RPC_REQUEST (the `handle`, `flags` and payload of its
/// `ksmbd_rpc_command`) with the status and payload of the KSMBD_EVENT_RPC_RESPONSE; see
/// [`Pipes::dispatch`].
pub fn handle_ksmbd(
    pipes: &mut Pipes,
    handle: u32,
    flags: u32,
    payload: &[u8],
    ctx: &Context,
) -> (u32, Vec<u8>) {
    let reply = pipes.dispatch(handle, flags, payload, ctx);
    (reply.status, reply.payload)
}
