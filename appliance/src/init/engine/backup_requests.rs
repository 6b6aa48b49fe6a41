//! The engine's configuration backups: `system config export` writes the configuration in
//! force into a dataset, `system config import` reads an export, shows what it would change
//! and, once confirmed, applies it the way single console changes are applied.
//!
//! The file format and the merge are `config::export`'s; reading and writing files in a
//! dataset is `storage::files`'. An import creates the datasets the file has and the box lacks
//! and sets the properties of those both have (undone if a later step fails), sets the host
//! name and the network, then hands the merged configuration to `change_sharing`, which puts
//! NFS and SMB on it and commits it through the store; time settings, the mail password and
//! the alert channels follow. Datasets the file lacks are never destroyed.

use sha2::{Digest, Sha256};

use super::{Appliance, Persistence};
use crate::alerts;
use crate::config::export::{self, MailPassword, Plan};
use crate::config::{Config, DatasetConfig};
use crate::console::request::{ConfigRequest, DatasetProps};
use crate::console::{Reply, Request};
use crate::storage::files;
use crate::storage::pool as storage;
use crate::system::clock::console_time;

/// What the operator was shown: the file's bytes and the configuration they were compared with.
fn digest(bytes: &[u8], current: &Config) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(bytes);
    hash.update(crate::config::record::encode(current, 0).unwrap_or_default());
    hash.finalize().into()
}

/// Every property of a dataset, for creating or setting it.
fn props_of(ds: &DatasetConfig) -> DatasetProps {
    DatasetProps {
        quota: Some(ds.quota),
        compression: Some(ds.compression),
        owner: Some((ds.uid, ds.gid)),
        mode: Some(ds.mode),
    }
}

impl Appliance {
    pub(super) fn config_request(&mut self, request: ConfigRequest) -> Result<Reply, String> {
        self.require_pool()?;
        match request {
            ConfigRequest::Export { path, secrets } => self.config_export(&path, secrets),
            ConfigRequest::Import {
                path,
                seen,
                confirmed,
            } => {
                let (dataset, rel, mount) = self.dataset_file(&path)?;
                let bytes = files::read_limited(&mount, dataset, &rel, export::MAX_LEN as u64)
                    .map_err(|e| format!("cannot read the export: {e}; nothing was changed"))?;
                self.config_import(&path, &bytes, seen, confirmed)
            }
        }
    }

    fn config_export(&mut self, path: &str, secrets: bool) -> Result<Reply, String> {
        let (dataset, rel, mount) = self.dataset_file(path)?;
        let has_mail_user = self
            .config
            .alerts
            .mail
            .as_ref()
            .is_some_and(|m| m.user.is_some());
        let password = match &self.persistence {
            Persistence::Store(_) if secrets && has_mail_user => alerts::load_mail_password(),
            _ => None,
        };
        let bytes = export::encode(
            &self.config,
            secrets,
            password.as_ref().map(|p| p.as_str()),
            storage::now(),
        )
        .map_err(|e| format!("cannot export: {e}"))?;
        let mode = if secrets { 0o600 } else { 0o644 };
        files::write_atomic(&mount, dataset, &rel, &bytes, mode)
            .map_err(|e| format!("cannot write the export: {e}"))?;
        let c = &self.config;
        let mut text = format!(
            "configuration exported to {path} ({} bytes: {} datasets, {} NFS and {} SMB shares, \
             {} users, {} groups, {} snapshot tasks)",
            bytes.len(),
            c.datasets.len(),
            c.nfs_shares.len(),
            c.smb_shares.len(),
            c.users.len(),
            c.groups.len(),
            c.snapshot_tasks.len()
        );
        if secrets {
            text.push_str(
                "\nwith the users' password hashes and the mail password: mode 0600, readable by \
                 root only; keep it as safe as the passwords",
            );
        } else {
            text.push_str(
                "\nwithout password hashes (mode 0644): users the importing box lacks need \
                 'user passwd'; add 'secrets' to include them",
            );
        }
        Ok(Reply::Done(text))
    }

