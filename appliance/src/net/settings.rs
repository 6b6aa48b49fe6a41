//! Validation of network settings before anything reaches the kernel.
//!
//! This module parses the user-facing [`NetSettings`] into a [`Plan`]: a list of interfaces with
//! validated names ([`IfaceName`]) and validated static addressing ([`StaticConfig`]). Nothing
//! here talks to the kernel; whether a named interface exists is checked by the caller, which
//! owns the netlink socket.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use super::{Method, NetError, NetSettings};

/// A network interface name the kernel will accept (`IFNAMSIZ` is 16 with the NUL).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfaceName(String);

impl IfaceName {
    /// The longest name the kernel accepts, in bytes.
    pub const MAX_LEN: usize = 15;

    /// Checks `name` the way `dev_valid_name()` in the kernel does, a little stricter.
    pub fn parse(name: &str) -> Result<IfaceName, NetError> {
        let invalid = |reason: &'static str| NetError::InvalidName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > Self::MAX_LEN {
            return Err(invalid("it is longer than 15 bytes"));
        }
        if name == "." || name == ".." {
            return Err(invalid("it is a path component"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
        {
            return Err(invalid(
                "it may only hold printable ASCII without spaces, '/' or ':'",
            ));
        }
        Ok(IfaceName(name.to_owned()))
    }

    /// The name as the kernel spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Static IPv4 addressing that has been checked for consistency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticConfig {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

/// How one interface is to be configured, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedMethod {
    Dhcp,
    Static(StaticConfig),
}

/// The validated form of [`NetSettings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub hostname: String,
    /// The interfaces the settings list (`None`: none); every other ethernet NIC uses DHCP.
    pub interfaces: Option<Vec<(IfaceName, PlannedMethod)>>,
}

/// The netmask for a prefix length; `prefix` must be at most 32.
pub fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

/// The prefix length of a netmask, or `None` if the mask is not contiguous.
pub fn prefix_of_mask(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) == 0 {
        u8::try_from(ones).ok()
    } else {
        None
    }
}

/// The network address of `address/prefix`.
pub fn network_of(address: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(address) & u32::from(netmask(prefix)))
}

/// The directed broadcast address of `address/prefix`.
pub fn broadcast_of(address: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(address) | !u32::from(netmask(prefix)))
}

/// Whether `other` lies inside `address/prefix`.
pub fn in_subnet(address: Ipv4Addr, prefix: u8, other: Ipv4Addr) -> bool {
    network_of(address, prefix) == network_of(other, prefix)
}

/// Checks a host address against its subnet; `what` names it in the error.
fn check_host(
    iface: &IfaceName,
    address: Ipv4Addr,
    prefix: u8,
    what: &'static str,
) -> Result<(), NetError> {
    let bad = |reason: &'static str| NetError::BadAddress {
        iface: iface.to_string(),
        what,
        address,
        reason,
    };
    if address.is_unspecified() {
        return Err(bad("it is 0.0.0.0"));
    }
    if address.is_loopback() {
        return Err(bad("it is a loopback address"));
    }
    if address.is_multicast() {
        return Err(bad("it is a multicast address"));
    }
    if address.is_broadcast() {
        return Err(bad("it is the limited broadcast address"));
    }
    // A /31 or /32 has no network or broadcast address to avoid (RFC 3021).
    if prefix < 31 {
        if address == network_of(address, prefix) {
            return Err(bad("it is the network address of its subnet"));
        }
        if address == broadcast_of(address, prefix) {
            return Err(bad("it is the broadcast address of its subnet"));
        }
    }
    Ok(())
}

