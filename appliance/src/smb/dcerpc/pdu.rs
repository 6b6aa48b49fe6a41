//! Connection-oriented DCE/RPC PDUs (C706 chapter 12, with the MS-RPCE 2.2.2 extensions):
//! the common header, BIND and ALTER_CONTEXT in, BIND_ACK, ALTER_CONTEXT_RESP and BIND_NAK out,
//! REQUEST in, RESPONSE and FAULT out.
//!
//! What lives here: the byte layouts and the constants (packet types, flags, syntax ids, fault
//! and reject codes). What does not: what a server does with a PDU (the association state
//! machine in [`super::pipe`]) and the stub inside a request or response ([`super::ndr`]).
//!
//! Every decoder checks every length against the bytes it was given; decoding never panics.
//! Only the little-endian, ASCII, IEEE data representation is accepted for what follows the
//! header; the header's own integers are read in whatever order its drep names, so that a
//! big-endian PDU can still be answered (with a rejection).

use uuid::Uuid;

/// The common header: 16 bytes.
pub const HEADER_LEN: usize = 16;
/// REQUEST and RESPONSE headers: the common header plus alloc_hint, context id and opnum (or
/// cancel count).
pub const CALL_HEADER_LEN: usize = 24;
/// The largest fragment accepted from a client, whatever was negotiated (Windows and Samba use
/// the same hard limit).
pub const MAX_FRAG_IN: usize = 5840;

/// Packet types (PTYPE).
pub mod ptype {
    pub const REQUEST: u8 = 0;
    pub const RESPONSE: u8 = 2;
    pub const FAULT: u8 = 3;
    pub const BIND: u8 = 11;
    pub const BIND_ACK: u8 = 12;
    pub const BIND_NAK: u8 = 13;
    pub const ALTER_CONTEXT: u8 = 14;
    pub const ALTER_CONTEXT_RESP: u8 = 15;
    pub const AUTH3: u8 = 16;
    pub const SHUTDOWN: u8 = 17;
    pub const CO_CANCEL: u8 = 18;
    pub const ORPHANED: u8 = 19;
}

/// Header flags (pfc_flags).
pub mod pfc {
    pub const FIRST_FRAG: u8 = 0x01;
    pub const LAST_FRAG: u8 = 0x02;
    pub const DID_NOT_EXECUTE: u8 = 0x20;
    pub const OBJECT_UUID: u8 = 0x80;
}

/// Fault statuses (C706 appendix E, MS-RPCE 2.2.2.11) this server sends.
pub mod fault {
    /// An opnum the interface does not have or this server does not implement.
    pub const OP_RNG_ERROR: u32 = 0x1c01_0002;
    /// A presentation context id that was never accepted on this association.
    pub const UNK_IF: u32 = 0x1c01_0003;
    /// A PDU that breaks the protocol (wrong type, fragment out of order, bad length).
    pub const PROTO_ERROR: u32 = 0x1c01_000b;
    /// The response would not fit in what this server keeps for a pipe.
    pub const OUT_ARGS_TOO_BIG: u32 = 0x1c01_0013;
    /// The fragments of one request add up to more than this server reassembles.
    pub const REMOTE_NO_MEMORY: u32 = 0x1c00_001b;
    /// Stub data that does not decode (also: a data representation other than NDR
    /// little-endian ASCII IEEE); Windows calls it RPC_X_BAD_STUB_DATA.
    pub const NDR: u32 = 0x0000_06f7;
    /// Authentication on an association that negotiated none.
    pub const ACCESS_DENIED: u32 = 0x0000_0005;
}

/// BIND_NAK reasons (C706 12.6.3.1 plus MS-RPCE 2.2.2.5).
pub mod nak {
    pub const NOT_SPECIFIED: u16 = 0;
    pub const PROTOCOL_VERSION_NOT_SUPPORTED: u16 = 4;
    pub const AUTHENTICATION_TYPE_NOT_RECOGNIZED: u16 = 8;
}

