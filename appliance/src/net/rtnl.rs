//! A small synchronous rtnetlink client: links, IPv4 addresses and default routes.
//!
//! Each [`Rtnl`] owns one `NETLINK_ROUTE` socket and sends one request at a time, waiting for
//! the kernel's acknowledgement (or the end of a dump) with a receive timeout, so no call can
//! hang. Callers that run in different threads open their own [`Rtnl`]. This module knows the
//! wire format; it does not know about DHCP, settings or interface policy.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::settings::broadcast_of;

/// How long one request may wait for the kernel's answer.
const REPLY_TIMEOUT: Duration = Duration::from_millis(500);

/// Who installed an address or route: ours are marked so they can be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Static,
    Dhcp,
}

/// One network link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Vec<u8>,
    pub up: bool,
    pub carrier: bool,
    pub loopback: bool,
    /// An ethernet device with no `IFLA_LINKINFO` kind: a real NIC, not a bridge, veth or VLAN.
    pub physical_ethernet: bool,
}

/// One IPv4 address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: Ipv4Addr,
    pub prefix: u8,
}

/// One IPv4 default route in the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRoute {
    pub index: u32,
    pub gateway: Ipv4Addr,
    pub metric: u32,
}

/// A synchronous rtnetlink socket.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens and binds a `NETLINK_ROUTE` socket with a receive timeout.
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        rustix::net::sockopt::set_socket_timeout(
            &socket,
            rustix::net::sockopt::Timeout::Recv,
            Some(REPLY_TIMEOUT),
        )?;
        Ok(Rtnl {
            socket,
            seq: super::random::random_u32() >> 1,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends one request and collects the inner messages of the reply.
    ///
    /// With `NLM_F_DUMP` this reads until `NLMSG_DONE`; otherwise it asks for an ACK and reads
    /// until it arrives. A netlink error becomes an `io::Error` with the kernel's errno.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let mut replies = Vec::new();
        loop {
            self.buf.clear();
            let size = match self.socket.recv(&mut self.buf, 0) {
                Ok(size) => size,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the kernel did not answer the netlink request",
                    ))
                }
                Err(e) => return Err(e),
            };
            let mut offset = 0;
            let end = size.min(self.buf.len());
            while offset < end {
                let bytes = &self.buf[offset..end];
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let length = reply.header.length as usize;
                if reply.header.sequence_number == seq {
                    match reply.payload {
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(e) => {
                            return if e.code.is_none() {
                                Ok(replies)
                            } else {
                                Err(e.to_io())
                            };
                        }
                        NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                        _ => {}
                    }
                }
                if length == 0 {
                    break;
                }
                // Netlink messages are 4-byte aligned inside one datagram.
                offset += (length + 3) & !3;
            }
        }
    }

    /// All links.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(parse_link(&link)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, if there is one.
    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    /// Sets a link administratively up (`ip link set dev X up`).
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(link), 0)
            .map(drop)
    }

    /// Adds `address/prefix` to a link; an address that is already there is not an error.
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let message = address_message(index, address, prefix);
        match self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Removes `address/prefix` from a link; an address that is already gone is not an error.
    pub fn del_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let message = address_message(index, address, prefix);
        match self.request(RouteNetlinkMessage::DelAddress(message), 0) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)
                ) =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// All IPv4 addresses.
    pub fn addresses(&mut self) -> io::Result<Vec<Address>> {
        let mut query = AddressMessage::default();
        query.header.family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetAddress(query), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.family == AddressFamily::Inet => {
                    let address = a.attributes.iter().find_map(|attr| match attr {
                        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                        _ => None,
                    });
                    let address = address.or_else(|| {
                        a.attributes.iter().find_map(|attr| match attr {
                            AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                            _ => None,
                        })
                    })?;
                    Some(Address {
                        index: a.header.index,
                        address,
                        prefix: a.header.prefix_len,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Adds or replaces the default route through `gateway` on a link, with `metric`.
    ///
    /// The kernel matches an existing route on destination, table and metric, so giving each
    /// link its own metric lets several links keep a default route each.
    pub fn replace_default_route(
        &mut self,
        index: u32,
        gateway: Ipv4Addr,
        metric: u32,
        origin: Origin,
    ) -> io::Result<()> {
        let message = default_route_message(index, gateway, metric, origin);
        self.request(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Removes the default route through `gateway` on a link; a missing route is not an error.
    pub fn del_default_route(
        &mut self,
        index: u32,
        gateway: Ipv4Addr,
        metric: u32,
        origin: Origin,
    ) -> io::Result<()> {
        let message = default_route_message(index, gateway, metric, origin);
        match self.request(RouteNetlinkMessage::DelRoute(message), 0) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH) | Some(libc::ENODEV)) => Ok(()),
            other => other.map(drop),
        }
    }

    /// All IPv4 default routes of the main table.
    pub fn default_routes(&mut self) -> io::Result<Vec<DefaultRoute>> {
        let mut query = RouteMessage::default();
        query.header.address_family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetRoute(query), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.address_family == AddressFamily::Inet
                        && r.header.destination_prefix_length == 0
                        && r.header.table == RouteHeader::RT_TABLE_MAIN =>
                {
                    let mut route = DefaultRoute {
                        index: 0,
                        gateway: Ipv4Addr::UNSPECIFIED,
                        metric: 0,
                    };
                    for attr in &r.attributes {
                        match attr {
                            RouteAttribute::Oif(i) => route.index = *i,
                            RouteAttribute::Gateway(RouteAddress::Inet(g)) => route.gateway = *g,
                            RouteAttribute::Priority(p) => route.metric = *p,
                            _ => {}
                        }
                    }
                    (!route.gateway.is_unspecified()).then_some(route)
                }
                _ => None,
            })
            .collect())
    }
}

