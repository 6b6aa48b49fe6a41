//! What the file servers share: NFS exports and SMB shares of datasets, the SMB server's
//! global settings, and the client address rules both use.
//!
//! What lives here: [`ClientSpec`] (an address, a network or everyone), [`ShareName`], the
//! models [`NfsShare`], [`Squash`], [`SmbGlobal`], [`SmbShare`] and [`Principal`], with the
//! defaults of a new share. What does not: turning them into kernel answers (the `nfs` and `smb`
//! modules do that), rules across the configuration (a share's dataset and users exist:
//! [`Config::validate`](super::Config::validate)) and the on-disk form.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use super::accounts::{GroupName, UserName};
use super::names::DatasetName;

/// Why a client address or network was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientSpecError {
    #[error(
        "{input:?} is not an address or network: give an address (192.168.1.20), a network \
         (192.168.1.0/24) or * for everyone; host names are not looked up"
    )]
    Garbage { input: String },
    #[error(
        "{input:?} has host bits set after the /{prefix}: did you mean {network}? give the \
         network's first address"
    )]
    HostBits {
        input: String,
        prefix: u8,
        network: IpNet,
    },
}

/// Which clients a rule covers: everyone, or one address or network (IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientSpec {
    Everyone,
    Net(IpNet),
}

impl ClientSpec {
    /// Parses `*`, `192.168.1.20`, `192.168.1.0/24`, `fd00::5` or `fd00::/64`.
    pub fn parse(input: &str) -> Result<ClientSpec, ClientSpecError> {
        let text = input.trim();
        if text == "*" {
            return Ok(ClientSpec::Everyone);
        }
        let garbage = || ClientSpecError::Garbage {
            input: input.to_owned(),
        };
        let net = match text.parse::<IpAddr>() {
            Ok(address) => IpNet::from(address),
            Err(_) => text.parse::<IpNet>().map_err(|_| garbage())?,
        };
        if net.network() != net.addr() {
            return Err(ClientSpecError::HostBits {
                input: input.to_owned(),
                prefix: net.prefix_len(),
                network: net.trunc(),
            });
        }
        Ok(ClientSpec::Net(net))
    }

    /// Whether `address` is covered; an IPv4 client reaching an IPv6 socket (`::ffff:a.b.c.d`)
    /// counts as its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match self {
            ClientSpec::Everyone => true,
            ClientSpec::Net(net) => net.contains(&address),
        }
    }

    /// Parses a comma-separated list; `*` alone means everyone.
    pub fn parse_list(input: &str) -> Result<Vec<ClientSpec>, ClientSpecError> {
        input
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(ClientSpec::parse)
            .collect()
    }
}

/// `*`, `10.0.3.5` (a single host) or `10.0.3.0/24`.
impl fmt::Display for ClientSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSpec::Everyone => f.write_str("*"),
            ClientSpec::Net(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            ClientSpec::Net(net) => write!(f, "{net}"),
        }
    }
}

/// Whether `list` lets `address` in; an empty list lets everyone in.
pub fn clients_allow(list: &[ClientSpec], address: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|c| c.contains(address))
}

/// Whether `list` covers every address (empty, or holding `*` or a /0).
pub fn open_to_everyone(list: &[ClientSpec]) -> bool {
    list.is_empty()
        || list.iter().any(|c| match c {
            ClientSpec::Everyone => true,
            ClientSpec::Net(net) => net.prefix_len() == 0,
        })
}

/// Who an NFS client's users become on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Squash {
    /// Root becomes the anonymous user (nobody); others keep their ids. The default.
    #[default]
    RootToNobody,
    /// Root stays root (`no_root_squash`): for hosts that must own their files as root, such
    /// as a hypervisor's storage.
    None,
    /// Root becomes this user and group (TrueNAS's maproot).
    MapRoot { uid: u32, gid: u32 },
    /// Every user becomes this user and group (TrueNAS's mapall).
    MapAll { uid: u32, gid: u32 },
}

/// One dataset exported over NFS, at `/mnt/<pool>/<dataset>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsShare {
    pub dataset: DatasetName,
    /// Clients that may mount it; empty means every address.
    pub clients: Vec<ClientSpec>,
    pub read_only: bool,
    pub squash: Squash,
    /// Accept clients on unprivileged source ports (macOS, clients behind NAT).
    pub insecure: bool,
}

impl NfsShare {
    /// A new share of `dataset`: read-write, root squashed, privileged ports only, open to
    /// every address (the console warns about that).
    pub fn new(dataset: DatasetName) -> NfsShare {
        NfsShare {
            dataset,
            clients: Vec::new(),
            read_only: false,
            squash: Squash::default(),
            insecure: false,
        }
    }
}

/// Why an SMB share name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShareNameError {
    #[error("the share name is empty: give a name such as \"media\"")]
    Empty,
    #[error("share name {name:?} is {len} bytes long: use at most {max}", max = ShareName::MAX_LEN)]
    TooLong { name: String, len: usize },
    #[error("share name {name:?} contains {ch:?}: use letters, digits, '-', '_' and '.'")]
    BadChar { name: String, ch: char },
    #[error("share name {name:?} must start with a letter or digit")]
    BadStart { name: String },
    #[error("share name {name:?} is reserved (IPC$ and the like): choose another name")]
    Reserved { name: String },
}