/// Per-context results in a BIND_ACK (C706 12.6.3.1, MS-RPCE 2.2.2.4 for negotiate_ack).
pub mod result {
    pub const ACCEPTANCE: u16 = 0;
    pub const USER_REJECTION: u16 = 1;
    pub const PROVIDER_REJECTION: u16 = 2;
    pub const NEGOTIATE_ACK: u16 = 3;

    pub const REASON_NOT_SPECIFIED: u16 = 0;
    pub const ABSTRACT_SYNTAX_NOT_SUPPORTED: u16 = 1;
    pub const PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED: u16 = 2;
    pub const LOCAL_LIMIT_EXCEEDED: u16 = 3;
}

/// Bind-time feature bits (MS-RPCE 2.2.2.14): the client proposes them in the bitmask of a
/// 6cb71c2c-9812-4540-XXXX-000000000000 transfer syntax.
pub mod feature {
    pub const SECURITY_CONTEXT_MULTIPLEXING: u16 = 0x0001;
    pub const KEEP_CONNECTION_ON_ORPHAN: u16 = 0x0002;
}

/// An interface or transfer syntax: a UUID and a version (major in the low 16 bits, minor in
/// the high 16, which is how the two u16s lie on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxId {
    pub uuid: Uuid,
    pub version: u32,
}

impl SyntaxId {
    pub const fn new(uuid: u128, major: u16, minor: u16) -> Self {
        SyntaxId {
            uuid: Uuid::from_u128(uuid),
            version: major as u32 | (minor as u32) << 16,
        }
    }

    pub const NULL: SyntaxId = SyntaxId::new(0, 0, 0);

    fn parse(bytes: &[u8]) -> Option<SyntaxId> {
        let uuid: [u8; 16] = bytes.get(0..16)?.try_into().ok()?;
        Some(SyntaxId {
            uuid: Uuid::from_bytes_le(uuid),
            version: le32(bytes, 16)?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.uuid.to_bytes_le());
        out.extend_from_slice(&self.version.to_le_bytes());
    }

    /// The features bitmask when this is a bind-time feature negotiation syntax (MS-RPCE
    /// 3.3.1.5.3: the first 8 bytes of 6cb71c2c-9812-4540, the bitmask in the next two, zeros
    /// after, version 1.0).
    pub fn bind_time_features(&self) -> Option<u16> {
        let bytes = self.uuid.as_bytes();
        let prefix = FEATURE_NEGOTIATION_PREFIX.as_bytes();
        if self.version != 1 || bytes[..8] != prefix[..8] || bytes[10..] != [0; 6] {
            return None;
        }
        Some(u16::from_le_bytes([bytes[8], bytes[9]]))
    }
}

/// NDR 2.0, the one transfer syntax this server speaks.
pub const NDR: SyntaxId = SyntaxId::new(0x8a885d04_1ceb_11c9_9fe8_08002b104860, 2, 0);
/// NDR64, which Windows clients offer beside NDR; always refused.
pub const NDR64: SyntaxId = SyntaxId::new(0x71710533_beba_4937_8319_b5dbef9ccc36, 1, 0);
/// The bind-time feature negotiation UUID with an empty bitmask.
const FEATURE_NEGOTIATION_PREFIX: Uuid = Uuid::from_u128(0x6cb71c2c_9812_4540_0000_000000000000);

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The common header of every connection-oriented PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub rpc_vers: u8,
    pub rpc_vers_minor: u8,
    pub ptype: u8,
    pub flags: u8,
    pub drep: [u8; 4],
    pub frag_len: u16,
    pub auth_len: u16,
    pub call_id: u32,
}

