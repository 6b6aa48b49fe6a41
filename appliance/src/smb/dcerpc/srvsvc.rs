//! The Server Service interface (MS-SRVS, srvsvc 4b324fc8-1670-01d3-1278-5a47bf6ee188 v3.0):
//! the calls that list shares and describe the server.
//!
//! What lives here: NetrShareEnum (opnum 15; Samba calls it NetShareEnumAll), NetrShareGetInfo
//! (16), NetrServerGetInfo (21) and NetrShareEnumSticky (36): decoding their requests and
//! encoding their responses, parameter by parameter in the order NDR lays them out (each
//! top-level parameter's pointees follow it, embedded pointees after the structure or array
//! that holds them). What does not: every other opnum (they get the fault
//! `nca_s_op_rng_error` from [`super::pipe`]), and where the answers come from (the
//! [`Context`] the daemon passes).
//!
//! Levels: shares are described at levels 0, 1 and 501 (and 1005 for NetrShareGetInfo);
//! levels 2, 502 and 503 carry paths and permissions, which Windows gives administrators only,
//! and no SMB client of the appliance is one, so they answer ERROR_ACCESS_DENIED; other levels
//! answer ERROR_INVALID_LEVEL. The server is described at levels 100 and 101.

use super::ndr::{NdrError, Reader, Writer};
use super::pdu::SyntaxId;
use super::pipe::CallError;
use super::{Context, ShareKind, ShareListing};

/// The interface's syntax id.
pub const SYNTAX: SyntaxId = SyntaxId::new(0x4b324fc8_1670_01d3_1278_5a47bf6ee188, 3, 0);

pub const OP_SHARE_ENUM: u16 = 15;
pub const OP_SHARE_GET_INFO: u16 = 16;
pub const OP_SERVER_GET_INFO: u16 = 21;
pub const OP_SHARE_ENUM_STICKY: u16 = 36;

/// Win32 status codes the calls return.
pub mod status {
    pub const SUCCESS: u32 = 0;
    pub const ACCESS_DENIED: u32 = 5;
    pub const INVALID_LEVEL: u32 = 124;
    pub const MORE_DATA: u32 = 234;
    pub const NET_NAME_NOT_FOUND: u32 = 2310;
}

/// PLATFORM_ID_NT.
pub const PLATFORM_ID_NT: u32 = 500;
/// sv101_type: SV_TYPE_WORKSTATION | SV_TYPE_SERVER | SV_TYPE_SERVER_UNIX | SV_TYPE_NT |
/// SV_TYPE_SERVER_NT, what a Samba file server without printers announces.
pub const SERVER_TYPE: u32 = 0x0000_0001 | 0x0000_0002 | 0x0000_0800 | 0x0000_1000 | 0x0000_8000;
/// PreferedMaximumLength's "no limit".
const MAX_PREFERRED_LENGTH: u32 = 0xffff_ffff;

/// The arms of SHARE_ENUM_UNION (MS-SRVS 2.2.3.5); it has no default arm.
const ENUM_ARMS: [u32; 6] = [0, 1, 2, 501, 502, 503];
/// The arms of SHARE_INFO (2.2.3.6) besides its empty default arm.
const SHARE_INFO_ARMS: [u32; 10] = [0, 1, 2, 502, 1004, 1006, 1501, 1005, 501, 503];
/// The arms of SERVER_INFO (2.2.3.7) besides its empty default arm.
const SERVER_INFO_ARMS: [u32; 51] = [
    100, 101, 102, 103, 502, 503, 599, 1005, 1107, 1010, 1016, 1017, 1018, 1501, 1502, 1503, 1506,
    1510, 1511, 1512, 1513, 1514, 1515, 1516, 1518, 1523, 1528, 1529, 1530, 1533, 1534, 1535, 1536,
    1538, 1539, 1540, 1541, 1542, 1543, 1544, 1545, 1546, 1547, 1548, 1549, 1550, 1552, 1553, 1554,
    1555, 1556,
];
/// Share levels that only administrators may read.
const ADMIN_SHARE_LEVELS: [u32; 3] = [2, 502, 503];

/// Runs one srvsvc call on its request stub and returns the response stub.
pub fn call(opnum: u16, stub: &[u8], ctx: &Context) -> Result<Vec<u8>, CallError> {
    match opnum {
        OP_SHARE_ENUM => Ok(share_enum(&EnumRequest::decode(stub)?, ctx, false)),
        OP_SHARE_ENUM_STICKY => Ok(share_enum(&EnumRequest::decode(stub)?, ctx, true)),
        OP_SHARE_GET_INFO => Ok(share_get_info(&GetInfoRequest::decode(stub)?, ctx)),
        OP_SERVER_GET_INFO => Ok(server_get_info(&LevelRequest::decode(stub)?, ctx)),
        _ => Err(CallError::UnknownOpnum(opnum)),
    }
}

