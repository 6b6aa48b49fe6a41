//! Named pipes for share browsing (replaced by the DCE/RPC implementation).

/// What kind of share a listing entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareKind {
    Disk,
    Ipc,
}

/// A share as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareListing {
    pub name: String,
    pub comment: String,
    pub kind: ShareKind,
}

/// The server as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub workgroup: String,
    pub comment: String,
    pub version: (u32, u32),
}

/// What a call may list.
pub struct Context {
    pub server: ServerInfo,
    pub shares: Vec<ShareListing>,
}

/// Open pipes.
#[derive(Default)]
pub struct Pipes;

/// Answers one ksmbd RPC command: (status, payload).
pub fn handle_ksmbd(_: &mut Pipes, _: u32, flags: u32, _: &[u8], _: &Context) -> (u32, Vec<u8>) {
    if flags & 0x90 != 0 {
        (0, Vec::new())
    } else {
        (super::ipc::rpc::ENOTIMPLEMENTED, Vec::new())
    }
}
