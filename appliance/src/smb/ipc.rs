//! The ksmbd IPC messages (`fs/smb/server/ksmbd_netlink.h` of the shipped 6.12 kernel): fixed
//! C structures carried as one generic netlink attribute each. Requests from the kernel are
//! decoded with every length checked; replies are encoded to the exact sizes the kernel
//! checks. Every size and offset comes from [`super::layout`], the table the image build
//! checks against the shipped module's BTF.
//!
//! What does not live here: the netlink framing ([`super::genl`]) and what the answers say
//! ([`super::policy`]).

use thiserror::Error;

pub use super::layout::{event, ACCOUNT_LEN, SHARE_NAME_LEN};
use super::layout::{
    login_request, login_response, login_response_ext, logout_request, rpc_command,
    share_config_request, share_config_response, spnego_authen_request, spnego_authen_response,
    startup_request, tree_connect_request, tree_connect_response, tree_disconnect_request,
    NETBIOS_NAME_LEN, PEER_ADDR_LEN, PROTOCOL_LEN, STARTUP_STRING_LEN,
};

/// Global flags of the startup request.
pub mod global {
    pub const ENCRYPTION: u32 = 1 << 1;
    pub const ENCRYPTION_OFF: u32 = 1 << 3;
}

/// Login status bits.
pub mod user {
    pub const OK: u16 = 1 << 0;
    pub const BAD_PASSWORD: u16 = 1 << 1;
    pub const BAD_USER: u16 = 1 << 3;
    pub const GUEST_ACCOUNT: u16 = 1 << 4;
    pub const DELAY_SESSION: u16 = 1 << 5;
    pub const EXTENSION: u16 = 1 << 6;
}

/// Share flags of the share config response.
pub mod share {
    pub const AVAILABLE: u32 = 1 << 0;
    pub const BROWSEABLE: u32 = 1 << 1;
    pub const WRITEABLE: u32 = 1 << 2;
    pub const READONLY: u32 = 1 << 3;
    pub const GUEST_OK: u32 = 1 << 4;
    pub const STORE_DOS_ATTRS: u32 = 1 << 6;
    pub const OPLOCKS: u32 = 1 << 7;
    pub const PIPE: u32 = 1 << 8;
    pub const STREAMS: u32 = 1 << 11;
    pub const CROSSMNT: u32 = 1 << 15;
}

/// Tree connect statuses and connection flags.
pub mod tree {
    pub use super::super::layout::tree_status::{HOST_DENIED, INVALID_USER, NO_SHARE, OK};

    pub const GUEST_ACCOUNT: u16 = 1 << 0;
    pub const READ_ONLY: u16 = 1 << 1;
    pub const WRITABLE: u16 = 1 << 2;
    pub const UPDATE: u16 = 1 << 4;
}

/// Why a message from the kernel was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IpcError {
    #[error("event {event}: {len} bytes, shorter than the {needed} its structure needs")]
    Short {
        event: u16,
        len: usize,
        needed: usize,
    },
    #[error("event {event}: the payload claims {claimed} bytes but {len} follow")]
    PayloadLength {
        event: u16,
        claimed: usize,
        len: usize,
    },
    #[error("event {event}: a name field is not NUL-terminated or not UTF-8")]
    BadString { event: u16 },
    #[error("event {0} is not one the daemon answers")]
    Unknown(u16),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut out = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        out.copy_from_slice(s);
    }
    u64::from_ne_bytes(out)
}