/// Reads the fields we use out of a link message.
fn parse_link(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: Vec::new(),
        up: message.header.flags.contains(LinkFlags::Up),
        carrier: message.header.flags.contains(LinkFlags::LowerUp),
        loopback: message.header.flags.contains(LinkFlags::Loopback)
            || message.header.link_layer_type == LinkLayerType::Loopback,
        physical_ethernet: message.header.link_layer_type == LinkLayerType::Ether,
    };
    for attr in &message.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(mac) => link.mac = mac.clone(),
            LinkAttribute::Carrier(c) => link.carrier = *c != 0 && link.up,
            LinkAttribute::LinkInfo(infos)
                if infos.iter().any(|i| matches!(i, LinkInfo::Kind(_))) =>
            {
                link.physical_ethernet = false;
            }
            _ => {}
        }
    }
    link
}

/// An `RTM_NEWADDR`/`RTM_DELADDR` body for an IPv4 address.
fn address_message(index: u32, address: Ipv4Addr, prefix: u8) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.prefix_len = prefix;
    message.header.index = index;
    message.header.scope = if address.is_loopback() {
        AddressScope::Host
    } else {
        AddressScope::Universe
    };
    message
        .attributes
        .push(AddressAttribute::Local(IpAddr::V4(address)));
    message
        .attributes
        .push(AddressAttribute::Address(IpAddr::V4(address)));
    if prefix < 31 {
        message
            .attributes
            .push(AddressAttribute::Broadcast(broadcast_of(address, prefix)));
    }
    message
}

/// An `RTM_NEWROUTE`/`RTM_DELROUTE` body for a default route.
fn default_route_message(
    index: u32,
    gateway: Ipv4Addr,
    metric: u32,
    origin: Origin,
) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = AddressFamily::Inet;
    message.header.destination_prefix_length = 0;
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = match origin {
        Origin::Static => RouteProtocol::Static,
        Origin::Dhcp => RouteProtocol::Dhcp,
    };
    message.header.scope = RouteScope::Universe;
    message.header.kind = RouteType::Unicast;
    message
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    message.attributes.push(RouteAttribute::Oif(index));
    message.attributes.push(RouteAttribute::Priority(metric));
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    /// Golden bytes: `ip addr add 10.0.2.15/24 brd 10.0.2.255 dev <2>` as iproute2 encodes it
    /// (ifaddrmsg, then IFA_LOCAL, IFA_ADDRESS, IFA_BROADCAST).
    #[test]
    fn address_message_bytes() {
        let message = address_message(2, Ipv4Addr::new(10, 0, 2, 15), 24);
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        #[rustfmt::skip]
        let expected = [
            2, 24, 0, 0, 2, 0, 0, 0,          // AF_INET, /24, flags, scope universe, ifindex 2
            8, 0, 2, 0, 10, 0, 2, 15,         // IFA_LOCAL
            8, 0, 1, 0, 10, 0, 2, 15,         // IFA_ADDRESS
            8, 0, 4, 0, 10, 0, 2, 255,        // IFA_BROADCAST
        ];
        assert_eq!(bytes, expected);
    }

    /// Golden bytes: `ip route replace default via 10.0.2.2 dev <2> proto dhcp metric 102`.
    #[test]
    fn default_route_message_bytes() {
        let message = default_route_message(2, Ipv4Addr::new(10, 0, 2, 2), 102, Origin::Dhcp);
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        #[rustfmt::skip]
        let expected = [
            2, 0, 0, 0, 254, 16, 0, 1, 0, 0, 0, 0, // AF_INET, dst /0, table main, proto dhcp, unicast
            8, 0, 5, 0, 10, 0, 2, 2,               // RTA_GATEWAY
            8, 0, 4, 0, 2, 0, 0, 0,                // RTA_OIF
            8, 0, 6, 0, 102, 0, 0, 0,              // RTA_PRIORITY
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn link_parsing() {
        let mut message = LinkMessage::default();
        message.header.index = 2;
        message.header.link_layer_type = LinkLayerType::Ether;
        message.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        message.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Address(vec![0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        ];
        let link = parse_link(&message);
        assert_eq!(link.name, "eth0");
        assert!(link.up && link.carrier && link.physical_ethernet && !link.loopback);
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                netlink_packet_route::link::InfoKind::Veth,
            )]));
        assert!(!parse_link(&message).physical_ethernet);
    }
}