/// An SMB share name. SMB compares share names without case, so two shares may not differ
/// only in case ([`ShareName::key`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShareName(String);

impl ShareName {
    /// ksmbd carries share names in 64 bytes with a NUL.
    pub const MAX_LEN: usize = 63;

    pub fn parse(name: &str) -> Result<ShareName, ShareNameError> {
        let Some(first) = name.chars().next() else {
            return Err(ShareNameError::Empty);
        };
        if let Some(ch) = name
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ShareNameError::BadChar {
                name: name.to_owned(),
                ch,
            });
        }
        if !first.is_ascii_alphanumeric() {
            return Err(ShareNameError::BadStart {
                name: name.to_owned(),
            });
        }
        if name.len() > Self::MAX_LEN {
            return Err(ShareNameError::TooLong {
                name: name.to_owned(),
                len: name.len(),
            });
        }
        if ["ipc", "global", "homes", "printers"].contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ShareNameError::Reserved {
                name: name.to_owned(),
            });
        }
        Ok(ShareName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as SMB compares it (lower case, as ksmbd sends it).
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for ShareName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user or a group in a share's access lists (`alice` or `@media`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    User(UserName),
    Group(GroupName),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(u) => write!(f, "{u}"),
            Principal::Group(g) => write!(f, "@{g}"),
        }
    }
}

/// The lowest SMB dialect the server accepts; it always offers up to SMB 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmbProtocol {
    /// SMB 2.1: older clients (Windows 7, old NAS tools) still connect.
    #[default]
    Smb2_1,
    /// SMB 3.0 and later only.
    Smb3_0,
}

impl SmbProtocol {
    /// The dialect name ksmbd takes in its startup request.
    pub fn ksmbd_name(self) -> &'static str {
        match self {
            SmbProtocol::Smb2_1 => "SMB2_10",
            SmbProtocol::Smb3_0 => "SMB3_00",
        }
    }
}

/// Whether SMB sessions are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signing {
    /// Signed when the client asks (every modern client does for SMB3).
    #[default]
    Auto,
    /// Every non-guest session is signed; guests cannot connect.
    Mandatory,
}

/// Whether SMB3 traffic is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Encrypted when the client asks for it.
    #[default]
    Auto,
    /// Never (for slow CPUs on a trusted LAN).
    Off,
    /// Every session is encrypted; clients without SMB3 encryption cannot connect.
    Required,
}

/// Why a workgroup name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "workgroup {input:?} is not valid: use 1 to 15 letters, digits, '-' or '_' (for example \
     WORKGROUP)"
)]
pub struct WorkgroupError {
    pub input: String,
}

/// Checks a NetBIOS workgroup name and returns it in upper case.
pub fn parse_workgroup(input: &str) -> Result<String, WorkgroupError> {
    let ok = (1..=15).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(input.to_ascii_uppercase())
    } else {
        Err(WorkgroupError {
            input: input.to_owned(),
        })
    }
}

/// The SMB server's global settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmbGlobal {
    pub workgroup: String,
    pub min_protocol: SmbProtocol,
    pub signing: Signing,
    pub encryption: Encryption,
    /// The last three sub-authorities of the server's domain SID (S-1-5-21-a-b-c), chosen
    /// once so the server's identity stays the same across reboots.
    pub domain_sid: [u32; 3],
}

impl Default for SmbGlobal {
    fn default() -> SmbGlobal {
        SmbGlobal {
            workgroup: "WORKGROUP".to_owned(),
            min_protocol: SmbProtocol::default(),
            signing: Signing::default(),
            encryption: Encryption::default(),
            domain_sid: [0; 3],
        }
    }
}

/// Why a veto pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "veto pattern {input:?} is not valid: give a file name pattern without '/' or control \
     characters, such as *.tmp or .DS_Store"
)]
pub struct VetoError {
    pub input: String,
}

/// Checks one veto pattern (`*` and `?` are wildcards).
pub fn parse_veto(input: &str) -> Result<String, VetoError> {
    let ok = !input.is_empty()
        && input.len() <= 255
        && !input.contains('/')
        && !input.chars().any(char::is_control);
    if ok {
        Ok(input.to_owned())
    } else {
        Err(VetoError {
            input: input.to_owned(),
        })
    }
}

