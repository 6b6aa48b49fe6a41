//! The engine's storage side: pool assembly at boot, pool and dataset requests, the `file`
//! tools, and the long jobs (scrub, replace) with their schedule.

use std::sync::Arc;

use super::{Appliance, Persistence, PoolState};
use crate::config::{Config, Store};
use crate::console::request::{DatasetRequest, FileRequest, PoolRequest};
use crate::console::{Reply, Request};
use crate::init::{Event, JobOutcome};
use crate::storage::files;
use crate::storage::pool::{self as storage, DiskCheck};
use crate::system::disks;

impl Appliance {
    pub(super) fn pool_assembled(&mut self, result: Result<Option<storage::Assembled>, String>) {
        crate::system::slot::boot_ready(result.is_ok());
        let assembled = match result {
            Ok(Some(a)) => a,
            Ok(None) => {
                log::info!("no pool on the disks; create one with 'pool create'");
                self.pool_state = PoolState::Absent;
                self.persistence = Persistence::NoPool;
                return;
            }
            Err(e) => {
                log::error!("pool assembly failed: {e}");
                self.raise_alert(crate::alerts::Raise {
                    id: "boot.pool-mount",
                    severity: crate::alerts::Severity::Critical,
                    title: "the pool could not be mounted".into(),
                    message: format!("{e}; see 'pool status' and 'log'"),
                    dismissible: false,
                });
                self.pool_state = PoolState::Failed;
                self.persistence =
                    Persistence::Broken(format!("the pool could not be mounted: {e}"));
                return;
            }
        };
        self.pool_state = PoolState::Mounted {
            degraded: assembled.degraded,
        };
        // Mounted now (after `pool import`): the earlier failure no longer holds.
        self.clear_alert("boot.pool-mount");
        self.pool_since = Some(storage::now());
        let imported = std::mem::take(&mut self.importing);
        let opened = match Store::open(crate::storage::config_dir()) {
            // A pool the operator imported that has no store yet (a btrfs file system Tank did
            // not make) gets one: the operator chose it for this box.
            Err(e) if imported && !crate::storage::config_dir().exists() => {
                log::warn!(
                    "pool '{}' has no configuration store ({e}); making one",
                    assembled.name
                );
                storage::make_store_dirs().and_then(|()| {
                    Store::create(crate::storage::config_dir()).map_err(|e| e.to_string())
                })
            }
            other => other.map_err(|e| e.to_string()),
        };
        match opened {
            Ok((store, loaded)) => {
                if !loaded.warnings.is_empty() {
                    for w in &loaded.warnings {
                        log::warn!("configuration: {w}");
                    }
                    self.raise_alert(crate::alerts::Raise {
                        id: "boot.config",
                        severity: crate::alerts::Severity::Warning,
                        title: "the configuration store had problems".into(),
                        message: loaded.warnings.join("; "),
                        dismissible: true,
                    });
                }
                match loaded.config {
                    Some(config) => self.adopt(config),
                    None => {
                        log::warn!(
                            "pool '{}' has no readable configuration; starting from defaults",
                            assembled.name
                        );
                        self.raise_alert(crate::alerts::Raise {
                            id: "boot.config",
                            severity: crate::alerts::Severity::Critical,
                            title: format!(
                                "pool '{}' has no readable configuration",
                                assembled.name
                            ),
                            message: "datasets, shares and users must be set up again".into(),
                            dismissible: true,
                        });
                        let mut config = Config::default();
                        if let Ok(name) = crate::config::PoolName::parse(&assembled.name) {
                            config.pool = Some(crate::config::PoolConfig {
                                name,
                                uuid: *assembled.uuid.as_bytes(),
                            });
                        }
                        self.config = config;
                    }
                }
                self.persistence = Persistence::Store(store);
            }
            Err(e) => {
                // Still name the pool in status.
                if let Ok(name) = crate::config::PoolName::parse(&assembled.name) {
                    self.config.pool = Some(crate::config::PoolConfig {
                        name,
                        uuid: *assembled.uuid.as_bytes(),
                    });
                }
                log::error!("configuration store: {e}; changes are refused until it opens");
                self.raise_alert(crate::alerts::Raise {
                    id: "boot.config-store",
                    severity: crate::alerts::Severity::Critical,
                    title: "the configuration store cannot be opened".into(),
                    message: format!("{e}; changes are refused until it opens"),
                    dismissible: false,
                });
                self.persistence = Persistence::Broken(e.to_string());
            }
        }
        crate::logstore::attach_to(&crate::storage::meta_dir());
        if matches!(self.persistence, Persistence::Store(_)) {
            self.alerts_pool_mounted();
        }
        let problems = storage::mount_datasets(&self.config);
        for problem in &problems {
            log::error!("{problem}");
        }
        if !problems.is_empty() {
            self.raise_alert(crate::alerts::Raise {
                id: "boot.dataset-mount",
                severity: crate::alerts::Severity::Critical,
                title: format!("{} dataset(s) could not be mounted", problems.len()),
                message: problems.join("; "),
                dismissible: true,
            });
        }
        self.start_nfs();
        self.start_smb();
        // A slot missed while the box was off is caught up now, once.
        self.run_snapshot_tasks();
        self.poll_health_if_due();
        self.check_pool_alerts();
        if assembled.degraded {
            self.consoles.notify(&format!(
                "*** POOL {} IS DEGRADED: {} member(s) missing. Data is served without redundancy. ***\n\
                 Attach a blank disk and run 'pool replace missing DISK'; 'pool status' shows details.",
                assembled.name, assembled.missing
            ));
        } else {
            log::info!(
                "pool '{}' mounted with {} members",
                assembled.name,
                assembled.devices.len()
            );
        }
    }

