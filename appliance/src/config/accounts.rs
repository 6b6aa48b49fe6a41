//! Users and groups: the one identity table both file servers use, so a user has the same
//! numeric ids over SMB (ksmbd's login answer) and NFS (AUTH_SYS, squash targets).
//!
//! What lives here: the validated names [`UserName`] and [`GroupName`], the models
//! [`UserConfig`] and [`GroupConfig`], and how new ids are chosen ([`next_free_id`]). What does
//! not: the password itself (only its NT hash is ever kept; the console asks for it and the
//! engine hashes it), the rules across the whole configuration (unique names and ids, references
//! from shares: [`Config::validate`](super::Config::validate)) and the on-disk form.

use std::fmt;

use thiserror::Error;
use zeroize::Zeroizing;

/// Why a user or group name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccountNameError {
    #[error("the {what} name is empty: give a name such as \"alice\"")]
    Empty { what: &'static str },
    #[error("{what} name {name:?} is {len} bytes long: use at most {max}", max = ACCOUNT_NAME_MAX)]
    TooLong {
        what: &'static str,
        name: String,
        len: usize,
    },
    #[error("{what} name {name:?} must start with a lowercase letter (a-z)")]
    BadStart { what: &'static str, name: String },
    #[error(
        "{what} name {name:?} contains {ch:?}: use lowercase letters, digits, '-', '_' and '.'"
    )]
    BadChar {
        what: &'static str,
        name: String,
        ch: char,
    },
    #[error("{what} name {name:?} is reserved for the appliance: choose another name")]
    Reserved { what: &'static str, name: String },
}

/// The longest user or group name, in bytes: POSIX tools cope with 32, and ksmbd refuses
/// account names of 48 bytes or more.
pub const ACCOUNT_NAME_MAX: usize = 32;

/// Names that would be confused with the system's own accounts.
const RESERVED: &[&str] = &["root", "nobody", "nogroup", "guest", "admin", "daemon"];

