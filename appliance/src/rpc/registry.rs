//! The rpcbind registry: which RPC program version is served on which transport and address,
//! and the universal address notation (RFC 5665 section 5.2.3) the protocol speaks.
//!
//! Entries come from two owners. The init's own ([`Owner::System`], shown as "superuser" as
//! rpcbind shows root's): rpcbind itself, MOUNT, and whatever the rest of the init registers
//! through [`super::RpcServices::register`] (nfs while knfsd runs). And entries set over the
//! network from loopback ([`Owner::Network`], shown as "unknown": like rpcbind, a caller that is
//! not on the local socket has no known uid). A network UNSET only removes network entries,
//! so the kernel's housekeeping UNSETs when nfsd starts (it unregisters every nfs version over
//! TCP to 127.0.0.1:111) never remove what the init declared.
//!
//! Lookups follow rpcbind's `find_service`: an exact program, version and netid match, or
//! failing that another version of the program on the same netid, so that the client learns
//! the served range from the server's PROG_MISMATCH.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The most entries the registry holds; network SETs past it fail.
pub const MAX_ENTRIES: usize = 512;

/// The transports rpcbind knows, named as in `/etc/netconfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Netid {
    Tcp,
    Udp,
    Tcp6,
    Udp6,
}

/// IP protocol numbers, as portmapper version 2 names transports.
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;

impl Netid {
    pub fn as_str(self) -> &'static str {
        match self {
            Netid::Tcp => "tcp",
            Netid::Udp => "udp",
            Netid::Tcp6 => "tcp6",
            Netid::Udp6 => "udp6",
        }
    }

    /// Parses a netid; rpcbind compares them without regard to case.
    pub fn parse(text: &str) -> Option<Netid> {
        [Netid::Tcp, Netid::Udp, Netid::Tcp6, Netid::Udp6]
            .into_iter()
            .find(|n| n.as_str().eq_ignore_ascii_case(text))
    }

    /// The netid of a stream or datagram transport in an address family.
    pub fn of(stream: bool, v6: bool) -> Netid {
        match (stream, v6) {
            (true, false) => Netid::Tcp,
            (false, false) => Netid::Udp,
            (true, true) => Netid::Tcp6,
            (false, true) => Netid::Udp6,
        }
    }

    pub fn is_v6(self) -> bool {
        matches!(self, Netid::Tcp6 | Netid::Udp6)
    }

    pub fn is_stream(self) -> bool {
        matches!(self, Netid::Tcp | Netid::Tcp6)
    }

    /// The portmapper v2 protocol number, for the IPv4 netids that version 2 can name.
    pub fn pmap_protocol(self) -> Option<u32> {
        match self {
            Netid::Tcp => Some(IPPROTO_TCP),
            Netid::Udp => Some(IPPROTO_UDP),
            Netid::Tcp6 | Netid::Udp6 => None,
        }
    }

    pub fn from_pmap_protocol(prot: u32) -> Option<Netid> {
        match prot {
            IPPROTO_TCP => Some(Netid::Tcp),
            IPPROTO_UDP => Some(Netid::Udp),
            _ => None,
        }
    }

    /// The `netconfig` semantics (`NC_TPI_CLTS` = 1, `NC_TPI_COTS_ORD` = 3), protocol family
    /// and protocol, as rpcbind v4's GETADDRLIST reports them.
    pub fn semantics(self) -> u32 {
        if self.is_stream() {
            3
        } else {
            1
        }
    }

    pub fn protofmly(self) -> &'static str {
        if self.is_v6() {
            "inet6"
        } else {
            "inet"
        }
    }

    pub fn proto(self) -> &'static str {
        if self.is_stream() {
            "tcp"
        } else {
            "udp"
        }
    }

    /// The wildcard address of this netid's family with `port`.
    pub fn wildcard(self, port: u16) -> SocketAddr {
        if self.is_v6() {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
        }
    }
}

/// Formats a universal address: the host in its usual text form, then the port's high and low
/// bytes in decimal ("10.0.3.1.8.1" is port 2049).
pub fn format_uaddr(addr: SocketAddr) -> String {
    let port = addr.port();
    format!("{}.{}.{}", addr.ip(), port >> 8, port & 0xff)
}