/// A NUL-terminated string in a fixed field.
fn string_at(b: &[u8], at: usize, len: usize, event: u16) -> Result<String, IpcError> {
    let field = b.get(at..at + len).ok_or(IpcError::BadString { event })?;
    let end = field
        .iter()
        .position(|&c| c == 0)
        .ok_or(IpcError::BadString { event })?;
    String::from_utf8(field[..end].to_vec()).map_err(|_| IpcError::BadString { event })
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Copies `s` into a fixed field, truncated so a NUL always follows.
fn put_str(b: &mut [u8], at: usize, len: usize, s: &str) {
    let bytes = s.as_bytes();
    let n = bytes.len().min(len - 1);
    b[at..at + n].copy_from_slice(&bytes[..n]);
}

fn need(event: u16, body: &[u8], needed: usize) -> Result<(), IpcError> {
    if body.len() < needed {
        Err(IpcError::Short {
            event,
            len: body.len(),
            needed,
        })
    } else {
        Ok(())
    }
}

/// A request the kernel sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Heartbeat,
    /// `ext`: the supplementary-groups follow-up (LOGIN_REQUEST_EXT).
    Login {
        handle: u32,
        account: String,
        ext: bool,
    },
    ShareConfig {
        handle: u32,
        share: String,
    },
    TreeConnect {
        handle: u32,
        account_flags: u16,
        flags: u16,
        session_id: u64,
        connect_id: u64,
        account: String,
        share: String,
        peer: String,
    },
    TreeDisconnect {
        session_id: u64,
        connect_id: u64,
    },
    Logout {
        account: String,
        account_flags: u32,
    },
    Rpc {
        handle: u32,
        flags: u32,
        payload: Vec<u8>,
    },
    Spnego {
        handle: u32,
    },
}

/// Decodes the attribute payload of event `event`.
pub fn decode(event: u16, body: &[u8]) -> Result<Request, IpcError> {
    use event::*;
    match event {
        HEARTBEAT_REQUEST => Ok(Request::Heartbeat),
        LOGIN_REQUEST | LOGIN_REQUEST_EXT => {
            need(event, body, login_request::SIZE)?;
            Ok(Request::Login {
                handle: u32_at(body, login_request::HANDLE),
                account: string_at(body, login_request::ACCOUNT, ACCOUNT_LEN, event)?,
                ext: event == LOGIN_REQUEST_EXT,
            })
        }
        SHARE_CONFIG_REQUEST => {
            need(event, body, share_config_request::SIZE)?;
            Ok(Request::ShareConfig {
                handle: u32_at(body, share_config_request::HANDLE),
                share: string_at(
                    body,
                    share_config_request::SHARE_NAME,
                    SHARE_NAME_LEN,
                    event,
                )?,
            })
        }
        TREE_CONNECT_REQUEST => {
            need(event, body, tree_connect_request::SIZE)?;
            use tree_connect_request as t;
            Ok(Request::TreeConnect {
                handle: u32_at(body, t::HANDLE),
                account_flags: u16_at(body, t::ACCOUNT_FLAGS),
                flags: u16_at(body, t::FLAGS),
                session_id: u64_at(body, t::SESSION_ID),
                connect_id: u64_at(body, t::CONNECT_ID),
                account: string_at(body, t::ACCOUNT, ACCOUNT_LEN, event)?,
                share: string_at(body, t::SHARE, SHARE_NAME_LEN, event)?,
                peer: string_at(body, t::PEER_ADDR, PEER_ADDR_LEN, event)?,
            })
        }
        TREE_DISCONNECT_REQUEST => {
            need(event, body, tree_disconnect_request::SIZE)?;
            Ok(Request::TreeDisconnect {
                session_id: u64_at(body, tree_disconnect_request::SESSION_ID),
                connect_id: u64_at(body, tree_disconnect_request::CONNECT_ID),
            })
        }
        LOGOUT_REQUEST => {
            need(event, body, logout_request::SIZE)?;
            Ok(Request::Logout {
                account: string_at(body, logout_request::ACCOUNT, ACCOUNT_LEN, event)?,
                account_flags: u32_at(body, logout_request::ACCOUNT_FLAGS),
            })
        }
        RPC_REQUEST => {
            need(event, body, rpc_command::SIZE)?;
            let claimed = u32_at(body, rpc_command::PAYLOAD_SZ) as usize;
            let payload = body
                .get(rpc_command::SIZE..rpc_command::SIZE.saturating_add(claimed))
                .ok_or(IpcError::PayloadLength {
                    event,
                    claimed,
                    len: body.len() - rpc_command::SIZE,
                })?;
            Ok(Request::Rpc {
                handle: u32_at(body, rpc_command::HANDLE),
                flags: u32_at(body, rpc_command::FLAGS),
                payload: payload.to_vec(),
            })
        }
        SPNEGO_AUTHEN_REQUEST => {
            need(event, body, spnego_authen_request::SPNEGO_BLOB)?;
            Ok(Request::Spnego {
                handle: u32_at(body, spnego_authen_request::HANDLE),
            })
        }
        other => Err(IpcError::Unknown(other)),
    }
}

