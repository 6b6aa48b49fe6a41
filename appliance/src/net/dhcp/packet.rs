//! DHCPv4 wire format: building our requests and parsing servers' replies.
//!
//! Options are encoded and decoded with `dhcproto`. The fixed BOOTP header of our own requests
//! is written here directly, because `dhcproto`'s constructors draw a transaction id from
//! `rand`, which may block on (or panic without) kernel entropy in early boot. Parsing never
//! panics: anything malformed comes back as a [`PacketError`] for the caller to log and drop.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, DhcpOptions, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

/// The DHCP magic cookie that follows the BOOTP header (RFC 2131 section 3).
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// The length of the BOOTP header including the magic cookie.
const HEADER_LEN: usize = 240;
/// Some relays and old servers drop BOOTP packets shorter than this (RFC 1542 section 2.1).
const MIN_PACKET_LEN: usize = 300;
/// The BROADCAST bit of the `flags` field.
const FLAG_BROADCAST: u16 = 0x8000;

/// Server port and client port.
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// The options we ask servers for (option 55).
pub const REQUESTED_OPTIONS: [OptionCode; 8] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::DomainName,
    OptionCode::AddressLeaseTime,
    OptionCode::Renewal,
    OptionCode::Rebinding,
    OptionCode::NtpServers,
];

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:67 out of the interface.
    Broadcast,
    /// A server's own address (renewal, release).
    Unicast(Ipv4Addr),
}

/// The kinds of message a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Discover,
    Request,
    Release,
}

/// A request to send, as data: the state machine produces these and the driver encodes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub kind: RequestKind,
    pub xid: u32,
    /// Seconds since the client began this acquisition or renewal.
    pub secs: u16,
    /// Our current address (renewing, rebinding, release), else 0.0.0.0.
    pub ciaddr: Ipv4Addr,
    /// Option 50, the address we want (REQUEST while selecting; DISCOVER after a lost lease).
    pub requested: Option<Ipv4Addr>,
    /// Option 54, the server we chose (REQUEST while selecting; RELEASE).
    pub server_id: Option<Ipv4Addr>,
    /// Asks the server to broadcast its reply, for an interface that has no address yet.
    pub broadcast_flag: bool,
    pub to: Destination,
}

/// Who we are on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub mac: [u8; 6],
    /// Option 12; `None` leaves it out.
    pub hostname: Option<String>,
}

impl Identity {
    /// Option 61: hardware type 1 (ethernet) followed by the MAC (RFC 2132 section 9.14).
    pub fn client_id(&self) -> Vec<u8> {
        let mut id = Vec::with_capacity(7);
        id.push(1);
        id.extend_from_slice(&self.mac);
        id
    }
}

/// Why a packet could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("packet of {0} bytes is too short for DHCP (at least 241)")]
    TooShort(usize),
    #[error("packet has no DHCP magic cookie")]
    NoMagic,
    #[error("packet does not decode: {0}")]
    Malformed(String),
    #[error("packet is a BOOTP request, not a reply")]
    NotAReply,
    #[error("reply has no DHCP message type (option 53)")]
    NoMessageType,
    #[error("reply has message type {0:?}, which a client does not handle")]
    UnexpectedType(MessageType),
    #[error("cannot encode the {0:?}: {1}")]
    Encode(RequestKind, String),
}

/// The kinds of reply a client acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Offer,
    Ack,
    Nak,
}

/// The fields of a server's reply that the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    pub xid: u32,
    /// The first six bytes of `chaddr`.
    pub chaddr: [u8; 6],
    pub yiaddr: Ipv4Addr,
    pub server_id: Option<Ipv4Addr>,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Option 42, the NTP servers.
    pub ntp: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_secs: Option<u32>,
    pub renewal_secs: Option<u32>,
    pub rebinding_secs: Option<u32>,
    /// Option 56, a server's explanation (mostly with NAK).
    pub message: Option<String>,
}

