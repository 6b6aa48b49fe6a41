//! The ksmbd message layouts [`super::ipc`] is written for: every structure of the shipped
//! kernel's `fs/smb/server/ksmbd_netlink.h` the daemon reads or writes, member by member
//! (name, offset, size in bytes), with its total size, and the enums whose values it uses.
//!
//! This table is the one source of those numbers: `ipc.rs` encodes and decodes with the
//! constants below, and the image build (`image::ksmbd`, which includes this file) compares
//! the table with the BTF type information of the kernel's `ksmbd.ko`, failing the build when
//! the kernel's layout differs. When it does, update this table to the kernel's header and
//! `ipc.rs` to what changed.
//!
//! This file depends on nothing (not even the rest of the crate), so the image builder can
//! include it as it is.

/// One member of a C structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The member's name in the C header.
    pub name: &'static str,
    /// Its offset in bytes.
    pub offset: usize,
    /// Its size in bytes (0 for a flexible array member).
    pub size: usize,
}

/// A C structure: its name, size and every member, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Struct {
    pub name: &'static str,
    pub size: usize,
    pub members: &'static [Member],
}

/// A C enum: its name and every enumerator with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enum {
    pub name: &'static str,
    pub values: &'static [(&'static str, u64)],
}

/// `KSMBD_REQ_MAX_ACCOUNT_NAME_SZ`.
pub const ACCOUNT_LEN: usize = 48;
/// `KSMBD_REQ_MAX_SHARE_NAME`.
pub const SHARE_NAME_LEN: usize = 64;
/// `KSMBD_REQ_MAX_HASH_SZ`.
pub const HASH_LEN: usize = 18;
/// The peer address field of a tree connect request.
pub const PEER_ADDR_LEN: usize = 64;
/// The protocol name fields of the startup request.
pub const PROTOCOL_LEN: usize = 16;
/// The NetBIOS name field of the startup request.
pub const NETBIOS_NAME_LEN: usize = 16;
/// The work group and server string fields of the startup request.
pub const STARTUP_STRING_LEN: usize = 64;

