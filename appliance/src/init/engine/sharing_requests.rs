//! The engine's file-server side: NFS shares, users and groups, the NFS service's life
//! (started once the pool is mounted, stopped before it is unmounted) and the export table it
//! serves. SMB shares and the SMB service are in `smb_requests`.
//!
//! Every change follows the engine's rule: validate the whole new configuration, apply it to
//! the running services, save it; if the save fails, the services go back to the old one.

use super::{Appliance, PoolState};
use crate::config::accounts::{next_free_id, nt_hash, GroupConfig, UserConfig};
use crate::config::sharing::{open_to_everyone, NfsShare, Squash};
use crate::config::Config;
use crate::console::request::{
    AccountRef, GroupRequest, NfsOptions, NfsRequest, SquashSpec, Table, UserRequest,
};
use crate::console::{Reply, Request};
use crate::nfs::NfsService;

/// The port knfsd listens on, which the init's rpcbind lists for NFSv4 while it runs.
pub const NFS_PORT: u16 = 2049;

fn squash_text(squash: &Squash) -> String {
    match squash {
        Squash::RootToNobody => "root→nobody".into(),
        Squash::None => "none".into(),
        Squash::MapRoot { uid, gid } => format!("root→{uid}:{gid}"),
        Squash::MapAll { uid, gid } => format!("all→{uid}:{gid}"),
    }
}

impl Appliance {
    /// The export table for a configuration, from what is mounted now.
    fn export_table(&self, config: &Config) -> crate::nfs::exports::ExportTable {
        crate::nfs::table_for(config, &|path| {
            crate::storage::pool::is_mountpoint(std::path::Path::new(path))
        })
    }

    /// Starts the NFS server once the pool and its datasets are mounted.
    pub(super) fn start_nfs(&mut self) {
        if self.nfs.is_some() || !matches!(self.pool_state, PoolState::Mounted { .. }) {
            return;
        }
        let table = self.export_table(&self.config);
        self.set_mount_exports(&table);
        let recovery = crate::storage::meta_dir().join("nfs-v4recovery");
        match NfsService::start(table, &recovery) {
            Ok(service) => {
                self.nfs = Some(service);
                self.nfs_error = None;
                self.rpc_register_nfs(true);
            }
            Err(e) => {
                log::error!("nfs: the server did not start: {e}");
                self.nfs_error = Some(e);
            }
        }
    }

    /// Stops the NFS server (shutdown: before the pool is unmounted).
    pub(super) fn stop_nfs(&mut self) {
        if let Some(nfs) = self.nfs.take() {
            self.rpc_register_nfs(false);
            nfs.stop();
        }
    }

    /// Serves `config`'s NFS shares from now on.
    pub(super) fn apply_nfs(&self, config: &Config) {
        if let Some(nfs) = &self.nfs {
            let table = self.export_table(config);
            self.set_mount_exports(&table);
            nfs.update(table);
        }
    }