/// One SMB share of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmbShare {
    pub name: ShareName,
    pub dataset: DatasetName,
    /// Shown in share listings.
    pub comment: String,
    pub read_only: bool,
    /// Who may connect; empty means every user.
    pub valid_users: Vec<Principal>,
    /// Who may connect but only read, even on a writable share.
    pub read_only_users: Vec<Principal>,
    /// Whether unauthenticated guests may connect (as nobody).
    pub guest_ok: bool,
    /// Client addresses allowed; empty means every address.
    pub hosts_allow: Vec<ClientSpec>,
    /// Client addresses refused, even if allowed above.
    pub hosts_deny: Vec<ClientSpec>,
    /// Every file operation runs as this user (files belong to it).
    pub force_user: Option<UserName>,
    /// Every file operation runs with this group.
    pub force_group: Option<GroupName>,
    /// Permission bits a new file may have (ANDed with what the client asks).
    pub create_mask: u32,
    /// Permission bits a new directory may have.
    pub directory_mask: u32,
    /// Listed when clients browse the server.
    pub browseable: bool,
    /// File name patterns clients can neither see nor create.
    pub veto: Vec<String>,
}

impl SmbShare {
    /// A new share: writable, every user, no guests, listed, masks 0744 and 0755 (Samba's).
    pub fn new(name: ShareName, dataset: DatasetName) -> SmbShare {
        SmbShare {
            name,
            dataset,
            comment: String::new(),
            read_only: false,
            valid_users: Vec::new(),
            read_only_users: Vec::new(),
            guest_ok: false,
            hosts_allow: Vec::new(),
            hosts_deny: Vec::new(),
            force_user: None,
            force_group: None,
            create_mask: 0o744,
            directory_mask: 0o755,
            browseable: true,
            veto: Vec::new(),
        }
    }

    /// Whether `address` passes the share's host rules (deny wins over allow).
    pub fn host_allowed(&self, address: IpAddr) -> bool {
        !self.hosts_deny.iter().any(|c| c.contains(address))
            && clients_allow(&self.hosts_allow, address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_specs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = ClientSpec::parse("10.0.3.0/24").unwrap();
        assert!(net.contains(ip("10.0.3.2")));
        assert!(!net.contains(ip("10.0.4.2")));
        assert!(net.contains(ip("::ffff:10.0.3.9")));
        assert_eq!(net.to_string(), "10.0.3.0/24");
        let host = ClientSpec::parse("10.0.3.5").unwrap();
        assert_eq!(host.to_string(), "10.0.3.5");
        assert!(host.contains(ip("10.0.3.5")) && !host.contains(ip("10.0.3.6")));
        assert_eq!(ClientSpec::parse("*").unwrap(), ClientSpec::Everyone);
        assert!(ClientSpec::parse("fd00::/64")
            .unwrap()
            .contains(ip("fd00::1")));
        let message = ClientSpec::parse("10.0.3.7/24").unwrap_err().to_string();
        assert!(message.contains("did you mean 10.0.3.0/24"), "{message}");
        for bad in ["nas.local", "10.0.3", "10.0.3.0/33", "", "1.2.3.4/x"] {
            let message = ClientSpec::parse(bad).unwrap_err().to_string();
            assert!(message.contains("not an address"), "{bad}: {message}");
        }
        let list = ClientSpec::parse_list("10.0.3.0/24,192.168.1.7").unwrap();
        assert_eq!(list.len(), 2);
        assert!(clients_allow(&list, ip("192.168.1.7")));
        assert!(!clients_allow(&list, ip("192.168.1.8")));
        assert!(clients_allow(&[], ip("1.2.3.4")));
        assert!(open_to_everyone(&[]));
        assert!(open_to_everyone(&[ClientSpec::parse("0.0.0.0/0").unwrap()]));
        assert!(!open_to_everyone(&list));
    }

    #[test]
    fn share_names() {
        for good in ["media", "Media", "vm-disks", "a.b", "9"] {
            assert_eq!(ShareName::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(ShareName::parse("Media").unwrap().key(), "media");
        for (bad, says) in [
            ("", "empty"),
            ("ipc$", "'$'"),
            ("IPC", "reserved"),
            ("my share", "' '"),
            ("-x", "start"),
            (&"a".repeat(64), "64 bytes"),
        ] {
            let message = ShareName::parse(bad).unwrap_err().to_string();
            assert!(message.contains(says), "{bad:?}: {message}");
        }
    }

    #[test]
    fn hosts_rules() {
        let mut share = SmbShare::new(
            ShareName::parse("media").unwrap(),
            DatasetName::parse("media").unwrap(),
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(share.host_allowed(ip("10.0.2.2")));
        share.hosts_allow = ClientSpec::parse_list("10.0.3.0/24").unwrap();
        assert!(share.host_allowed(ip("10.0.3.2")));
        assert!(!share.host_allowed(ip("10.0.2.2")));
        share.hosts_deny = ClientSpec::parse_list("10.0.3.2").unwrap();
        assert!(!share.host_allowed(ip("10.0.3.2")));
        assert!(share.host_allowed(ip("10.0.3.3")));
    }

    #[test]
    fn workgroups_and_vetoes() {
        assert_eq!(parse_workgroup("home").unwrap(), "HOME");
        assert!(parse_workgroup("").is_err());
        assert!(parse_workgroup("a-very-long-workgroup").is_err());
        assert!(parse_workgroup("my group").is_err());
        assert_eq!(parse_veto("*.tmp").unwrap(), "*.tmp");
        assert!(parse_veto("a/b").is_err());
        assert!(parse_veto("").is_err());
    }
}
