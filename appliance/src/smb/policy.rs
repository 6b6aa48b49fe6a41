//! What the SMB daemon answers, decided from the configuration as pure functions: who may
//! log in and with which ids, what a share is, and who may connect to it. ksmbd leaves every
//! one of these decisions to the daemon (host rules, valid users, guests, read-only users).
//!
//! What lives here: [`Policy`] (a snapshot of users, groups and shares, the bad-password
//! throttle and which shares changed since the kernel cached them). What does not: message
//! layouts ([`super::ipc`]), the socket ([`super::daemon`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::ipc::{self, share, tree, user, Login, ShareConfig, NO_FORCE};
use crate::config::accounts::{GroupConfig, UserConfig, NOBODY};
use crate::config::sharing::{Principal, SmbShare};
use crate::config::Config;

/// The account name guests log in as (and the one a null session becomes).
pub const GUEST_ACCOUNT: &str = "nobody";

/// Failed logins of one account within [`THROTTLE_WINDOW`] before the kernel is told to
/// delay that account's next failures by 5 seconds.
pub const THROTTLE_AFTER: usize = 3;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(300);

/// What the daemon knows of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub users: Vec<UserConfig>,
    pub groups: Vec<GroupConfig>,
    pub shares: Vec<SmbShare>,
    /// `/mnt/<pool>`, where datasets are mounted.
    pub mount_root: String,
}

impl View {
    pub fn from_config(config: &Config) -> View {
        let pool = config.pool.as_ref().map_or("tank", |p| p.name.as_str());
        View {
            users: config.users.clone(),
            groups: config.groups.clone(),
            shares: config.smb_shares.clone(),
            mount_root: crate::storage::pool_mountpoint(pool).display().to_string(),
        }
    }

    fn user(&self, account: &str) -> Option<&UserConfig> {
        let account = account.to_ascii_lowercase();
        self.users.iter().find(|u| u.name.as_str() == account)
    }

    fn share(&self, name: &str) -> Option<&SmbShare> {
        let key = name.to_ascii_lowercase();
        self.shares.iter().find(|s| s.name.key() == key)
    }

    fn gid_of(&self, group: &crate::config::GroupName) -> Option<u32> {
        self.groups.iter().find(|g| &g.name == group).map(|g| g.gid)
    }

    /// Whether `user` is named in `list`, directly or through a group.
    fn listed(&self, list: &[Principal], user: &UserConfig) -> bool {
        list.iter().any(|p| match p {
            Principal::User(u) => u == &user.name,
            Principal::Group(g) => {
                user.groups.contains(g) || self.gid_of(g).is_some_and(|gid| gid == user.gid)
            }
        })
    }
}

/// The daemon's decisions and the little state they need.
#[derive(Debug, Default)]
pub struct Policy {
    view: View,
    /// Recent failed logins per account (lower case).
    failures: HashMap<String, VecDeque<Instant>>,
    /// Shares (lower-case names) whose configuration changed since the kernel last asked.
    stale: BTreeSet<String>,
    /// Counters for `status`.
    pub logins: u64,
    pub failed_logins: u64,
    pub tree_connects: u64,
    pub refused_connects: u64,
}

/// Why a session is a guest's.
fn is_guest_name(account: &str) -> bool {
    account.is_empty() || account.eq_ignore_ascii_case("guest") || account == GUEST_ACCOUNT
}

impl Policy {
    pub fn new(view: View) -> Policy {
        Policy {
            view,
            ..Policy::default()
        }
    }