impl Header {
    /// Reads the 16 header bytes, taking the integers in the byte order the drep names.
    /// `None` when fewer than 16 bytes are given.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let fixed: [u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let drep = [fixed[4], fixed[5], fixed[6], fixed[7]];
        let big_endian = drep[0] >> 4 == 0;
        let u16_at = |at: usize| {
            let b = [fixed[at], fixed[at + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let b = [fixed[12], fixed[13], fixed[14], fixed[15]];
        Some(Header {
            rpc_vers: fixed[0],
            rpc_vers_minor: fixed[1],
            ptype: fixed[2],
            flags: fixed[3],
            drep,
            frag_len: u16_at(8),
            auth_len: u16_at(10),
            call_id: if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            },
        })
    }

    /// Whether the body is NDR little-endian with ASCII characters and IEEE floats (the two
    /// reserved drep bytes are not looked at).
    pub fn is_little_endian_ascii_ieee(&self) -> bool {
        self.drep[0] == 0x10 && self.drep[1] == 0
    }

    /// Whether the version is 5.0 or 5.1 (the minor version changes nothing this server uses).
    pub fn is_version_5(&self) -> bool {
        self.rpc_vers == 5 && self.rpc_vers_minor <= 1
    }
}

/// Starts an outgoing PDU: the common header, with frag_length patched by [`finish`].
fn start(ptype: u8, flags: u8, call_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[5, 0, ptype, flags, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&call_id.to_le_bytes());
    out
}

/// Writes the final length into frag_length. Every PDU this server builds is far below
/// 64 KiB (responses are split by the caller); a longer one would be a bug, and gets a
/// saturated length rather than a panic.
fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    out[8..10].copy_from_slice(&len.to_le_bytes());
    out
}

/// Why a PDU body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("the {what} needs {need} bytes but the PDU holds {len}")]
    Truncated {
        what: &'static str,
        need: usize,
        len: usize,
    },
    #[error("the bind offers no presentation context")]
    NoContexts,
    #[error("presentation context {id} offers no transfer syntax")]
    NoTransferSyntax { id: u16 },
}

/// One presentation context a client proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextElem {
    pub id: u16,
    pub abstract_syntax: SyntaxId,
    pub transfer_syntaxes: Vec<SyntaxId>,
}

/// The body of a BIND or ALTER_CONTEXT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub max_xmit_frag: u16,
    pub max_recv_frag: u16,
    pub assoc_group_id: u32,
    pub contexts: Vec<ContextElem>,
}

impl Bind {
    /// Decodes a BIND or ALTER_CONTEXT PDU (header included; the caller has checked it).
    pub fn parse(pdu: &[u8]) -> Result<Bind, PduError> {
        let truncated = |what, need| PduError::Truncated {
            what,
            need,
            len: pdu.len(),
        };
        let fixed = pdu
            .get(HEADER_LEN..HEADER_LEN + 12)
            .ok_or(truncated("bind header", HEADER_LEN + 12))?;
        let n = usize::from(fixed[8]);
        if n == 0 {
            return Err(PduError::NoContexts);
        }
        let mut at = HEADER_LEN + 12;
        let mut contexts = Vec::with_capacity(n);
        for _ in 0..n {
            let need = at + 24;
            let head = pdu
                .get(at..need)
                .ok_or(truncated("presentation context", need))?;
            let id = u16::from_le_bytes([head[0], head[1]]);
            let n_syntaxes = usize::from(head[2]);
            if n_syntaxes == 0 {
                return Err(PduError::NoTransferSyntax { id });
            }
            let abstract_syntax =
                SyntaxId::parse(&head[4..24]).ok_or(truncated("abstract syntax", need))?;
            at = need;
            let mut transfer_syntaxes = Vec::with_capacity(n_syntaxes);
            for _ in 0..n_syntaxes {
                let need = at + 20;
                let syntax = pdu
                    .get(at..need)
                    .and_then(SyntaxId::parse)
                    .ok_or(truncated("transfer syntax", need))?;
                transfer_syntaxes.push(syntax);
                at = need;
            }
            contexts.push(ContextElem {
                id,
                abstract_syntax,
                transfer_syntaxes,
            });
        }
        Ok(Bind {
            max_xmit_frag: u16::from_le_bytes([fixed[0], fixed[1]]),
            max_recv_frag: u16::from_le_bytes([fixed[2], fixed[3]]),
            assoc_group_id: u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            contexts,
        })
    }
}

