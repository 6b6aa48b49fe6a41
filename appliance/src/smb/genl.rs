//! The generic netlink socket to ksmbd (family `SMBD_GENL`, version 1): framing with the
//! rust-netlink crates, the family id lookup, sending and receiving. Each ksmbd message is a
//! `genlmsghdr` whose command is the event number, followed by one attribute of that same type
//! carrying the structure ([`KsmbdMessage`]).

use std::io;
use std::time::Duration;

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, ParseableParametrized,
    NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::protocols::NETLINK_GENERIC;
use netlink_sys::{Socket, SocketAddr};

/// The family ksmbd registers.
pub const FAMILY: &str = "SMBD_GENL";

/// One ksmbd message: an event and its structure's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KsmbdMessage {
    pub event: u16,
    pub body: Vec<u8>,
}

impl GenlFamily for KsmbdMessage {
    fn family_name() -> &'static str {
        FAMILY
    }

    fn command(&self) -> u8 {
        u8::try_from(self.event).unwrap_or(0)
    }

    fn version(&self) -> u8 {
        1
    }
}

const NLA_HEADER: usize = 4;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl Emitable for KsmbdMessage {
    fn buffer_len(&self) -> usize {
        align4(NLA_HEADER + self.body.len())
    }

    fn emit(&self, buffer: &mut [u8]) {
        let len = u16::try_from(NLA_HEADER + self.body.len()).unwrap_or(u16::MAX);
        buffer[0..2].copy_from_slice(&len.to_ne_bytes());
        buffer[2..4].copy_from_slice(&self.event.to_ne_bytes());
        let end = NLA_HEADER + self.body.len();
        buffer[NLA_HEADER..end].copy_from_slice(&self.body);
        for b in &mut buffer[end..self.buffer_len()] {
            *b = 0;
        }
    }
}

impl ParseableParametrized<[u8], GenlHeader> for KsmbdMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        if buf.len() < NLA_HEADER {
            return Err(DecodeError::from("the ksmbd message has no attribute"));
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        // The attribute type may carry the nested/byte-order bits; the low 14 bits are it.
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < NLA_HEADER || len > buf.len() {
            return Err(DecodeError::from(format!(
                "the ksmbd attribute claims {len} bytes of {}",
                buf.len()
            )));
        }
        if kind != u16::from(header.cmd) {
            return Err(DecodeError::from(format!(
                "the attribute type {kind} differs from the event {}",
                header.cmd
            )));
        }
        Ok(KsmbdMessage {
            event: kind,
            body: buf[NLA_HEADER..len].to_vec(),
        })
    }
}

/// A generic netlink socket talking to ksmbd.
pub struct Genl {
    socket: Socket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
}

/// The largest datagram the daemon reads (RPC payloads can be large).
const RECV_BUF: usize = 1 << 20;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl Genl {
    /// Opens a socket and looks up ksmbd's family (the module must be loaded).
    pub fn open() -> io::Result<Genl> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // The kernel's requests fail at once when the buffer is full: give it room.
        socket.set_rx_buf_sz(RECV_BUF)?;
        rustix::net::sockopt::set_socket_timeout(
            &socket,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_secs(1)),
        )?;
        let mut genl = Genl {
            socket,
            family: 0,
            seq: 1,
            buf: Vec::with_capacity(RECV_BUF),
        };
        genl.family = genl.resolve()?;
        Ok(genl)
    }

    fn resolve(&mut self) -> io::Result<u16> {
        let mut message = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY.to_owned())],
        });
        message.finalize();
        let mut packet = NetlinkMessage::from(message);
        packet.header.flags = NLM_F_REQUEST;
        packet.header.sequence_number = self.next_seq();
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;
        self.buf.clear();
        self.socket.recv(&mut self.buf, 0)?;
        let reply =
            NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&self.buf).map_err(invalid)?;
        match reply.payload {
            NetlinkPayload::InnerMessage(m) => m
                .payload
                .nlas
                .iter()
                .find_map(|a| match a {
                    GenlCtrlAttrs::FamilyId(id) => Some(*id),
                    _ => None,
                })
                .ok_or_else(|| invalid("the family reply has no id")),
            NetlinkPayload::Error(e) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the kernel has no {FAMILY} family (is ksmbd loaded?): {e}"),
            )),
            other => Err(invalid(format!("unexpected reply {other:?}"))),
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn packet(&mut self, message: KsmbdMessage, flags: u16) -> Vec<u8> {
        let mut genl = GenlMessage::from_payload(message);
        genl.set_resolved_family_id(self.family);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.next_seq();
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(genl));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        out
    }

    /// Sends a reply or notice to the kernel.
    pub fn send(&mut self, event: u16, body: Vec<u8>) -> io::Result<()> {
        let out = self.packet(KsmbdMessage { event, body }, 0);
        self.socket.send(&out, 0).map(|_| ())
    }

    /// Sends a message and waits for the kernel's acknowledgement (its errno on failure).
    pub fn send_acked(&mut self, event: u16, body: Vec<u8>) -> io::Result<()> {
        let out = self.packet(KsmbdMessage { event, body }, NLM_F_ACK);
        let seq = self.seq;
        self.socket.send(&out, 0)?;
        for _ in 0..50 {
            for message in self.recv()? {
                if let Incoming::Ack { seq: s, result } = message {
                    if s == seq {
                        return result;
                    }
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the kernel did not acknowledge the message",
        ))
    }

    /// Waits up to a second for the next datagram and returns what it holds.
    pub fn recv(&mut self) -> io::Result<Vec<Incoming>> {
        self.buf.clear();
        let size = match self.socket.recv(&mut self.buf, 0) {
            Ok(size) => size,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Vec::new())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(split(&self.buf[..size.min(self.buf.len())]))
    }
}