/// The server's settings, sent once with STARTING_UP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    pub flags: u32,
    /// 2 auto, 3 mandatory.
    pub signing: u32,
    pub min_protocol: String,
    pub max_protocol: String,
    pub netbios_name: String,
    pub workgroup: String,
    pub server_string: String,
    pub tcp_port: u16,
    pub ipc_timeout_secs: u16,
    pub deadtime_mins: u32,
    pub file_max: u32,
    pub max_write: u32,
    pub max_read: u32,
    pub max_trans: u32,
    pub sub_auth: [u32; 3],
    pub max_credits: u32,
    pub max_connections: u32,
    pub max_ip_connections: u32,
}

pub fn encode_startup(s: &Startup) -> Vec<u8> {
    use startup_request as r;
    let mut b = vec![0u8; r::SIZE];
    put_u32(&mut b, r::FLAGS, s.flags);
    put_u32(&mut b, r::SIGNING, s.signing);
    put_str(&mut b, r::MIN_PROT, PROTOCOL_LEN, &s.min_protocol);
    put_str(&mut b, r::MAX_PROT, PROTOCOL_LEN, &s.max_protocol);
    put_str(&mut b, r::NETBIOS_NAME, NETBIOS_NAME_LEN, &s.netbios_name);
    put_str(&mut b, r::WORK_GROUP, STARTUP_STRING_LEN, &s.workgroup);
    put_str(
        &mut b,
        r::SERVER_STRING,
        STARTUP_STRING_LEN,
        &s.server_string,
    );
    put_u16(&mut b, r::TCP_PORT, s.tcp_port);
    put_u16(&mut b, r::IPC_TIMEOUT, s.ipc_timeout_secs);
    put_u32(&mut b, r::DEADTIME, s.deadtime_mins);
    put_u32(&mut b, r::FILE_MAX, s.file_max);
    put_u32(&mut b, r::SMB2_MAX_WRITE, s.max_write);
    put_u32(&mut b, r::SMB2_MAX_READ, s.max_read);
    put_u32(&mut b, r::SMB2_MAX_TRANS, s.max_trans);
    // share_fake_fscaps: report sparse files, as ksmbd-tools does.
    put_u32(&mut b, r::SHARE_FAKE_FSCAPS, 64);
    for (i, v) in s.sub_auth.iter().enumerate() {
        put_u32(&mut b, r::SUB_AUTH + 4 * i, *v);
    }
    put_u32(&mut b, r::SMB2_MAX_CREDITS, s.max_credits);
    // smbd_max_io_size stays 0: no RDMA.
    put_u32(&mut b, r::MAX_CONNECTIONS, s.max_connections);
    // bind_interfaces_only = 0; max_ip_connections is unaligned (the structure is packed).
    put_u32(&mut b, r::MAX_IP_CONNECTIONS, s.max_ip_connections);
    // ifc_list_sz = 0: listen on every interface.
    b
}

/// A login answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub handle: u32,
    pub status: u16,
    pub uid: u32,
    pub gid: u32,
    pub account: String,
    pub hash: Option<[u8; 16]>,
}