    pub(super) fn job_done(&mut self, outcome: JobOutcome) {
        self.job = None;
        match outcome {
            JobOutcome::Scrub(Ok((summary, secs))) => {
                self.last_scrub_rate =
                    Some(summary.bytes_scrubbed as f64 / 1048576.0 / secs.max(1e-3));
                let line = format!(
                    "scrub {}: corrected {}, uncorrectable {}",
                    if summary.cancelled {
                        "cancelled"
                    } else {
                        "finished"
                    },
                    summary.corrected,
                    summary.uncorrectable
                );
                log::info!("{line}");
                self.clear_alert("scrub.failed");
                if summary.uncorrectable > 0 {
                    self.raise_alert(crate::alerts::Raise {
                        id: "scrub.errors",
                        severity: crate::alerts::Severity::Critical,
                        title: format!("scrub found {} uncorrectable error(s)", summary.uncorrectable),
                        message: format!(
                            "{line}: some data is damaged on both copies; restore the affected files                              (named in 'log') from a backup or snapshot"
                        ),
                        dismissible: true,
                    });
                } else if summary.corrected > 0 {
                    self.alert_event(crate::alerts::Raise {
                        id: "scrub.repaired",
                        severity: crate::alerts::Severity::Warning,
                        title: format!("scrub repaired {} error(s)", summary.corrected),
                        message: format!(
                            "{line}: bad copies were rewritten from the good ones; watch 'pool status'                              for the member that had them"
                        ),
                        dismissible: false,
                    });
                }
                self.last_scrub = Some(summary.clone());
                let mut new = self.config.clone();
                new.last_scrub = Some(summary);
                if let Err(e) = self.commit(new) {
                    log::error!("saving the scrub result: {e}");
                }
            }
            JobOutcome::Scrub(Err(e)) => {
                log::error!("scrub: {e}");
                self.raise_alert(crate::alerts::Raise {
                    id: "scrub.failed",
                    severity: crate::alerts::Severity::Warning,
                    title: "scrub failed".into(),
                    message: format!("scrub failed: {e}"),
                    dismissible: true,
                });
            }
            JobOutcome::Replace(Ok(())) => {
                log::info!("replace finished; the pool is mirrored again");
                self.consoles
                    .notify("pool replace finished: every chunk is mirrored again");
                self.pool_state = PoolState::Mounted { degraded: false };
                self.clear_alert("replace.failed");
                self.alert_event(crate::alerts::Raise {
                    id: "replace.finished",
                    severity: crate::alerts::Severity::Info,
                    title: "pool replace finished".into(),
                    message: "every chunk is mirrored again".into(),
                    dismissible: false,
                });
                self.check_pool_alerts();
            }
            JobOutcome::Replace(Err(e)) => {
                log::error!("replace: {e}");
                self.raise_alert(crate::alerts::Raise {
                    id: "replace.failed",
                    severity: crate::alerts::Severity::Critical,
                    title: "pool replace failed".into(),
                    message: format!("replace failed: {e}; the pool is still degraded"),
                    dismissible: true,
                });
                self.consoles
                    .notify(&format!("*** pool replace failed: {e} ***"));
            }
        }
    }