/// `[in, string, unique] SRVSVC_HANDLE ServerName`: read and ignored (the client names this
/// server, by NetBIOS name or address).
fn skip_server_name(r: &mut Reader<'_>) -> Result<(), NdrError> {
    if r.pointer()? {
        r.string()?;
    }
    Ok(())
}

/// The inputs of NetrShareEnum and NetrShareEnumSticky.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumRequest {
    pub level: u32,
    /// Whether the client passed a container (the union arm's pointer was not NULL).
    pub container: bool,
    pub preferred_max_len: u32,
    /// The resume handle, when the client passed one.
    pub resume: Option<u32>,
}

impl EnumRequest {
    pub fn decode(stub: &[u8]) -> Result<EnumRequest, NdrError> {
        let mut r = Reader::new(stub);
        skip_server_name(&mut r)?;
        // SHARE_ENUM_STRUCT: Level, then the union with its discriminant.
        let level = r.u32()?;
        let at = r.position();
        let tag = r.u32()?;
        if tag != level {
            return Err(NdrError::TagMismatch { at, tag, level });
        }
        if !ENUM_ARMS.contains(&tag) {
            return Err(NdrError::BadUnionTag { at, tag });
        }
        let container = r.pointer()?;
        if container {
            // SHARE_INFO_n_CONTAINER: EntriesRead and the array pointer. Clients send an empty
            // container, but an array in it is legal NDR and is skipped.
            let count = r.u32()?;
            if r.pointer()? {
                skip_share_array(&mut r, level, count)?;
            }
        }
        let preferred_max_len = r.u32()?;
        let resume = if r.pointer()? { Some(r.u32()?) } else { None };
        Ok(EnumRequest {
            level,
            container,
            preferred_max_len,
            resume,
        })
    }
}

/// Skips a conformant array of SHARE_INFO_n (n = 0, 1, 2, 501) and the strings its entries
/// point to.
fn skip_share_array(r: &mut Reader<'_>, level: u32, count: u32) -> Result<(), NdrError> {
    // Each field of an entry: true for a string pointer, false for a DWORD.
    let fields: &[bool] = match level {
        0 => &[true],
        1 => &[true, false, true],
        2 => &[true, false, true, false, false, false, true, true],
        501 => &[true, false, true, false],
        _ => return Err(NdrError::UnsupportedArray { level }),
    };
    let at = r.position();
    let max = r.u32()?;
    if max != count {
        return Err(NdrError::BadArrayCount { at, max, count });
    }
    // Every iteration reads at least four bytes, so a count larger than the stub fails on
    // the first missing field rather than looping on.
    let mut strings = 0usize;
    for _ in 0..count {
        for &is_string in fields {
            if r.pointer()? && is_string {
                strings += 1;
            }
        }
    }
    for _ in 0..strings {
        r.string()?;
    }
    Ok(())
}

/// The NDR size of one entry at `level` (its fields and its strings), which is what
/// PreferedMaximumLength is measured against.
fn entry_size(level: u32, share: &ShareListing) -> usize {
    let string = |s: &str| (12 + 2 * (s.encode_utf16().count() + 1)).next_multiple_of(4);
    match level {
        0 => 4 + string(&share.name),
        1 => 12 + string(&share.name) + string(&share.comment),
        _ => 16 + string(&share.name) + string(&share.comment),
    }
}

/// Writes SHARE_INFO_0, _1 or _501's fields (the strings come later, see [`share_strings`]).
fn share_fields(w: &mut Writer, level: u32, share: &ShareListing) {
    w.pointer();
    if level == 0 {
        return;
    }
    w.u32(share.kind.share_type());
    w.pointer();
    if level == 501 {
        // shi501_flags: no client-side caching policy (CSC_CACHE_MANUAL_REINT) and nothing
        // else.
        w.u32(0);
    }
}

fn share_strings(w: &mut Writer, level: u32, share: &ShareListing) {
    w.string(&share.name);
    if level != 0 {
        w.string(&share.comment);
    }
}

