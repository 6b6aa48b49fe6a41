//! The appliance's state and the handling of each event. Only the main thread touches it.
//!
//! This file holds the state, the event dispatch, system and network requests, status and
//! shutdown; [`health_requests`] holds disk health and its poll; [`storage_requests`] holds
//! pool assembly, pool, dataset and file requests and the long storage jobs; [`time_requests`]
//! holds `time`, the SNTP client's reports and [`time_requests::ClockState`];
//! [`backup_requests`] holds `system config export` and `system config import`;
//! [`system_requests`] holds `system version`.

mod alert_requests;
mod backup_requests;
mod health_requests;
mod sharing_requests;
mod smb_requests;
mod snapshot_requests;
mod storage_requests;
mod system_requests;
mod time_requests;

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use super::{boot, Event};
use crate::config::{Config, Store};
use crate::console::request::{NetworkRequest, ServiceLine, StatusReport};
use crate::console::{Consoles, Reply, Request};
use crate::kmod::LoadReport;
use crate::net::{IfaceSettings, Method, NetSettings, Network};
use crate::storage::pool as storage;
use crate::storage::ScrubSummary;
use crate::supervise;
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
    /// Every alert raised and cleared (see [`alert_requests`]).
    book: crate::alerts::Book,
    /// Notices waiting for delivery; shared with the delivery thread.
    outbox: Arc<crate::alerts::outbox::Outbox>,
    /// The disk and serial last seen for each pool member, to name one that is gone.
    member_names: std::collections::BTreeMap<u64, (String, String)>,
    /// The configuration in force (in memory only until a pool holds the store).
    config: Config,
    persistence: Persistence,
    /// The assembly running was asked for by `pool import`.
    importing: bool,
    /// Finds and mounts the pool (`storage::assemble`; tests put a fake in its place).
    assemble: fn(std::time::Duration, Option<String>) -> Result<Option<storage::Assembled>, String>,
    pool_state: PoolState,
    /// The running scrub or replace, with its latest progress line.
    job: Option<Arc<std::sync::Mutex<String>>>,
    last_scrub: Option<ScrubSummary>,
    /// Unix time the pool was first mounted this boot.
    pool_since: Option<u64>,
    /// MiB/s of the last scrub this boot.
    last_scrub_rate: Option<f64>,
    /// The NFS server, once started, or why it did not start.
    nfs: Option<crate::nfs::NfsService>,
    nfs_error: Option<String>,
    /// The SMB server, once started, or why it did not start.
    smb: Option<crate::smb::SmbService>,
    smb_error: Option<String>,
    /// What each snapshot task did last this boot.
    task_results: std::collections::BTreeMap<u32, String>,
    /// rpcbind and MOUNT, for `showmount` and `rpcinfo` (Proxmox VE's storage checks).
    rpc: Option<crate::rpc::RpcServices>,
    /// What MOUNT's EXPORT lists; the engine replaces it when the NFS shares change.
    mount_exports: Arc<std::sync::RwLock<Vec<crate::rpc::ExportEntry>>>,
    /// The last health reading of each disk, by Tank's disk name.
    health: std::collections::BTreeMap<String, crate::system::health::Reading>,
    /// When the minute tick last read every disk's health.
    health_polled: Option<std::time::Instant>,
    /// The clock's synchronization (what the unsynchronized-clock alert reads).
    clock: time_requests::ClockState,
    /// The SNTP client, once the network is up.
    sntp: Option<crate::net::sntp::Sntp>,
}