/// Encodes a request: the BOOTP header, the magic cookie, options through `dhcproto`, padding.
pub fn encode(out: &Outgoing, identity: &Identity) -> Result<Vec<u8>, PacketError> {
    let mut bytes = Vec::with_capacity(MIN_PACKET_LEN + 64);
    bytes.extend_from_slice(&[1, 1, 6, 0]); // BOOTREQUEST, ethernet, hlen 6, hops 0
    bytes.extend_from_slice(&out.xid.to_be_bytes());
    bytes.extend_from_slice(&out.secs.to_be_bytes());
    let flags = if out.broadcast_flag {
        FLAG_BROADCAST
    } else {
        0
    };
    bytes.extend_from_slice(&flags.to_be_bytes());
    bytes.extend_from_slice(&out.ciaddr.octets());
    bytes.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&identity.mac);
    bytes.extend_from_slice(&chaddr);
    bytes.extend_from_slice(&[0; 64 + 128]); // sname, file
    bytes.extend_from_slice(&MAGIC);

    let mut opts = DhcpOptions::new();
    let kind = match out.kind {
        RequestKind::Discover => MessageType::Discover,
        RequestKind::Request => MessageType::Request,
        RequestKind::Release => MessageType::Release,
    };
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ClientIdentifier(identity.client_id()));
    if let Some(requested) = out.requested {
        opts.insert(DhcpOption::RequestedIpAddress(requested));
    }
    if let Some(server) = out.server_id {
        opts.insert(DhcpOption::ServerIdentifier(server));
    }
    if out.kind != RequestKind::Release {
        if let Some(hostname) = &identity.hostname {
            opts.insert(DhcpOption::Hostname(hostname.clone()));
        }
        opts.insert(DhcpOption::ParameterRequestList(REQUESTED_OPTIONS.to_vec()));
        opts.insert(DhcpOption::MaxMessageSize(1500));
    }
    let encoded = opts
        .to_vec()
        .map_err(|e| PacketError::Encode(out.kind, e.to_string()))?;
    bytes.extend_from_slice(&encoded);
    if bytes.len() < MIN_PACKET_LEN {
        bytes.resize(MIN_PACKET_LEN, 0);
    }
    Ok(bytes)
}

/// The options a client reads, with the lengths they must have.
fn option_fits(code: u8, len: usize) -> bool {
    match code {
        53 => len == 1,                                  // message type
        1 | 51 | 54 | 58 | 59 => len == 4,               // mask, lease, server id, T1, T2
        3 | 6 | 42 => len >= 4 && len.is_multiple_of(4), // routers, name and NTP servers
        15 | 56 => (1..=255).contains(&len),             // domain name, message
        _ => false,
    }
}

