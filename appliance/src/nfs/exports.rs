//! The export table: what the kernel's export cache upcalls are answered with, decided from
//! the configuration the way nfs-utils' mountd decides it, as pure functions of a snapshot.
//!
//! Clients mount a dataset at the path TrueNAS uses, `/mnt/<pool>/<dataset>` (for example
//! `tank:/mnt/tank/vms`). The NFSv4 pseudo filesystem above it (`/`, `/mnt`, `/mnt/<pool>`) is
//! made of read-only `V4ROOT` entries that only let a client walk down to the shares it may
//! mount; `/` is the root (`fsid=0`). Each client address gets its own auth domain
//! (`ip:<address>`), so every export answer can check that share's client list.
//!
//! File handles must survive reboots: btrfs's device numbers do not, so every entry carries a
//! UUID. A share's UUID is derived from the pool's UUID and the dataset's name, so it also stays
//! the same when the dataset's subvolume is replaced (a rollback). What does not live here: the
//! wire format ([`super::wire`]) and the channel files ([`super::upcall`]).

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::wire::{flags, ExportOptions};
use crate::config::accounts::NOBODY;
use crate::config::sharing::{clients_allow, ClientSpec, Squash};

/// The AUTH_UNIX security flavor.
pub const AUTH_UNIX: u32 = 1;

/// What a share lets its clients do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRules {
    pub clients: Vec<ClientSpec>,
    pub read_only: bool,
    pub squash: Squash,
    pub insecure: bool,
}

impl ShareRules {
    fn admits(&self, address: IpAddr) -> bool {
        clients_allow(&self.clients, address)
    }

    fn options(&self, uuid: [u8; 16], force_read_only: bool) -> ExportOptions {
        let mut f = flags::NOSUBTREECHECK | flags::GATHERED_WRITES;
        if self.read_only || force_read_only {
            f |= flags::READONLY;
        }
        if self.insecure {
            f |= flags::INSECURE_PORT;
        }
        let (anon_uid, anon_gid) = match self.squash {
            Squash::RootToNobody => {
                f |= flags::ROOTSQUASH;
                (NOBODY, NOBODY)
            }
            Squash::None => (NOBODY, NOBODY),
            Squash::MapRoot { uid, gid } => {
                f |= flags::ROOTSQUASH;
                (uid, gid)
            }
            Squash::MapAll { uid, gid } => {
                f |= flags::ALLSQUASH;
                (uid, gid)
            }
        };
        ExportOptions {
            flags: f,
            anon_uid,
            anon_gid,
            fsid: 0,
            uuid: Some(uuid),
            flavors: vec![AUTH_UNIX],
        }
    }
}

/// What an entry of the table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory of the pseudo filesystem above the shares; `root` is `/`.
    Pseudo { root: bool },
    /// A shared dataset.
    Share(ShareRules),
    /// A filesystem mounted inside a share (a snapshot): served read-only to the share's
    /// clients, as mountd's `crossmnt` does.
    Submount { share: usize },
}

/// One path the kernel may ask about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    pub uuid: [u8; 16],
    /// The inode number of the path's directory, for file handle types that carry it.
    pub ino: u64,
}

/// A share as the engine describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSpec {
    pub path: String,
    pub uuid: [u8; 16],
    pub ino: u64,
    pub rules: ShareRules,
    /// Mounts inside the share: (path, uuid, inode).
    pub submounts: Vec<(String, [u8; 16], u64)>,
}

/// The answers to the kernel's export upcalls, for one configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportTable {
    pub entries: Vec<Entry>,
}

/// How long positive answers are cached before the kernel asks again (nfs-utils uses 30 min).
pub const TTL: u64 = 1800;

/// How long refusals are cached: short, so a client added by a later change is let in soon
/// even if a flush were missed.
pub const NEGATIVE_TTL: u64 = 60;