/// Parses a universal address of the family `netid` names.
pub fn parse_uaddr(text: &str, netid: Netid) -> Option<SocketAddr> {
    let mut parts = text.rsplitn(3, '.');
    let low = port_byte(parts.next()?)?;
    let high = port_byte(parts.next()?)?;
    let host = parts.next()?;
    let ip = if netid.is_v6() {
        IpAddr::V6(host.parse().ok()?)
    } else {
        IpAddr::V4(host.parse().ok()?)
    };
    Some(SocketAddr::new(ip, u16::from(high) << 8 | u16::from(low)))
}

fn port_byte(text: &str) -> Option<u8> {
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Who made an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The init: rpcbind, MOUNT and the API's registrations.
    System,
    /// A SET over the network (from loopback).
    Network,
}

impl Owner {
    /// The owner string rpcbind v3/v4 report.
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::System => "superuser",
            Owner::Network => "unknown",
        }
    }
}

/// One registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub prog: u32,
    pub vers: u32,
    pub netid: Netid,
    /// The registered address; an unspecified host means every local address.
    pub addr: SocketAddr,
    pub owner: Owner,
}

impl Mapping {
    /// The address a client should use, given the local address its request arrived on: a
    /// wildcard registration is answered with that address, as rpcbind does.
    pub fn address_for(&self, local: IpAddr) -> SocketAddr {
        if self.addr.ip().is_unspecified() && local.is_ipv6() == self.addr.is_ipv6() {
            SocketAddr::new(local, self.addr.port())
        } else {
            self.addr
        }
    }
}

/// The registry, in registration order (DUMP lists it that way).
#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<Mapping>,
}

impl Registry {
    pub fn entries(&self) -> &[Mapping] {
        &self.entries
    }

    /// The init's registration: replaces whatever is registered for the same program,
    /// version and netid. Returns whether anything changed.
    pub fn register(&mut self, prog: u32, vers: u32, netid: Netid, port: u16) -> bool {
        let mapping = Mapping {
            prog,
            vers,
            netid,
            addr: netid.wildcard(port),
            owner: Owner::System,
        };
        match self.position(prog, vers, netid) {
            Some(i) if self.entries[i] == mapping => false,
            Some(i) => {
                self.entries[i] = mapping;
                true
            }
            None => {
                self.entries.push(mapping);
                true
            }
        }
    }

