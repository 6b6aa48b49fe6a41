//! The resolver configuration: `/etc/resolv.conf`, merged from every configured interface.
//!
//! Each interface (static or DHCP) registers its name servers and search domain here; the file is
//! rewritten (atomically, through a temporary file and a rename) whenever the merged result
//! changes. Nothing else in the init writes this file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::lock;

/// The C libraries read at most this many `nameserver` lines.
const MAX_NAMESERVERS: usize = 3;

/// What one interface contributes to the resolver configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsEntry {
    pub servers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
}

/// The merged resolver configuration and where it is written.
pub struct Resolver {
    path: Option<PathBuf>,
    entries: Mutex<BTreeMap<String, DnsEntry>>,
}

impl Resolver {
    /// A resolver that writes `path`, or nothing at all when `path` is `None` (tests).
    pub fn new(path: Option<PathBuf>) -> Resolver {
        Resolver {
            path,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records the entry for `iface` and rewrites the file if the result changed.
    pub fn set(&self, iface: &str, entry: DnsEntry) {
        let mut entries = lock(&self.entries);
        let before = render(&entries);
        if entry.servers.is_empty() && entry.domain.is_none() {
            entries.remove(iface);
        } else {
            entries.insert(iface.to_owned(), entry);
        }
        let after = render(&entries);
        if before != after {
            self.write(&after);
        }
    }

    /// Forgets `iface`'s entry.
    pub fn remove(&self, iface: &str) {
        self.set(iface, DnsEntry::default());
    }

    fn write(&self, text: &str) {
        let Some(path) = &self.path else { return };
        match write_atomically(path, text) {
            Ok(()) => log::info!("net: wrote {}", path.display()),
            Err(e) => log::warn!(
                "net: cannot write {}: {e}; name resolution may use stale servers",
                path.display()
            ),
        }
    }
}

/// The text of `resolv.conf` for a set of entries, interfaces in name order.
pub fn render(entries: &BTreeMap<String, DnsEntry>) -> String {
    let mut text = String::from("# Written by the Tank init from the network settings.\n");
    let mut domains: Vec<&str> = Vec::new();
    for entry in entries.values() {
        if let Some(domain) = entry.domain.as_deref() {
            let clean = domain.trim();
            if !clean.is_empty()
                && clean
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !domains.contains(&clean)
            {
                domains.push(clean);
            }
        }
    }
    if !domains.is_empty() {
        text.push_str(&format!("search {}\n", domains.join(" ")));
    }
    let mut servers: Vec<Ipv4Addr> = Vec::new();
    for entry in entries.values() {
        for server in &entry.servers {
            if !servers.contains(server) {
                servers.push(*server);
            }
        }
    }
    for server in servers.iter().take(MAX_NAMESERVERS) {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text
}

fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("valid address")
    }

    #[test]
    fn rendering() {
        let mut entries = BTreeMap::new();
        assert_eq!(
            render(&entries),
            "# Written by the Tank init from the network settings.\n"
        );
        entries.insert(
            "eth1".to_owned(),
            DnsEntry {
                servers: vec![ip("192.168.1.1"), ip("10.0.2.3")],
                domain: None,
            },
        );
        entries.insert(
            "eth0".to_owned(),
            DnsEntry {
                servers: vec![ip("10.0.2.3")],
                domain: Some("lan".to_owned()),
            },
        );
        entries.insert(
            "eth2".to_owned(),
            DnsEntry {
                servers: vec![ip("1.1.1.1"), ip("8.8.8.8")],
                domain: Some("bad domain".to_owned()),
            },
        );
        assert_eq!(
            render(&entries),
            "# Written by the Tank init from the network settings.\n\
             search lan\n\
             nameserver 10.0.2.3\n\
             nameserver 192.168.1.1\n\
             nameserver 1.1.1.1\n"
        );
    }

    #[test]
    fn writes_only_on_change() {
        let dir = std::env::temp_dir().join(format!("tank-net-dns-{}", std::process::id()));
        let path = dir.join("etc/resolv.conf");
        let resolver = Resolver::new(Some(path.clone()));
        resolver.set(
            "eth0",
            DnsEntry {
                servers: vec![ip("10.0.2.3")],
                domain: None,
            },
        );
        let text = fs::read_to_string(&path).expect("written");
        assert!(text.ends_with("nameserver 10.0.2.3\n"), "{text}");
        fs::remove_file(&path).expect("remove");
        // The same entry again changes nothing, so nothing is written.
        resolver.set(
            "eth0",
            DnsEntry {
                servers: vec![ip("10.0.2.3")],
                domain: None,
            },
        );
        assert!(!path.exists());
        resolver.remove("eth0");
        let text = fs::read_to_string(&path).expect("rewritten");
        assert!(!text.contains("nameserver"), "{text}");
        let _ = fs::remove_dir_all(&dir);
    }
}