/// The answer to one proposed presentation context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextResult {
    pub result: u16,
    pub reason: u16,
    pub transfer_syntax: SyntaxId,
}

/// The fields of a BIND_ACK or ALTER_CONTEXT_RESP.
pub struct BindAck<'a> {
    pub call_id: u32,
    pub max_xmit_frag: u16,
    pub max_recv_frag: u16,
    pub assoc_group_id: u32,
    /// The secondary address (`\PIPE\srvsvc`), or empty (an ALTER_CONTEXT_RESP carries none).
    pub secondary_address: &'a str,
    pub results: &'a [ContextResult],
}

/// Encodes a BIND_ACK (`ptype::BIND_ACK`) or ALTER_CONTEXT_RESP (`ptype::ALTER_CONTEXT_RESP`).
pub fn bind_ack(ptype: u8, ack: &BindAck<'_>) -> Vec<u8> {
    let mut out = start(ptype, pfc::FIRST_FRAG | pfc::LAST_FRAG, ack.call_id);
    out.extend_from_slice(&ack.max_xmit_frag.to_le_bytes());
    out.extend_from_slice(&ack.max_recv_frag.to_le_bytes());
    out.extend_from_slice(&ack.assoc_group_id.to_le_bytes());
    // The port_spec is a NUL-terminated string whose length counts the NUL; an empty one is
    // sent as length 0 with no bytes, as Windows and Samba do in ALTER_CONTEXT_RESP.
    if ack.secondary_address.is_empty() {
        out.extend_from_slice(&0u16.to_le_bytes());
    } else {
        let len = u16::try_from(ack.secondary_address.len() + 1).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(ack.secondary_address.as_bytes());
        out.push(0);
    }
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.push(u8::try_from(ack.results.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&[0, 0, 0]);
    for r in ack.results.iter().take(usize::from(u8::MAX)) {
        out.extend_from_slice(&r.result.to_le_bytes());
        out.extend_from_slice(&r.reason.to_le_bytes());
        r.transfer_syntax.write(&mut out);
    }
    finish(out)
}

/// Encodes a BIND_NAK with `reason`, listing 5.0 as the one supported protocol version.
pub fn bind_nak(call_id: u32, reason: u16) -> Vec<u8> {
    let mut out = start(ptype::BIND_NAK, pfc::FIRST_FRAG | pfc::LAST_FRAG, call_id);
    out.extend_from_slice(&reason.to_le_bytes());
    out.extend_from_slice(&[1, 5, 0]);
    finish(out)
}

/// The fixed part of a REQUEST and where its stub is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub alloc_hint: u32,
    pub context_id: u16,
    pub opnum: u16,
    pub stub: &'a [u8],
}