    /// Decodes `bytes`, plans the import and asks to confirm it; applies it once confirmed
    /// with the same file and configuration as shown.
    fn config_import(
        &mut self,
        path: &str,
        bytes: &[u8],
        seen: Option<[u8; 32]>,
        confirmed: bool,
    ) -> Result<Reply, String> {
        let refused = |why: String| format!("{path} is refused: {why}; nothing was changed");
        let file = export::decode(bytes).map_err(|e| refused(e.to_string()))?;
        let exported_at = file.exported_at;
        let has_mail_password = matches!(self.persistence, Persistence::Store(_))
            && alerts::load_mail_password().is_some();
        let mut random_failed = None;
        let plan = export::plan(
            &self.config,
            file,
            has_mail_password,
            storage::now(),
            || match crate::config::accounts::unknown_nt_hash() {
                Ok(hash) => hash,
                Err(e) => {
                    random_failed = Some(e.to_string());
                    [0; 16]
                }
            },
        )
        .map_err(|e| refused(format!("it does not fit this box: {e}")))?;
        if let Some(e) = random_failed {
            return Err(refused(format!(
                "no random value for a user without a password ({e})"
            )));
        }
        if plan.is_noop(&self.config) {
            return Ok(Reply::Done(format!(
                "{path} (exported {}) matches the configuration in force: nothing to change",
                console_time(exported_at)
            )));
        }
        let shown = digest(bytes, &self.config);
        if !confirmed {
            let mut question = format!(
                "Importing {path} (exported {}) changes this configuration:\n",
                console_time(exported_at)
            );
            for line in &plan.lines {
                question.push_str(line);
                question.push('\n');
            }
            question.push_str("Type 'yes' to apply it, anything else to cancel:");
            return Ok(Reply::Confirm {
                question,
                answers: vec!["yes".into()],
                request: Box::new(Request::Config(ConfigRequest::Import {
                    path: path.to_owned(),
                    seen: Some(shown),
                    confirmed: false,
                })),
            });
        }
        if seen != Some(shown) {
            return Err(refused(
                "the file or the configuration changed since the changes were shown; run the \
                 import again to see them"
                    .into(),
            ));
        }
        self.apply_import(path, plan)
    }

