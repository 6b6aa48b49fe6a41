//! Mounting NFS exports, SMB shares and tmpfs the way `mount.nfs` and `mount.cifs` would, with
//! no helper: the agent builds the kernel's text mount options itself and calls mount(2).
//!
//! What the helpers add, and so this module adds unless the request already has it:
//! - NFS: `addr=SERVER` (the kernel does not resolve the source's host) and, for NFSv4,
//!   `clientaddr=OUR_ADDRESS` (the callback address NFSv4.0 hands the server).
//! - SMB: `ip=SERVER` and `unc=\\SERVER\SHARE`; `guest` becomes an empty user and password
//!   (`user=,pass=`), as `mount.cifs` sends it. A comma inside a password is written doubled
//!   (`pass=a,,b`), the kernel's own rule.
//!
//! Generic words (`ro`, `nosuid`, `noexec`, `sync`, `noatime`...) become mount flags, as
//! mount(8) does; everything else goes to the file system as it is. The server must be an IP
//! address: the test client has no resolver. What does not live here: parsing the request
//! ([`crate::command`]).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Instant;

use rustix::mount::{MountFlags, UnmountFlags};

use crate::command::{FsKind, MountSpec};
use crate::ops::{show, OpError};
use crate::protocol::Fields;

/// What mount(2) gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountCall {
    pub source: String,
    pub fstype: &'static str,
    pub flags: MountFlags,
    pub data: String,
}

impl MountCall {
    /// The options with any password hidden, for replies and logs.
    pub fn shown_data(&self) -> String {
        self.data
            .split(',')
            .map(|o| match o.split_once('=') {
                Some((k, v)) if matches!(k, "pass" | "password" | "password2") && !v.is_empty() => {
                    format!("{k}=***")
                }
                _ => o.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A mount request the agent cannot turn into a mount(2) call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("NFS source '{0}' is not SERVER:/PATH, e.g. 10.0.3.1:/mnt/tank/vms")]
    NfsSource(String),
    #[error("SMB source '{0}' is not //SERVER/SHARE, e.g. //10.0.3.1/media")]
    SmbSource(String),
    #[error("server '{0}' is not an IP address: the test client has no resolver")]
    NotAnAddress(String),
    #[error("NFSv4 needs the client's own address for clientaddr=: boot the agent with tank.agent.ip= or pass clientaddr=")]
    NoClientAddress,
}

/// Option words that are mount flags rather than file system options.
const FLAGS: &[(&str, MountFlags, bool)] = &[
    ("ro", MountFlags::RDONLY, true),
    ("rw", MountFlags::RDONLY, false),
    ("nosuid", MountFlags::NOSUID, true),
    ("suid", MountFlags::NOSUID, false),
    ("nodev", MountFlags::NODEV, true),
    ("dev", MountFlags::NODEV, false),
    ("noexec", MountFlags::NOEXEC, true),
    ("exec", MountFlags::NOEXEC, false),
    ("sync", MountFlags::SYNCHRONOUS, true),
    ("async", MountFlags::SYNCHRONOUS, false),
    ("dirsync", MountFlags::DIRSYNC, true),
    ("noatime", MountFlags::NOATIME, true),
    ("nodiratime", MountFlags::NODIRATIME, true),
    ("relatime", MountFlags::RELATIME, true),
    ("strictatime", MountFlags::STRICTATIME, true),
    ("lazytime", MountFlags::LAZYTIME, true),
];

fn parse_ip(host: &str) -> Result<IpAddr, MountError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse()
        .map_err(|_| MountError::NotAnAddress(host.to_string()))
}

fn has(options: &[String], keys: &[&str]) -> bool {
    options.iter().any(|o| {
        let key = o.split_once('=').map(|(k, _)| k).unwrap_or(o);
        keys.contains(&key)
    })
}

/// Splits mount options on commas, keeping a doubled comma (`,,`) inside its option.
fn split_options(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push_str(",,");
                continue;
            }
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Builds the mount(2) call for a request; `client` is the agent's own address.
pub fn plan(spec: &MountSpec, client: Option<Ipv4Addr>) -> Result<MountCall, MountError> {
    let mut flags = MountFlags::empty();
    let mut data: Vec<String> = Vec::new();
    for o in split_options(&spec.options) {
        match FLAGS.iter().find(|(name, _, _)| *name == o) {
            Some((_, flag, true)) => flags |= *flag,
            Some((_, flag, false)) => flags -= *flag,
            None => data.push(o),
        }
    }
    match spec.kind {
        FsKind::Nfs | FsKind::Nfs4 => {
            let (host, path) = spec
                .source
                .rsplit_once(":/")
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| MountError::NfsSource(spec.source.clone()))?;
            let _ = path;
            let server = parse_ip(host)?;
            if !has(&data, &["addr"]) {
                data.push(format!("addr={server}"));
            }
            let v4 = spec.kind == FsKind::Nfs4
                || data.iter().any(|o| {
                    o.strip_prefix("vers=")
                        .or_else(|| o.strip_prefix("nfsvers="))
                        .is_some_and(|v| v.starts_with('4'))
                });
            if v4 && !has(&data, &["clientaddr"]) {
                let own = client.ok_or(MountError::NoClientAddress)?;
                data.push(format!("clientaddr={own}"));
            }
        }
        FsKind::Cifs | FsKind::Smb3 => {
            let rest = spec
                .source
                .strip_prefix("//")
                .ok_or_else(|| MountError::SmbSource(spec.source.clone()))?;
            let (host, share) = rest
                .split_once('/')
                .filter(|(h, s)| !h.is_empty() && !s.is_empty())
                .ok_or_else(|| MountError::SmbSource(spec.source.clone()))?;
            let share = share.split('/').next().unwrap_or(share);
            let server = parse_ip(host)?;
            let guest = data.iter().any(|o| o == "guest");
            data.retain(|o| o != "guest");
            let mut front = Vec::new();
            if !has(&data, &["ip", "addr"]) {
                front.push(format!("ip={server}"));
            }
            if !has(&data, &["unc"]) {
                front.push(format!("unc=\\\\{host}\\{share}"));
            }
            data.splice(0..0, front);
            if guest {
                if !has(&data, &["user", "username"]) {
                    data.push("user=".into());
                }
                if !has(&data, &["pass", "password"]) {
                    data.push("pass=".into());
                }
            }
        }
        FsKind::Tmpfs => {}
    }
    Ok(MountCall {
        source: spec.source.clone(),
        fstype: spec.kind.fstype(),
        flags,
        data: data.join(","),
    })
}