/// What arrived from the kernel.
#[derive(Debug)]
pub enum Incoming {
    Event(KsmbdMessage),
    Ack {
        seq: u32,
        result: io::Result<()>,
    },
    /// A message that could not be decoded (logged by the caller).
    Malformed(String),
}

/// Splits a datagram into its netlink messages.
pub fn split(datagram: &[u8]) -> Vec<Incoming> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset + 16 <= datagram.len() {
        let bytes = &datagram[offset..];
        let length = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if length < 16 || length > bytes.len() {
            out.push(Incoming::Malformed(format!(
                "a netlink message claims {length} bytes of {}",
                bytes.len()
            )));
            break;
        }
        match NetlinkMessage::<GenlMessage<KsmbdMessage>>::deserialize(&bytes[..length]) {
            Ok(message) => {
                let seq = message.header.sequence_number;
                match message.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(Incoming::Event(m.payload)),
                    NetlinkPayload::Error(e) => out.push(Incoming::Ack {
                        seq,
                        result: match e.code {
                            None => Ok(()),
                            Some(_) => Err(e.to_io()),
                        },
                    }),
                    other => out.push(Incoming::Malformed(format!("unexpected {other:?}"))),
                }
            }
            Err(e) => out.push(Incoming::Malformed(e.to_string())),
        }
        offset += align4(length);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(family: u16, event: u16, attr_type: u16, body: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        let len = 16 + 4 + 4 + align4(body.len());
        d.extend_from_slice(&(len as u32).to_ne_bytes());
        d.extend_from_slice(&family.to_ne_bytes());
        d.extend_from_slice(&0u16.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.push(event as u8);
        d.push(1);
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&((4 + body.len()) as u16).to_ne_bytes());
        d.extend_from_slice(&attr_type.to_ne_bytes());
        d.extend_from_slice(body);
        d.resize(len, 0);
        d
    }

    /// The framing of a message to the kernel: nlmsghdr, genlmsghdr (cmd = event, version 1),
    /// one attribute of the event's type.
    #[test]
    fn framing() {
        let message = KsmbdMessage {
            event: 9,
            body: vec![1, 2, 3, 4, 5],
        };
        let mut genl = GenlMessage::from_payload(message.clone());
        genl.set_resolved_family_id(0x1c);
        let mut packet = NetlinkMessage::from(genl);
        packet.header.flags = NLM_F_REQUEST;
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        assert_eq!(out.len(), 16 + 4 + 4 + 8);
        assert_eq!(&out[4..6], &0x1cu16.to_ne_bytes());
        assert_eq!(&out[16..18], &[9, 1]);
        assert_eq!(&out[20..22], &9u16.to_ne_bytes());
        assert_eq!(&out[22..24], &9u16.to_ne_bytes());
        assert_eq!(&out[24..29], &[1, 2, 3, 4, 5]);
        let back = split(&datagram(0x1c, 9, 9, &[1, 2, 3, 4, 5]));
        assert!(matches!(&back[..], [Incoming::Event(m)] if *m == message));
    }

    #[test]
    fn malformed_datagrams() {
        assert!(matches!(
            &split(&datagram(0x1c, 8, 7, &[0; 8]))[..],
            [Incoming::Malformed(_)]
        ));
        let mut short = datagram(0x1c, 8, 8, &[0; 8]);
        short[0] = 200;
        assert!(matches!(&split(&short)[..], [Incoming::Malformed(_)]));
        assert!(split(&[0; 7]).is_empty());
        let mut rng = crate::testing::Rng(0x1234_5678_9abc_def1);
        let valid = datagram(0x1c, 4, 4, &[0; 116]);
        for _ in 0..20_000 {
            let _ = split(&rng.mutate(&valid));
        }
    }
}