    /// Applies a confirmed plan; a failed step undoes the earlier ones.
    fn apply_import(&mut self, path: &str, plan: Plan) -> Result<Reply, String> {
        let old = self.config.clone();
        let mut working = self.config.clone();
        let mut created = Vec::new();
        let mut changed = Vec::new();
        let mut failure = None;
        for ds in &plan.create {
            match storage::dataset_create(&working, &ds.name, &props_of(ds)) {
                Ok(made) => {
                    working.datasets.push(made);
                    created.push(ds.name.clone());
                }
                Err(e) => {
                    failure = Some(format!("cannot create dataset {}: {e}", ds.name));
                    break;
                }
            }
        }
        if failure.is_none() {
            for ds in &plan.change {
                let Some(before) = working.dataset(&ds.name).cloned() else {
                    continue;
                };
                match storage::dataset_set(&working, &ds.name, &props_of(ds)) {
                    Ok(after) => {
                        if let Some(slot) = working.dataset_mut(&ds.name) {
                            *slot = after;
                        }
                        changed.push(before);
                    }
                    Err(e) => {
                        failure = Some(format!("cannot set dataset {}: {e}", ds.name));
                        break;
                    }
                }
            }
        }
        let old_hostname = self.hostname.clone();
        let old_net = self.net_settings.clone();
        if failure.is_none() && plan.config.hostname != self.hostname {
            match crate::console::request::HostName::parse(&plan.config.hostname) {
                Ok(name) => {
                    if let Err(e) = self.set_hostname(&name) {
                        failure = Some(e);
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        if failure.is_none() && plan.config.network != old.network {
            let mut settings = self.net_settings.clone();
            settings.interfaces = super::iface_settings(&plan.config);
            let applied = match &self.network {
                Some(net) => net.apply(settings.clone()).map_err(|e| e.to_string()),
                None => Ok(()),
            };
            match applied {
                Ok(()) => self.net_settings = settings,
                Err(e) => failure = Some(format!("cannot apply the network settings: {e}")),
            }
        }
        if failure.is_none() {
            if let Err(e) = self.change_sharing(plan.config.clone()) {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            self.undo_import(&old, &working, &created, &changed, &old_hostname, old_net);
            return Err(format!(
                "{e}; the import was undone and the configuration is as it was"
            ));
        }

        self.last_scrub = self.config.last_scrub.clone();
        let time = self.config.time.clone();
        self.adopt_time(&time);
        let mut notes = Vec::new();
        let stored = matches!(self.persistence, Persistence::Store(_));
        match &plan.mail_password {
            MailPassword::Keep => {}
            MailPassword::Set(password) if stored => {
                if let Err(e) = alerts::save_mail_password(Some(password.as_str())) {
                    notes.push(format!(
                        "the mail password could not be saved ({e}): set it again with 'alert mail'"
                    ));
                }
            }
            MailPassword::Set(_) => {}
            MailPassword::Missing => {
                if stored {
                    let _ = alerts::save_mail_password(None);
                }
                notes.push(
                    "the mail channel has no password: the file has none; set it with 'alert \
                     mail ... user USER'"
                        .into(),
                );
            }
        }
        self.sync_channels();
        for name in &plan.without_password {
            notes.push(format!(
                "user {name} has no password: set one with 'user passwd {name}'"
            ));
        }
        let mut text = format!("configuration imported from {path}");
        if !plan.create.is_empty() {
            text.push_str(&format!(
                "; datasets created: {}",
                export::names(&plan.create)
            ));
        }
        if !plan.change.is_empty() {
            text.push_str(&format!(
                "; datasets changed: {}",
                export::names(&plan.change)
            ));
        }
        let kept: Vec<_> = old
            .datasets
            .iter()
            .filter(|d| {
                !plan
                    .create
                    .iter()
                    .chain(&plan.change)
                    .any(|p| p.name == d.name)
            })
            .filter(|d| self.config.dataset(&d.name).is_some())
            .cloned()
            .collect();
        if !kept.is_empty() {
            text.push_str(&format!("; datasets kept: {}", export::names(&kept)));
        }
        for note in notes {
            text.push_str("\nnote: ");
            text.push_str(&note);
        }
        log::info!("config: imported {path}");
        Ok(Reply::Done(text))
    }

    /// Puts back what a failed import did: datasets created are destroyed, changed ones get
    /// their properties back, the host name and network return.
    fn undo_import(
        &mut self,
        old: &Config,
        working: &Config,
        created: &[crate::config::DatasetName],
        changed: &[DatasetConfig],
        hostname: &str,
        net: crate::net::NetSettings,
    ) {
        if self.net_settings != net {
            if let Some(network) = &self.network {
                if let Err(e) = network.apply(net.clone()) {
                    log::error!("config import: cannot restore the network settings: {e}");
                }
            }
            self.net_settings = net;
        }
        if self.hostname != hostname {
            if let Ok(name) = crate::console::request::HostName::parse(hostname) {
                let _ = self.set_hostname(&name);
            }
        }
        for before in changed {
            if let Err(e) = storage::dataset_set(working, &before.name, &props_of(before)) {
                log::error!("config import: cannot restore dataset {}: {e}", before.name);
            }
        }
        for name in created.iter().rev() {
            if let Err(e) = storage::dataset_destroy(working, name) {
                log::error!("config import: cannot remove dataset {name}: {e}");
            }
        }
        self.config = old.clone();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use super::*;
    use crate::config::accounts::{nt_hash, GroupConfig, GroupName, UserConfig, UserName};
    use crate::config::sharing::{NfsShare, ShareName, SmbShare};
    use crate::config::{DatasetName, PoolConfig, PoolName};
    use crate::console::Consoles;

    /// An appliance with a mounted pool whose configuration lives in memory, holding `media`.
    fn appliance() -> Appliance {
        let (tx, rx) = channel();
        let consoles = Consoles::start(&[], "tank", tx.clone());
        let mut a = Appliance::new(&board::QEMU_X86_64, 0.0, rx, tx, consoles);
        a.assemble = |_, _| Ok(None);
        a.pool_state = super::super::PoolState::Mounted { degraded: false };
        a.config.pool = Some(PoolConfig {
            name: PoolName::parse("tank").unwrap(),
            uuid: [3; 16],
        });
        a.config
            .datasets
            .push(DatasetConfig::new(DatasetName::parse("media").unwrap()));
        a
    }

    /// The same box with a group, a user and shares of `media`.
    fn exported() -> Config {
        let mut c = appliance().config;
        let media = DatasetName::parse("media").unwrap();
        c.groups.push(GroupConfig {
            name: GroupName::parse("films").unwrap(),
            gid: 1000,
        });
        c.users.push(UserConfig {
            name: UserName::parse("alice").unwrap(),
            uid: 1001,
            gid: 1001,
            groups: vec![GroupName::parse("films").unwrap()],
            nt_hash: nt_hash("alice-pw"),
        });
        c.nfs_shares.push(NfsShare::new(media.clone()));
        c.smb_shares
            .push(SmbShare::new(ShareName::parse("media").unwrap(), media));
        c
    }

    fn import(a: &mut Appliance, bytes: &[u8], seen: Option<[u8; 32]>) -> Result<Reply, String> {
        a.config_import("media/tank.exp", bytes, seen, seen.is_some())
    }

    #[test]
    fn an_import_asks_then_applies_what_it_showed() {
        let mut a = appliance();
        let before = a.config.clone();
        let bytes = export::encode(&exported(), true, None, 1_700_000_000).unwrap();
        let Ok(Reply::Confirm {
            question,
            answers,
            request,
        }) = import(&mut a, &bytes, None)
        else {
            panic!("no question");
        };
        assert_eq!(answers, ["yes"]);
        assert!(question.contains("users:\n  + alice"), "{question}");
        assert!(question.contains("shares:\n  + nfs media"), "{question}");
        assert!(question.ends_with("Type 'yes' to apply it, anything else to cancel:"));
        assert_eq!(a.config, before, "asking changed something");
        let Request::Config(ConfigRequest::Import {
            seen: Some(seen), ..
        }) = request.with_confirmation("yes".into())
        else {
            panic!("the question does not carry what was shown");
        };

        // Another file than the one shown is refused.
        let other = export::encode(&exported(), false, None, 1_700_000_000).unwrap();
        let e = import(&mut a, &other, Some(seen)).unwrap_err();
        assert!(e.contains("changed since the changes were shown"), "{e}");
        assert_eq!(a.config, before);

        let Reply::Done(done) = import(&mut a, &bytes, Some(seen)).unwrap() else {
            panic!("not applied");
        };
        assert!(done.contains("configuration imported"), "{done}");
        assert_eq!(a.config, exported());
        // Once in force, the same file has nothing left to change.
        let Reply::Done(again) = import(&mut a, &bytes, None).unwrap() else {
            panic!("asks again");
        };
        assert!(again.contains("nothing to change"), "{again}");
    }

    #[test]
    fn damaged_foreign_and_unfitting_files_change_nothing() {
        let mut a = appliance();
        let before = a.config.clone();
        let good = export::encode(&exported(), false, None, 1).unwrap();
        let mut flipped = good.to_vec();
        flipped[40] ^= 1;
        let mut unfitting = exported();
        unfitting.datasets.clear();
        unfitting.nfs_shares.clear();
        unfitting.smb_shares.clear();
        unfitting.pool = None;
        let no_pool = export::encode(&unfitting, false, None, 1).unwrap();
        for (bytes, says) in [
            (&flipped[..], "checksum"),
            (&good[..good.len() - 3], "truncated"),
            (&b"hello"[..], "not a Tank configuration export"),
            (&no_pool[..], ""),
        ] {
            match import(&mut a, bytes, None) {
                Err(e) => {
                    assert!(e.contains(says) && e.contains("nothing was changed"), "{e}");
                }
                // A file without a pool or datasets fits: it is asked about, not applied.
                Ok(Reply::Confirm { .. }) => assert_eq!(says, ""),
                Ok(other) => panic!("{other:?}"),
            }
            assert_eq!(a.config, before);
        }
        // Without a pool, nothing is read at all.
        a.pool_state = super::super::PoolState::Absent;
        let e = a
            .config_request(ConfigRequest::Import {
                path: "media/tank.exp".into(),
                seen: None,
                confirmed: false,
            })
            .unwrap_err();
        assert!(e.contains("no pool"), "{e}");
    }

    #[test]
    fn users_without_hashes_keep_this_boxs_or_get_none() {
        let mut a = appliance();
        let mut mine = exported().users[0].clone();
        mine.groups.clear();
        mine.nt_hash = nt_hash("this-box");
        a.config.users.push(mine);
        let mut file = exported();
        let mut bob = file.users[0].clone();
        bob.name = UserName::parse("bob").unwrap();
        bob.uid = 1002;
        bob.gid = 1002;
        file.users.push(bob);
        let bytes = export::encode(&file, false, None, 1).unwrap();
        let Ok(Reply::Confirm { request, .. }) = import(&mut a, &bytes, None) else {
            panic!("no question");
        };
        let Request::Config(ConfigRequest::Import { seen, .. }) = *request else {
            panic!()
        };
        let Reply::Done(done) = import(&mut a, &bytes, seen).unwrap() else {
            panic!()
        };
        assert!(
            done.contains("user bob has no password: set one with 'user passwd bob'"),
            "{done}"
        );
        let alice = a.config.user(&UserName::parse("alice").unwrap()).unwrap();
        assert_eq!(alice.nt_hash, nt_hash("this-box"));
        assert_eq!(alice.groups, [GroupName::parse("films").unwrap()]);
        let bob = a.config.user(&UserName::parse("bob").unwrap()).unwrap();
        assert_ne!(bob.nt_hash, [0; 16]);
        assert_ne!(bob.nt_hash, nt_hash("alice-pw"));
    }
}
