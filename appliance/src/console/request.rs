//! The closed set of requests the console can make, and the typed replies it renders.
//!
//! The engine only ever sees these types: text from a user is parsed into them at the edge
//! ([`super::parse`]) and replies are rendered back to text by [`super::render`].

use std::net::Ipv4Addr;

use crate::net::LinkStatus;
use crate::system::disks::Disk;

/// A host name: 1 to 63 of `a-z A-Z 0-9 -`, not starting or ending with `-` (RFC 1123 label).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostName(String);

impl HostName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok_chars = text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if text.is_empty()
            || text.len() > 63
            || !ok_chars
            || text.starts_with('-')
            || text.ends_with('-')
        {
            return Err(format!(
                "'{text}' is not a valid host name: use 1 to 63 letters, digits and '-', \
                 not starting or ending with '-'"
            ));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A network interface name as the kernel allows it: 1 to 15 bytes, no `/`, `:` or spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceName(String);

impl IfaceName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 15
            && text != "."
            && text != ".."
            && text
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(format!(
                "'{text}' is not a network interface name (e.g. eth0, enp1s0)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Network changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkRequest {
    Show,
    Dhcp {
        iface: IfaceName,
    },
    Static {
        iface: IfaceName,
        address: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        dns: Vec<Ipv4Addr>,
    },
}

/// Everything the console can ask of the appliance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    Disks,
    Log { lines: usize },
    Network(NetworkRequest),
    Hostname(Option<HostName>),
    Reboot,
    PowerOff,
}

/// One line of the services table.
#[derive(Clone, Debug)]
pub struct ServiceLine {
    pub name: &'static str,
    pub state: String,
}

/// Everything `status` shows.
#[derive(Clone, Debug)]
pub struct StatusReport {
    pub version: &'static str,
    pub board: &'static str,
    pub kernel: String,
    pub hostname: String,
    pub uptime_secs: f64,
    /// Guest uptime when the init started and when the prompt first appeared.
    pub init_started_at: f64,
    pub prompt_at: Option<f64>,
    pub mem_total_kib: u64,
    pub mem_available_kib: u64,
    pub init_rss_kib: u64,
    pub entropy_ready: bool,
    pub disks: Vec<Disk>,
    pub links: Vec<LinkStatus>,
    pub services: Vec<ServiceLine>,
    pub alerts: Vec<String>,
}

/// What the appliance answers.
#[derive(Debug)]
pub enum Reply {
    /// A one-line confirmation.
    Done(String),
    Status(Box<StatusReport>),
    Disks(Vec<Disk>),
    Network(Vec<LinkStatus>),
    Log(Vec<String>),
}
