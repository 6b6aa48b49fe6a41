//! The appliance's state and the handling of each event. Only the main thread touches it.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use super::{boot, klog, Event, JobOutcome};
use crate::config::{Config, Store};
use crate::console::request::{
    DatasetRequest, FileRequest, NetworkRequest, PoolRequest, ServiceLine, StatusReport,
};
use crate::console::{Consoles, Reply, Request};
use crate::kmod::LoadReport;
use crate::net::{IfaceSettings, Method, NetSettings, Network};
use crate::storage::pool::{self as storage, DiskCheck};
use crate::storage::{files, ScrubSummary};
use crate::system::power::{self, PowerAction};
use crate::system::{disks, info};

pub struct Appliance {
    board: &'static board::Board,
    started_at: f64,
    pub events: Receiver<Event>,
    sender: Sender<Event>,
    consoles: Arc<Consoles>,
    hostname: String,
    modules: Option<LoadReport>,
    network: Option<Network>,
    net_settings: NetSettings,
    power_buttons: Vec<String>,
    alerts: Vec<String>,
    /// The configuration in force (in memory only until a pool holds the store).
    config: Config,
    store: Option<Store>,
    pool_state: PoolState,
    /// The running scrub or replace, with its latest progress line.
    job: Option<Arc<std::sync::Mutex<String>>>,
    last_scrub: Option<ScrubSummary>,
    /// Unix time the pool was first mounted this boot.
    pool_since: Option<u64>,
    /// MiB/s of the last scrub this boot.
    last_scrub_rate: Option<f64>,
}

/// Where the pool is in its life this boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PoolState {
    /// Drivers still loading or members being looked for.
    Assembling,
    /// No pool on the disks.
    Absent,
    Mounted {
        degraded: bool,
    },
    Failed,
}

impl Appliance {
    pub fn new(
        board: &'static board::Board,
        started_at: f64,
        events: Receiver<Event>,
        sender: Sender<Event>,
        consoles: Arc<Consoles>,
    ) -> Self {
        Self {
            board,
            started_at,
            events,
            sender,
            consoles,
            hostname: boot::DEFAULT_HOSTNAME.to_string(),
            modules: None,
            network: None,
            net_settings: NetSettings {
                hostname: boot::DEFAULT_HOSTNAME.to_string(),
                interfaces: Vec::new(),
            },
            power_buttons: Vec::new(),
            alerts: Vec::new(),
            config: Config::default(),
            store: None,
            pool_state: PoolState::Assembling,
            job: None,
            last_scrub: None,
            pool_since: None,
            last_scrub_rate: None,
        }
    }

    pub fn handle(&mut self, event: Event) {
        match event {
            Event::Command { request, reply } => {
                let answer = self.request(request);
                let _ = reply.send(answer);
            }
            Event::Signal(signal) => self.signal(signal),
            Event::PowerButton => {
                log::warn!("power button pressed: shutting down");
                self.shutdown(PowerAction::PowerOff);
            }
            Event::ModulesLoaded(report) => self.modules_loaded(report),
            Event::PoolAssembled(result) => self.pool_assembled(result),
            Event::JobDone(outcome) => self.job_done(outcome),
            Event::Tick => self.tick(),
        }
    }

    fn signal(&mut self, signal: i32) {
        use signal_hook::consts::*;
        match signal {
            SIGCHLD => reap_children(),
            SIGTERM | libc::SIGPWR => {
                log::warn!("signal {signal}: shutting down");
                self.shutdown(PowerAction::PowerOff);
            }
            // The kernel sends SIGINT for ctrl-alt-del (trapped at boot): a reboot, as on a PC.
            SIGINT => {
                log::warn!("ctrl-alt-del: rebooting");
                self.shutdown(PowerAction::Reboot);
            }
            other => log::info!("signal {other} ignored"),
        }
    }

