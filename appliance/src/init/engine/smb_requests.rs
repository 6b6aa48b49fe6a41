//! The engine's SMB side: the SMB service's life (started once the pool is mounted, restarted
//! when global settings change, stopped before the pool is unmounted) and the `smb` requests.

use super::{Appliance, PoolState};
use crate::config::sharing::{Encryption, Signing, SmbProtocol, SmbShare};
use crate::config::Config;
use crate::console::request::{SmbGlobalOptions, SmbRequest, SmbShareOptions, Table};
use crate::console::Reply;
use crate::smb::SmbService;

fn principals(list: &[crate::config::Principal]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn clients(list: &[crate::config::ClientSpec]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Appliance {
    /// Starts the SMB server once the pool and its datasets are mounted. A pool without a
    /// domain SID gets one first (saved, so the server keeps its identity).
    pub(super) fn start_smb(&mut self) {
        if self.smb.is_some() || !matches!(self.pool_state, PoolState::Mounted { .. }) {
            return;
        }
        if self.config.smb.domain_sid == [0; 3] {
            let mut new = self.config.clone();
            let mut sid = [0u32; 3];
            for part in &mut sid {
                // Sub-authorities are 32-bit; keep them clear of the well-known low values.
                *part = crate::net::random_u32() | 0x1000_0000;
            }
            new.smb.domain_sid = sid;
            if let Err(e) = self.commit(new) {
                log::warn!("smb: cannot save the server's domain SID: {e}");
            }
        }
        match SmbService::start(&self.config, &self.hostname) {
            Ok(service) => {
                self.smb = Some(service);
                self.smb_error = None;
            }
            Err(e) => {
                log::error!("smb: the server did not start: {e}");
                self.smb_error = Some(e);
            }
        }
    }

    /// Stops the SMB server (shutdown: before the pool is unmounted).
    pub(super) fn stop_smb(&mut self) {
        if let Some(smb) = self.smb.take() {
            smb.stop();
        }
    }

    /// Serves `config`'s shares and users from now on; global settings that changed restart the
    /// server (which drops its connections).
    pub(super) fn apply_smb(&mut self, config: &Config) {
        let restart = self
            .smb
            .as_ref()
            .is_some_and(|s| s.needs_restart(config, &self.hostname));
        if restart {
            self.stop_smb();
            match SmbService::start(config, &self.hostname) {
                Ok(service) => self.smb = Some(service),
                Err(e) => {
                    log::error!("smb: the server did not restart: {e}");
                    self.smb_error = Some(e);
                }
            }
        } else if let Some(smb) = &self.smb {
            smb.update(config);
        }
    }

    /// The `smb` line of `status`.
    pub(super) fn smb_status(&self) -> String {
        match (&self.smb, &self.smb_error) {
            (Some(smb), _) => smb.status_line(),
            (None, Some(e)) => format!("FAILED: {e}"),
            (None, None) => "waiting for the pool".into(),
        }
    }

    fn smb_apply_options(
        &self,
        share: &mut SmbShare,
        options: SmbShareOptions,
    ) -> Result<(), String> {
        let SmbShareOptions {
            dataset,
            comment,
            read_only,
            valid_users,
            read_only_users,
            guest_ok,
            hosts_allow,
            hosts_deny,
            force_user,
            force_group,
            create_mask,
            directory_mask,
            browseable,
            veto,
        } = options;
        if let Some(d) = dataset {
            if self.config.dataset(&d).is_none() {
                return Err(format!(
                    "there is no dataset '{}'; 'dataset list' shows them",
                    d.as_str()
                ));
            }
            share.dataset = d;
        }
        macro_rules! set {
            ($($field:ident),*) => {
                $(if let Some(v) = $field { share.$field = v; })*
            };
        }
        set!(
            comment,
            read_only,
            valid_users,
            read_only_users,
            guest_ok,
            hosts_allow,
            hosts_deny,
            force_user,
            force_group,
            create_mask,
            directory_mask,
            browseable,
            veto
        );
        Ok(())
    }

    fn smb_done(&self, verb: &str, share: &SmbShare) -> Reply {
        let mut text = format!(
            "SMB share {verb}: \\\\{}\\{} is {}",
            crate::smb::netbios_name(&self.hostname),
            share.name,
            crate::storage::dataset_mountpoint(self.pool_name(), share.dataset.as_str()).display()
        );
        if share.guest_ok && self.config.smb.signing == Signing::Mandatory {
            text.push_str("\nnote: signing is mandatory, so guests cannot connect (guest sessions are never signed)");
        }
        if self.smb.is_none() {
            text.push_str(
                "\nnote: the SMB server is not running yet; the share is served once it starts",
            );
        }
        Reply::Done(text)
    }

    pub(super) fn smb_request(&mut self, request: SmbRequest) -> Result<Reply, String> {
        if !matches!(request, SmbRequest::Show | SmbRequest::ShareList) {
            self.require_pool()?;
        }
        match request {
            SmbRequest::Show => {
                let smb = &self.config.smb;
                Ok(Reply::Log(vec![
                    format!("server:      {}", self.smb_status()),
                    format!(
                        "name:        {} in workgroup {}",
                        crate::smb::netbios_name(&self.hostname),
                        smb.workgroup
                    ),
                    format!(
                        "protocols:   {} to SMB 3.1.1{}",
                        match crate::smb::effective_min_protocol(smb) {
                            SmbProtocol::Smb2_1 => "SMB 2.1",
                            SmbProtocol::Smb3_0 => "SMB 3.0",
                        },
                        if smb.min_protocol == SmbProtocol::Smb2_1
                            && smb.encryption == Encryption::Required
                        {
                            " (encryption required needs SMB 3.0: SMB 2.1 clients are refused)"
                        } else {
                            ""
                        }
                    ),
                    format!(
                        "signing:     {}",
                        match smb.signing {
                            Signing::Auto => "auto (when the client asks)",
                            Signing::Mandatory => "mandatory",
                        }
                    ),
                    format!(
                        "encryption:  {}",
                        match smb.encryption {
                            Encryption::Auto => "auto (when the client asks)",
                            Encryption::Off => "off",
                            Encryption::Required => "required",
                        }
                    ),
                ]))
            }
            SmbRequest::Set(SmbGlobalOptions {
                workgroup,
                min_protocol,
                signing,
                encryption,
            }) => {
                let mut new = self.config.clone();
                if let Some(w) = workgroup {
                    new.smb.workgroup = w;
                }
                if let Some(p) = min_protocol {
                    new.smb.min_protocol = p;
                }
                if let Some(s) = signing {
                    new.smb.signing = s;
                }
                if let Some(e) = encryption {
                    new.smb.encryption = e;
                }
                let restart = self
                    .smb
                    .as_ref()
                    .is_some_and(|s| s.needs_restart(&new, &self.hostname));
                let raised = new.smb.encryption == Encryption::Required
                    && new.smb.min_protocol == SmbProtocol::Smb2_1;
                self.change_sharing(new)?;
                let mut said = if restart {
                    "SMB settings changed; the server restarted (clients reconnect)".to_string()
                } else {
                    "SMB settings changed".to_string()
                };
                if raised {
                    said.push_str(
                        "; encryption required makes SMB 3.0 the minimum: SMB 2.1 clients are refused",
                    );
                }
                Ok(Reply::Done(said))
            }
            SmbRequest::ShareList => {
                let rows = self
                    .config
                    .smb_shares
                    .iter()
                    .map(|s| {
                        let mut options = Vec::new();
                        if s.guest_ok {
                            options.push("guest".to_owned());
                        }
                        if !s.browseable {
                            options.push("hidden".to_owned());
                        }
                        if let Some(u) = &s.force_user {
                            options.push(format!("force_user={u}"));
                        }
                        if let Some(g) = &s.force_group {
                            options.push(format!("force_group={g}"));
                        }
                        options.push(format!(
                            "masks={:04o}/{:04o}",
                            s.create_mask, s.directory_mask
                        ));
                        if !s.veto.is_empty() {
                            options.push(format!("veto={}", s.veto.join(",")));
                        }
                        vec![
                            s.name.to_string(),
                            s.dataset.to_string(),
                            if s.read_only { "ro" } else { "rw" }.into(),
                            principals(&s.valid_users),
                            principals(&s.read_only_users),
                            clients(&s.hosts_allow),
                            clients(&s.hosts_deny),
                            options.join(" "),
                        ]
                    })
                    .collect();
                Ok(Reply::Table(Table {
                    headers: vec![
                        "SHARE",
                        "DATASET",
                        "ACCESS",
                        "USERS",
                        "READ-ONLY",
                        "ALLOW",
                        "DENY",
                        "OPTIONS",
                    ],
                    rows,
                    empty: "no SMB shares; add one with 'smb share add NAME'".into(),
                    notes: Vec::new(),
                }))
            }
            SmbRequest::ShareAdd { name, mut options } => {
                if self
                    .config
                    .smb_shares
                    .iter()
                    .any(|s| s.name.key() == name.key())
                {
                    return Err(format!(
                        "share '{}' exists; change it with 'smb share set'",
                        name.as_str()
                    ));
                }
                let dataset = match options.dataset.take() {
                    Some(d) => d,
                    None => crate::config::DatasetName::parse(name.as_str()).map_err(|_| {
                        format!(
                            "'{}' is not a dataset name; say which dataset with 'dataset DS'",
                            name.as_str()
                        )
                    })?,
                };
                if self.config.dataset(&dataset).is_none() {
                    return Err(format!(
                        "there is no dataset '{}'; create it first or say which with 'dataset DS'",
                        dataset.as_str()
                    ));
                }
                let mut share = SmbShare::new(name, dataset);
                self.smb_apply_options(&mut share, *options)?;
                let mut new = self.config.clone();
                new.smb_shares.push(share.clone());
                self.change_sharing(new)?;
                Ok(self.smb_done("added", &share))
            }
            SmbRequest::ShareSet { name, options } => {
                let mut new = self.config.clone();
                let Some(index) = new
                    .smb_shares
                    .iter()
                    .position(|s| s.name.key() == name.key())
                else {
                    return Err(format!(
                        "there is no share '{}'; 'smb share list' shows them",
                        name.as_str()
                    ));
                };
                let mut share = new.smb_shares[index].clone();
                self.smb_apply_options(&mut share, *options)?;
                new.smb_shares[index] = share.clone();
                self.change_sharing(new)?;
                Ok(self.smb_done("changed", &share))
            }
            SmbRequest::ShareRemove { name } => {
                let mut new = self.config.clone();
                let before = new.smb_shares.len();
                new.smb_shares.retain(|s| s.name.key() != name.key());
                if new.smb_shares.len() == before {
                    return Err(format!(
                        "there is no share '{}'; 'smb share list' shows them",
                        name.as_str()
                    ));
                }
                self.change_sharing(new)?;
                Ok(Reply::Done(format!(
                    "SMB share {} removed; new connections to it are refused",
                    name.as_str()
                )))
            }
        }
    }
}