    pub(super) fn tick(&mut self) {
        crate::logger::flush_suppressed();
        self.run_snapshot_tasks();
        self.check_pool_alerts();
        self.check_clock_alert();
        self.alert_reminders();
        if self.job.is_some() || !matches!(self.pool_state, PoolState::Mounted { .. }) {
            return;
        }
        // A pool never scrubbed counts from when it was first mounted this boot, so a new pool
        // is not scrubbed at once.
        let last = self
            .last_scrub
            .as_ref()
            .map(|s| s.started)
            .or(self.pool_since);
        let zone = crate::system::clock::zone();
        if self.config.scrub.is_due(last, storage::now(), &zone) {
            log::info!(
                "scheduled scrub starting ({})",
                self.config
                    .scrub
                    .in_zone(&crate::system::clock::zone_name())
            );
            if let Err(e) = self.start_scrub() {
                log::error!("scheduled scrub: {e}");
            }
        }
    }

    /// Starts a long storage job in the pool-job slot. `work` reports progress lines and
    /// returns the outcome; if it panics, `failed` turns the panic's message into the
    /// outcome, so the job's end is reported (and the slot freed) either way.
    pub(super) fn start_job(
        &mut self,
        name: &str,
        first: String,
        work: impl FnOnce(&(dyn Fn(String) + Sync)) -> JobOutcome + Send + 'static,
        failed: fn(String) -> JobOutcome,
    ) -> Result<(), String> {
        if let Some(job) = &self.job {
            let running = job.lock().map(|j| j.clone()).unwrap_or_default();
            return Err(format!(
                "another pool job is running ({running}); wait for it or cancel it"
            ));
        }
        let progress = Arc::new(std::sync::Mutex::new(first));
        self.job = Some(progress.clone());
        let tx = self.sender.clone();
        crate::supervise::spawn_job(
            name,
            move || {
                let report = |line: String| {
                    if let Ok(mut p) = progress.lock() {
                        *p = line;
                    }
                };
                work(&report)
            },
            move |end| {
                let outcome = end
                    .unwrap_or_else(|message| failed(format!("internal error (panic): {message}")));
                let _ = tx.send(Event::JobDone(outcome));
            },
        )
        .map(|_| ())
        .map_err(|e| {
            self.job = None;
            format!("cannot start {name}: {e}")
        })
    }