    /// Starts rpcbind and MOUNT (they bind wildcard addresses, so the network may still be
    /// coming up). A failure is an alert: NFS itself works without them.
    pub(super) fn start_rpc(&mut self) {
        let exports = self.mount_exports.clone();
        let list = std::sync::Arc::new(move || match exports.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        });
        match crate::rpc::start(list) {
            Ok(rpc) => self.rpc = Some(rpc),
            Err(e) => {
                log::error!("rpc: {e}");
                self.raise_alert(crate::alerts::Raise {
                    id: "boot.rpc",
                    severity: crate::alerts::Severity::Warning,
                    title: "rpcbind and MOUNT did not start".into(),
                    message: format!(
                        "{e}: showmount and Proxmox VE's NFS checks will fail until a reboot"
                    ),
                    dismissible: true,
                });
            }
        }
    }

    /// Lists or withdraws NFSv4 in the init's rpcbind.
    fn rpc_register_nfs(&self, running: bool) {
        use crate::rpc::{Netid, NFS_PROGRAM};
        let Some(rpc) = &self.rpc else {
            return;
        };
        for netid in [Netid::Tcp, Netid::Tcp6] {
            if running {
                rpc.register(NFS_PROGRAM, 4, netid, NFS_PORT);
            } else {
                rpc.unregister(NFS_PROGRAM, 4, netid);
            }
        }
    }

    /// What MOUNT's EXPORT answers from now on.
    fn set_mount_exports(&self, table: &crate::nfs::exports::ExportTable) {
        let list = table
            .mount_list()
            .into_iter()
            .map(|(path, groups)| crate::rpc::ExportEntry { path, groups })
            .collect();
        match self.mount_exports.write() {
            Ok(mut e) => *e = list,
            Err(poisoned) => *poisoned.into_inner() = list,
        }
    }

    /// Applies a sharing change: validate, apply to the running services, save; on a failed
    /// save the services return to the configuration in force.
    pub(super) fn change_sharing(&mut self, new: Config) -> Result<(), String> {
        new.validate().map_err(|e| e.to_string())?;
        self.apply_nfs(&new);
        self.apply_smb(&new);
        let old = self.config.clone();
        if let Err(e) = self.commit(new) {
            self.apply_nfs(&old);
            self.apply_smb(&old);
            return Err(e);
        }
        Ok(())
    }

    fn resolve_account(&self, account: &AccountRef) -> Result<(u32, u32), String> {
        match account {
            AccountRef::Ids { uid, gid } => Ok((*uid, *gid)),
            AccountRef::User(name) => {
                self.config
                    .user(name)
                    .map(|u| (u.uid, u.gid))
                    .ok_or_else(|| {
                        format!(
                            "there is no user '{}'; 'user list' shows them, or give UID:GID",
                            name.as_str()
                        )
                    })
            }
        }
    }

    fn nfs_apply_options(&self, share: &mut NfsShare, options: NfsOptions) -> Result<(), String> {
        if let Some(clients) = options.clients {
            share.clients = clients;
        }
        if let Some(ro) = options.read_only {
            share.read_only = ro;
        }
        if let Some(insecure) = options.insecure {
            share.insecure = insecure;
        }
        if let Some(squash) = options.squash {
            share.squash = match squash {
                SquashSpec::RootToNobody => Squash::RootToNobody,
                SquashSpec::None => Squash::None,
                SquashSpec::MapRoot(a) => {
                    let (uid, gid) = self.resolve_account(&a)?;
                    Squash::MapRoot { uid, gid }
                }
                SquashSpec::MapAll(a) => {
                    let (uid, gid) = self.resolve_account(&a)?;
                    Squash::MapAll { uid, gid }
                }
            };
        }
        Ok(())
    }

    fn nfs_path(&self, dataset: &str) -> String {
        crate::storage::dataset_mountpoint(self.pool_name(), dataset)
            .display()
            .to_string()
    }

    /// What is said after a share change: where clients mount it, and a warning when everyone
    /// may.
    fn nfs_done(&self, verb: &str, share: &NfsShare) -> Reply {
        let mut text = format!(
            "NFS share {verb}: clients mount {}:{}",
            self.hostname,
            self.nfs_path(share.dataset.as_str())
        );
        if open_to_everyone(&share.clients) {
            text.push_str(&format!(
                "\nwarning: every address may mount {}; limit it with 'nfs share set {} clients NETWORK'",
                share.dataset.as_str(),
                share.dataset.as_str()
            ));
        }
        if self.nfs.is_none() {
            text.push_str(
                "\nnote: the NFS server is not running yet; the share is served once it starts",
            );
        }
        Reply::Done(text)
    }

    pub(super) fn nfs_request(&mut self, request: NfsRequest) -> Result<Reply, String> {
        if !matches!(request, NfsRequest::List) {
            self.require_pool()?;
        }
        match request {
            NfsRequest::List => {
                let rows = self
                    .config
                    .nfs_shares
                    .iter()
                    .map(|s| {
                        vec![
                            s.dataset.to_string(),
                            self.nfs_path(s.dataset.as_str()),
                            if s.clients.is_empty() {
                                "*".into()
                            } else {
                                s.clients
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            },
                            if s.read_only { "ro" } else { "rw" }.into(),
                            squash_text(&s.squash),
                            if s.insecure { "any" } else { "<1024" }.into(),
                        ]
                    })
                    .collect();
                Ok(Reply::Table(Table {
                    headers: vec!["DATASET", "PATH", "CLIENTS", "ACCESS", "SQUASH", "PORTS"],
                    rows,
                    empty: "no NFS shares; add one with 'nfs share add DATASET'".into(),
                    notes: Vec::new(),
                }))
            }
            NfsRequest::Add { dataset, options } => {
                if self.config.dataset(&dataset).is_none() {
                    return Err(format!(
                        "there is no dataset '{}'; 'dataset list' shows them",
                        dataset.as_str()
                    ));
                }
                if self.config.nfs_shares.iter().any(|s| s.dataset == dataset) {
                    return Err(format!(
                        "dataset '{}' is already shared over NFS; change it with 'nfs share set'",
                        dataset.as_str()
                    ));
                }
                let mut share = NfsShare::new(dataset);
                self.nfs_apply_options(&mut share, options)?;
                let mut new = self.config.clone();
                new.nfs_shares.push(share.clone());
                self.change_sharing(new)?;
                Ok(self.nfs_done("added", &share))
            }
            NfsRequest::Set { dataset, options } => {
                let mut new = self.config.clone();
                let Some(index) = new.nfs_shares.iter().position(|s| s.dataset == dataset) else {
                    return Err(format!(
                        "dataset '{}' has no NFS share; add one with 'nfs share add'",
                        dataset.as_str()
                    ));
                };
                let mut share = new.nfs_shares[index].clone();
                self.nfs_apply_options(&mut share, options)?;
                new.nfs_shares[index] = share.clone();
                self.change_sharing(new)?;
                Ok(self.nfs_done("changed", &share))
            }
            NfsRequest::Remove { dataset } => {
                let mut new = self.config.clone();
                let before = new.nfs_shares.len();
                new.nfs_shares.retain(|s| s.dataset != dataset);
                if new.nfs_shares.len() == before {
                    return Err(format!(
                        "dataset '{}' has no NFS share; 'nfs share list' shows them",
                        dataset.as_str()
                    ));
                }
                self.change_sharing(new)?;
                Ok(Reply::Done(format!(
                    "NFS share of {} removed: its clients lose access now",
                    dataset.as_str()
                )))
            }
        }
    }

    pub(super) fn user_request(&mut self, request: UserRequest) -> Result<Reply, String> {
        match request {
            UserRequest::List => {
                let rows = self
                    .config
                    .users
                    .iter()
                    .map(|u| {
                        vec![
                            u.name.to_string(),
                            u.uid.to_string(),
                            u.gid.to_string(),
                            if u.groups.is_empty() {
                                "-".into()
                            } else {
                                u.groups
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            },
                        ]
                    })
                    .collect();
                Ok(Reply::Table(Table {
                    headers: vec!["USER", "UID", "GID", "GROUPS"],
                    rows,
                    empty: "no users; add one with 'user add NAME'".into(),
                    notes: Vec::new(),
                }))
            }
            UserRequest::Add {
                name,
                uid,
                groups,
                password,
            } => {
                if self.config.user(&name).is_some() {
                    return Err(format!(
                        "user '{}' exists; change its password with 'user passwd'",
                        name.as_str()
                    ));
                }
                for g in &groups {
                    if self.config.group(g).is_none() {
                        return Err(format!(
                            "there is no group '{}'; add it with 'group add {}' first",
                            g.as_str(),
                            g.as_str()
                        ));
                    }
                }
                let uid = match uid {
                    Some(uid) => {
                        if let Some(other) = self.config.users.iter().find(|u| u.uid == uid) {
                            return Err(format!(
                                "uid {uid} belongs to user '{}'; choose another or leave it out",
                                other.name.as_str()
                            ));
                        }
                        uid
                    }
                    None => next_free_id(&self.config.users, &self.config.groups).ok_or(
                        "no free id is left between 1000 and 59999; give one with 'uid N'",
                    )?,
                };
                let Some(password) = password else {
                    let request = Request::User(UserRequest::Add {
                        name: name.clone(),
                        uid: Some(uid),
                        groups,
                        password: None,
                    });
                    return Ok(Reply::AskSecret {
                        prompt: format!(
                            "New password for {} (typed twice, not shown):",
                            name.as_str()
                        ),
                        request: Box::new(request),
                    });
                };
                let mut new = self.config.clone();
                new.users.push(UserConfig {
                    name: name.clone(),
                    uid,
                    // The user's own group, numbered like its uid unless a group has that id.
                    gid: if new.groups.iter().any(|g| g.gid == uid) {
                        next_free_id(&new.users, &new.groups).unwrap_or(uid)
                    } else {
                        uid
                    },
                    groups,
                    nt_hash: nt_hash(password.as_str()),
                });
                let gid = new.users.last().map_or(uid, |u| u.gid);
                self.change_sharing(new)?;
                Ok(Reply::Done(format!(
                    "user {} added: uid {uid}, gid {gid}",
                    name.as_str()
                )))
            }
            UserRequest::Passwd { name, password } => {
                let Some(index) = self.config.users.iter().position(|u| u.name == name) else {
                    return Err(format!(
                        "there is no user '{}'; 'user list' shows them",
                        name.as_str()
                    ));
                };
                let Some(password) = password else {
                    return Ok(Reply::AskSecret {
                        prompt: format!(
                            "New password for {} (typed twice, not shown):",
                            name.as_str()
                        ),
                        request: Box::new(Request::User(UserRequest::Passwd {
                            name,
                            password: None,
                        })),
                    });
                };
                let mut new = self.config.clone();
                new.users[index].nt_hash = nt_hash(password.as_str());
                self.change_sharing(new)?;
                Ok(Reply::Done(format!(
                    "password of {} changed",
                    name.as_str()
                )))
            }
            UserRequest::Set { name, groups } => {
                let mut new = self.config.clone();
                let Some(user) = new.users.iter_mut().find(|u| u.name == name) else {
                    return Err(format!(
                        "there is no user '{}'; 'user list' shows them",
                        name.as_str()
                    ));
                };
                user.groups = groups;
                self.change_sharing(new)?;
                Ok(Reply::Done(format!("groups of {} changed", name.as_str())))
            }
            UserRequest::Remove { name } => {
                let mut new = self.config.clone();
                let before = new.users.len();
                new.users.retain(|u| u.name != name);
                if new.users.len() == before {
                    return Err(format!(
                        "there is no user '{}'; 'user list' shows them",
                        name.as_str()
                    ));
                }
                self.change_sharing(new)?;
                Ok(Reply::Done(format!(
                    "user {} removed; files keep their numeric owner",
                    name.as_str()
                )))
            }
        }
    }

    pub(super) fn group_request(&mut self, request: GroupRequest) -> Result<Reply, String> {
        match request {
            GroupRequest::List => {
                let rows = self
                    .config
                    .groups
                    .iter()
                    .map(|g| {
                        let members: Vec<&str> = self
                            .config
                            .users
                            .iter()
                            .filter(|u| u.groups.contains(&g.name))
                            .map(|u| u.name.as_str())
                            .collect();
                        vec![
                            g.name.to_string(),
                            g.gid.to_string(),
                            if members.is_empty() {
                                "-".into()
                            } else {
                                members.join(",")
                            },
                        ]
                    })
                    .collect();
                Ok(Reply::Table(Table {
                    headers: vec!["GROUP", "GID", "MEMBERS"],
                    rows,
                    empty: "no groups; add one with 'group add NAME'".into(),
                    notes: Vec::new(),
                }))
            }
            GroupRequest::Add { name, gid } => {
                if self.config.group(&name).is_some() {
                    return Err(format!("group '{}' exists", name.as_str()));
                }
                let gid = match gid {
                    Some(gid) => gid,
                    None => next_free_id(&self.config.users, &self.config.groups).ok_or(
                        "no free id is left between 1000 and 59999; give one with 'gid N'",
                    )?,
                };
                let mut new = self.config.clone();
                new.groups.push(GroupConfig {
                    name: name.clone(),
                    gid,
                });
                self.change_sharing(new)?;
                Ok(Reply::Done(format!(
                    "group {} added: gid {gid}",
                    name.as_str()
                )))
            }
            GroupRequest::Remove { name } => {
                let mut new = self.config.clone();
                let before = new.groups.len();
                new.groups.retain(|g| g.name != name);
                if new.groups.len() == before {
                    return Err(format!(
                        "there is no group '{}'; 'group list' shows them",
                        name.as_str()
                    ));
                }
                self.change_sharing(new)?;
                Ok(Reply::Done(format!("group {} removed", name.as_str())))
            }
        }
    }

    /// The `nfs` line of `status`.
    pub(super) fn nfs_status(&self) -> String {
        match (&self.nfs, &self.nfs_error) {
            (Some(nfs), _) => nfs.status_line(),
            (None, Some(e)) => format!("FAILED: {e}"),
            (None, None) => "waiting for the pool".into(),
        }
    }
}