    /// The init's unregistration; `None` removes every netid. Returns whether anything went.
    pub fn unregister(&mut self, prog: u32, vers: u32, netid: Option<Netid>) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|m| !(m.prog == prog && m.vers == vers && netid.is_none_or(|n| n == m.netid)));
        self.entries.len() != before
    }

    /// A network SET: fails if the program, version and netid are taken or the registry is
    /// full.
    pub fn set(&mut self, prog: u32, vers: u32, netid: Netid, addr: SocketAddr) -> bool {
        if self.position(prog, vers, netid).is_some() || self.entries.len() >= MAX_ENTRIES {
            return false;
        }
        self.entries.push(Mapping {
            prog,
            vers,
            netid,
            addr,
            owner: Owner::Network,
        });
        true
    }

    /// A network UNSET: removes the caller's own entries for the version on `netid` (all
    /// netids for `None`). Returns whether anything went.
    pub fn unset(&mut self, prog: u32, vers: u32, netid: Option<Netid>) -> bool {
        let before = self.entries.len();
        self.entries.retain(|m| {
            !(m.prog == prog
                && m.vers == vers
                && netid.is_none_or(|n| n == m.netid)
                && m.owner == Owner::Network)
        });
        self.entries.len() != before
    }

    /// rpcbind's `find_service`: the exact version, or with `exact` false another version of
    /// the program on the same netid.
    pub fn lookup(&self, prog: u32, vers: u32, netid: Netid, exact: bool) -> Option<&Mapping> {
        self.position(prog, vers, netid)
            .and_then(|i| self.entries.get(i))
            .or_else(|| {
                (!exact).then(|| {
                    self.entries
                        .iter()
                        .find(|m| m.prog == prog && m.netid == netid)
                })?
            })
    }

    fn position(&self, prog: u32, vers: u32, netid: Netid) -> Option<usize> {
        self.entries
            .iter()
            .position(|m| m.prog == prog && m.vers == vers && m.netid == netid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universal_addresses() {
        let v4: SocketAddr = "10.0.3.1:2049".parse().unwrap();
        assert_eq!(format_uaddr(v4), "10.0.3.1.8.1");
        assert_eq!(parse_uaddr("10.0.3.1.8.1", Netid::Tcp), Some(v4));
        assert_eq!(
            format_uaddr("0.0.0.0:111".parse().unwrap()),
            "0.0.0.0.0.111"
        );
        let v6: SocketAddr = "[fe80::1]:20048".parse().unwrap();
        assert_eq!(format_uaddr(v6), "fe80::1.78.80");
        assert_eq!(parse_uaddr("fe80::1.78.80", Netid::Udp6), Some(v6));
        assert_eq!(
            parse_uaddr("::.0.111", Netid::Tcp6),
            Some("[::]:111".parse().unwrap())
        );
        for bad in [
            "",
            "1.2.3.4",
            "1.2.3.4.5",
            "1.2.3.4.256.1",
            "1.2.3.4.+1.1",
            "1.2.3.4.1.",
            "a.b.c.d.1.1",
            "::1.0.111",
            "1.2.3.4.0001.1",
        ] {
            assert_eq!(parse_uaddr(bad, Netid::Tcp), None, "{bad}");
        }
        assert_eq!(parse_uaddr("1.2.3.4.0.111", Netid::Tcp6), None);
    }

    #[test]
    fn netids() {
        assert_eq!(Netid::parse("TCP"), Some(Netid::Tcp));
        assert_eq!(Netid::parse("udp6"), Some(Netid::Udp6));
        assert_eq!(Netid::parse("local"), None);
        assert_eq!(Netid::from_pmap_protocol(17), Some(Netid::Udp));
        assert_eq!(Netid::Tcp6.pmap_protocol(), None);
    }

    #[test]
    fn owners_and_lookups() {
        let mut r = Registry::default();
        assert!(r.register(100_003, 4, Netid::Tcp, 2049));
        assert!(!r.register(100_003, 4, Netid::Tcp, 2049));
        // The network can neither take nor remove the init's entry.
        let any: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        assert!(!r.set(100_003, 4, Netid::Tcp, any));
        assert!(!r.unset(100_003, 4, None));
        assert_eq!(r.entries().len(), 1);
        // Its own entries it can.
        assert!(r.set(100_021, 4, Netid::Udp, any));
        assert!(r.unset(100_021, 4, Some(Netid::Udp)));
        assert!(!r.unset(100_021, 4, Some(Netid::Udp)));
        // Lookups: exact, another version on the same netid, nothing on another netid.
        assert_eq!(
            r.lookup(100_003, 4, Netid::Tcp, true).unwrap().addr.port(),
            2049
        );
        assert_eq!(r.lookup(100_003, 3, Netid::Tcp, false).unwrap().vers, 4);
        assert!(r.lookup(100_003, 3, Netid::Tcp, true).is_none());
        assert!(r.lookup(100_003, 4, Netid::Udp, false).is_none());
        // Wildcards are answered with the local address.
        let m = r.lookup(100_003, 4, Netid::Tcp, true).unwrap();
        assert_eq!(
            m.address_for("10.0.3.1".parse().unwrap()),
            "10.0.3.1:2049".parse().unwrap()
        );
        assert_eq!(
            m.address_for("::1".parse().unwrap()),
            "0.0.0.0:2049".parse().unwrap()
        );
        assert!(r.unregister(100_003, 4, None));
        assert!(r.entries().is_empty());
    }

    #[test]
    fn the_registry_is_bounded() {
        let mut r = Registry::default();
        let any: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        for prog in 0..MAX_ENTRIES as u32 {
            assert!(r.set(prog, 1, Netid::Udp, any));
        }
        assert!(!r.set(1_000_000, 1, Netid::Udp, any));
    }
}
