//! The appliance's state and the handling of each event. Only the main thread touches it.
//!
//! This file holds the state, the event dispatch, system and network requests, status and
//! shutdown; [`storage_requests`] holds pool assembly, pool, dataset and file requests and the
//! long storage jobs.

mod sharing_requests;
mod smb_requests;
mod snapshot_requests;
mod storage_requests;

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use super::{boot, klog, Event};
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
            nfs: None,
            nfs_error: None,
            smb: None,
            smb_error: None,
            task_results: std::collections::BTreeMap::new(),
            rpc: None,
            mount_exports: Arc::default(),
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
            Event::ThreadPanicked {
                name,
                message,
                restarted,
            } => self.thread_panicked(&name, &message, restarted),
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
        self.start_rpc();
        let tx = self.sender.clone();
        let spawned = supervise::spawn_job(
            "assemble",
            || storage::assemble(storage::MISSING_MEMBER_WAIT),
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
            Request::Nfs(r) => self.nfs_request(r),
            Request::Smb(r) => self.smb_request(r),
            Request::User(r) => self.user_request(r),
            Request::Group(r) => self.group_request(r),
            Request::Snapshot(r) => self.snapshot_request(r),
            Request::Log { lines } => Ok(Reply::Log(klog::tail(lines))),
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
                // The SMB server announces the host name: a new one restarts it.
                let config = self.config.clone();
                self.apply_smb(&config);
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
    fn shutdown(&mut self, action: PowerAction) {
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

/// Collects every exited child (PID 1 inherits orphans).
fn reap_children() {
    use rustix::process::{waitpid, WaitOptions};
    while let Ok(Some(_)) = waitpid(None, WaitOptions::NOHANG) {}
}