impl<'a> Request<'a> {
    /// Decodes a REQUEST PDU of exactly `pdu.len()` bytes (header included, no auth trailer:
    /// the caller has refused those). An object UUID, if flagged, is skipped: neither srvsvc
    /// nor wkssvc has objects.
    pub fn parse(header: &Header, pdu: &'a [u8]) -> Result<Request<'a>, PduError> {
        let stub_at = if header.flags & pfc::OBJECT_UUID != 0 {
            CALL_HEADER_LEN + 16
        } else {
            CALL_HEADER_LEN
        };
        let truncated = PduError::Truncated {
            what: "request header",
            need: stub_at,
            len: pdu.len(),
        };
        let stub = pdu.get(stub_at..).ok_or(truncated.clone())?;
        Ok(Request {
            alloc_hint: le32(pdu, 16).ok_or(truncated.clone())?,
            context_id: le16(pdu, 20).ok_or(truncated.clone())?,
            opnum: le16(pdu, 22).ok_or(truncated)?,
            stub,
        })
    }
}

/// Encodes one RESPONSE fragment carrying `stub`; `alloc_hint` is the stub still to come,
/// this fragment's included.
pub fn response(call_id: u32, flags: u8, context_id: u16, alloc_hint: u32, stub: &[u8]) -> Vec<u8> {
    let mut out = start(ptype::RESPONSE, flags, call_id);
    out.extend_from_slice(&alloc_hint.to_le_bytes());
    out.extend_from_slice(&context_id.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(stub);
    finish(out)
}

/// Encodes a FAULT: alloc_hint 0, the context id, cancel count 0, the status, 4 reserved bytes.
pub fn fault(call_id: u32, extra_flags: u8, context_id: u16, status: u32) -> Vec<u8> {
    let flags = pfc::FIRST_FRAG | pfc::LAST_FRAG | extra_flags;
    let mut out = start(ptype::FAULT, flags, call_id);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&context_id.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_ids_lie_on_the_wire_in_guid_order() {
        let mut out = Vec::new();
        NDR.write(&mut out);
        assert_eq!(
            out,
            [
                0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10,
                0x48, 0x60, 0x02, 0x00, 0x00, 0x00
            ]
        );
        assert_eq!(SyntaxId::parse(&out), Some(NDR));
    }

    #[test]
    fn bind_time_feature_syntax_is_recognised() {
        let offered = SyntaxId::new(0x6cb71c2c_9812_4540_0300_000000000000, 1, 0);
        assert_eq!(offered.bind_time_features(), Some(3));
        let wrong_version = SyntaxId::new(0x6cb71c2c_9812_4540_0300_000000000000, 2, 0);
        assert_eq!(wrong_version.bind_time_features(), None);
        let not_zero_tail = SyntaxId::new(0x6cb71c2c_9812_4540_0300_000000000001, 1, 0);
        assert_eq!(not_zero_tail.bind_time_features(), None);
        assert_eq!(NDR.bind_time_features(), None);
        assert_eq!(NDR64.bind_time_features(), None);
    }

    #[test]
    fn big_endian_header_integers_are_read_big_endian() {
        let bytes = [5, 0, 11, 3, 0x00, 0, 0, 0, 0x00, 0x48, 0, 0, 0, 0, 0, 7];
        let h = Header::parse(&bytes).unwrap();
        assert_eq!((h.frag_len, h.call_id), (0x48, 7));
        assert!(!h.is_little_endian_ascii_ieee());
        assert_eq!(Header::parse(&bytes[..15]), None);
    }

    #[test]
    fn fault_and_nak_layouts() {
        assert_eq!(
            fault(9, pfc::DID_NOT_EXECUTE, 1, fault::OP_RNG_ERROR),
            [
                5, 0, 3, 0x23, 0x10, 0, 0, 0, 32, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
                0x02, 0x00, 0x01, 0x1c, 0, 0, 0, 0
            ]
        );
        assert_eq!(
            bind_nak(2, nak::PROTOCOL_VERSION_NOT_SUPPORTED),
            [5, 0, 13, 3, 0x10, 0, 0, 0, 21, 0, 0, 0, 2, 0, 0, 0, 4, 0, 1, 5, 0]
        );
    }

    #[test]
    fn truncated_binds_are_errors() {
        let mut pdu = vec![5, 0, 11, 3, 0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        pdu.extend_from_slice(&[0xb8, 0x10, 0xb8, 0x10, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert!(matches!(Bind::parse(&pdu), Err(PduError::Truncated { .. })));
        pdu.extend_from_slice(&[0, 0, 0, 0]);
        pdu.extend_from_slice(&[0; 20]);
        assert_eq!(Bind::parse(&pdu), Err(PduError::NoTransferSyntax { id: 0 }));
        pdu[HEADER_LEN + 8] = 0;
        assert_eq!(Bind::parse(&pdu), Err(PduError::NoContexts));
    }
}