/// Checks one static configuration.
pub fn validate_static(
    iface: &IfaceName,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
    dns: &[Ipv4Addr],
) -> Result<StaticConfig, NetError> {
    if prefix > 32 {
        return Err(NetError::BadPrefix {
            iface: iface.to_string(),
            prefix,
        });
    }
    check_host(iface, address, prefix, "address")?;
    if let Some(gateway) = gateway {
        if gateway == address {
            return Err(NetError::BadGateway {
                iface: iface.to_string(),
                gateway,
                reason: "it is the interface's own address",
            });
        }
        if !in_subnet(address, prefix, gateway) {
            return Err(NetError::GatewayOutsideSubnet {
                iface: iface.to_string(),
                gateway,
                network: network_of(address, prefix),
                prefix,
            });
        }
        check_host(iface, gateway, prefix, "gateway")?;
    }
    for &server in dns {
        if server.is_unspecified() || server.is_multicast() || server.is_broadcast() {
            return Err(NetError::BadAddress {
                iface: iface.to_string(),
                what: "DNS server",
                address: server,
                reason: "it is not a unicast address",
            });
        }
    }
    Ok(StaticConfig {
        address,
        prefix,
        gateway,
        dns: dns.to_vec(),
    })
}

/// Validates the whole settings record; nothing is applied if this fails.
pub fn plan(settings: &NetSettings) -> Result<Plan, NetError> {
    if settings.interfaces.is_empty() {
        return Ok(Plan {
            hostname: settings.hostname.clone(),
            interfaces: None,
        });
    }
    let mut seen = BTreeSet::new();
    let mut interfaces = Vec::with_capacity(settings.interfaces.len());
    for iface in &settings.interfaces {
        let name = IfaceName::parse(&iface.name)?;
        if name.as_str() == "lo" {
            return Err(NetError::Loopback);
        }
        if !seen.insert(name.clone()) {
            return Err(NetError::DuplicateInterface(name.to_string()));
        }
        let method = match &iface.method {
            Method::Dhcp => PlannedMethod::Dhcp,
            Method::Static {
                address,
                prefix,
                gateway,
                dns,
            } => PlannedMethod::Static(validate_static(&name, *address, *prefix, *gateway, dns)?),
        };
        interfaces.push((name, method));
    }
    Ok(Plan {
        hostname: settings.hostname.clone(),
        interfaces: Some(interfaces),
    })
}