/// nfs-utils' expiry for file handle answers: "never" (2^31 - 1).
pub const FH_EXPIRY: u64 = 0x7fff_ffff;

/// A UUID for `what`, stable for the same input.
pub fn derive_uuid(parts: &[&[u8]]) -> [u8; 16] {
    let mut hash = Sha256::new();
    hash.update(b"tank-nfs-fsid\0");
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid
}

/// Every proper ancestor of an absolute path, `/` first: `/mnt/tank/vms` → `/`, `/mnt`,
/// `/mnt/tank`.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = vec!["/".to_owned()];
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for i in 1..parts.len() {
        out.push(format!("/{}", parts[..i].join("/")));
    }
    out
}

/// The domain name of a client address.
pub fn domain_of(address: IpAddr) -> String {
    format!("ip:{address}")
}

fn address_of(domain: &str) -> Option<IpAddr> {
    domain.strip_prefix("ip:")?.parse().ok()
}

fn fold4(uuid: &[u8; 16]) -> [u8; 4] {
    let mut out = [0u8; 4];
    for (i, b) in out.iter_mut().enumerate() {
        *b = uuid[i] ^ uuid[i + 4] ^ uuid[i + 8] ^ uuid[i + 12];
    }
    out
}

fn fold8(uuid: &[u8; 16]) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (i, b) in out.iter_mut().enumerate() {
        *b = uuid[i] ^ uuid[i + 8];
    }
    out
}

impl ExportTable {
    /// The table for these shares, with the pseudo filesystem above them. `pseudo_inode`
    /// gives the inode number of a pseudo directory (the engine stats it).
    pub fn build(shares: &[ShareSpec], pseudo_inode: impl Fn(&str) -> u64) -> ExportTable {
        let mut entries: Vec<Entry> = Vec::new();
        for share in shares {
            for path in ancestors(&share.path) {
                if !entries.iter().any(|e| e.path == path) {
                    let root = path == "/";
                    entries.push(Entry {
                        uuid: derive_uuid(&[b"pseudo", path.as_bytes()]),
                        ino: pseudo_inode(&path),
                        kind: EntryKind::Pseudo { root },
                        path,
                    });
                }
            }
        }
        for share in shares {
            // A share is never also a pseudo directory (datasets are not nested), but if it were
            // the real export wins, as in mountd.
            entries.retain(|e| e.path != share.path);
            let index = entries.len();
            entries.push(Entry {
                path: share.path.clone(),
                kind: EntryKind::Share(share.rules.clone()),
                uuid: share.uuid,
                ino: share.ino,
            });
            for (path, uuid, ino) in &share.submounts {
                entries.push(Entry {
                    path: path.clone(),
                    kind: EntryKind::Submount { share: index },
                    uuid: *uuid,
                    ino: *ino,
                });
            }
        }
        ExportTable { entries }
    }

    fn rules_of<'a>(&'a self, entry: &'a Entry) -> Option<&'a ShareRules> {
        match &entry.kind {
            EntryKind::Share(rules) => Some(rules),
            EntryKind::Submount { share } => match &self.entries.get(*share)?.kind {
                EntryKind::Share(rules) => Some(rules),
                _ => None,
            },
            EntryKind::Pseudo { .. } => None,
        }
    }