/// Where changes to the configuration go.
enum Persistence {
    /// No pool yet: the configuration lives in memory until `pool create` makes the store.
    NoPool,
    /// The pool's store: every change is saved there.
    Store(Store),
    /// The pool is mounted but its store could not be opened: a change would live only in
    /// memory and vanish at the next boot, so every change is refused with the reason.
    Broken(String),
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
            book: crate::alerts::Book::default(),
            outbox: crate::alerts::outbox::Outbox::new(),
            member_names: std::collections::BTreeMap::new(),
            config: Config::default(),
            persistence: Persistence::NoPool,
            importing: false,
            assemble: storage::assemble,
            pool_state: PoolState::Assembling,
            job: None,
            last_scrub: None,
            pool_since: None,
            last_scrub_rate: None,
            nfs: None,
            nfs_error: None,
            smb: None,
            smb_error: None,
            task_results: std::collections::BTreeMap::new(),
            rpc: None,
            mount_exports: Arc::default(),
            health: std::collections::BTreeMap::new(),
            health_polled: None,
            clock: time_requests::ClockState::new(
                storage::now().saturating_sub(info::uptime_secs() as u64),
            ),
            sntp: None,
        }
    }

    pub fn handle(&mut self, event: Event) {
        match event {
            Event::Command {
                request: Request::Alert(crate::console::request::AlertRequest::Test),
                reply,
            } => self.alert_test(reply),
            Event::Command { request, reply } => {
                let answer = self.request(request);
                let _ = reply.send(answer);
            }
            Event::DiskChanged { action, disk } => self.disk_event(&action, &disk),
            Event::Signal(signal) => self.signal(signal),
            Event::PowerButton => {
                log::warn!("power button pressed: shutting down");
                let _ = self.shutdown(PowerAction::PowerOff);
            }
            Event::ModulesLoaded(report) => self.modules_loaded(report),
            Event::PoolAssembled(result) => self.pool_assembled(result),
            Event::JobDone(outcome) => self.job_done(outcome),
            Event::Tick => self.tick(),
            Event::Clock(report) => self.clock_report(report),
            Event::ThreadPanicked {
                name,
                message,
                restarted,
            } => self.thread_panicked(&name, &message, restarted),
        }
    }

    /// Looks for the pool (the only one, or `wanted` by name or UUID) on a thread;
    /// [`Event::PoolAssembled`] brings the result.
    pub(super) fn start_assembly(&mut self, wanted: Option<String>) {
        self.pool_state = PoolState::Assembling;
        let assemble = self.assemble;
        let tx = self.sender.clone();
        let spawned = supervise::spawn_job(
            "assemble",
            move || assemble(storage::MISSING_MEMBER_WAIT, wanted),
            // A panic is a failed assembly: the pool is marked failed with the reason and the
            // boot slot is not marked good.
            move |end| {
                let result =
                    end.unwrap_or_else(|message| Err(format!("internal error (panic): {message}")));
                let _ = tx.send(Event::PoolAssembled(result));
            },
        );
        if let Err(e) = spawned {
            log::error!("cannot start pool assembly: {e}");
            self.pool_state = PoolState::Failed;
        }
    }

    /// Tells the operator that a supervised thread panicked (the supervisor has logged and
    /// counted it, and restarted it or ended it; a job's guard reports the job's end apart).
    fn thread_panicked(&mut self, name: &str, message: &str, restarted: bool) {
        let what = if restarted { "restarted" } else { "it ended" };
        self.consoles.notify(&format!(
            "*** internal error: thread {name} panicked ({message}); {what}; see 'status' and 'log' ***"
        ));
    }

    fn signal(&mut self, signal: i32) {
        use signal_hook::consts::*;
        match signal {
            SIGCHLD => reap_children(),
            SIGTERM | libc::SIGPWR => {
                log::warn!("signal {signal}: shutting down");
                let _ = self.shutdown(PowerAction::PowerOff);
            }
            // The kernel sends SIGINT for ctrl-alt-del (trapped at boot): a reboot, as on a PC.
            SIGINT => {
                log::warn!("ctrl-alt-del: rebooting");
                let _ = self.shutdown(PowerAction::Reboot);
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
            self.raise_alert(crate::alerts::Raise {
                id: "boot.modules",
                severity: crate::alerts::Severity::Warning,
                title: format!("{} module(s) failed to load", report.failed.len()),
                message: format!(
                    "{}; see 'log'",
                    report
                        .failed
                        .iter()
                        .map(|(n, why)| format!("{n}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                dismissible: true,
            });
        }
        self.modules = Some(report);
        self.power_buttons = boot::spawn_power_button(self.sender.clone());
        if self.power_buttons.is_empty() {
            log::warn!("no ACPI power button found; shut down from the console");
        }
        self.network = Some(Network::start(self.net_settings.clone()));
        self.start_rpc();
        self.start_sntp();
        self.start_assembly(None);
        let tx = self.sender.clone();
        let spawned =
            supervise::spawn_supervised("ticker", supervise::Policy::RESTART, move || {
                loop {
                    // Tick just after each minute starts, so schedules run on their minute.
                    let secs = storage::now();
                    std::thread::sleep(std::time::Duration::from_secs(61 - secs % 60));
                    if tx.send(Event::Tick).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!(
                "cannot start the minute ticker: {e}; scheduled scrubs and snapshots will not run"
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
        self.net_settings.interfaces = iface_settings(&config);
        if !self.net_settings.interfaces.is_empty() {
            if let Some(net) = &self.network {
                if let Err(e) = net.apply(self.net_settings.clone()) {
                    log::error!("network settings from the configuration: {e}");
                }
            }
        }
        self.last_scrub = config.last_scrub.clone();
        self.adopt_time(&config.time);
        self.config = config;
    }

    /// Validates, then saves `new` as the configuration in force. Before a pool exists it only
    /// lives in memory.
    fn commit(&mut self, new: Config) -> Result<(), String> {
        new.validate().map_err(|e| e.to_string())?;
        self.writable()?;
        if let Persistence::Store(store) = &mut self.persistence {
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

    /// Refuses a change the store could not keep.
    fn writable(&self) -> Result<(), String> {
        match &self.persistence {
            Persistence::Broken(reason) => Err(format!(
                "changes are refused: the pool's configuration store cannot be opened ({reason}), \
                 so a change would be lost at the next boot; see 'status' and 'log', fix the \
                 pool (e.g. 'pool scrub start') and reboot"
            )),
            Persistence::NoPool | Persistence::Store(_) => Ok(()),
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
        if changes_config(&request) {
            self.writable()?;
        }
        match request {
            Request::Status => Ok(Reply::Status(Box::new(self.status()))),
            Request::Version => Ok(self.version_request()),
            Request::Disks => Ok(Reply::Disks(disks::list(), storage::disk_roles())),
            Request::DiskReadTest { disk, bytes } => {
                let speed = storage::read_test(&disk, bytes)?;
                Ok(Reply::Done(format!(
                    "{}: sequential read {speed:.1} MiB/s",
                    disk.as_str()
                )))
            }
            Request::DiskHealth(disk) => self.disk_health_request(disk),
            Request::DiskTest { disk, long } => self.disk_test_request(disk, long),
            Request::Pool(r) => self.pool_request(r),
            Request::Dataset(r) => self.dataset_request(r),
            Request::File(r) => self.file_request(r),
            Request::Nfs(r) => self.nfs_request(r),
            Request::Smb(r) => self.smb_request(r),
            Request::User(r) => self.user_request(r),
            Request::Group(r) => self.group_request(r),
            Request::Snapshot(r) => self.snapshot_request(r),
            Request::Alert(r) => self.alert_request(r),
            Request::Time(r) => self.time_request(r),
            Request::Config(r) => self.config_request(r),
            Request::Log { lines } => Ok(Reply::Log(crate::logstore::this_boot(lines))),
            Request::LogBoot { back, lines } => crate::logstore::boot(back, lines).map(Reply::Log),
            Request::LogBoots => Ok(Reply::Log(crate::logstore::boots())),
            Request::LogMark(text) => {
                log::info!("mark: {text}");
                Ok(Reply::Done("marked".into()))
            }
            Request::Hostname(None) => Ok(Reply::Done(self.hostname.clone())),
            Request::Hostname(Some(name)) => {
                let mut new = self.config.clone();
                new.hostname = name.as_str().to_string();
                new.validate().map_err(|e| e.to_string())?;
                self.set_hostname(&name)?;
                self.commit(new)?;
                self.sync_channels();
                // The SMB server announces the host name: a new one restarts it.
                let config = self.config.clone();
                self.apply_smb(&config);
                Ok(Reply::Done(format!("host name set to {}", self.hostname)))
            }
            Request::Network(NetworkRequest::Show) => Ok(Reply::Network(self.links())),
            Request::Network(change) => self.network_change(change),
            Request::Reboot => match self.shutdown(PowerAction::Reboot) {
                Ok(()) => Ok(Reply::Done("rebooting".into())),
                Err(e) => Err(format!("{e}; the appliance is still running (see 'log')")),
            },
            Request::PowerOff => match self.shutdown(PowerAction::PowerOff) {
                Ok(()) => Ok(Reply::Done("powering off".into())),
                Err(e) => Err(format!("{e}; the appliance is still running (see 'log')")),
            },
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
            NetworkRequest::Perf { source_bytes } => {
                let consoles = self.consoles.clone();
                crate::net::diag::arm(source_bytes, move |line: String| {
                    log::info!("{line}");
                    consoles.notify(&line);
                })
                .map_err(|e| format!("cannot open the diagnostic ports: {e} (already open?)"))?;
                return Ok(Reply::Done(format!(
                    "TCP sink on port {}, source of {source_bytes} bytes on port {}, open for {} s",
                    crate::net::diag::SINK_PORT,
                    crate::net::diag::SOURCE_PORT,
                    crate::net::diag::ARMED_FOR.as_secs()
                )));
            }
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
        let mut alerts = self.status_alerts();
        if let Some(p) = &pool_status {
            if p.health != crate::storage::Health::Online {
                // The pool.degraded alert says so already once the minute check has run.
                if !self.book.is_active("pool.degraded") {
                    alerts.push(format!("pool {} is {}", p.name, p.health));
                }
                alerts.extend(p.advice.iter().cloned());
            }
        }
        if !info::entropy_ready() {
            alerts
                .push("the kernel's random pool is not ready: creating a pool would stall".into());
        }
        StatusReport {
            version: crate::version(),
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
            internal_errors: supervise::status_line(&supervise::panics()),
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
                    name: "nfs",
                    state: self.nfs_status(),
                },
                ServiceLine {
                    name: "rpc",
                    state: match &self.rpc {
                        Some(rpc) => format!(
                            "rpcbind on port {}, MOUNT on port {} (tcp and udp)",
                            rpc.rpcbind_port(),
                            rpc.mount_port()
                        ),
                        None if self.modules.is_none() => "waiting for drivers".into(),
                        None => "FAILED (see 'log')".into(),
                    },
                },
                ServiceLine {
                    name: "smb",
                    state: self.smb_status(),
                },
                ServiceLine {
                    name: "snapshots",
                    state: self.snapshot_status(),
                },
                ServiceLine {
                    name: "alerts",
                    state: self.alerts_status(),
                },
                ServiceLine {
                    name: "console",
                    state: self.board.consoles.join(", "),
                },
                ServiceLine {
                    name: "power",
                    state: power,
                },
                ServiceLine {
                    name: "boot",
                    state: crate::system::slot::status_line(),
                },
            ],
            alerts,
        }
    }

    /// Stops services, syncs, unmounts in reverse order and powers off or restarts. Returns only
    /// if the kernel refused, with an alert set.
    fn shutdown(&mut self, action: PowerAction) -> Result<(), String> {
        self.shutdown_with(action, &power::Kernel)
    }

    /// Shuts down through `kernel` once it says it will allow it. Returns only when the kernel
    /// refused; the appliance is then serving again (or says what it lacks).
    fn shutdown_with(
        &mut self,
        action: PowerAction,
        kernel: &dyn power::PowerControl,
    ) -> Result<(), String> {
        if let Err(e) = kernel.may_power_off() {
            // Nothing has been stopped yet: the appliance goes on as it was.
            let message = format!("{action:?} refused: {e}; nothing was stopped");
            log::error!("{message}");
            return Err(message);
        }
        let verb = match action {
            PowerAction::PowerOff => "Powering off",
            PowerAction::Reboot => "Rebooting",
        };
        self.consoles.notify(&format!(
            "{verb}: stopping services, syncing, unmounting..."
        ));
        // The file servers hold files open on the pool: stop them before it is unmounted.
        self.stop_smb();
        self.stop_nfs();
        let network = self.network.take().map(|n| n.stop()).is_some();
        // Undelivered alerts are on the pool already; the queue stops writing there.
        self.outbox.detach();
        if self.job.is_some() {
            // A scrub stops here; a replace is paused by the kernel and resumes at the next mount.
            let _ = storage::scrub_cancel();
        }
        if self.clock.synchronized(storage::now()) {
            if let Err(e) = kernel.write_hardware_clock() {
                log::warn!("{e}");
            }
        }
        // The log's last lines reach the pool before it is unmounted.
        crate::logstore::close();
        let failure = kernel.finish(action);
        // Still here: the kernel refused after everything was unmounted. Mount the system's
        // file systems again and assemble the pool as at boot, which starts NFS and SMB again;
        // until then status says so and changes are refused.
        log::error!("{failure}; mounting the pool again");
        self.raise_alert(crate::alerts::Raise {
            id: "boot.power",
            severity: crate::alerts::Severity::Critical,
            title: format!("{action:?} was refused by the kernel"),
            message: format!(
                "{failure}: the pool and the file services were stopped and are being started again"
            ),
            dismissible: true,
        });
        for problem in kernel.remount_system() {
            log::error!("{problem}");
        }
        if network {
            self.network = Some(Network::start(self.net_settings.clone()));
        }
        self.persistence =
            Persistence::Broken("the pool is being mounted again after a refused power-off".into());
        if self.pool_state != PoolState::Absent {
            self.start_assembly(None);
        }
        Err(failure)
    }
}

/// The network settings of a configuration, as the network module takes them.
pub(super) fn iface_settings(config: &Config) -> Vec<IfaceSettings> {
    config
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
        .collect()
}

/// Whether `request` changes the saved configuration (and so needs a store that can keep
/// it). Repairs and data operations (replace, scrub, snapshots, rollback, files) are not
/// configuration: they stay allowed when the store is broken.
fn changes_config(request: &Request) -> bool {
    use crate::console::request::{
        AlertRequest, DatasetRequest as D, GroupRequest as G, NfsRequest as N, PoolRequest as P,
        SmbRequest as S, SnapshotRequest as Sn, UserRequest as U,
    };
    match request {
        Request::Status
        | Request::Version
        | Request::Disks
        | Request::DiskReadTest { .. }
        | Request::DiskHealth(_)
        | Request::DiskTest { .. }
        | Request::Log { .. }
        | Request::LogMark(_)
        | Request::LogBoot { .. }
        | Request::LogBoots
        | Request::File(_)
        | Request::Hostname(None)
        | Request::Config(crate::console::request::ConfigRequest::Export { .. })
        | Request::Alert(
            AlertRequest::List
            | AlertRequest::History
            | AlertRequest::Show
            | AlertRequest::Test
            | AlertRequest::Dismiss(_),
        )
        | Request::Reboot
        | Request::PowerOff => false,
        Request::Hostname(Some(_))
        | Request::Config(crate::console::request::ConfigRequest::Import { .. })
        | Request::Alert(
            AlertRequest::Mail { .. }
            | AlertRequest::Webhook(_)
            | AlertRequest::Remove(_)
            | AlertRequest::Temperature { .. },
        ) => true,
        Request::Pool(p) => match p {
            P::Status
            | P::Create { .. }
            | P::Import(_)
            | P::Replace { .. }
            | P::ScrubStart
            | P::ScrubStatus
            | P::ScrubCancel => false,
            P::ScrubSchedule(_) => true,
        },
        Request::Dataset(d) => !matches!(d, D::List),
        Request::Nfs(n) => !matches!(n, N::List),
        Request::Smb(s) => !matches!(s, S::Show | S::ShareList),
        Request::User(u) => !matches!(u, U::List),
        Request::Group(g) => !matches!(g, G::List),
        Request::Snapshot(s) => match s {
            Sn::List { .. }
            | Sn::Create { .. }
            | Sn::Destroy { .. }
            | Sn::Rollback { .. }
            | Sn::TaskList => false,
            Sn::Clone { .. } | Sn::TaskAdd { .. } | Sn::TaskRemove { .. } => true,
        },
        Request::Time(t) => !matches!(t, crate::console::time::TimeRequest::Show),
        Request::Network(n) => matches!(
            n,
            NetworkRequest::Dhcp { .. } | NetworkRequest::Static { .. }
        ),
    }
}

/// Collects every exited child (PID 1 inherits orphans).
fn reap_children() {
    use rustix::process::{waitpid, WaitOptions};
    while let Ok(Some(_)) = waitpid(None, WaitOptions::NOHANG) {}
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::mpsc::channel;

    use super::*;
    use crate::config::GroupName;
    use crate::console::request::GroupRequest;

    fn appliance() -> Appliance {
        let (tx, rx) = channel();
        let consoles = Consoles::start(&[], "tank", tx.clone());
        let mut a = Appliance::new(&board::QEMU_X86_64, 0.0, rx, tx, consoles);
        a.assemble = |_, _| Ok(None);
        a
    }

    fn add_group(a: &mut Appliance, name: &str) -> Result<Reply, String> {
        a.request(Request::Group(GroupRequest::Add {
            name: GroupName::parse(name).unwrap(),
            gid: None,
        }))
    }

    #[test]
    fn a_broken_store_refuses_changes_and_keeps_reads() {
        let mut a = appliance();
        a.pool_state = PoolState::Mounted { degraded: false };
        a.persistence = Persistence::Broken("bad record directory".into());
        let e = add_group(&mut a, "media").unwrap_err();
        assert!(
            e.contains("changes are refused") && e.contains("bad record directory"),
            "{e}"
        );
        assert!(a.config.groups.is_empty(), "the change was kept in memory");
        assert!(a.request(Request::Group(GroupRequest::List)).is_ok());
        // Without a pool the configuration lives in memory, as documented.
        a.persistence = Persistence::NoPool;
        assert!(add_group(&mut a, "media").is_ok());
        assert_eq!(a.config.groups.len(), 1);
    }

    struct Refusing {
        up_front: bool,
        finished: Cell<bool>,
        remounted: Cell<bool>,
    }

    impl power::PowerControl for Refusing {
        fn may_power_off(&self) -> Result<(), String> {
            if self.up_front {
                Err("EPERM".into())
            } else {
                Ok(())
            }
        }
        fn finish(&self, _: PowerAction) -> String {
            self.finished.set(true);
            "the kernel refused to PowerOff: EPERM".into()
        }
        fn remount_system(&self) -> Vec<String> {
            self.remounted.set(true);
            Vec::new()
        }
        fn write_hardware_clock(&self) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn a_refused_power_off_never_leaves_the_pool_called_mounted() {
        let mounted = PoolState::Mounted { degraded: false };
        // Refused before anything stopped: nothing changes.
        let mut a = appliance();
        a.pool_state = mounted;
        let kernel = Refusing {
            up_front: true,
            finished: Cell::new(false),
            remounted: Cell::new(false),
        };
        let e = a.shutdown_with(PowerAction::PowerOff, &kernel).unwrap_err();
        assert!(e.contains("nothing was stopped"), "{e}");
        assert!(!kernel.finished.get());
        assert_eq!(a.pool_state, mounted);

        // Refused after everything was unmounted: the system is mounted again and the pool
        // assembled again (which starts NFS and SMB); until then status does not say mounted.
        let kernel = Refusing {
            up_front: false,
            finished: Cell::new(false),
            remounted: Cell::new(false),
        };
        let e = a.shutdown_with(PowerAction::PowerOff, &kernel).unwrap_err();
        assert!(e.contains("refused"), "{e}");
        assert!(kernel.finished.get() && kernel.remounted.get());
        assert_eq!(a.pool_state, PoolState::Assembling);
        let status = a.status();
        let pool = status.services.iter().find(|l| l.name == "pool").unwrap();
        assert_eq!(pool.state, "assembling");
        assert!(
            add_group(&mut a, "media").is_err(),
            "changes while remounting"
        );
        match a.events.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(event @ Event::PoolAssembled(_)) => a.handle(event),
            _ => panic!("no assembly after the refused power-off"),
        }
        assert_eq!(a.pool_state, PoolState::Absent);
    }
}