    /// Splits `path` and checks its dataset exists; returns the dataset, the path inside it and
    /// the dataset's mount point.
    pub(super) fn dataset_file<'a>(
        &self,
        path: &'a str,
    ) -> Result<(&'a str, std::path::PathBuf, std::path::PathBuf), String> {
        let (dataset, rel) = files::split(path).map_err(|e| e.to_string())?;
        if !self
            .config
            .datasets
            .iter()
            .any(|d| d.name.as_str() == dataset)
        {
            return Err(format!(
                "there is no dataset '{dataset}'; 'dataset list' shows them"
            ));
        }
        let mount = crate::storage::dataset_mountpoint(self.pool_name(), dataset);
        Ok((dataset, rel, mount))
    }

    pub(super) fn start_scrub(&mut self) -> Result<(), String> {
        self.start_job(
            "scrub",
            "scrub starting".into(),
            |progress| JobOutcome::Scrub(storage::scrub(progress)),
            |e| JobOutcome::Scrub(Err(e)),
        )
    }

    pub(super) fn job_line(&self) -> Option<String> {
        self.job
            .as_ref()
            .and_then(|j| j.lock().ok().map(|l| l.clone()))
    }

    pub(super) fn require_pool(&self) -> Result<(), String> {
        match self.pool_state {
            PoolState::Mounted { .. } => Ok(()),
            PoolState::Assembling => {
                Err("the pool is still being assembled; try again in a few seconds".into())
            }
            PoolState::Absent => Err(
                "there is no pool yet; create one with 'pool create NAME mirror DISK DISK'".into(),
            ),
            PoolState::Failed => {
                Err("the pool could not be mounted (see 'status' and 'log')".into())
            }
        }
    }

    pub(super) fn pool_request(&mut self, request: PoolRequest) -> Result<Reply, String> {
        match request {
            PoolRequest::Status => {
                self.require_pool()?;
                let degraded = matches!(self.pool_state, PoolState::Mounted { degraded: true });
                storage::status(
                    &self.config,
                    degraded,
                    self.job_line(),
                    self.last_scrub.clone(),
                )
                .map(|s| Reply::Pool(Box::new(s)))
                .ok_or_else(|| "there is no pool".to_string())
            }
            PoolRequest::Create {
                name,
                disks,
                force,
                confirmations,
            } => {
                match self.pool_state {
                    // Failed: e.g. several pools and none chosen. Disks holding any of them
                    // still need force and the operator's confirmation.
                    PoolState::Absent | PoolState::Failed => {}
                    PoolState::Mounted { .. } => {
                        return Err(format!(
                            "pool '{}' already exists; Tank serves one pool",
                            self.config
                                .pool
                                .as_ref()
                                .map(|p| p.name.as_str())
                                .unwrap_or("?")
                        ))
                    }
                    _ => self.require_pool().map(|_| ())?,
                }
                let found = match storage::check_disks(&disks, force, &confirmations) {
                    DiskCheck::Ok(found) => found,
                    check => {
                        return confirm_or_refuse(
                            check,
                            Request::Pool(PoolRequest::Create {
                                name,
                                disks,
                                force,
                                confirmations,
                            }),
                        )
                    }
                };
                let started = std::time::Instant::now();
                let pool = storage::create(&name, &found)?;
                self.pool_state = PoolState::Mounted { degraded: false };
                self.pool_since = Some(storage::now());
                let mut new = self.config.clone();
                new.pool = Some(pool);
                new.datasets.clear();
                match crate::config::Store::create(crate::storage::config_dir()) {
                    Ok((store, _)) => {
                        self.persistence = Persistence::Store(store);
                        crate::logstore::attach_to(&crate::storage::meta_dir());
                    }
                    Err(e) => {
                        return Err(format!(
                        "the pool was created but its configuration store cannot be opened: {e}"
                    ))
                    }
                }
                self.commit(new)?;
                self.alerts_pool_mounted();
                self.check_pool_alerts();
                self.start_nfs();
                self.start_smb();
                let size = self
                    .disk_sizes(&disks)
                    .into_iter()
                    .min()
                    .map(crate::system::disks::human_size)
                    .unwrap_or_default();
                Ok(Reply::Done(format!(
                    "pool {} created in {:.2} s: mirror of {}, {} usable",
                    name.as_str(),
                    started.elapsed().as_secs_f64(),
                    disks
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(" and "),
                    size
                )))
            }
            PoolRequest::Replace {
                old,
                new,
                force,
                confirmations,
            } => {
                self.require_pool()?;
                let devid = storage::member_devid(&old)?;
                let found =
                    match storage::check_disks(std::slice::from_ref(&new), force, &confirmations) {
                        DiskCheck::Ok(found) => found,
                        check => {
                            return confirm_or_refuse(
                                check,
                                Request::Pool(PoolRequest::Replace {
                                    old,
                                    new,
                                    force,
                                    confirmations,
                                }),
                            )
                        }
                    };
                let target = storage::dev_path(&found[0].disk.name);
                let shown = target.display().to_string();
                self.start_job(
                    "replace",
                    format!("replacing devid {devid} with {shown}"),
                    move |progress| {
                        JobOutcome::Replace(storage::replace_and_remirror(devid, &target, progress))
                    },
                    |e| JobOutcome::Replace(Err(e)),
                )?;
                Ok(Reply::Done(format!(
                    "replacing devid {devid} with {}; 'pool status' shows the progress",
                    new.as_str()
                )))
            }
            PoolRequest::Import(pool) => match self.pool_state {
                PoolState::Absent | PoolState::Failed => {
                    // A name that matches nothing is refused now, not in a later alert.
                    storage::choose(
                        &storage::candidates(&storage::discover()),
                        Some(&pool),
                        None,
                    )?;
                    self.importing = true;
                    self.start_assembly(Some(pool.clone()));
                    Ok(Reply::Done(format!(
                        "looking for pool '{pool}' on the disks; 'status' shows it once mounted"
                    )))
                }
                PoolState::Assembling => {
                    Err("the pool is still being assembled; try again in a few seconds".into())
                }
                PoolState::Mounted { .. } => Err(
                    "a pool is mounted; 'pool import' only chooses among several pools at boot"
                        .into(),
                ),
            },
            PoolRequest::ScrubStart => {
                self.require_pool()?;
                self.start_scrub()?;
                Ok(Reply::Done(
                    "scrub started; 'pool scrub status' shows the progress".into(),
                ))
            }
            PoolRequest::ScrubStatus => {
                self.require_pool()?;
                let mut lines = Vec::new();
                match self.job_line() {
                    Some(j) => lines.push(format!("running: {j}")),
                    None => lines.push("no scrub running".into()),
                }
                match &self.last_scrub {
                    Some(s) => lines.push(format!(
                        "last scrub {} {}: {} scrubbed{}, corrected {}, uncorrectable {}",
                        if s.cancelled { "cancelled" } else { "finished" },
                        crate::system::clock::console_time(s.finished),
                        crate::system::disks::human_size(s.bytes_scrubbed),
                        self.last_scrub_rate
                            .map(|r| format!(" at {r:.1} MiB/s"))
                            .unwrap_or_default(),
                        s.corrected,
                        s.uncorrectable
                    )),
                    None => lines.push("never scrubbed".into()),
                }
                lines.push(format!(
                    "schedule: {}",
                    self.config
                        .scrub
                        .in_zone(&crate::system::clock::zone_name())
                ));
                Ok(Reply::Log(lines))
            }
            PoolRequest::ScrubCancel => {
                self.require_pool()?;
                if self.job.is_none() {
                    return Err("no scrub is running".into());
                }
                storage::scrub_cancel()?;
                Ok(Reply::Done("scrub cancelled".into()))
            }
            PoolRequest::ScrubSchedule(schedule) => {
                let mut new = self.config.clone();
                new.scrub = schedule;
                self.commit(new)?;
                Ok(Reply::Done(format!(
                    "scrub schedule: {}",
                    self.config
                        .scrub
                        .in_zone(&crate::system::clock::zone_name())
                )))
            }
        }
    }

    pub(super) fn disk_sizes(&self, names: &[crate::console::request::DiskName]) -> Vec<u64> {
        let all = disks::list();
        names
            .iter()
            .filter_map(|n| {
                all.iter()
                    .find(|d| d.name == n.as_str())
                    .map(|d| d.size_bytes)
            })
            .collect()
    }

    pub(super) fn dataset_request(&mut self, request: DatasetRequest) -> Result<Reply, String> {
        if !matches!(request, DatasetRequest::List) {
            self.require_pool()?;
        }
        match request {
            DatasetRequest::List => Ok(Reply::Datasets(storage::dataset_list(
                &self.config,
                std::time::Instant::now() + super::snapshot_requests::MEASURE_BUDGET,
            ))),
            DatasetRequest::Create { name, props } => {
                let ds = storage::dataset_create(&self.config, &name, &props)?;
                let mut new = self.config.clone();
                new.datasets.push(ds);
                if let Err(e) = self.commit(new) {
                    let _ = storage::dataset_destroy(&self.config_with(&name), &name);
                    return Err(e);
                }
                Ok(Reply::Done(format!(
                    "dataset {} created at {}",
                    name.as_str(),
                    crate::storage::dataset_mountpoint(self.pool_name(), name.as_str()).display()
                )))
            }
            DatasetRequest::Set { name, props } => {
                let ds = storage::dataset_set(&self.config, &name, &props)?;
                let mut new = self.config.clone();
                if let Some(slot) = new.dataset_mut(&name) {
                    *slot = ds;
                }
                self.commit(new)?;
                Ok(Reply::Done(format!("dataset {} updated", name.as_str())))
            }
            DatasetRequest::Destroy {
                name,
                force,
                confirmed,
            } => {
                if !self.config.datasets.iter().any(|d| d.name == name) {
                    return Err(format!(
                        "there is no dataset '{}'; 'dataset list' shows them",
                        name.as_str()
                    ));
                }
                self.check_unused(&name)?;
                if let Some(question) = destroy_question(&name, force, confirmed) {
                    return Ok(question);
                }
                storage::dataset_destroy(&self.config, &name)?;
                let mut new = self.config.clone();
                new.datasets.retain(|d| d.name != name);
                self.commit(new)?;
                Ok(Reply::Done(format!("dataset {} destroyed", name.as_str())))
            }
        }
    }

    /// Refuses to destroy a dataset that is shared or snapshotted on a schedule, naming what
    /// uses it, before anything is deleted.
    pub(super) fn check_unused(&self, name: &crate::config::DatasetName) -> Result<(), String> {
        let mut users = Vec::new();
        if self.config.nfs_shares.iter().any(|s| &s.dataset == name) {
            users.push(format!(
                "its NFS share ('nfs share remove {}')",
                name.as_str()
            ));
        }
        for s in self.config.smb_shares.iter().filter(|s| &s.dataset == name) {
            users.push(format!(
                "SMB share {} ('smb share remove {}')",
                s.name, s.name
            ));
        }
        for t in self
            .config
            .snapshot_tasks
            .iter()
            .filter(|t| &t.dataset == name)
        {
            users.push(format!(
                "snapshot task {} ('snapshot task remove {}')",
                t.id, t.id
            ));
        }
        if users.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "dataset {} is still used by {}: remove them first; nothing was deleted",
                name.as_str(),
                users.join(", ")
            ))
        }
    }

    /// The configuration with `name` listed (to undo a create whose save failed).
    pub(super) fn config_with(&self, name: &crate::config::DatasetName) -> Config {
        let mut c = self.config.clone();
        c.datasets
            .push(crate::config::DatasetConfig::new(name.clone()));
        c
    }

    pub(super) fn pool_name(&self) -> &str {
        self.config
            .pool
            .as_ref()
            .map(|p| p.name.as_str())
            .unwrap_or("tank")
    }

    pub(super) fn file_request(&mut self, request: FileRequest) -> Result<Reply, String> {
        self.require_pool()?;
        let path = match &request {
            FileRequest::Write { path, .. }
            | FileRequest::Checksum { path }
            | FileRequest::List { path }
            | FileRequest::Remove { path } => path.clone(),
        };
        let (dataset, rel, mount) = self.dataset_file(&path)?;
        match request {
            FileRequest::Write { size, seed, .. } => {
                let started = std::time::Instant::now();
                let sum = files::write_pattern(&mount, dataset, &rel, size, &seed)
                    .map_err(|e| e.to_string())?;
                let secs = started.elapsed().as_secs_f64().max(1e-6);
                Ok(Reply::Done(format!(
                    "wrote {path}: {size} bytes in {secs:.2} s ({:.1} MiB/s), sha256 {sum}",
                    size as f64 / 1048576.0 / secs
                )))
            }
            FileRequest::Checksum { .. } => {
                let (sum, size) =
                    files::checksum(&mount, dataset, &rel).map_err(|e| e.to_string())?;
                Ok(Reply::Done(format!("{path}: {size} bytes, sha256 {sum}")))
            }
            FileRequest::List { .. } => {
                let entries = files::list(&mount, dataset, &rel).map_err(|e| e.to_string())?;
                Ok(Reply::Log(
                    entries
                        .into_iter()
                        .map(|e| {
                            let owner = format!("{:04o} {}:{}", e.mode, e.uid, e.gid);
                            if e.dir {
                                format!("{}/  {owner}", e.name)
                            } else {
                                format!("{}  {}  {owner}", e.name, e.size)
                            }
                        })
                        .collect(),
                ))
            }
            FileRequest::Remove { .. } => {
                files::remove(&mount, dataset, &rel).map_err(|e| e.to_string())?;
                Ok(Reply::Done(format!("removed {path}")))
            }
        }
    }
}