/// `mount`: creates the target directory if needed and mounts.
pub fn mount(spec: &MountSpec, client: Option<Ipv4Addr>) -> Result<Fields, OpError> {
    let call = plan(spec, client).map_err(|e| OpError::Failed(e.to_string()))?;
    std::fs::create_dir_all(&spec.target)
        .map_err(OpError::io(format!("mkdir {}", show(&spec.target))))?;
    let data = std::ffi::CString::new(call.data.clone())
        .map_err(|_| OpError::Failed("mount options must not contain NUL bytes".into()))?;
    let started = Instant::now();
    rustix::mount::mount(
        call.source.as_str(),
        &spec.target,
        call.fstype,
        call.flags,
        data.as_c_str(),
    )
    .map_err(|e| {
        OpError::io(format!(
            "mount -t {} {} {} -o {}",
            call.fstype,
            call.source,
            show(&spec.target),
            call.shown_data()
        ))(e.into())
    })?;
    Ok(Fields::new()
        .put("target", spec.target.as_os_str().as_encoded_bytes())
        .put("type", call.fstype)
        .put("options", call.shown_data())
        .secs("seconds", started.elapsed().as_secs_f64()))
}

/// `umount`, lazily (MNT_DETACH) and/or forced (MNT_FORCE: NFS aborts the requests in flight).
pub fn umount(target: &Path, lazy: bool, force: bool) -> Result<Fields, OpError> {
    let mut flags = UnmountFlags::empty();
    if lazy {
        flags |= UnmountFlags::DETACH;
    }
    if force {
        flags |= UnmountFlags::FORCE;
    }
    let started = Instant::now();
    rustix::mount::unmount(target, flags)
        .map_err(|e| OpError::io(format!("umount {}", show(target)))(e.into()))?;
    Ok(Fields::new().secs("seconds", started.elapsed().as_secs_f64()))
}