    fn modules_loaded(&mut self, report: LoadReport) {
        log::info!(
            "modules: {} loaded ({}), {} not applicable to this hardware ({})",
            report.loaded.len(),
            report.loaded.join(", "),
            report.not_applicable.len(),
            report.not_applicable.join(", ")
        );
        for (name, why) in &report.failed {
            log::error!("module {name} failed to load: {why}");
        }
        if !report.failed.is_empty() {
            self.alerts.push(format!(
                "{} module(s) failed to load ({}); see 'log'",
                report.failed.len(),
                report
                    .failed
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.modules = Some(report);
        self.power_buttons = boot::spawn_power_button(self.sender.clone());
        if self.power_buttons.is_empty() {
            log::warn!("no ACPI power button found; shut down from the console");
        }
        self.network = Some(Network::start(self.net_settings.clone()));
        let tx = self.sender.clone();
        let spawned = std::thread::Builder::new()
            .name("assemble".into())
            .spawn(move || {
                let _ = tx.send(Event::PoolAssembled(storage::assemble(
                    storage::MISSING_MEMBER_WAIT,
                )));
            });
        if let Err(e) = spawned {
            log::error!("cannot start pool assembly: {e}");
            self.pool_state = PoolState::Failed;
        }
        let tx = self.sender.clone();
        let _ = std::thread::Builder::new()
            .name("ticker".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
                if tx.send(Event::Tick).is_err() {
                    return;
                }
            });
    }

    fn pool_assembled(&mut self, result: Result<Option<storage::Assembled>, String>) {
        let assembled = match result {
            Ok(Some(a)) => a,
            Ok(None) => {
                log::info!("no pool on the disks; create one with 'pool create'");
                self.pool_state = PoolState::Absent;
                return;
            }
            Err(e) => {
                log::error!("pool assembly failed: {e}");
                self.alerts
                    .push(format!("the pool could not be mounted: {e}"));
                self.pool_state = PoolState::Failed;
                return;
            }
        };
        self.pool_state = PoolState::Mounted {
            degraded: assembled.degraded,
        };
        self.pool_since = Some(storage::now());
        match Store::open(&crate::storage::config_dir()) {
            Ok((store, loaded)) => {
                for w in &loaded.warnings {
                    log::warn!("configuration: {w}");
                    self.alerts.push(format!("configuration: {w}"));
                }
                match loaded.config {
                    Some(config) => self.adopt(config),
                    None => {
                        log::warn!(
                            "pool '{}' has no readable configuration; starting from defaults",
                            assembled.name
                        );
                        self.alerts.push(format!(
                            "pool '{}' has no readable configuration: datasets must be set up again",
                            assembled.name
                        ));
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
                self.store = Some(store);
            }
            Err(e) => {
                log::error!("configuration store: {e}");
                self.alerts
                    .push(format!("the configuration store cannot be opened: {e}"));
            }
        }
        for problem in storage::mount_datasets(&self.config) {
            log::error!("{problem}");
            self.alerts.push(problem);
        }
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

    /// Takes a loaded configuration into force.
    fn adopt(&mut self, config: Config) {
        if config.hostname != self.hostname {
            if let Ok(name) = crate::console::request::HostName::parse(&config.hostname) {
                let _ = self.set_hostname(&name);
            }
        }
        self.net_settings.interfaces = config
            .network
            .iter()
            .map(|i| IfaceSettings {
                name: i.name.clone(),
                method: match &i.method {
                    crate::config::NetMethod::Dhcp => Method::Dhcp,
                    crate::config::NetMethod::Static {
                        address,
                        prefix,
                        gateway,
                        dns,
                    } => Method::Static {
                        address: *address,
                        prefix: *prefix,
                        gateway: *gateway,
                        dns: dns.clone(),
                    },
                },
            })
            .collect();
        if !self.net_settings.interfaces.is_empty() {
            if let Some(net) = &self.network {
                if let Err(e) = net.apply(self.net_settings.clone()) {
                    log::error!("network settings from the configuration: {e}");
                }
            }
        }
        self.last_scrub = config.last_scrub.clone();
        self.config = config;
    }

    /// Validates, then saves `new` as the configuration in force. Before a pool exists it only
    /// lives in memory.
    fn commit(&mut self, new: Config) -> Result<(), String> {
        new.validate().map_err(|e| e.to_string())?;
        if let Some(store) = self.store.as_mut() {
            // Make what was applied durable first (a new subvolume lives in the running btrfs
            // transaction, which fsync of the record would not commit): the saved
            // configuration must never name something a power cut can take away.
            storage::sync_pool().map_err(|e| format!("the change was applied but could not be committed to the pool ({e}); it may not survive a reboot"))?;
            store
                .save(&new)
                .map_err(|e| format!("the change was applied but could not be saved ({e}); it will not survive a reboot"))?;
        }
        self.config = new;
        Ok(())
    }

    fn job_done(&mut self, outcome: JobOutcome) {
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
                if summary.uncorrectable > 0 {
                    log::error!("{line}");
                    self.consoles.notify(&format!(
                        "*** ALERT: {line}: damaged data, see 'pool status' ***"
                    ));
                } else {
                    log::info!("{line}");
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
                self.alerts.push(format!("scrub failed: {e}"));
            }
            JobOutcome::Replace(Ok(())) => {
                log::info!("replace finished; the pool is mirrored again");
                self.consoles
                    .notify("pool replace finished: every chunk is mirrored again");
                self.pool_state = PoolState::Mounted { degraded: false };
            }
            JobOutcome::Replace(Err(e)) => {
                log::error!("replace: {e}");
                self.alerts.push(format!("replace failed: {e}"));
                self.consoles
                    .notify(&format!("*** pool replace failed: {e} ***"));
            }
        }
    }

    fn tick(&mut self) {
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
        if self.config.scrub.is_due(last, storage::now()) {
            log::info!("scheduled scrub starting ({})", self.config.scrub);
            if let Err(e) = self.start_scrub() {
                log::error!("scheduled scrub: {e}");
            }
        }
    }

    fn start_job(
        &mut self,
        name: &str,
        first: String,
        work: impl FnOnce(&(dyn Fn(String) + Sync)) -> JobOutcome + Send + 'static,
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
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let report = |line: String| {
                    if let Ok(mut p) = progress.lock() {
                        *p = line;
                    }
                };
                let outcome = work(&report);
                let _ = tx.send(Event::JobDone(outcome));
            })
            .map(|_| ())
            .map_err(|e| {
                self.job = None;
                format!("cannot start {name}: {e}")
            })
    }

    fn start_scrub(&mut self) -> Result<(), String> {
        self.start_job("scrub", "scrub starting".into(), |progress| {
            JobOutcome::Scrub(storage::scrub(progress))
        })
    }

    fn job_line(&self) -> Option<String> {
        self.job
            .as_ref()
            .and_then(|j| j.lock().ok().map(|l| l.clone()))
    }

    fn require_pool(&self) -> Result<(), String> {
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

    fn pool_request(&mut self, request: PoolRequest) -> Result<Reply, String> {
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
                    PoolState::Absent => {}
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
                    Ok((store, _)) => self.store = Some(store),
                    Err(e) => {
                        return Err(format!(
                        "the pool was created but its configuration store cannot be opened: {e}"
                    ))
                    }
                }
                self.commit(new)?;
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
                )?;
                Ok(Reply::Done(format!(
                    "replacing devid {devid} with {}; 'pool status' shows the progress",
                    new.as_str()
                )))
            }
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
                        crate::system::info::utc_timestamp(s.finished),
                        crate::system::disks::human_size(s.bytes_scrubbed),
                        self.last_scrub_rate
                            .map(|r| format!(" at {r:.1} MiB/s"))
                            .unwrap_or_default(),
                        s.corrected,
                        s.uncorrectable
                    )),
                    None => lines.push("never scrubbed".into()),
                }
                lines.push(format!("schedule: {}", self.config.scrub));
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
                    self.config.scrub
                )))
            }
        }
    }

    fn disk_sizes(&self, names: &[crate::console::request::DiskName]) -> Vec<u64> {
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

    fn dataset_request(&mut self, request: DatasetRequest) -> Result<Reply, String> {
        if !matches!(request, DatasetRequest::List) {
            self.require_pool()?;
        }
        match request {
            DatasetRequest::List => Ok(Reply::Datasets(storage::dataset_list(&self.config))),
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
                force: _,
                confirmed,
            } => {
                if !self.config.datasets.iter().any(|d| d.name == name) {
                    return Err(format!(
                        "there is no dataset '{}'; 'dataset list' shows them",
                        name.as_str()
                    ));
                }
                if !confirmed {
                    return Ok(Reply::Confirm {
                        question: format!(
                            "Destroying dataset {} deletes all its files. Type its name ({}) to confirm, anything else to cancel:",
                            name.as_str(),
                            name.as_str()
                        ),
                        answers: vec![name.as_str().to_string()],
                        request: Box::new(Request::Dataset(DatasetRequest::Destroy { name, force: false, confirmed: false })),
                    });
                }
                storage::dataset_destroy(&self.config, &name)?;
                let mut new = self.config.clone();
                new.datasets.retain(|d| d.name != name);
                self.commit(new)?;
                Ok(Reply::Done(format!("dataset {} destroyed", name.as_str())))
            }
        }
    }

    /// The configuration with `name` listed (to undo a create whose save failed).
    fn config_with(&self, name: &crate::config::DatasetName) -> Config {
        let mut c = self.config.clone();
        c.datasets
            .push(crate::config::DatasetConfig::new(name.clone()));
        c
    }

    fn pool_name(&self) -> &str {
        self.config
            .pool
            .as_ref()
            .map(|p| p.name.as_str())
            .unwrap_or("tank")
    }

    fn file_request(&mut self, request: FileRequest) -> Result<Reply, String> {
        self.require_pool()?;
        let path = match &request {
            FileRequest::Write { path, .. }
            | FileRequest::Checksum { path }
            | FileRequest::List { path }
            | FileRequest::Remove { path } => path.clone(),
        };
        let (dataset, rel) = files::split(&path).map_err(|e| e.to_string())?;
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
                        .map(|(name, size, dir)| {
                            if dir {
                                format!("{name}/")
                            } else {
                                format!("{name}  {size}")
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

    fn set_hostname(&mut self, name: &crate::console::request::HostName) -> Result<(), String> {
        rustix::system::sethostname(name.as_str().as_bytes())
            .map_err(|e| format!("cannot set the host name: {e}"))?;
        self.hostname = name.as_str().to_string();
        self.net_settings.hostname = self.hostname.clone();
        self.consoles.set_hostname(&self.hostname);
        Ok(())
    }

    fn request(&mut self, request: Request) -> Result<Reply, String> {
        match request {
            Request::Status => Ok(Reply::Status(Box::new(self.status()))),
            Request::Disks => Ok(Reply::Disks(disks::list(), storage::disk_roles())),
            Request::DiskReadTest { disk, bytes } => {
                let speed = storage::read_test(&disk, bytes)?;
                Ok(Reply::Done(format!(
                    "{}: sequential read {speed:.1} MiB/s",
                    disk.as_str()
                )))
            }
            Request::Pool(r) => self.pool_request(r),
            Request::Dataset(r) => self.dataset_request(r),
            Request::File(r) => self.file_request(r),
            Request::Log { lines } => Ok(Reply::Log(klog::tail(lines))),
            Request::Hostname(None) => Ok(Reply::Done(self.hostname.clone())),
            Request::Hostname(Some(name)) => {
                let mut new = self.config.clone();
                new.hostname = name.as_str().to_string();
                new.validate().map_err(|e| e.to_string())?;
                self.set_hostname(&name)?;
                self.commit(new)?;
                Ok(Reply::Done(format!("host name set to {}", self.hostname)))
            }
            Request::Network(NetworkRequest::Show) => Ok(Reply::Network(self.links())),
            Request::Network(change) => self.network_change(change),
            Request::Reboot => {
                self.shutdown(PowerAction::Reboot);
                Err("reboot failed; the appliance is still running (see 'log')".into())
            }
            Request::PowerOff => {
                self.shutdown(PowerAction::PowerOff);
                Err("power off failed; the appliance is still running (see 'log')".into())
            }
        }
    }

    fn links(&self) -> Vec<crate::net::LinkStatus> {
        self.network
            .as_ref()
            .map(Network::status)
            .unwrap_or_default()
    }

    fn network_change(&mut self, change: NetworkRequest) -> Result<Reply, String> {
        let (iface, method) = match change {
            NetworkRequest::Show => return Ok(Reply::Network(self.links())),
            NetworkRequest::Dhcp { iface } => (iface, Method::Dhcp),
            NetworkRequest::Static {
                iface,
                address,
                prefix,
                gateway,
                dns,
            } => (
                iface,
                Method::Static {
                    address,
                    prefix,
                    gateway,
                    dns,
                },
            ),
        };
        let Some(network) = self.network.as_ref() else {
            return Err(
                "the network is not up yet (drivers still loading); try again in a moment".into(),
            );
        };
        let mut settings = self.net_settings.clone();
        settings.interfaces.retain(|i| i.name != iface.as_str());
        settings.interfaces.push(IfaceSettings {
            name: iface.as_str().to_string(),
            method: method.clone(),
        });
        let mut new = self.config.clone();
        new.network.retain(|i| i.name != iface.as_str());
        new.network.push(crate::config::NetIface {
            name: iface.as_str().to_string(),
            method: match method {
                Method::Dhcp => crate::config::NetMethod::Dhcp,
                Method::Static {
                    address,
                    prefix,
                    gateway,
                    dns,
                } => crate::config::NetMethod::Static {
                    address,
                    prefix,
                    gateway,
                    dns,
                },
            },
        });
        new.validate().map_err(|e| e.to_string())?;
        network.apply(settings.clone()).map_err(|e| e.to_string())?;
        self.net_settings = settings;
        self.commit(new)?;
        Ok(Reply::Done(format!("{} reconfigured", iface.as_str())))
    }

    fn status(&self) -> StatusReport {
        let (mem_total_kib, mem_available_kib) = info::memory_kib();
        let modules = match &self.modules {
            None => "loading".to_string(),
            Some(r) if r.failed.is_empty() => {
                format!("{} loaded at {:.2} s", r.loaded.len(), r.finished_at)
            }
            Some(r) => format!(
                "{} loaded at {:.2} s, {} FAILED (see 'log')",
                r.loaded.len(),
                r.finished_at,
                r.failed.len()
            ),
        };
        let network = match &self.network {
            None => "waiting for drivers".to_string(),
            Some(_) => "running".to_string(),
        };
        let power = if self.modules.is_none() {
            "waiting for drivers".to_string()
        } else if self.power_buttons.is_empty() {
            "no power button found".to_string()
        } else {
            format!("watching {}", self.power_buttons.join(", "))
        };
        let pool = match self.pool_state {
            PoolState::Assembling => "assembling".to_string(),
            PoolState::Absent => "no pool".to_string(),
            PoolState::Failed => "FAILED (see 'log')".to_string(),
            PoolState::Mounted { degraded } => format!(
                "{} mounted{}",
                self.pool_name(),
                if degraded { " DEGRADED" } else { "" }
            ),
        };
        let pool_status = match self.pool_state {
            PoolState::Mounted { degraded } => storage::status(
                &self.config,
                degraded,
                self.job_line(),
                self.last_scrub.clone(),
            ),
            _ => None,
        };
        let mut alerts = self.alerts.clone();
        if let Some(p) = &pool_status {
            if p.health != crate::storage::Health::Online {
                alerts.push(format!("pool {} is {}", p.name, p.health));
                alerts.extend(p.advice.iter().cloned());
            }
        }
        if !info::entropy_ready() {
            alerts
                .push("the kernel's random pool is not ready: creating a pool would stall".into());
        }
        StatusReport {
            version: crate::VERSION,
            board: self.board.name,
            kernel: info::kernel_release(),
            hostname: self.hostname.clone(),
            uptime_secs: info::uptime_secs(),
            init_started_at: self.started_at,
            prompt_at: crate::console::FIRST_PROMPT_AT.get().copied(),
            mem_total_kib,
            mem_available_kib,
            init_rss_kib: info::own_rss_kib(),
            entropy_ready: info::entropy_ready(),
            disks: disks::list(),
            disk_roles: storage::disk_roles(),
            pool: pool_status,
            links: self.links(),
            services: vec![
                ServiceLine {
                    name: "modules",
                    state: modules,
                },
                ServiceLine {
                    name: "network",
                    state: network,
                },
                ServiceLine {
                    name: "pool",
                    state: pool,
                },
                ServiceLine {
                    name: "console",
                    state: self.board.consoles.join(", "),
                },
                ServiceLine {
                    name: "power",
                    state: power,
                },
            ],
            alerts,
        }
    }

    /// Stops services, syncs, unmounts in reverse order and powers off or restarts. Returns only
    /// if the kernel refused, with an alert set.
    fn shutdown(&mut self, action: PowerAction) {
        let verb = match action {
            PowerAction::PowerOff => "Powering off",
            PowerAction::Reboot => "Rebooting",
        };
        self.consoles.notify(&format!(
            "{verb}: stopping services, syncing, unmounting..."
        ));
        if let Some(network) = self.network.take() {
            network.stop();
        }
        if self.job.is_some() {
            // A scrub stops here; a replace is paused by the kernel and resumes at the next mount.
            let _ = storage::scrub_cancel();
        }
        let failure = power::finish(action);
        log::error!("{failure}");
        self.alerts.push(failure);
        self.network = Some(Network::start(self.net_settings.clone()));
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

/// Collects every exited child (PID 1 inherits orphans).
fn reap_children() {
    use rustix::process::{waitpid, WaitOptions};
    while let Ok(Some(_)) = waitpid(None, WaitOptions::NOHANG) {}
}