/// The hostname as DHCP option 12 may carry it, or `None` if it is not a valid host name.
pub fn dhcp_hostname(hostname: &str) -> Option<&str> {
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (hostname.len() <= 253 && hostname.split('.').all(valid_label)).then_some(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::IfaceSettings;

    fn name(s: &str) -> IfaceName {
        IfaceName::parse(s).expect("valid name")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("valid address")
    }

    #[test]
    fn interface_names() {
        for good in [
            "eth0",
            "enp0s3",
            "br-lan",
            "wlan0.100",
            "a",
            "fifteen_chars_x",
        ] {
            assert!(IfaceName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "eth 0",
            "eth/0",
            "eth0:1",
            "sixteen_chars_xx",
            "é",
            "a\0",
        ] {
            let err = IfaceName::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("is invalid"), "{err}");
        }
    }

    #[test]
    fn masks_and_prefixes() {
        assert_eq!(netmask(0), ip("0.0.0.0"));
        assert_eq!(netmask(8), ip("255.0.0.0"));
        assert_eq!(netmask(24), ip("255.255.255.0"));
        assert_eq!(netmask(31), ip("255.255.255.254"));
        assert_eq!(netmask(32), ip("255.255.255.255"));
        for p in 0..=32 {
            assert_eq!(prefix_of_mask(netmask(p)), Some(p));
        }
        assert_eq!(prefix_of_mask(ip("255.0.255.0")), None);
        assert_eq!(prefix_of_mask(ip("0.0.0.255")), None);
        assert_eq!(network_of(ip("10.0.2.15"), 24), ip("10.0.2.0"));
        assert_eq!(broadcast_of(ip("10.0.2.15"), 24), ip("10.0.2.255"));
        assert!(in_subnet(ip("10.0.2.15"), 24, ip("10.0.2.2")));
        assert!(!in_subnet(ip("10.0.2.15"), 24, ip("10.0.3.2")));
        assert!(in_subnet(ip("10.0.2.15"), 0, ip("192.168.1.1")));
    }

    #[test]
    fn static_settings() {
        let eth0 = name("eth0");
        let ok = validate_static(
            &eth0,
            ip("10.0.2.15"),
            24,
            Some(ip("10.0.2.2")),
            &[ip("10.0.2.3")],
        )
        .expect("valid");
        assert_eq!(ok.prefix, 24);

        // Prefix range.
        for prefix in [0, 1, 31, 32] {
            assert!(
                validate_static(&eth0, ip("10.0.2.15"), prefix, None, &[]).is_ok(),
                "/{prefix}"
            );
        }
        let err = validate_static(&eth0, ip("10.0.2.15"), 33, None, &[]).expect_err("/33");
        assert_eq!(
            err.to_string(),
            "interface eth0: prefix /33 is out of range; use 0 to 32"
        );

        // Gateway inside the subnet.
        let err = validate_static(&eth0, ip("10.0.2.15"), 24, Some(ip("10.0.3.1")), &[])
            .expect_err("outside");
        assert_eq!(
            err.to_string(),
            "interface eth0: gateway 10.0.3.1 is outside 10.0.2.0/24; use a gateway on the interface's subnet"
        );
        assert!(validate_static(&eth0, ip("10.0.2.15"), 16, Some(ip("10.0.3.1")), &[]).is_ok());
        assert!(validate_static(&eth0, ip("10.0.2.15"), 24, Some(ip("10.0.2.15")), &[]).is_err());
        assert!(validate_static(&eth0, ip("10.0.2.15"), 24, Some(ip("10.0.2.255")), &[]).is_err());

        // Unusable host addresses.
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "10.0.2.0",
            "10.0.2.255",
        ] {
            let err = validate_static(&eth0, ip(bad), 24, None, &[]).expect_err(bad);
            assert!(
                err.to_string().starts_with("interface eth0: address"),
                "{err}"
            );
        }
        // /31 point-to-point links use both addresses.
        assert!(validate_static(&eth0, ip("10.0.2.0"), 31, Some(ip("10.0.2.1")), &[]).is_ok());

        let err =
            validate_static(&eth0, ip("10.0.2.15"), 24, None, &[ip("0.0.0.0")]).expect_err("dns");
        assert!(err.to_string().contains("DNS server 0.0.0.0"), "{err}");
    }

    #[test]
    fn whole_settings() {
        let dhcp = |n: &str| IfaceSettings {
            name: n.to_owned(),
            method: Method::Dhcp,
        };
        let settings = |interfaces| NetSettings {
            hostname: "tank".to_owned(),
            interfaces,
        };
        assert_eq!(plan(&settings(vec![])).expect("empty").interfaces, None);
        let p = plan(&settings(vec![dhcp("eth0"), dhcp("eth1")])).expect("two");
        assert_eq!(p.interfaces.map(|v| v.len()), Some(2));
        assert!(matches!(
            plan(&settings(vec![dhcp("eth0"), dhcp("eth0")])),
            Err(NetError::DuplicateInterface(n)) if n == "eth0"
        ));
        assert!(matches!(
            plan(&settings(vec![dhcp("lo")])),
            Err(NetError::Loopback)
        ));
        assert!(matches!(
            plan(&settings(vec![dhcp("bad name")])),
            Err(NetError::InvalidName { .. })
        ));
        let bad_static = IfaceSettings {
            name: "eth0".to_owned(),
            method: Method::Static {
                address: ip("10.0.2.15"),
                prefix: 40,
                gateway: None,
                dns: vec![],
            },
        };
        assert!(matches!(
            plan(&settings(vec![dhcp("eth1"), bad_static])),
            Err(NetError::BadPrefix { prefix: 40, .. })
        ));
    }

    #[test]
    fn hostnames_for_dhcp() {
        assert_eq!(dhcp_hostname("tank"), Some("tank"));
        assert_eq!(dhcp_hostname("tank-01.lan"), Some("tank-01.lan"));
        assert_eq!(dhcp_hostname(""), None);
        assert_eq!(dhcp_hostname("-tank"), None);
        assert_eq!(dhcp_hostname("tank_01"), None);
        assert_eq!(dhcp_hostname(&"a".repeat(64)), None);
    }
}