/// Rebuilds a reply with only the options [`parse_reply`] uses, each checked for length (and
/// UTF-8 where it is text), because `dhcproto`'s option decoder asserts on some malformed
/// lengths instead of returning an error. Options split over several instances (RFC 3396)
/// are joined first. The BOOTP header is copied as it is.
fn sanitize(bytes: &[u8]) -> Result<Vec<u8>, PacketError> {
    let mut found: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut at = HEADER_LEN;
    while let Some(&code) = bytes.get(at) {
        match code {
            0 => {
                at += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let Some(&len) = bytes.get(at + 1) else {
            return Err(PacketError::Malformed(format!(
                "option {code} has no length"
            )));
        };
        let start = at + 2;
        let end = start + usize::from(len);
        let Some(value) = bytes.get(start..end) else {
            return Err(PacketError::Malformed(format!(
                "option {code} runs past the end of the packet"
            )));
        };
        match found.iter_mut().find(|(c, _)| *c == code) {
            Some((_, joined)) => joined.extend_from_slice(value),
            None => found.push((code, value.to_vec())),
        }
        at = end;
    }
    let mut clean = bytes[..HEADER_LEN].to_vec();
    for (code, value) in found {
        let text_ok = !matches!(code, 15 | 56) || std::str::from_utf8(&value).is_ok();
        if option_fits(code, value.len()) && text_ok {
            clean.push(code);
            clean.push(value.len() as u8);
            clean.extend_from_slice(&value);
        } else if code == 53 {
            return Err(PacketError::Malformed(format!(
                "message type option has length {}",
                value.len()
            )));
        } else if matches!(code, 1 | 3 | 6 | 15 | 42 | 51 | 54 | 56 | 58 | 59) {
            log::debug!("dhcp: option {code} of length {} ignored", value.len());
        }
    }
    clean.push(255);
    Ok(clean)
}

/// Parses a server's reply. Checks the shape only; whether it is *ours* (xid, chaddr) and
/// whether it fits the current state is for the state machine to judge.
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, PacketError> {
    if bytes.len() <= HEADER_LEN {
        return Err(PacketError::TooShort(bytes.len()));
    }
    if bytes[HEADER_LEN - 4..HEADER_LEN] != MAGIC {
        return Err(PacketError::NoMagic);
    }
    let clean = sanitize(bytes)?;
    let message = Message::decode(&mut Decoder::new(&clean))
        .map_err(|e| PacketError::Malformed(e.to_string()))?;
    if message.opcode() != Opcode::BootReply {
        return Err(PacketError::NotAReply);
    }
    let opts = message.opts();
    let kind = match opts.msg_type() {
        None => return Err(PacketError::NoMessageType),
        Some(MessageType::Offer) => ReplyKind::Offer,
        Some(MessageType::Ack) => ReplyKind::Ack,
        Some(MessageType::Nak) => ReplyKind::Nak,
        Some(other) => return Err(PacketError::UnexpectedType(other)),
    };
    // Read from the bytes: `Message::chaddr()` slices by `hlen`, which a bad packet sets past 16.
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&clean[28..34]);
    let ipv4 = |code| match opts.get(code) {
        Some(DhcpOption::SubnetMask(a)) | Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
        _ => None,
    };
    let ipv4s = |code| match opts.get(code) {
        Some(DhcpOption::Router(v))
        | Some(DhcpOption::DomainNameServer(v))
        | Some(DhcpOption::NtpServers(v)) => v.clone(),
        _ => Vec::new(),
    };
    let secs = |code| match opts.get(code) {
        Some(DhcpOption::AddressLeaseTime(s))
        | Some(DhcpOption::Renewal(s))
        | Some(DhcpOption::Rebinding(s)) => Some(*s),
        _ => None,
    };
    Ok(Reply {
        kind,
        xid: message.xid(),
        chaddr,
        yiaddr: message.yiaddr(),
        server_id: ipv4(OptionCode::ServerIdentifier),
        subnet_mask: ipv4(OptionCode::SubnetMask),
        routers: ipv4s(OptionCode::Router),
        dns: ipv4s(OptionCode::DomainNameServer),
        ntp: ipv4s(OptionCode::NtpServers),
        domain: match opts.get(OptionCode::DomainName) {
            Some(DhcpOption::DomainName(d)) => Some(d.clone()),
            _ => None,
        },
        lease_secs: secs(OptionCode::AddressLeaseTime),
        renewal_secs: secs(OptionCode::Renewal),
        rebinding_secs: secs(OptionCode::Rebinding),
        message: match opts.get(OptionCode::Message) {
            Some(DhcpOption::Message(m)) => Some(m.clone()),
            _ => None,
        },
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    pub fn identity() -> Identity {
        Identity {
            mac: MAC,
            hostname: Some("tank".to_owned()),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("valid address")
    }

    /// Builds a server reply the way slirp (QEMU user networking) does.
    pub fn server_reply(kind: MessageType, xid: u32, yiaddr: Ipv4Addr) -> Message {
        let mut header = vec![2u8, 1, 6, 0];
        header.extend_from_slice(&xid.to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        header.extend_from_slice(&[0; 4]);
        header.extend_from_slice(&yiaddr.octets());
        header.extend_from_slice(&[10, 0, 2, 2, 0, 0, 0, 0]);
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&MAC);
        header.extend_from_slice(&chaddr);
        header.extend_from_slice(&[0; 192]);
        header.extend_from_slice(&MAGIC);
        header.push(255);
        let mut message = Message::decode(&mut Decoder::new(&header)).expect("template decodes");
        let opts = message.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        if kind != MessageType::Nak {
            opts.insert(DhcpOption::SubnetMask(ip("255.255.255.0")));
            opts.insert(DhcpOption::Router(vec![ip("10.0.2.2")]));
            opts.insert(DhcpOption::DomainNameServer(vec![ip("10.0.2.3")]));
            opts.insert(DhcpOption::AddressLeaseTime(86400));
        }
        opts.insert(DhcpOption::ServerIdentifier(ip("10.0.2.2")));
        message
    }

    pub fn reply_bytes(message: &Message) -> Vec<u8> {
        message.to_vec().expect("encodes")
    }

    fn decode(bytes: &[u8]) -> Message {
        Message::decode(&mut Decoder::new(bytes)).expect("our packet decodes")
    }

    fn discover() -> Outgoing {
        Outgoing {
            kind: RequestKind::Discover,
            xid: 0x1234_5678,
            secs: 3,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: None,
            server_id: None,
            broadcast_flag: true,
            to: Destination::Broadcast,
        }
    }

    #[test]
    fn discover_contents() {
        let bytes = encode(&discover(), &identity()).expect("encodes");
        assert!(bytes.len() >= MIN_PACKET_LEN);
        // Fixed header, byte for byte.
        assert_eq!(&bytes[..4], &[1, 1, 6, 0]);
        assert_eq!(&bytes[4..8], &[0x12, 0x34, 0x56, 0x78]); // xid
        assert_eq!(&bytes[8..10], &[0, 3]); // secs
        assert_eq!(&bytes[10..12], &[0x80, 0]); // BROADCAST flag
        assert_eq!(&bytes[12..28], &[0; 16]); // ciaddr, yiaddr, siaddr, giaddr
        assert_eq!(&bytes[28..34], &MAC);
        assert_eq!(&bytes[236..240], &MAGIC);

        let message = decode(&bytes);
        assert_eq!(message.opcode(), Opcode::BootRequest);
        assert_eq!(message.xid(), 0x1234_5678);
        assert!(message.flags().broadcast());
        assert_eq!(&message.chaddr()[..6], &MAC);
        let opts = message.opts();
        assert_eq!(opts.msg_type(), Some(MessageType::Discover));
        assert_eq!(
            opts.get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(vec![
                1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56
            ]))
        );
        assert_eq!(
            opts.get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("tank".to_owned()))
        );
        assert_eq!(
            opts.get(OptionCode::ParameterRequestList),
            Some(&DhcpOption::ParameterRequestList(
                REQUESTED_OPTIONS.to_vec()
            ))
        );
        assert!(opts.get(OptionCode::RequestedIpAddress).is_none());
        assert!(opts.get(OptionCode::ServerIdentifier).is_none());

        // The option bytes themselves: 53 then 55, as a server sees them.
        let options = &bytes[240..];
        assert!(
            options.windows(3).any(|w| w == [53, 1, 1]),
            "option 53 DISCOVER"
        );
        assert!(
            options.windows(4).any(|w| w == [55, 8, 1, 3]),
            "option 55 starts with subnet mask and router"
        );
        assert!(
            options.windows(10).any(|w| w[..2] == [55, 8] && w[9] == 42),
            "option 55 asks for the NTP servers last"
        );
        assert!(options
            .windows(6)
            .any(|w| w == [12, 4, b't', b'a', b'n', b'k']));
    }

    #[test]
    fn request_contents() {
        let request = Outgoing {
            kind: RequestKind::Request,
            requested: Some(ip("10.0.2.15")),
            server_id: Some(ip("10.0.2.2")),
            ..discover()
        };
        let message = decode(&encode(&request, &identity()).expect("encodes"));
        let opts = message.opts();
        assert_eq!(opts.msg_type(), Some(MessageType::Request));
        assert!(message.flags().broadcast());
        assert_eq!(message.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            opts.get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(ip("10.0.2.15")))
        );
        assert_eq!(
            opts.get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(ip("10.0.2.2")))
        );
        assert!(opts.get(OptionCode::Hostname).is_some());
        assert!(opts.get(OptionCode::ParameterRequestList).is_some());

        // Without a hostname there is no option 12.
        let anonymous = Identity {
            mac: MAC,
            hostname: None,
        };
        let message = decode(&encode(&request, &anonymous).expect("encodes"));
        assert!(message.opts().get(OptionCode::Hostname).is_none());
    }

    #[test]
    fn release_contents() {
        let release = Outgoing {
            kind: RequestKind::Release,
            ciaddr: ip("10.0.2.15"),
            server_id: Some(ip("10.0.2.2")),
            broadcast_flag: false,
            to: Destination::Unicast(ip("10.0.2.2")),
            ..discover()
        };
        let message = decode(&encode(&release, &identity()).expect("encodes"));
        assert_eq!(message.opts().msg_type(), Some(MessageType::Release));
        assert_eq!(message.ciaddr(), ip("10.0.2.15"));
        assert!(!message.flags().broadcast());
        assert!(message
            .opts()
            .get(OptionCode::ParameterRequestList)
            .is_none());
        assert!(message.opts().get(OptionCode::ServerIdentifier).is_some());
    }

    #[test]
    fn offer_parsing() {
        let bytes = reply_bytes(&server_reply(MessageType::Offer, 7, ip("10.0.2.15")));
        let reply = parse_reply(&bytes).expect("parses");
        assert_eq!(
            reply,
            Reply {
                kind: ReplyKind::Offer,
                xid: 7,
                chaddr: MAC,
                yiaddr: ip("10.0.2.15"),
                server_id: Some(ip("10.0.2.2")),
                subnet_mask: Some(ip("255.255.255.0")),
                routers: vec![ip("10.0.2.2")],
                dns: vec![ip("10.0.2.3")],
                ntp: Vec::new(),
                domain: None,
                lease_secs: Some(86400),
                renewal_secs: None,
                rebinding_secs: None,
                message: None,
            }
        );
    }

    #[test]
    fn malformed_packets_are_errors() {
        let good = reply_bytes(&server_reply(MessageType::Ack, 7, ip("10.0.2.15")));
        assert_eq!(parse_reply(&[]), Err(PacketError::TooShort(0)));
        assert_eq!(parse_reply(&good[..200]), Err(PacketError::TooShort(200)));
        let mut no_magic = good.clone();
        no_magic[236] = 0;
        assert_eq!(parse_reply(&no_magic), Err(PacketError::NoMagic));
        let mut request = good.clone();
        request[0] = 1;
        assert_eq!(parse_reply(&request), Err(PacketError::NotAReply));
        let mut no_type = good[..240].to_vec();
        no_type.push(255);
        assert_eq!(parse_reply(&no_type), Err(PacketError::NoMessageType));
        // Our own DISCOVER, looped back, is not a reply either.
        let ours = encode(&discover(), &identity()).expect("encodes");
        assert_eq!(parse_reply(&ours), Err(PacketError::NotAReply));

        // Truncations and garbage in the options never panic.
        for len in 0..good.len() {
            let _ = parse_reply(&good[..len]);
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = 240 + (state as usize % (bytes.len() - 240));
                bytes[at] = (state >> 32) as u8;
            }
            let _ = parse_reply(&bytes);
        }
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..16 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = state as usize % bytes.len();
                bytes[at] = (state >> 32) as u8;
            }
            bytes[236..240].copy_from_slice(&MAGIC);
            let _ = parse_reply(&bytes);
        }
    }

    /// Option lengths that make `dhcproto` assert, and other bad options, are dropped; the rest
    /// of the reply still parses.
    #[test]
    fn bad_options_are_dropped() {
        let good = reply_bytes(&server_reply(MessageType::Offer, 7, ip("10.0.2.15")));
        let mut bytes = good[..240].to_vec();
        bytes.extend_from_slice(&[53, 1, 2]); // OFFER
        bytes.extend_from_slice(&[1, 3, 255, 255, 255]); // mask of 3 bytes
        bytes.extend_from_slice(&[121, 5, 40, 10, 0, 0, 1]); // classless route with /40
        bytes.extend_from_slice(&[156, 1, 0]); // bulk lease query time of 1 byte
        bytes.extend_from_slice(&[15, 2, 0xff, 0xfe]); // domain that is not UTF-8
        bytes.extend_from_slice(&[3, 4, 10, 0, 2, 2]);
        bytes.extend_from_slice(&[6, 4, 10, 0, 2, 3, 6, 4, 10, 0, 2, 4]); // split (RFC 3396)
        bytes.extend_from_slice(&[42, 8, 10, 0, 2, 2, 192, 168, 1, 1]); // NTP servers
        bytes.extend_from_slice(&[54, 4, 10, 0, 2, 2, 51, 4, 0, 0, 0, 60, 255]);
        let reply = parse_reply(&bytes).expect("parses");
        assert_eq!(reply.ntp, vec![ip("10.0.2.2"), ip("192.168.1.1")]);
        assert_eq!(reply.kind, ReplyKind::Offer);
        assert_eq!(reply.subnet_mask, None);
        assert_eq!(reply.domain, None);
        assert_eq!(reply.routers, vec![ip("10.0.2.2")]);
        assert_eq!(reply.dns, vec![ip("10.0.2.3"), ip("10.0.2.4")]);
        assert_eq!(reply.server_id, Some(ip("10.0.2.2")));
        assert_eq!(reply.lease_secs, Some(60));

        let mut odd_dns = good[..240].to_vec();
        odd_dns.extend_from_slice(&[53, 1, 2, 6, 5, 10, 0, 2, 3, 9, 255]); // not a multiple of 4
        assert!(parse_reply(&odd_dns).expect("parses").dns.is_empty());
        let mut odd_ntp = good[..240].to_vec();
        odd_ntp.extend_from_slice(&[53, 1, 2, 42, 3, 10, 0, 2, 255]);
        assert!(parse_reply(&odd_ntp).expect("parses").ntp.is_empty());

        let mut long_hlen = good.clone();
        long_hlen[2] = 222;
        assert_eq!(parse_reply(&long_hlen).expect("parses").chaddr, MAC);

        let mut truncated = good[..240].to_vec();
        truncated.extend_from_slice(&[53, 1, 2, 3, 8, 10, 0]);
        assert!(matches!(
            parse_reply(&truncated),
            Err(PacketError::Malformed(_))
        ));
        let mut bad_type = good[..240].to_vec();
        bad_type.extend_from_slice(&[53, 2, 2, 2, 255]);
        assert!(matches!(
            parse_reply(&bad_type),
            Err(PacketError::Malformed(_))
        ));
    }
}
