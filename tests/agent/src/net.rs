//! The test client's network: loopback up, one NIC up with the static address from the kernel
//! command line, over rtnetlink.
//!
//! Three requests and one dump are all the agent needs, so this is a few functions over one
//! `NETLINK_ROUTE` socket with a receive timeout (no call can hang). No DHCP, no routes beyond
//! the subnet's own, no IPv6 settings. What does not live here: the appliance's network stack
//! (`appliance/src/net`), which is far larger.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// One link: index, name, whether it is loopback, whether it is ethernet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub loopback: bool,
    pub ethernet: bool,
}

struct Route {
    socket: Socket,
    seq: u32,
}

impl Route {
    fn open() -> io::Result<Route> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        rustix::net::sockopt::set_socket_timeout(
            &socket,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_secs(2)),
        )?;
        Ok(Route { socket, seq: 0 })
    }

    /// Sends one request; collects the messages of a dump, or waits for the ACK.
    fn call(
        &mut self,
        body: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(body));
        msg.finalize();
        let mut bytes = vec![0; msg.buffer_len()];
        msg.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(32 << 10);
        loop {
            buf.clear();
            let len = self.socket.recv(&mut buf, 0)?;
            let mut at = 0;
            while at < len.min(buf.len()) {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let size = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    match reply.payload {
                        NetlinkPayload::InnerMessage(m) => out.push(m),
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(out),
                                Some(_) => Err(e.to_io()),
                            }
                        }
                        _ => {}
                    }
                }
                if size == 0 {
                    break;
                }
                at += (size + 3) & !3;
            }
        }
    }

    fn links(&mut self) -> io::Result<Vec<Link>> {
        let replies = self.call(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link {
                    index: l.header.index,
                    name: l
                        .attributes
                        .iter()
                        .find_map(|a| match a {
                            LinkAttribute::IfName(n) => Some(n.clone()),
                            _ => None,
                        })
                        .unwrap_or_default(),
                    loopback: l.header.link_layer_type == LinkLayerType::Loopback,
                    ethernet: l.header.link_layer_type == LinkLayerType::Ether,
                }),
                _ => None,
            })
            .collect())
    }

    fn up(&mut self, index: u32) -> io::Result<()> {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.flags = LinkFlags::Up;
        l.header.change_mask = LinkFlags::Up;
        self.call(RouteNetlinkMessage::SetLink(l), 0).map(drop)
    }

    fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.prefix_len = prefix;
        a.header.index = index;
        a.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        a.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
        if prefix < 31 {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let broadcast = Ipv4Addr::from(u32::from(ip) | host_bits);
            a.attributes.push(AddressAttribute::Broadcast(broadcast));
        }
        match self.call(
            RouteNetlinkMessage::NewAddress(a),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error()) => Ok(()),
            other => other.map(drop),
        }
    }
}

/// Which link gets the address: the named one, else the first ethernet link.
pub fn pick(links: &[Link], name: Option<&str>) -> Option<Link> {
    match name {
        Some(n) => links.iter().find(|l| l.name == n).cloned(),
        None => links.iter().find(|l| l.ethernet && !l.loopback).cloned(),
    }
}

/// Brings up loopback and configures the NIC; returns the NIC's name. The NIC's driver may
/// still be binding when this runs, so it waits up to 5 s for the link to appear.
pub fn configure(iface: Option<&str>, address: Option<(Ipv4Addr, u8)>) -> Result<String, String> {
    let mut route = Route::open().map_err(|e| format!("rtnetlink: {e}"))?;
    let mut waited = Duration::ZERO;
    let (links, link) = loop {
        let links = route.links().map_err(|e| format!("list links: {e}"))?;
        if let Some(l) = pick(&links, iface) {
            break (links, l);
        }
        if waited >= Duration::from_secs(5) {
            let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
            return Err(format!(
                "no {} link (links: {})",
                iface.unwrap_or("ethernet"),
                names.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    };
    for lo in links.iter().filter(|l| l.loopback) {
        route
            .up(lo.index)
            .map_err(|e| format!("{} up: {e}", lo.name))?;
    }
    route
        .up(link.index)
        .map_err(|e| format!("{} up: {e}", link.name))?;
    if let Some((ip, prefix)) = address {
        route
            .add_address(link.index, ip, prefix)
            .map_err(|e| format!("add {ip}/{prefix} to {}: {e}", link.name))?;
    }
    Ok(link.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_named_or_first_ethernet_link() {
        let links = vec![
            Link {
                index: 1,
                name: "lo".into(),
                loopback: true,
                ethernet: false,
            },
            Link {
                index: 2,
                name: "eth0".into(),
                loopback: false,
                ethernet: true,
            },
            Link {
                index: 3,
                name: "eth1".into(),
                loopback: false,
                ethernet: true,
            },
        ];
        assert_eq!(pick(&links, None).unwrap().name, "eth0");
        assert_eq!(pick(&links, Some("eth1")).unwrap().index, 3);
        assert!(pick(&links, Some("wlan0")).is_none());
        assert!(pick(&links[..1], None).is_none());
    }
}