pub fn encode_login(l: &Login) -> Vec<u8> {
    use login_response as r;
    let mut b = vec![0u8; r::SIZE];
    put_u32(&mut b, r::HANDLE, l.handle);
    put_u32(&mut b, r::GID, l.gid);
    put_u32(&mut b, r::UID, l.uid);
    put_str(&mut b, r::ACCOUNT, ACCOUNT_LEN, &l.account);
    put_u16(&mut b, r::STATUS, l.status);
    if let Some(hash) = &l.hash {
        put_u16(&mut b, r::HASH_SZ, 16);
        b[r::HASH..r::HASH + 16].copy_from_slice(hash);
    }
    b
}

pub fn encode_login_ext(handle: u32, groups: &[u32]) -> Vec<u8> {
    use login_response_ext as r;
    let mut b = vec![0u8; r::SIZE + 4 * groups.len()];
    put_u32(&mut b, r::HANDLE, handle);
    put_u32(&mut b, r::NGROUPS, u32::try_from(groups.len()).unwrap_or(0));
    for (i, gid) in groups.iter().enumerate() {
        put_u32(&mut b, r::PAYLOAD + 4 * i, *gid);
    }
    b
}

/// A share config answer; `flags` 0 means "no such share".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConfig {
    pub handle: u32,
    pub flags: u32,
    pub create_mask: u16,
    pub directory_mask: u16,
    pub force_uid: u16,
    pub force_gid: u16,
    pub name: String,
    pub veto: Vec<String>,
    /// `None` for a pipe share (IPC$) or a refusal.
    pub path: Option<String>,
}

/// The forced id meaning "not forced".
pub const NO_FORCE: u16 = 0xffff;

pub fn encode_share_config(s: &ShareConfig) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut veto_len = 0;
    if let Some(path) = &s.path {
        for (i, pattern) in s.veto.iter().enumerate() {
            if i > 0 {
                payload.push(0);
            }
            payload.extend_from_slice(pattern.as_bytes());
        }
        veto_len = payload.len();
        if veto_len > 0 {
            payload.push(0);
        }
        payload.extend_from_slice(path.trim_end_matches('/').as_bytes());
        payload.push(0);
    } else if s.flags != 0 {
        // A pipe share carries one NUL, as ksmbd-tools sends it.
        payload.push(0);
    }
    use share_config_response as r;
    let mut b = vec![0u8; r::SIZE];
    put_u32(&mut b, r::HANDLE, s.handle);
    put_u32(&mut b, r::FLAGS, s.flags);
    put_u16(&mut b, r::CREATE_MASK, s.create_mask);
    put_u16(&mut b, r::DIRECTORY_MASK, s.directory_mask);
    // force_create_mode and force_directory_mode stay 0.
    put_u16(&mut b, r::FORCE_UID, s.force_uid);
    put_u16(&mut b, r::FORCE_GID, s.force_gid);
    put_str(&mut b, r::SHARE_NAME, SHARE_NAME_LEN, &s.name);
    put_u32(
        &mut b,
        r::PAYLOAD_SZ,
        u32::try_from(payload.len()).unwrap_or(0),
    );
    put_u32(
        &mut b,
        r::VETO_LIST_SZ,
        u32::try_from(veto_len).unwrap_or(0),
    );
    b.extend_from_slice(&payload);
    b
}

pub fn encode_tree_connect(handle: u32, status: u16, flags: u16) -> Vec<u8> {
    use tree_connect_response as r;
    let mut b = vec![0u8; r::SIZE];
    put_u32(&mut b, r::HANDLE, handle);
    put_u16(&mut b, r::STATUS, status);
    put_u16(&mut b, r::CONNECTION_FLAGS, flags);
    b
}

pub fn encode_rpc(handle: u32, status: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; rpc_command::SIZE];
    put_u32(&mut b, rpc_command::HANDLE, handle);
    // A response carries the status where a request carries its flags.
    put_u32(&mut b, rpc_command::FLAGS, status);
    put_u32(
        &mut b,
        rpc_command::PAYLOAD_SZ,
        u32::try_from(payload.len()).unwrap_or(0),
    );
    b.extend_from_slice(payload);
    b
}