fn share_enum(req: &EnumRequest, ctx: &Context, sticky: bool) -> Vec<u8> {
    // Sticky shares are the persistent ones: the configured disk shares, not IPC$.
    let shares: Vec<&ShareListing> = ctx
        .shares
        .iter()
        .filter(|s| !sticky || s.kind == ShareKind::Disk)
        .collect();
    let total = u32::try_from(shares.len()).unwrap_or(u32::MAX);
    let supported = req.level == 0 || req.level == 1 || (req.level == 501 && !sticky);

    let mut w = Writer::new();
    w.u32(req.level);
    w.u32(req.level);
    let (status, resume) = if supported {
        let start = req.resume.map_or(0, |r| r as usize).min(shares.len());
        let mut end = start;
        let mut size = 0usize;
        for share in &shares[start..] {
            size = size.saturating_add(entry_size(req.level, share));
            if end > start
                && req.preferred_max_len != MAX_PREFERRED_LENGTH
                && size > req.preferred_max_len as usize
            {
                break;
            }
            end += 1;
        }
        let page = &shares[start..end];
        let count = u32::try_from(page.len()).unwrap_or(u32::MAX);
        w.pointer();
        w.u32(count);
        if page.is_empty() {
            w.null();
        } else {
            w.pointer();
            w.u32(count);
            for share in page {
                share_fields(&mut w, req.level, share);
            }
            for share in page {
                share_strings(&mut w, req.level, share);
            }
        }
        if end < shares.len() {
            (status::MORE_DATA, u32::try_from(end).unwrap_or(u32::MAX))
        } else {
            (status::SUCCESS, 0)
        }
    } else {
        // An [in, out] container comes back as it went in: empty.
        if req.container {
            w.pointer();
            w.u32(0);
            w.null();
        } else {
            w.null();
        }
        let status = if ADMIN_SHARE_LEVELS.contains(&req.level) {
            status::ACCESS_DENIED
        } else {
            status::INVALID_LEVEL
        };
        (status, req.resume.unwrap_or(0))
    };
    w.u32(total);
    // A NULL resume handle stays NULL.
    if req.resume.is_some() {
        w.pointer();
        w.u32(resume);
    } else {
        w.null();
    }
    w.u32(status);
    w.into_bytes()
}

/// The inputs of NetrShareGetInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetInfoRequest {
    pub net_name: String,
    pub level: u32,
}

impl GetInfoRequest {
    pub fn decode(stub: &[u8]) -> Result<GetInfoRequest, NdrError> {
        let mut r = Reader::new(stub);
        skip_server_name(&mut r)?;
        // `[in, string] WCHAR* NetName` is a top-level reference pointer: the string is inline.
        let net_name = r.string()?;
        let level = r.u32()?;
        Ok(GetInfoRequest { net_name, level })
    }
}

/// Writes an [out] union whose arms are all pointers: the discriminant, then a NULL pointer
/// when `level` is an arm (nothing when it falls on the empty default arm).
fn empty_union(w: &mut Writer, level: u32, arms: &[u32]) {
    w.u32(level);
    if arms.contains(&level) {
        w.null();
    }
}

fn share_get_info(req: &GetInfoRequest, ctx: &Context) -> Vec<u8> {
    let mut w = Writer::new();
    let wanted = req.net_name.to_lowercase();
    let share = ctx.shares.iter().find(|s| s.name.to_lowercase() == wanted);
    let status = match (req.level, share) {
        (0 | 1 | 501, Some(share)) => {
            w.u32(req.level);
            w.pointer();
            share_fields(&mut w, req.level, share);
            share_strings(&mut w, req.level, share);
            status::SUCCESS
        }
        (1005, Some(_)) => {
            w.u32(req.level);
            w.pointer();
            // shi1005_flags: not in DFS, no access-based enumeration, no caching flags.
            w.u32(0);
            status::SUCCESS
        }
        (0 | 1 | 501 | 1005, None) => {
            empty_union(&mut w, req.level, &SHARE_INFO_ARMS);
            status::NET_NAME_NOT_FOUND
        }
        (level, _) if ADMIN_SHARE_LEVELS.contains(&level) => {
            empty_union(&mut w, req.level, &SHARE_INFO_ARMS);
            status::ACCESS_DENIED
        }
        _ => {
            empty_union(&mut w, req.level, &SHARE_INFO_ARMS);
            status::INVALID_LEVEL
        }
    };
    w.u32(status);
    w.into_bytes()
}

/// The input of NetrServerGetInfo, and of wkssvc's NetrWkstaGetInfo, which is laid out the
/// same: the server name, then the level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelRequest {
    pub level: u32,
}

impl LevelRequest {
    pub fn decode(stub: &[u8]) -> Result<LevelRequest, NdrError> {
        let mut r = Reader::new(stub);
        skip_server_name(&mut r)?;
        Ok(LevelRequest { level: r.u32()? })
    }
}

fn server_get_info(req: &LevelRequest, ctx: &Context) -> Vec<u8> {
    let server = &ctx.server;
    let mut w = Writer::new();
    let status = match req.level {
        100 => {
            w.u32(100);
            w.pointer();
            w.u32(PLATFORM_ID_NT);
            w.pointer();
            w.string(&server.name);
            status::SUCCESS
        }
        101 => {
            w.u32(101);
            w.pointer();
            w.u32(PLATFORM_ID_NT);
            w.pointer();
            w.u32(server.version.0);
            w.u32(server.version.1);
            w.u32(SERVER_TYPE);
            w.pointer();
            w.string(&server.name);
            w.string(&server.comment);
            status::SUCCESS
        }
        level => {
            empty_union(&mut w, level, &SERVER_INFO_ARMS);
            status::INVALID_LEVEL
        }
    };
    w.u32(status);
    w.into_bytes()
}