/// `mounts`: every line of `/proc/mounts` as `mount="SOURCE TARGET TYPE OPTIONS"` (the kernel
/// writes spaces inside names as `\040`, so the four fields split on spaces).
pub fn list() -> Result<Fields, OpError> {
    let text = std::fs::read_to_string("/proc/mounts").map_err(OpError::io("read /proc/mounts"))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let mut fields = Fields::new().num("count", lines.len());
    for line in lines {
        let four: Vec<&str> = line.split(' ').take(4).collect();
        fields = fields.put("mount", four.join(" "));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FsKind, source: &str, options: &str) -> MountSpec {
        MountSpec {
            kind,
            source: source.into(),
            target: "/mnt/x".into(),
            options: options.into(),
        }
    }

    const ME: Option<Ipv4Addr> = Some(Ipv4Addr::new(10, 0, 3, 2));

    #[test]
    fn nfs_options() {
        let c = plan(
            &spec(FsKind::Nfs4, "10.0.3.1:/mnt/tank/vms", "vers=4.2,hard,ro"),
            ME,
        )
        .unwrap();
        assert_eq!(c.fstype, "nfs4");
        assert_eq!(c.source, "10.0.3.1:/mnt/tank/vms");
        assert_eq!(c.flags, MountFlags::RDONLY);
        assert_eq!(c.data, "vers=4.2,hard,addr=10.0.3.1,clientaddr=10.0.3.2");
        // Given addresses are kept.
        let c = plan(
            &spec(
                FsKind::Nfs4,
                "10.0.3.1:/x",
                "vers=4.0,addr=10.0.3.9,clientaddr=10.0.3.7",
            ),
            None,
        )
        .unwrap();
        assert_eq!(c.data, "vers=4.0,addr=10.0.3.9,clientaddr=10.0.3.7");
        // NFSv3 through the nfs type needs no callback address.
        let c = plan(&spec(FsKind::Nfs, "10.0.3.1:/x", "vers=3"), None).unwrap();
        assert_eq!((c.fstype, c.data.as_str()), ("nfs", "vers=3,addr=10.0.3.1"));
        assert_eq!(
            plan(&spec(FsKind::Nfs, "10.0.3.1:/x", "nfsvers=4.1"), None),
            Err(MountError::NoClientAddress)
        );
        assert!(matches!(
            plan(&spec(FsKind::Nfs4, "nas:/x", ""), ME),
            Err(MountError::NotAnAddress(_))
        ));
        assert!(matches!(
            plan(&spec(FsKind::Nfs4, "/x", ""), ME),
            Err(MountError::NfsSource(_))
        ));
    }

    #[test]
    fn smb_options() {
        let c = plan(
            &spec(
                FsKind::Cifs,
                "//10.0.3.1/media",
                "vers=3.1.1,username=alice,password=s3,,cret,uid=1000,file_mode=0664,noexec",
            ),
            ME,
        )
        .unwrap();
        assert_eq!(c.fstype, "cifs");
        assert_eq!(c.flags, MountFlags::NOEXEC);
        assert_eq!(
            c.data,
            "ip=10.0.3.1,unc=\\\\10.0.3.1\\media,vers=3.1.1,username=alice,password=s3,,cret,\
             uid=1000,file_mode=0664"
        );
        assert_eq!(
            c.shown_data(),
            "ip=10.0.3.1,unc=\\\\10.0.3.1\\media,vers=3.1.1,username=alice,password=***,,cret,\
             uid=1000,file_mode=0664"
        );
        let c = plan(&spec(FsKind::Smb3, "//10.0.3.1/public/sub", "guest"), ME).unwrap();
        assert_eq!(c.fstype, "smb3");
        assert_eq!(c.data, "ip=10.0.3.1,unc=\\\\10.0.3.1\\public,user=,pass=");
        let c = plan(&spec(FsKind::Cifs, "//10.0.3.1/public", "sec=none"), ME).unwrap();
        assert_eq!(c.data, "ip=10.0.3.1,unc=\\\\10.0.3.1\\public,sec=none");
        assert!(matches!(
            plan(&spec(FsKind::Cifs, "10.0.3.1/media", ""), ME),
            Err(MountError::SmbSource(_))
        ));
        assert!(matches!(
            plan(&spec(FsKind::Cifs, "//10.0.3.1/", ""), ME),
            Err(MountError::SmbSource(_))
        ));
    }

    #[test]
    fn tmpfs_and_flags() {
        let c = plan(
            &spec(FsKind::Tmpfs, "scratch", "size=16m,mode=1777,nosuid,nodev"),
            None,
        )
        .unwrap();
        assert_eq!(c.flags, MountFlags::NOSUID | MountFlags::NODEV);
        assert_eq!(c.data, "size=16m,mode=1777");
    }
}