/// Kerberos is not built into the kernel's ksmbd: answer at once that it failed, so the
/// client falls back to NTLM without waiting for the 2 s timeout.
pub fn encode_spnego_refusal(handle: u32) -> Vec<u8> {
    use spnego_authen_response as r;
    let mut b = vec![0u8; r::SIZE];
    put_u32(&mut b, r::HANDLE, handle);
    put_u32(&mut b, r::LOGIN_RESPONSE + login_response::HANDLE, handle);
    b
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Builds a request body the way the kernel lays it out.
    pub fn tree_connect_body(
        handle: u32,
        account_flags: u16,
        account: &str,
        share: &str,
        peer: &str,
    ) -> Vec<u8> {
        let mut b = vec![0u8; tree_connect_request::SIZE];
        put_u32(&mut b, 0, handle);
        put_u16(&mut b, 4, account_flags);
        put_u16(&mut b, 6, 2);
        b[8..16].copy_from_slice(&7u64.to_ne_bytes());
        b[16..24].copy_from_slice(&9u64.to_ne_bytes());
        put_str(&mut b, 24, ACCOUNT_LEN, account);
        put_str(&mut b, 72, SHARE_NAME_LEN, share);
        put_str(&mut b, 136, 64, peer);
        b
    }

    /// Sizes and offsets as the 6.12 header lays them out (checked against
    /// `ksmbd_netlink.h`: `__packed` startup, natural alignment elsewhere).
    #[test]
    fn layouts() {
        let s = encode_startup(&Startup {
            flags: 1,
            signing: 2,
            min_protocol: "SMB2_10".into(),
            max_protocol: "SMB3_11".into(),
            netbios_name: "TANK".into(),
            workgroup: "WORKGROUP".into(),
            server_string: "Tank".into(),
            tcp_port: 445,
            ipc_timeout_secs: 10,
            deadtime_mins: 15,
            file_max: 10000,
            max_write: 4 << 20,
            max_read: 4 << 20,
            max_trans: 1 << 20,
            sub_auth: [1, 2, 3],
            max_credits: 8192,
            max_connections: 128,
            max_ip_connections: 32,
        });
        assert_eq!(s.len(), 744);
        assert_eq!(&s[8..16], b"SMB2_10\0");
        assert_eq!(&s[40..45], b"TANK\0");
        assert_eq!(u16_at(&s, 184), 445);
        assert_eq!(u32_at(&s, 192), 10000);
        assert_eq!(u32_at(&s, 212), 1);
        assert_eq!(u32_at(&s, 220), 3);
        assert_eq!(&s[237..241], &32u32.to_ne_bytes());
        assert_eq!(u32_at(&s, 740), 0);

        let l = encode_login(&Login {
            handle: 5,
            status: user::OK,
            uid: 1000,
            gid: 1001,
            account: "alice".into(),
            hash: Some([0xaa; 16]),
        });
        assert_eq!(l.len(), 148);
        assert_eq!((u32_at(&l, 4), u32_at(&l, 8)), (1001, 1000));
        assert_eq!(&l[12..18], b"alice\0");
        assert_eq!((u16_at(&l, 60), u16_at(&l, 62)), (1, 16));
        assert_eq!(&l[64..80], &[0xaa; 16]);
        assert_eq!(l[80..].iter().filter(|&&b| b != 0).count(), 0);

        let e = encode_login_ext(5, &[100, 200]);
        assert_eq!(e.len(), 136 + 8);
        assert_eq!(u32_at(&e, 4), 2);
        assert_eq!(u32_at(&e, 140), 200);

        let c = encode_share_config(&ShareConfig {
            handle: 3,
            flags: share::AVAILABLE,
            create_mask: 0o744,
            directory_mask: 0o755,
            force_uid: NO_FORCE,
            force_gid: 1000,
            name: "media".into(),
            veto: vec!["*.tmp".into(), ".DS_Store".into()],
            path: Some("/mnt/tank/media/".into()),
        });
        let payload = b"*.tmp\0.DS_Store\0/mnt/tank/media\0";
        assert_eq!(c.len(), 536 + payload.len());
        assert_eq!(u32_at(&c, 528) as usize, payload.len());
        assert_eq!(u32_at(&c, 532), 15);
        assert_eq!(&c[536..], payload);
        assert_eq!((u16_at(&c, 16), u16_at(&c, 18)), (0xffff, 1000));
        assert_eq!(&c[20..26], b"media\0");
        let ipc = encode_share_config(&ShareConfig {
            handle: 4,
            flags: share::PIPE,
            create_mask: 0,
            directory_mask: 0,
            force_uid: NO_FORCE,
            force_gid: NO_FORCE,
            name: "ipc$".into(),
            veto: vec![],
            path: None,
        });
        assert_eq!(
            (ipc.len(), u32_at(&ipc, 528), u32_at(&ipc, 532)),
            (537, 1, 0)
        );
        let none = encode_share_config(&ShareConfig {
            flags: 0,
            path: None,
            ..ShareConfig {
                handle: 4,
                flags: 0,
                create_mask: 0,
                directory_mask: 0,
                force_uid: NO_FORCE,
                force_gid: NO_FORCE,
                name: String::new(),
                veto: vec![],
                path: None,
            }
        });
        assert_eq!(none.len(), 536);

        assert_eq!(encode_tree_connect(1, tree::OK, tree::WRITABLE).len(), 72);
        assert_eq!(encode_rpc(1, 0, b"abc").len(), 15);
        assert_eq!(encode_spnego_refusal(1).len(), 156);
    }

    #[test]
    fn decoding() {
        let body = tree_connect_body(11, tree::GUEST_ACCOUNT, "alice", "media", "10.0.3.2");
        assert_eq!(
            decode(event::TREE_CONNECT_REQUEST, &body).unwrap(),
            Request::TreeConnect {
                handle: 11,
                account_flags: 1,
                flags: 2,
                session_id: 7,
                connect_id: 9,
                account: "alice".into(),
                share: "media".into(),
                peer: "10.0.3.2".into()
            }
        );
        let mut login = vec![0u8; login_request::SIZE];
        put_u32(&mut login, 0, 3);
        put_str(&mut login, 4, ACCOUNT_LEN, "Alice");
        assert_eq!(
            decode(event::LOGIN_REQUEST_EXT, &login).unwrap(),
            Request::Login {
                handle: 3,
                account: "Alice".into(),
                ext: true
            }
        );
        // An unterminated name is refused, not read past.
        let mut bad = login.clone();
        bad[4..52].fill(b'a');
        assert!(matches!(
            decode(event::LOGIN_REQUEST, &bad),
            Err(IpcError::BadString { .. })
        ));
        assert!(matches!(
            decode(event::LOGIN_REQUEST, &login[..100]),
            Err(IpcError::Short { .. })
        ));
        let mut rpc = encode_rpc(8, 0x29, b"hello");
        assert_eq!(
            decode(event::RPC_REQUEST, &rpc).unwrap(),
            Request::Rpc {
                handle: 8,
                flags: 0x29,
                payload: b"hello".to_vec()
            }
        );
        put_u32(&mut rpc, 8, 1000);
        assert!(matches!(
            decode(event::RPC_REQUEST, &rpc),
            Err(IpcError::PayloadLength { .. })
        ));
        assert!(matches!(decode(3, &[]), Err(IpcError::Unknown(3))));
    }

    /// Random bodies for every event never panic.
    #[test]
    fn fuzz() {
        let mut rng = crate::testing::Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..50_000 {
            let event = rng.below(20) as u16;
            let len = rng.below(400);
            let body = rng.bytes(len);
            let _ = decode(event, &body);
        }
    }
}