fn check_account_name(name: &str, what: &'static str) -> Result<(), AccountNameError> {
    let Some(first) = name.chars().next() else {
        return Err(AccountNameError::Empty { what });
    };
    if let Some(ch) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(AccountNameError::BadChar {
            what,
            name: name.to_owned(),
            ch,
        });
    }
    if !first.is_ascii_lowercase() {
        return Err(AccountNameError::BadStart {
            what,
            name: name.to_owned(),
        });
    }
    if name.len() > ACCOUNT_NAME_MAX {
        return Err(AccountNameError::TooLong {
            what,
            name: name.to_owned(),
            len: name.len(),
        });
    }
    if RESERVED.contains(&name) {
        return Err(AccountNameError::Reserved {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

macro_rules! account_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `name` and wraps it. Names are case-sensitive on disk but always lower
            /// case, so an SMB login's name matches after lower-casing.
            pub fn parse(name: &str) -> Result<$name, AccountNameError> {
                check_account_name(name, $what).map(|()| $name(name.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

account_name!(
    /// A user's name: 1 to 32 bytes of `a-z 0-9 - _ .`, starting with a letter, not a system
    /// account's name.
    UserName,
    "user"
);
account_name!(
    /// A group's name, by the same rules as a user's.
    GroupName,
    "group"
);

/// One user of the file servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConfig {
    pub name: UserName,
    /// The numeric user id files created by this user get, over SMB and NFS alike.
    pub uid: u32,
    /// The primary group id: the user's own group, numbered like its uid unless chosen.
    pub gid: u32,
    /// Supplementary groups, by name (each must exist).
    pub groups: Vec<GroupName>,
    /// MD4 of the UTF-16LE password, all the SMB server needs (NTLMv2). The password itself
    /// is never stored.
    pub nt_hash: [u8; 16],
}

/// A group users can belong to, for share access lists and file ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: GroupName,
    pub gid: u32,
}

/// The first id handed to users and groups: below it are system ids.
pub const FIRST_ID: u32 = 1000;

/// The highest id handed out automatically; higher ids can still be given explicitly. ksmbd's
/// forced ids are 16-bit, so keeping automatic ids below 60000 lets every account be forced.
pub const LAST_AUTO_ID: u32 = 59_999;

/// The anonymous id NFS squashes to and SMB guests map to (`nobody`/`nogroup`).
pub const NOBODY: u32 = 65_534;

/// The lowest id from [`FIRST_ID`] that no user (as uid or primary gid) nor group uses, so a
/// new user's uid and its own gid can be the same number.
pub fn next_free_id(users: &[UserConfig], groups: &[GroupConfig]) -> Option<u32> {
    (FIRST_ID..=LAST_AUTO_ID).find(|id| {
        !users.iter().any(|u| u.uid == *id || u.gid == *id) && !groups.iter().any(|g| g.gid == *id)
    })
}

/// The NT hash of a password: MD4 over its UTF-16LE encoding, as NTLM defines it.
///
/// The UTF-16 copy of the password is wiped when the hash is made (its buffer is sized up
/// front, so growing it leaves no copy behind), and so is the hasher's block buffer.
pub fn nt_hash(password: &str) -> [u8; 16] {
    use md4::{Digest, Md4};
    // Each UTF-8 byte gives at most two bytes of UTF-16.
    let mut utf16 = Zeroizing::new(Vec::with_capacity(password.len() * 2));
    for unit in password.encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&Md4::digest(utf16.as_slice()));
    hash
}

/// A hash nobody knows a password for, nor has ever seen: 16 random bytes. It stands in for
/// a removed user's hash in older configuration generations (the record has no way to say
/// "no password"): a fallback to such a generation keeps the user, locked out until
/// `user passwd` sets a password again. Never blocks on the kernel's entropy pool.
pub fn unknown_nt_hash() -> std::io::Result<[u8; 16]> {
    use rustix::rand::{getrandom, GetRandomFlags};
    let mut hash = [0u8; 16];
    if let Ok(16) = getrandom(&mut hash[..], GetRandomFlags::INSECURE) {
        return Ok(hash);
    }
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut hash)?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "alice",
            "a",
            "sonarr",
            "svc-radarr",
            "j.doe",
            "u_1",
            &"a".repeat(32),
        ] {
            assert_eq!(UserName::parse(good).unwrap().as_str(), good);
            assert_eq!(GroupName::parse(good).unwrap().as_str(), good);
        }
        for (bad, says) in [
            ("", "empty"),
            ("Alice", "'A'"),
            ("1abc", "start with"),
            ("al ice", "' '"),
            ("a/b", "'/'"),
            ("é", "'é'"),
            (&"a".repeat(33), "33 bytes"),
            ("root", "reserved"),
            ("guest", "reserved"),
        ] {
            let message = UserName::parse(bad).unwrap_err().to_string();
            assert!(message.contains(says), "{bad:?}: {message}");
            assert!(message.starts_with("user") || message.starts_with("the user"));
        }
        assert!(GroupName::parse("Media")
            .unwrap_err()
            .to_string()
            .starts_with("group name"));
    }

    #[test]
    fn ids_skip_used_ones() {
        let user = |name: &str, uid, gid| UserConfig {
            name: UserName::parse(name).unwrap(),
            uid,
            gid,
            groups: vec![],
            nt_hash: [0; 16],
        };
        assert_eq!(next_free_id(&[], &[]), Some(1000));
        let users = [user("a", 1000, 1000), user("b", 1001, 1003)];
        let groups = [GroupConfig {
            name: GroupName::parse("media").unwrap(),
            gid: 1002,
        }];
        assert_eq!(next_free_id(&users, &groups), Some(1004));
    }

    /// Known answers: the NT hash of "password" and of the empty password (MS-NLMP examples
    /// and every NTLM implementation agree on these).
    #[test]
    fn nt_hashes() {
        let hex = |h: [u8; 16]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(nt_hash("password")), "8846f7eaee8fb117ad06bdd830b7586c");
        assert_eq!(hex(nt_hash("")), "31d6cfe0d16ae931b73c59d7e0c089c0");
        // MS-NLMP 4.2.2.1.2: NTOWFv1("Password").
        assert_eq!(hex(nt_hash("Password")), "a4f49c406510bdcab6824ee7c30fd852");
        // Characters outside the BMP take two UTF-16 units (four bytes) for four UTF-8 bytes.
        assert_eq!(nt_hash("p\u{1F600}"), {
            use md4::{Digest, Md4};
            let bytes: Vec<u8> = "p\u{1F600}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            let mut h = [0u8; 16];
            h.copy_from_slice(&Md4::digest(&bytes));
            h
        });
    }

    #[test]
    fn unknown_hashes_differ() {
        let a = unknown_nt_hash().unwrap();
        let b = unknown_nt_hash().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
    }
}
