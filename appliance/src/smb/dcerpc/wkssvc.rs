//! The Workstation Service interface (MS-WKST, wkssvc 6bffd098-a112-3610-9833-46c3f87e345a
//! v1.0): NetrWkstaGetInfo (opnum 0), which clients use to learn the server's name, workgroup
//! and version.
//!
//! What lives here: encoding the response at levels 100 and 101 (other levels answer
//! ERROR_INVALID_LEVEL); the request (`[in, string, unique] WKSSVC_IDENTIFY_HANDLE
//! ServerName`, `[in] Level`) is laid out as srvsvc's NetrServerGetInfo and decoded by
//! [`LevelRequest`]. What does not: the other opnums, which get the fault
//! `nca_s_op_rng_error` from [`super::pipe`].

use super::ndr::Writer;
use super::pdu::SyntaxId;
use super::pipe::CallError;
use super::srvsvc::{status, LevelRequest, PLATFORM_ID_NT};
use super::Context;

/// The interface's syntax id.
pub const SYNTAX: SyntaxId = SyntaxId::new(0x6bffd098_a112_3610_9833_46c3f87e345a, 1, 0);

pub const OP_WKSTA_GET_INFO: u16 = 0;

/// The arms of WKSTA_INFO (MS-WKST 2.2.4.1) besides its empty default arm.
const WKSTA_INFO_ARMS: [u32; 7] = [100, 101, 102, 502, 1013, 1018, 1046];

/// Runs one wkssvc call on its request stub and returns the response stub.
pub fn call(opnum: u16, stub: &[u8], ctx: &Context) -> Result<Vec<u8>, CallError> {
    match opnum {
        OP_WKSTA_GET_INFO => Ok(wksta_get_info(&LevelRequest::decode(stub)?, ctx)),
        _ => Err(CallError::UnknownOpnum(opnum)),
    }
}

fn wksta_get_info(req: &LevelRequest, ctx: &Context) -> Vec<u8> {
    let server = &ctx.server;
    let mut w = Writer::new();
    let status = match req.level {
        100 | 101 => {
            w.u32(req.level);
            w.pointer();
            w.u32(PLATFORM_ID_NT);
            w.pointer();
            w.pointer();
            w.u32(server.version.0);
            w.u32(server.version.1);
            if req.level == 101 {
                // wki101_lanroot: there is no LAN Manager root on the appliance.
                w.pointer();
            }
            w.string(&server.name);
            w.string(&server.workgroup);
            if req.level == 101 {
                w.string("");
            }
            status::SUCCESS
        }
        level => {
            w.u32(level);
            if WKSTA_INFO_ARMS.contains(&level) {
                w.null();
            }
            status::INVALID_LEVEL
        }
    };
    w.u32(status);
    w.into_bytes()
}