/// A disk check that did not pass: the refusal as an error, or the question whose answer
/// completes `request`.
fn confirm_or_refuse(check: DiskCheck, request: Request) -> Result<Reply, String> {
    match check {
        DiskCheck::Ok(_) => Err("internal error: nothing to confirm".into()),
        DiskCheck::Refused(why) => Err(why),
        DiskCheck::Confirm { question, answers } => Ok(Reply::Confirm {
            question,
            answers,
            request: Box::new(request),
        }),
    }
}

/// The question `dataset destroy` asks before deleting, or `None` when the operator has
/// answered it (`confirmed`) or waived it with `force`.
fn destroy_question(
    name: &crate::config::DatasetName,
    force: bool,
    confirmed: bool,
) -> Option<Reply> {
    if force || confirmed {
        return None;
    }
    Some(Reply::Confirm {
        question: format!(
            "Destroying dataset {name} deletes all its files and its snapshots. Type its name \
             ({name}) to confirm, anything else to cancel:",
            name = name.as_str()
        ),
        answers: vec![name.as_str().to_string()],
        request: Box::new(Request::Dataset(DatasetRequest::Destroy {
            name: name.clone(),
            force: false,
            confirmed: false,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::destroy_question;
    use crate::console::parse::{parse, Parsed};
    use crate::console::request::DatasetRequest;
    use crate::console::{Reply, Request};

    /// What the engine answers a parsed `dataset destroy` line with before deleting anything.
    fn question(request: Request) -> Option<Reply> {
        match request {
            Request::Dataset(DatasetRequest::Destroy {
                name,
                force,
                confirmed,
            }) => destroy_question(&name, force, confirmed),
            other => panic!("not a dataset destroy: {other:?}"),
        }
    }

    fn parsed(line: &str) -> Request {
        match parse(line) {
            Ok(Parsed::Request(request)) => request,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn destroy_asks_unless_forced() {
        let Some(Reply::Confirm {
            question: asked,
            answers,
            request,
        }) = question(parsed("dataset destroy x"))
        else {
            panic!("'dataset destroy x' does not ask");
        };
        assert!(asked.contains("Type its name (x)"), "{asked}");
        assert_eq!(answers, ["x"]);
        // The answer completes the request, which then goes ahead.
        assert!(question(request.with_confirmation("x".into())).is_none());

        assert!(question(parsed("dataset destroy x force")).is_none());
    }
}

#[cfg(test)]
mod job_tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::console::Consoles;

    fn appliance() -> Appliance {
        let (tx, rx) = mpsc::channel();
        let consoles = Consoles::start(&[], "tank", tx.clone());
        Appliance::new(board::default_board(), 0.0, rx, tx, consoles)
    }

    /// Handles events until a job's end has been handled.
    fn handle_until_job_done(app: &mut Appliance) {
        loop {
            match app.events.recv_timeout(Duration::from_secs(10)) {
                Ok(event @ Event::JobDone(_)) => return app.handle(event),
                Ok(other) => app.handle(other),
                Err(_) => panic!("the job's end was never reported; the job slot stays taken"),
            }
        }
    }

    #[test]
    fn a_pool_job_whose_worker_panics_frees_the_slot_for_the_next_scrub() {
        let mut app = appliance();
        let (go, wait) = mpsc::channel::<()>();
        app.start_job(
            "scrub",
            "scrub starting".into(),
            move |_| {
                let _ = wait.recv();
                panic!("scrub worker bug");
            },
            |e| JobOutcome::Scrub(Err(e)),
        )
        .unwrap();
        let refused = app
            .start_job(
                "scrub",
                "scrub starting".into(),
                |_| JobOutcome::Scrub(Err("not run".into())),
                |e| JobOutcome::Scrub(Err(e)),
            )
            .unwrap_err();
        assert!(
            refused.starts_with("another pool job is running (scrub starting)"),
            "{refused}"
        );
        go.send(()).unwrap();
        handle_until_job_done(&mut app);
        assert_eq!(app.job_line(), None);
        assert!(
            app.status_alerts()
                .iter()
                .any(|a| a.contains("scrub failed: internal error (panic): scrub worker bug")),
            "{:?}",
            app.status_alerts()
        );
        let line = crate::supervise::status_line(&crate::supervise::panics()).unwrap();
        assert!(line.contains("scrub panicked"), "{line}");
        app.start_job(
            "scrub",
            "scrub starting".into(),
            |_| JobOutcome::Scrub(Err("second scrub ran".into())),
            |e| JobOutcome::Scrub(Err(e)),
        )
        .unwrap();
        handle_until_job_done(&mut app);
        assert!(app
            .status_alerts()
            .iter()
            .any(|a| a.contains("scrub failed: second scrub ran")));
    }
}