/// Declares each structure as a module of offset constants (`SIZE`, one constant per member)
/// and its [`Struct`] (`LAYOUT`), and collects every layout in [`STRUCTS`].
macro_rules! layouts {
    ($(
        $(#[$doc:meta])*
        $module:ident = $cname:literal, size $size:expr, {
            $( $konst:ident = $field:literal at $offset:expr, $len:expr; )*
        }
    )*) => {
        $(
            $(#[$doc])*
            pub mod $module {
                #[allow(unused_imports)]
                use super::*;
                pub const SIZE: usize = $size;
                $( pub const $konst: usize = $offset; )*
                pub const LAYOUT: super::Struct = super::Struct {
                    name: $cname,
                    size: SIZE,
                    members: &[ $( super::Member { name: $field, offset: $offset, size: $len }, )* ],
                };
            }
        )*
        /// Every structure the daemon reads or writes.
        pub const STRUCTS: &[Struct] = &[ $( $module::LAYOUT, )* ];
    };
}

layouts! {
    /// STARTING_UP: the server's settings (`__packed`, so `max_ip_connections` is unaligned).
    startup_request = "ksmbd_startup_request", size 744, {
        FLAGS = "flags" at 0, 4;
        SIGNING = "signing" at 4, 4;
        MIN_PROT = "min_prot" at 8, PROTOCOL_LEN;
        MAX_PROT = "max_prot" at 24, PROTOCOL_LEN;
        NETBIOS_NAME = "netbios_name" at 40, NETBIOS_NAME_LEN;
        WORK_GROUP = "work_group" at 56, STARTUP_STRING_LEN;
        SERVER_STRING = "server_string" at 120, STARTUP_STRING_LEN;
        TCP_PORT = "tcp_port" at 184, 2;
        IPC_TIMEOUT = "ipc_timeout" at 186, 2;
        DEADTIME = "deadtime" at 188, 4;
        FILE_MAX = "file_max" at 192, 4;
        SMB2_MAX_WRITE = "smb2_max_write" at 196, 4;
        SMB2_MAX_READ = "smb2_max_read" at 200, 4;
        SMB2_MAX_TRANS = "smb2_max_trans" at 204, 4;
        SHARE_FAKE_FSCAPS = "share_fake_fscaps" at 208, 4;
        SUB_AUTH = "sub_auth" at 212, 12;
        SMB2_MAX_CREDITS = "smb2_max_credits" at 224, 4;
        SMBD_MAX_IO_SIZE = "smbd_max_io_size" at 228, 4;
        MAX_CONNECTIONS = "max_connections" at 232, 4;
        BIND_INTERFACES_ONLY = "bind_interfaces_only" at 236, 1;
        MAX_IP_CONNECTIONS = "max_ip_connections" at 237, 4;
        RESERVED = "reserved" at 241, 499;
        IFC_LIST_SZ = "ifc_list_sz" at 740, 4;
        PAYLOAD = "____payload" at 744, 0;
    }
    /// LOGIN_REQUEST and LOGIN_REQUEST_EXT.
    login_request = "ksmbd_login_request", size 116, {
        HANDLE = "handle" at 0, 4;
        ACCOUNT = "account" at 4, ACCOUNT_LEN;
        RESERVED = "reserved" at 52, 64;
    }
    /// LOGIN_RESPONSE.
    login_response = "ksmbd_login_response", size 148, {
        HANDLE = "handle" at 0, 4;
        GID = "gid" at 4, 4;
        UID = "uid" at 8, 4;
        ACCOUNT = "account" at 12, ACCOUNT_LEN;
        STATUS = "status" at 60, 2;
        HASH_SZ = "hash_sz" at 62, 2;
        HASH = "hash" at 64, HASH_LEN;
        RESERVED = "reserved" at 84, 64;
    }
    /// LOGIN_RESPONSE_EXT: the supplementary groups follow the structure.
    login_response_ext = "ksmbd_login_response_ext", size 136, {
        HANDLE = "handle" at 0, 4;
        NGROUPS = "ngroups" at 4, 4;
        RESERVED = "reserved" at 8, 128;
        PAYLOAD = "____payload" at 136, 0;
    }
    /// SHARE_CONFIG_REQUEST.
    share_config_request = "ksmbd_share_config_request", size 132, {
        HANDLE = "handle" at 0, 4;
        SHARE_NAME = "share_name" at 4, SHARE_NAME_LEN;
        RESERVED = "reserved" at 68, 64;
    }
    /// SHARE_CONFIG_RESPONSE: the veto list and the path follow the structure.
    share_config_response = "ksmbd_share_config_response", size 536, {
        HANDLE = "handle" at 0, 4;
        FLAGS = "flags" at 4, 4;
        CREATE_MASK = "create_mask" at 8, 2;
        DIRECTORY_MASK = "directory_mask" at 10, 2;
        FORCE_CREATE_MODE = "force_create_mode" at 12, 2;
        FORCE_DIRECTORY_MODE = "force_directory_mode" at 14, 2;
        FORCE_UID = "force_uid" at 16, 2;
        FORCE_GID = "force_gid" at 18, 2;
        SHARE_NAME = "share_name" at 20, SHARE_NAME_LEN;
        RESERVED = "reserved" at 84, 444;
        PAYLOAD_SZ = "payload_sz" at 528, 4;
        VETO_LIST_SZ = "veto_list_sz" at 532, 4;
        PAYLOAD = "____payload" at 536, 0;
    }
    /// TREE_CONNECT_REQUEST.
    tree_connect_request = "ksmbd_tree_connect_request", size 264, {
        HANDLE = "handle" at 0, 4;
        ACCOUNT_FLAGS = "account_flags" at 4, 2;
        FLAGS = "flags" at 6, 2;
        SESSION_ID = "session_id" at 8, 8;
        CONNECT_ID = "connect_id" at 16, 8;
        ACCOUNT = "account" at 24, ACCOUNT_LEN;
        SHARE = "share" at 72, SHARE_NAME_LEN;
        PEER_ADDR = "peer_addr" at 136, PEER_ADDR_LEN;
        RESERVED = "reserved" at 200, 64;
    }
    /// TREE_CONNECT_RESPONSE.
    tree_connect_response = "ksmbd_tree_connect_response", size 72, {
        HANDLE = "handle" at 0, 4;
        STATUS = "status" at 4, 2;
        CONNECTION_FLAGS = "connection_flags" at 6, 2;
        RESERVED = "reserved" at 8, 64;
    }
    /// TREE_DISCONNECT_REQUEST.
    tree_disconnect_request = "ksmbd_tree_disconnect_request", size 80, {
        SESSION_ID = "session_id" at 0, 8;
        CONNECT_ID = "connect_id" at 8, 8;
        RESERVED = "reserved" at 16, 64;
    }
    /// LOGOUT_REQUEST.
    logout_request = "ksmbd_logout_request", size 116, {
        ACCOUNT = "account" at 0, ACCOUNT_LEN;
        ACCOUNT_FLAGS = "account_flags" at 48, 4;
        RESERVED = "reserved" at 52, 64;
    }
    /// RPC_REQUEST and RPC_RESPONSE: the payload follows the header.
    rpc_command = "ksmbd_rpc_command", size 12, {
        HANDLE = "handle" at 0, 4;
        FLAGS = "flags" at 4, 4;
        PAYLOAD_SZ = "payload_sz" at 8, 4;
        PAYLOAD = "payload" at 12, 0;
    }
    /// SPNEGO_AUTHEN_REQUEST: the blob follows at 6 (the size is rounded up to 8).
    spnego_authen_request = "ksmbd_spnego_authen_request", size 8, {
        HANDLE = "handle" at 0, 4;
        SPNEGO_BLOB_LEN = "spnego_blob_len" at 4, 2;
        SPNEGO_BLOB = "spnego_blob" at 6, 0;
    }
    /// SPNEGO_AUTHEN_RESPONSE: embeds a login response.
    spnego_authen_response = "ksmbd_spnego_authen_response", size 156, {
        HANDLE = "handle" at 0, 4;
        LOGIN_RESPONSE = "login_response" at 4, super::login_response::SIZE;
        SESSION_KEY_LEN = "session_key_len" at 152, 2;
        SPNEGO_BLOB_LEN = "spnego_blob_len" at 154, 2;
        PAYLOAD = "payload" at 156, 0;
    }
}

/// `enum ksmbd_event`: the generic netlink commands; a reply is its request's number plus one.
pub mod event {
    pub const UNSPEC: u16 = 0;
    pub const HEARTBEAT_REQUEST: u16 = 1;
    pub const STARTING_UP: u16 = 2;
    pub const SHUTTING_DOWN: u16 = 3;
    pub const LOGIN_REQUEST: u16 = 4;
    pub const LOGIN_RESPONSE: u16 = 5;
    pub const SHARE_CONFIG_REQUEST: u16 = 6;
    pub const SHARE_CONFIG_RESPONSE: u16 = 7;
    pub const TREE_CONNECT_REQUEST: u16 = 8;
    pub const TREE_CONNECT_RESPONSE: u16 = 9;
    pub const TREE_DISCONNECT_REQUEST: u16 = 10;
    pub const LOGOUT_REQUEST: u16 = 11;
    pub const RPC_REQUEST: u16 = 12;
    pub const RPC_RESPONSE: u16 = 13;
    pub const SPNEGO_AUTHEN_REQUEST: u16 = 14;
    pub const SPNEGO_AUTHEN_RESPONSE: u16 = 15;
    pub const LOGIN_REQUEST_EXT: u16 = 16;
    pub const LOGIN_RESPONSE_EXT: u16 = 17;
    /// One past the last event (`__KSMBD_EVENT_MAX`); `KSMBD_EVENT_MAX` is the last one.
    pub const COUNT: u16 = 18;
}

/// `enum KSMBD_TREE_CONN_STATUS`: the status of a tree connect response.
pub mod tree_status {
    pub const OK: u16 = 0;
    pub const NOMEM: u16 = 1;
    pub const NO_SHARE: u16 = 2;
    pub const NO_USER: u16 = 3;
    pub const INVALID_USER: u16 = 4;
    pub const HOST_DENIED: u16 = 5;
    pub const CONN_EXIST: u16 = 6;
    pub const TOO_MANY_CONNS: u16 = 7;
    pub const TOO_MANY_SESSIONS: u16 = 8;
    pub const ERROR: u16 = 9;
}

/// Every enum the daemon relies on, with all of its enumerators: a new event is as much a
/// change as a renumbered one (the kernel would ask something the daemon cannot answer).
pub const ENUMS: &[Enum] = &[
    Enum {
        name: "ksmbd_event",
        values: &[
            ("KSMBD_EVENT_UNSPEC", event::UNSPEC as u64),
            (
                "KSMBD_EVENT_HEARTBEAT_REQUEST",
                event::HEARTBEAT_REQUEST as u64,
            ),
            ("KSMBD_EVENT_STARTING_UP", event::STARTING_UP as u64),
            ("KSMBD_EVENT_SHUTTING_DOWN", event::SHUTTING_DOWN as u64),
            ("KSMBD_EVENT_LOGIN_REQUEST", event::LOGIN_REQUEST as u64),
            ("KSMBD_EVENT_LOGIN_RESPONSE", event::LOGIN_RESPONSE as u64),
            (
                "KSMBD_EVENT_SHARE_CONFIG_REQUEST",
                event::SHARE_CONFIG_REQUEST as u64,
            ),
            (
                "KSMBD_EVENT_SHARE_CONFIG_RESPONSE",
                event::SHARE_CONFIG_RESPONSE as u64,
            ),
            (
                "KSMBD_EVENT_TREE_CONNECT_REQUEST",
                event::TREE_CONNECT_REQUEST as u64,
            ),
            (
                "KSMBD_EVENT_TREE_CONNECT_RESPONSE",
                event::TREE_CONNECT_RESPONSE as u64,
            ),
            (
                "KSMBD_EVENT_TREE_DISCONNECT_REQUEST",
                event::TREE_DISCONNECT_REQUEST as u64,
            ),
            ("KSMBD_EVENT_LOGOUT_REQUEST", event::LOGOUT_REQUEST as u64),
            ("KSMBD_EVENT_RPC_REQUEST", event::RPC_REQUEST as u64),
            ("KSMBD_EVENT_RPC_RESPONSE", event::RPC_RESPONSE as u64),
            (
                "KSMBD_EVENT_SPNEGO_AUTHEN_REQUEST",
                event::SPNEGO_AUTHEN_REQUEST as u64,
            ),
            (
                "KSMBD_EVENT_SPNEGO_AUTHEN_RESPONSE",
                event::SPNEGO_AUTHEN_RESPONSE as u64,
            ),
            (
                "KSMBD_EVENT_LOGIN_REQUEST_EXT",
                event::LOGIN_REQUEST_EXT as u64,
            ),
            (
                "KSMBD_EVENT_LOGIN_RESPONSE_EXT",
                event::LOGIN_RESPONSE_EXT as u64,
            ),
            ("__KSMBD_EVENT_MAX", event::COUNT as u64),
            ("KSMBD_EVENT_MAX", event::COUNT as u64 - 1),
        ],
    },
    Enum {
        name: "KSMBD_TREE_CONN_STATUS",
        values: &[
            ("KSMBD_TREE_CONN_STATUS_OK", tree_status::OK as u64),
            ("KSMBD_TREE_CONN_STATUS_NOMEM", tree_status::NOMEM as u64),
            (
                "KSMBD_TREE_CONN_STATUS_NO_SHARE",
                tree_status::NO_SHARE as u64,
            ),
            (
                "KSMBD_TREE_CONN_STATUS_NO_USER",
                tree_status::NO_USER as u64,
            ),
            (
                "KSMBD_TREE_CONN_STATUS_INVALID_USER",
                tree_status::INVALID_USER as u64,
            ),
            (
                "KSMBD_TREE_CONN_STATUS_HOST_DENIED",
                tree_status::HOST_DENIED as u64,
            ),
            (
                "KSMBD_TREE_CONN_STATUS_CONN_EXIST",
                tree_status::CONN_EXIST as u64,
            ),
            (
                "KSMBD_TREE_CONN_STATUS_TOO_MANY_CONNS",
                tree_status::TOO_MANY_CONNS as u64,
            ),
            (
                "KSMBD_TREE_CONN_STATUS_TOO_MANY_SESSIONS",
                tree_status::TOO_MANY_SESSIONS as u64,
            ),
            ("KSMBD_TREE_CONN_STATUS_ERROR", tree_status::ERROR as u64),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Each structure's members are in order, do not overlap and end within it (a flexible
    /// array member may start at its end); each enum names every value once.
    #[test]
    fn the_table_is_consistent() {
        for s in STRUCTS {
            let mut end = 0;
            for m in s.members {
                assert!(m.offset >= end, "{}.{} overlaps", s.name, m.name);
                end = m.offset + m.size;
            }
            assert!(end <= s.size, "{} ends at {end}, past {}", s.name, s.size);
        }
        for e in ENUMS {
            for (i, (name, _)) in e.values.iter().enumerate() {
                assert!(
                    !e.values[..i].iter().any(|(n, _)| n == name),
                    "{}: {name} twice",
                    e.name
                );
            }
        }
        assert_eq!(
            spnego_authen_response::LOGIN_RESPONSE + login_response::SIZE,
            spnego_authen_response::SESSION_KEY_LEN
        );
    }
}