    /// Takes a new configuration; shares that changed or went away are marked so their next
    /// tree connect tells the kernel to drop its cached copy (the UPDATE flag).
    pub fn set_view(&mut self, view: View) {
        for old in &self.view.shares {
            let key = old.name.key();
            let same = view.shares.iter().any(|s| s == old);
            if !same {
                self.stale.insert(key);
            }
        }
        if view.mount_root != self.view.mount_root {
            self.stale.extend(view.shares.iter().map(|s| s.name.key()));
        }
        self.view = view;
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    fn throttled(&mut self, account: &str, now: Instant) -> bool {
        let Some(list) = self.failures.get_mut(&account.to_ascii_lowercase()) else {
            return false;
        };
        while list
            .front()
            .is_some_and(|t| now.duration_since(*t) > THROTTLE_WINDOW)
        {
            list.pop_front();
        }
        list.len() >= THROTTLE_AFTER
    }

    /// The answer to a login: the user's ids and NT hash, a guest, or a refusal.
    pub fn login(&mut self, handle: u32, account: &str, now: Instant) -> Login {
        if is_guest_name(account) {
            return Login {
                handle,
                status: user::OK | user::GUEST_ACCOUNT,
                uid: NOBODY,
                gid: NOBODY,
                account: GUEST_ACCOUNT.into(),
                hash: None,
            };
        }
        let delay = if self.throttled(account, now) {
            user::DELAY_SESSION
        } else {
            0
        };
        match self.view.user(account) {
            Some(u) => {
                self.logins += 1;
                let ext = if u.groups.is_empty() {
                    0
                } else {
                    user::EXTENSION
                };
                Login {
                    handle,
                    status: user::OK | ext | delay,
                    uid: u.uid,
                    gid: u.gid,
                    account: u.name.to_string(),
                    hash: Some(u.nt_hash),
                }
            }
            None => {
                self.failed_logins += 1;
                crate::peer_log!(
                    log::Level::Info,
                    "smb: unknown users",
                    "smb: login as unknown user {account:?} refused"
                );
                Login {
                    handle,
                    status: user::BAD_USER | delay,
                    uid: 0,
                    gid: 0,
                    account: account.chars().take(ipc::ACCOUNT_LEN - 1).collect(),
                    hash: None,
                }
            }
        }
    }

    /// The supplementary group ids of `account`.
    pub fn groups_of(&self, account: &str) -> Vec<u32> {
        self.view.user(account).map_or_else(Vec::new, |u| {
            u.groups
                .iter()
                .filter_map(|g| self.view.gid_of(g))
                .collect()
        })
    }

    /// A session ended; one that failed its password counts towards the throttle.
    pub fn logout(&mut self, account: &str, flags: u32, now: Instant) {
        if flags & u32::from(user::BAD_PASSWORD) != 0 {
            self.failed_logins += 1;
            crate::peer_log!(
                log::Level::Info,
                "smb: bad passwords",
                "smb: bad password for {account:?}"
            );
            let list = self
                .failures
                .entry(account.to_ascii_lowercase())
                .or_default();
            list.push_back(now);
            while list.len() > 16 {
                list.pop_front();
            }
        }
    }

    /// The configuration of share `name` (lower case, as the kernel sends it).
    pub fn share_config(&mut self, handle: u32, name: &str) -> ShareConfig {
        let mut answer = ShareConfig {
            handle,
            flags: 0,
            create_mask: 0,
            directory_mask: 0,
            force_uid: NO_FORCE,
            force_gid: NO_FORCE,
            name: String::new(),
            veto: Vec::new(),
            path: None,
        };
        self.stale.remove(name);
        if name == "ipc$" {
            answer.flags = share::PIPE | share::AVAILABLE;
            answer.name = "IPC$".into();
            return answer;
        }
        let Some(s) = self.view.share(name) else {
            return answer;
        };
        let mut flags = share::AVAILABLE
            | share::OPLOCKS
            | share::STORE_DOS_ATTRS
            | share::STREAMS
            | share::CROSSMNT;
        flags |= if s.read_only {
            share::READONLY
        } else {
            share::WRITEABLE
        };
        if s.browseable {
            flags |= share::BROWSEABLE;
        }
        if s.guest_ok {
            flags |= share::GUEST_OK;
        }
        let force_uid = s
            .force_user
            .as_ref()
            .and_then(|u| self.view.users.iter().find(|x| &x.name == u))
            .and_then(|u| u16::try_from(u.uid).ok());
        // A forced user also brings its primary group unless a group is forced.
        let force_gid = match &s.force_group {
            Some(g) => self.view.gid_of(g).and_then(|gid| u16::try_from(gid).ok()),
            None => s
                .force_user
                .as_ref()
                .and_then(|u| self.view.users.iter().find(|x| &x.name == u))
                .and_then(|u| u16::try_from(u.gid).ok()),
        };
        answer.flags = flags;
        answer.create_mask = u16::try_from(s.create_mask).unwrap_or(0o744);
        answer.directory_mask = u16::try_from(s.directory_mask).unwrap_or(0o755);
        answer.force_uid = force_uid.unwrap_or(NO_FORCE);
        answer.force_gid = force_gid.unwrap_or(NO_FORCE);
        answer.name = s.name.to_string();
        answer.veto = s.veto.clone();
        answer.path = Some(format!("{}/{}", self.view.mount_root, s.dataset.as_str()));
        answer
    }

    /// Whether a session may connect to a share, and how: (status, connection flags).
    pub fn tree_connect(
        &mut self,
        account: &str,
        account_flags: u16,
        share_name: &str,
        peer: &str,
    ) -> (u16, u16) {
        let (status, flags) = self.decide(account, account_flags, share_name, peer);
        if status == tree::OK {
            self.tree_connects += 1;
        } else {
            self.refused_connects += 1;
            crate::peer_log!(
                log::Level::Info,
                "smb: refused tree connects",
                "smb: {} from {peer} refused access to {share_name:?} (status {status})",
                if account.is_empty() { "guest" } else { account }
            );
        }
        (status, flags)
    }

    fn decide(
        &mut self,
        account: &str,
        account_flags: u16,
        share_name: &str,
        peer: &str,
    ) -> (u16, u16) {
        let guest = account_flags & user::GUEST_ACCOUNT != 0;
        let guest_flag = if guest { tree::GUEST_ACCOUNT } else { 0 };
        if share_name == "ipc$" {
            return (tree::OK, tree::WRITABLE | guest_flag);
        }
        let Some(s) = self.view.share(share_name).cloned() else {
            return (tree::NO_SHARE, 0);
        };
        let address: Option<IpAddr> = peer.parse().ok();
        let host_ok = address.is_some_and(|a| s.host_allowed(a));
        if !host_ok {
            return (tree::HOST_DENIED, 0);
        }
        let writable = if guest {
            if !s.guest_ok {
                return (tree::INVALID_USER, 0);
            }
            !s.read_only
        } else {
            let Some(u) = self.view.user(account) else {
                return (tree::INVALID_USER, 0);
            };
            if !s.valid_users.is_empty()
                && !self.view.listed(&s.valid_users, u)
                && !self.view.listed(&s.read_only_users, u)
            {
                return (tree::INVALID_USER, 0);
            }
            !s.read_only && !self.view.listed(&s.read_only_users, u)
        };
        let mut flags = guest_flag
            | if writable {
                tree::WRITABLE
            } else {
                tree::READ_ONLY
            };
        if self.stale.remove(share_name) {
            flags |= tree::UPDATE;
        }
        (tree::OK, flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::accounts::{nt_hash, GroupName, UserName};
    use crate::config::sharing::{ClientSpec, ShareName};
    use crate::config::DatasetName;

    fn view() -> View {
        let user = |name: &str, uid, groups: &[&str]| UserConfig {
            name: UserName::parse(name).unwrap(),
            uid,
            gid: uid,
            groups: groups
                .iter()
                .map(|g| GroupName::parse(g).unwrap())
                .collect(),
            nt_hash: nt_hash(name),
        };
        let mut media = SmbShare::new(
            ShareName::parse("Media").unwrap(),
            DatasetName::parse("media").unwrap(),
        );
        media.valid_users = vec![Principal::Group(GroupName::parse("media").unwrap())];
        media.read_only_users = vec![Principal::User(UserName::parse("bob").unwrap())];
        media.hosts_allow = ClientSpec::parse_list("10.0.3.0/24").unwrap();
        media.force_user = Some(UserName::parse("sonarr").unwrap());
        media.veto = vec!["*.tmp".into()];
        let mut public = SmbShare::new(
            ShareName::parse("public").unwrap(),
            DatasetName::parse("public").unwrap(),
        );
        public.guest_ok = true;
        public.read_only = true;
        View {
            users: vec![
                user("alice", 1000, &["media"]),
                user("bob", 1001, &[]),
                user("sonarr", 1002, &["media"]),
                user("eve", 1003, &[]),
            ],
            groups: vec![GroupConfig {
                name: GroupName::parse("media").unwrap(),
                gid: 2000,
            }],
            shares: vec![media, public],
            mount_root: "/mnt/tank".into(),
        }
    }

    #[test]
    fn logins() {
        let mut p = Policy::new(view());
        let now = Instant::now();
        let l = p.login(1, "Alice", now);
        assert_eq!(l.status, user::OK | user::EXTENSION);
        assert_eq!((l.uid, l.gid, l.account.as_str()), (1000, 1000, "alice"));
        assert_eq!(l.hash, Some(nt_hash("alice")));
        assert_eq!(p.groups_of("alice"), vec![2000]);
        assert_eq!(p.login(2, "bob", now).status, user::OK);
        let unknown = p.login(3, "mallory", now);
        assert_eq!(unknown.status & user::OK, 0);
        assert_ne!(unknown.status & user::BAD_USER, 0);
        let guest = p.login(4, "", now);
        assert_eq!(guest.status, user::OK | user::GUEST_ACCOUNT);
        assert_eq!((guest.uid, guest.account.as_str()), (NOBODY, "nobody"));
        // Three bad passwords: the next login asks the kernel to delay failures.
        for _ in 0..THROTTLE_AFTER {
            p.logout("alice", u32::from(user::BAD_PASSWORD), now);
        }
        assert_ne!(p.login(5, "alice", now).status & user::DELAY_SESSION, 0);
        assert_eq!(
            p.login(6, "alice", now + THROTTLE_WINDOW + Duration::from_secs(1))
                .status
                & user::DELAY_SESSION,
            0
        );
    }

    #[test]
    fn shares() {
        let mut p = Policy::new(view());
        let c = p.share_config(1, "media");
        assert_eq!(c.name, "Media");
        assert_eq!(c.path.as_deref(), Some("/mnt/tank/media"));
        assert_ne!(c.flags & share::WRITEABLE, 0);
        assert_eq!(c.flags & share::GUEST_OK, 0);
        assert_eq!((c.force_uid, c.force_gid), (1002, 1002));
        assert_eq!(c.veto, vec!["*.tmp".to_owned()]);
        let public = p.share_config(2, "public");
        assert_ne!(public.flags & (share::READONLY | share::GUEST_OK), 0);
        assert_eq!(public.force_uid, NO_FORCE);
        assert_eq!(p.share_config(3, "nothere").flags, 0);
        assert_eq!(
            p.share_config(4, "ipc$").flags,
            share::PIPE | share::AVAILABLE
        );
    }

    #[test]
    fn tree_connects() {
        let mut p = Policy::new(view());
        let guest = user::GUEST_ACCOUNT;
        assert_eq!(
            p.tree_connect("alice", 0, "media", "10.0.3.2"),
            (tree::OK, tree::WRITABLE)
        );
        assert_eq!(
            p.tree_connect("bob", 0, "media", "10.0.3.2"),
            (tree::OK, tree::READ_ONLY)
        );
        assert_eq!(
            p.tree_connect("eve", 0, "media", "10.0.3.2").0,
            tree::INVALID_USER
        );
        assert_eq!(
            p.tree_connect("alice", 0, "media", "10.0.2.2").0,
            tree::HOST_DENIED
        );
        assert_eq!(
            p.tree_connect("alice", 0, "media", "nonsense").0,
            tree::HOST_DENIED
        );
        assert_eq!(
            p.tree_connect("nobody", guest, "media", "10.0.3.2").0,
            tree::INVALID_USER
        );
        assert_eq!(
            p.tree_connect("nobody", guest, "public", "10.0.2.2"),
            (tree::OK, tree::READ_ONLY | tree::GUEST_ACCOUNT)
        );
        assert_eq!(
            p.tree_connect("alice", 0, "gone", "10.0.3.2").0,
            tree::NO_SHARE
        );
        assert_eq!(
            p.tree_connect("nobody", guest, "ipc$", "10.0.2.2").0,
            tree::OK
        );
    }

    #[test]
    fn changed_shares_are_updated_once() {
        let mut p = Policy::new(view());
        let mut changed = view();
        changed.shares[0].read_only = true;
        p.set_view(changed);
        let (status, flags) = p.tree_connect("alice", 0, "media", "10.0.3.2");
        assert_eq!(status, tree::OK);
        assert_eq!(flags, tree::READ_ONLY | tree::UPDATE);
        assert_eq!(
            p.tree_connect("alice", 0, "media", "10.0.3.2").1,
            tree::READ_ONLY
        );
        // An unchanged share is not marked.
        assert_eq!(
            p.tree_connect("nobody", user::GUEST_ACCOUNT, "public", "1.2.3.4")
                .1
                & tree::UPDATE,
            0
        );
    }
}