    /// The domain of a client that may mount at least one share, or `None` (refused).
    pub fn domain_for(&self, address: IpAddr) -> Option<String> {
        self.entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Share(rules) => Some(rules),
                _ => None,
            })
            .any(|rules| rules.admits(address))
            .then(|| domain_of(address))
    }

    /// Whether `address` may see `entry`: a share or submount its rules admit, or a pseudo
    /// directory above such a share.
    fn visible(&self, entry: &Entry, address: IpAddr) -> bool {
        match &entry.kind {
            EntryKind::Pseudo { .. } => {
                let prefix = if entry.path == "/" {
                    "/".to_owned()
                } else {
                    format!("{}/", entry.path)
                };
                self.entries.iter().any(|e| {
                    matches!(&e.kind, EntryKind::Share(rules) if rules.admits(address))
                        && e.path.starts_with(&prefix)
                })
            }
            _ => self.rules_of(entry).is_some_and(|r| r.admits(address)),
        }
    }

    /// The export options of `path` for `domain`, or `None` (refused or not exported).
    pub fn export(&self, domain: &str, path: &str) -> Option<ExportOptions> {
        let address = address_of(domain)?;
        let entry = self.entries.iter().find(|e| e.path == path)?;
        if !self.visible(entry, address) {
            return None;
        }
        match &entry.kind {
            EntryKind::Pseudo { root } => {
                let mut f =
                    flags::READONLY | flags::INSECURE_PORT | flags::NOSUBTREECHECK | flags::V4ROOT;
                if *root {
                    f |= flags::FSID;
                }
                Some(ExportOptions {
                    flags: f,
                    anon_uid: NOBODY,
                    anon_gid: NOBODY,
                    fsid: 0,
                    uuid: (!*root).then_some(entry.uuid),
                    flavors: vec![AUTH_UNIX],
                })
            }
            EntryKind::Share(rules) => Some(rules.options(entry.uuid, false)),
            EntryKind::Submount { .. } => {
                let rules = self.rules_of(entry)?;
                Some(rules.options(entry.uuid, true))
            }
        }
    }

    /// The path a file handle's fsid names for `domain`, or `None` (stale).
    pub fn path_of(&self, domain: &str, fsid_type: u8, fsid: &[u8]) -> Option<String> {
        let address = address_of(domain)?;
        let matches = |e: &Entry| -> bool {
            let ino = e.ino.to_le_bytes();
            match fsid_type {
                1 => matches!(e.kind, EntryKind::Pseudo { root: true }) && fsid == [0; 4],
                4 => fsid.get(..4) == Some(&ino[..4]) && fsid.get(4..) == Some(&fold4(&e.uuid)[..]),
                5 => fsid == fold8(&e.uuid),
                6 => fsid == e.uuid,
                7 => fsid.get(..8) == Some(&ino[..]) && fsid.get(8..) == Some(&e.uuid[..]),
                _ => false,
            }
        };
        self.entries
            .iter()
            .find(|e| matches(e) && self.visible(e, address))
            .map(|e| e.path.clone())
    }

    /// The shares with their client lists, for MOUNT's EXPORT call (`showmount -e`).
    pub fn mount_list(&self) -> Vec<(String, Vec<String>)> {
        self.entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Share(rules) => {
                    let groups = if rules.clients.is_empty() {
                        vec!["*".to_owned()]
                    } else {
                        rules.clients.iter().map(ToString::to_string).collect()
                    };
                    Some((e.path.clone(), groups))
                }
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A UUID with distinct bytes (folding a uniform one gives zeros).
    fn uuid(seed: u8) -> [u8; 16] {
        std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7))
    }

    fn table() -> ExportTable {
        let rules = |clients: &str, read_only, squash| ShareRules {
            clients: ClientSpec::parse_list(clients).unwrap(),
            read_only,
            squash,
            insecure: false,
        };
        let shares = [
            ShareSpec {
                path: "/mnt/tank/vms".into(),
                uuid: uuid(1),
                ino: 256,
                rules: rules("10.0.3.0/24", false, Squash::None),
                submounts: vec![],
            },
            ShareSpec {
                path: "/mnt/tank/media".into(),
                uuid: uuid(2),
                ino: 256,
                rules: rules("", true, Squash::RootToNobody),
                submounts: vec![("/mnt/tank/media/.snapshots/s1".into(), uuid(3), 256)],
            },
        ];
        ExportTable::build(&shares, |p| p.len() as u64)
    }

    #[test]
    fn pseudo_filesystem_and_domains() {
        let t = table();
        let paths: Vec<&str> = t.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/",
                "/mnt",
                "/mnt/tank",
                "/mnt/tank/vms",
                "/mnt/tank/media",
                "/mnt/tank/media/.snapshots/s1"
            ]
        );
        assert_eq!(t.domain_for(ip("10.0.3.2")).as_deref(), Some("ip:10.0.3.2"));
        // media is open to everyone, so every client gets a domain.
        assert!(t.domain_for(ip("192.168.9.9")).is_some());
        let root = t.export("ip:10.0.3.2", "/").unwrap();
        assert_eq!(root.flags, 0x12403);
        assert_eq!(root.uuid, None);
        let mnt = t.export("ip:10.0.3.2", "/mnt").unwrap();
        assert_eq!(mnt.flags, 0x10403);
        assert!(mnt.uuid.is_some());
        assert_eq!(t.path_of("ip:10.0.3.2", 1, &[0; 4]).as_deref(), Some("/"));
    }

    #[test]
    fn share_rules() {
        let t = table();
        let vms = t.export("ip:10.0.3.2", "/mnt/tank/vms").unwrap();
        // rw, no_root_squash, wdelay, no_subtree_check: 0x420.
        assert_eq!(vms.flags, 0x420);
        assert_eq!((vms.anon_uid, vms.anon_gid), (65534, 65534));
        assert_eq!(vms.uuid, Some(uuid(1)));
        assert!(t.export("ip:10.0.9.9", "/mnt/tank/vms").is_none());
        let media = t.export("ip:10.0.9.9", "/mnt/tank/media").unwrap();
        assert_eq!(media.flags, 0x425);
        let snap = t
            .export("ip:10.0.9.9", "/mnt/tank/media/.snapshots/s1")
            .unwrap();
        assert_eq!(snap.flags & flags::READONLY, flags::READONLY);
        assert_eq!(snap.uuid, Some(uuid(3)));
        assert!(t.export("ip:10.0.3.2", "/etc").is_none());
        assert!(t.export("not-a-domain", "/").is_none());
    }

    #[test]
    fn file_handles() {
        let t = table();
        let mut fsid = 256u64.to_le_bytes().to_vec();
        fsid.extend_from_slice(&uuid(1));
        assert_eq!(
            t.path_of("ip:10.0.3.2", 7, &fsid).as_deref(),
            Some("/mnt/tank/vms")
        );
        // A client outside the share's list gets a stale handle.
        assert_eq!(t.path_of("ip:10.9.9.9", 7, &fsid), None);
        assert_eq!(
            t.path_of("ip:10.0.3.2", 6, &uuid(2)).as_deref(),
            Some("/mnt/tank/media")
        );
        assert_eq!(t.path_of("ip:10.0.3.2", 6, &[9; 16]), None);
        let mut v4 = 256u32.to_le_bytes().to_vec();
        v4.extend_from_slice(&fold4(&uuid(1)));
        assert_eq!(
            t.path_of("ip:10.0.3.2", 4, &v4).as_deref(),
            Some("/mnt/tank/vms")
        );
        assert_eq!(
            t.path_of("ip:10.0.3.2", 5, &fold8(&uuid(2))).as_deref(),
            Some("/mnt/tank/media")
        );
        assert_eq!(t.path_of("ip:10.0.3.2", 0, &[0; 8]), None);
    }

    #[test]
    fn mountd_list_and_uuids() {
        let t = table();
        assert_eq!(
            t.mount_list(),
            [
                ("/mnt/tank/vms".to_owned(), vec!["10.0.3.0/24".to_owned()]),
                ("/mnt/tank/media".to_owned(), vec!["*".to_owned()]),
            ]
        );
        assert_eq!(derive_uuid(&[b"a", b"bc"]), derive_uuid(&[b"a", b"bc"]));
        assert_ne!(derive_uuid(&[b"a", b"bc"]), derive_uuid(&[b"ab", b"c"]));
        assert!(ExportTable::default().domain_for(ip("1.2.3.4")).is_none());
    }
}
