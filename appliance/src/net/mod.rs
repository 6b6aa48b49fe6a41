//! The network control plane of the init: links, IPv4 addresses, default routes, DHCP and
//! `/etc/resolv.conf`, with no daemon (this replaces a DHCP client and ifupdown).
//!
//! The rest of the init sees only [`Network`] and plain data: [`NetSettings`] in, and
//! [`LinkStatus`] out. Inside:
//!
//! - `settings`: validation of the settings (names, prefixes, gateways) before anything changes;
//! - `rtnl`: a small synchronous rtnetlink client (links, addresses, default routes);
//! - `iface`: one worker thread per managed interface, and what it put on the interface;
//! - `dhcp`: the DHCPv4 client, a pure state machine plus its socket driver;
//! - `dns`: the merged `/etc/resolv.conf`;
//! - `sntp`: the SNTP client thread that sets the clock (servers from DHCP option 42, the
//!   configuration, or `pool.ntp.org`);
//! - `random`: transaction ids that never wait for entropy.
//!
//! What does not live here: the hostname itself (set elsewhere; DHCP only sends it), IPv6,
//! firewalling, and the on-disk form of the settings (that belongs to `config/`).
//!
//! Architecture invariant: [`Network::start`] never waits for the network. Each interface is
//! brought up in its own thread, so the console prompt appears while DHCP is still selecting.

mod dhcp;
pub mod diag;
mod dns;
mod iface;
mod random;
mod rtnl;
mod settings;
pub mod sntp;

#[cfg(test)]
mod netns_tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use random::random_u32;

use iface::{IfaceCtx, Record};
use rtnl::Rtnl;
use settings::{IfaceName, Plan, PlannedMethod};

use crate::supervise::{self, Policy};

/// The network settings of the appliance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetSettings {
    /// Sent to DHCP servers (option 12); set on the system elsewhere.
    pub hostname: String,
    /// The interfaces configured explicitly; every other ethernet NIC uses DHCP.
    pub interfaces: Vec<IfaceSettings>,
}

/// How one interface is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceSettings {
    pub name: String,
    pub method: Method,
}

/// Where an interface gets its IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Dhcp,
    Static {
        address: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        dns: Vec<Ipv4Addr>,
    },
}

/// Knobs that differ between the appliance and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// Where the resolver configuration goes; `None` writes nothing.
    pub resolv_conf: Option<PathBuf>,
    /// How long a worker waits for carrier before configuring anyway.
    pub carrier_wait: Duration,
    /// How often, with no interface listed, to look for NICs that appeared late.
    pub rescan_every: Duration,
}

impl Default for NetOptions {
    fn default() -> NetOptions {
        NetOptions {
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
            carrier_wait: Duration::from_secs(3),
            rescan_every: Duration::from_secs(2),
        }
    }
}

/// Why a settings change was refused or failed. Every message names the interface at fault.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("interface name {name:?} is invalid: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("interface {0} is listed twice; list each interface once")]
    DuplicateInterface(String),
    #[error("interface lo is configured automatically; remove it from the settings")]
    Loopback,
    #[error("interface {iface}: prefix /{prefix} is out of range; use 0 to 32")]
    BadPrefix { iface: String, prefix: u8 },
    #[error("interface {iface}: {what} {address} cannot be used: {reason}")]
    BadAddress {
        iface: String,
        what: &'static str,
        address: Ipv4Addr,
        reason: &'static str,
    },
    #[error("interface {iface}: gateway {gateway} cannot be used: {reason}")]
    BadGateway {
        iface: String,
        gateway: Ipv4Addr,
        reason: &'static str,
    },
    #[error(
        "interface {iface}: gateway {gateway} is outside {network}/{prefix}; \
         use a gateway on the interface's subnet"
    )]
    GatewayOutsideSubnet {
        iface: String,
        gateway: Ipv4Addr,
        network: Ipv4Addr,
        prefix: u8,
    },
    #[error("interface {0} does not exist; `status` lists the interfaces there are")]
    NoSuchInterface(String),
    #[error("interface {iface}: {op} failed: {source}")]
    Netlink {
        iface: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the network has been stopped for shutdown; no more changes")]
    Stopped,
}

/// One link, as the `status` console command shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`, or empty for a link without one (or one not present).
    pub mac: String,
    pub up: bool,
    pub carrier: bool,
    pub addresses: Vec<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub method: MethodStatus,
    /// The last problem on this interface, if it is not configured as asked.
    pub error: Option<String>,
}

/// How a link is managed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodStatus {
    Static,
    Dhcp {
        state: DhcpState,
    },
    /// Not in the settings: the init leaves it alone.
    Unmanaged,
}

/// Where a DHCP client is, with times counted from the moment of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpState {
    Init,
    Selecting,
    Requesting,
    Bound {
        server: Ipv4Addr,
        lease_secs: u32,
        renew_in_secs: u32,
    },
    Renewing {
        server: Ipv4Addr,
        expires_in_secs: u32,
    },
    Rebinding {
        expires_in_secs: u32,
    },
    Failed(String),
    /// The lease was released for shutdown.
    Stopped,
}

impl fmt::Display for DhcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DhcpState::Init => f.write_str("starting"),
            DhcpState::Selecting => f.write_str("selecting"),
            DhcpState::Requesting => f.write_str("requesting"),
            DhcpState::Bound {
                lease_secs,
                renew_in_secs,
                ..
            } => write!(
                f,
                "bound (lease {lease_secs} s, renew in {renew_in_secs} s)"
            ),
            DhcpState::Renewing {
                server,
                expires_in_secs,
            } => write!(f, "renewing with {server} (expires in {expires_in_secs} s)"),
            DhcpState::Rebinding { expires_in_secs } => {
                write!(f, "rebinding (expires in {expires_in_secs} s)")
            }
            DhcpState::Failed(reason) => write!(f, "failed: {reason}"),
            DhcpState::Stopped => f.write_str("released"),
        }
    }
}

impl fmt::Display for MethodStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodStatus::Static => f.write_str("static"),
            MethodStatus::Dhcp { state } => write!(f, "dhcp {state}"),
            MethodStatus::Unmanaged => f.write_str("unmanaged"),
        }
    }
}

/// One line, e.g.
/// `eth0 52:54:00:12:34:56 up 10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3 dhcp bound (lease 86400 s, renew in 43190 s)`.
impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if !self.mac.is_empty() {
            write!(f, " {}", self.mac)?;
        }
        f.write_str(match (self.up, self.carrier) {
            (true, true) => " up",
            (true, false) => " up no-carrier",
            (false, _) => " down",
        })?;
        if self.addresses.is_empty() {
            f.write_str(" no-address")?;
        }
        for (address, prefix) in &self.addresses {
            write!(f, " {address}/{prefix}")?;
        }
        if let Some(gateway) = self.gateway {
            write!(f, " gw {gateway}")?;
        }
        if !self.dns.is_empty() {
            let dns: Vec<String> = self.dns.iter().map(ToString::to_string).collect();
            write!(f, " dns {}", dns.join(","))?;
        }
        write!(f, " {}", self.method)?;
        if let Some(error) = &self.error {
            write!(f, " ({error})")?;
        }
        Ok(())
    }
}

/// State shared by every worker.
pub(crate) struct Shared {
    pub options: NetOptions,
    pub hostname: Mutex<String>,
    pub resolver: dns::Resolver,
}

/// One managed interface and its worker.
struct Managed {
    method: PlannedMethod,
    ctx: IfaceCtx,
    handle: Option<JoinHandle<()>>,
}

/// The mutable part of [`Network`].
struct Control {
    /// No interface listed: DHCP on every physical ethernet NIC, including late ones.
    auto: bool,
    ifaces: BTreeMap<IfaceName, Managed>,
    stopped: bool,
    scanner: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

struct Inner {
    shared: Arc<Shared>,
    control: Mutex<Control>,
}

/// The running network control plane. Cheap to share: all methods take `&self`.
pub struct Network {
    inner: Arc<Inner>,
}

/// Locks a mutex, carrying on with the data if another thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Formats a hardware address as `aa:bb:cc:dd:ee:ff`.
fn format_mac(mac: &[u8]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// How long [`Network::stop`] waits for workers to release their leases.
const STOP_BUDGET: Duration = Duration::from_millis(800);
/// How long [`Network::apply`] waits for a changed interface to settle before returning.
const APPLY_SETTLE: Duration = Duration::from_millis(1000);

impl Network {
    /// Brings up `lo` and the NICs and starts DHCP in background threads; returns at once
    /// (the prompt must never wait for DHCP). Invalid settings are logged and replaced by
    /// DHCP on every ethernet NIC, so the appliance stays reachable.
    pub fn start(settings: NetSettings) -> Network {
        Network::start_with(settings, NetOptions::default())
    }

    /// [`Network::start`] with explicit options (tests use another `resolv.conf`).
    pub fn start_with(settings: NetSettings, options: NetOptions) -> Network {
        let plan = settings::plan(&settings).unwrap_or_else(|e| {
            log::error!("net: {e}; falling back to DHCP on every ethernet interface");
            Plan {
                hostname: settings.hostname.clone(),
                interfaces: None,
            }
        });
        let resolver = dns::Resolver::new(options.resolv_conf.clone());
        let inner = Arc::new(Inner {
            shared: Arc::new(Shared {
                options,
                hostname: Mutex::new(plan.hostname.clone()),
                resolver,
            }),
            control: Mutex::new(Control {
                auto: false,
                ifaces: BTreeMap::new(),
                stopped: false,
                scanner: None,
            }),
        });
        bring_up_loopback();
        let network = Network { inner };
        let links = Rtnl::open().and_then(|mut r| r.links());
        let links = links.unwrap_or_else(|e| {
            log::warn!(
                "net: cannot list links: {e}; interfaces will be configured when they appear"
            );
            Vec::new()
        });
        {
            let mut control = lock(&network.inner.control);
            let wanted = desired(&plan, &links);
            network.inner.reconcile(&mut control, true, wanted);
        }
        network
    }

    /// A snapshot of every link for the `status` console command.
    pub fn status(&self) -> Vec<LinkStatus> {
        let now = Instant::now();
        let kernel = Rtnl::open()
            .and_then(|mut rtnl| Ok((rtnl.links()?, rtnl.addresses()?, rtnl.default_routes()?)));
        let (links, addresses, routes) = match kernel {
            Ok(k) => k,
            Err(e) => {
                log::warn!("net: cannot read link state: {e}");
                (Vec::new(), Vec::new(), Vec::new())
            }
        };
        let control = lock(&self.inner.control);
        let mut out = Vec::new();
        for link in &links {
            let managed = IfaceName::parse(&link.name)
                .ok()
                .and_then(|n| control.ifaces.get(&n));
            let record = managed.map(|m| lock(&m.ctx.record));
            let mut gateways: Vec<_> = routes.iter().filter(|r| r.index == link.index).collect();
            gateways.sort_by_key(|r| r.metric);
            let (method, dns, error) = match (&record, managed) {
                (Some(record), Some(m)) => (
                    method_status(&m.method, record, now),
                    record
                        .applied
                        .as_ref()
                        .map(|a| a.dns.clone())
                        .unwrap_or_default(),
                    record.error.clone(),
                ),
                _ if link.loopback => (MethodStatus::Static, Vec::new(), None),
                _ => (MethodStatus::Unmanaged, Vec::new(), None),
            };
            out.push(LinkStatus {
                name: link.name.clone(),
                mac: if link.loopback {
                    String::new()
                } else {
                    format_mac(&link.mac)
                },
                up: link.up,
                carrier: link.carrier,
                addresses: addresses
                    .iter()
                    .filter(|a| a.index == link.index)
                    .map(|a| (a.address, a.prefix))
                    .collect(),
                gateway: gateways.first().map(|r| r.gateway),
                dns,
                method,
                error,
            });
        }
        // Interfaces in the settings that the kernel does not have (yet).
        for (name, managed) in &control.ifaces {
            if links.iter().any(|l| l.name == name.as_str()) {
                continue;
            }
            let record = lock(&managed.ctx.record);
            out.push(LinkStatus {
                name: name.to_string(),
                mac: String::new(),
                up: false,
                carrier: false,
                addresses: Vec::new(),
                gateway: None,
                dns: Vec::new(),
                method: method_status(&managed.method, &record, now),
                error: record.error.clone(),
            });
        }
        out
    }

    /// Changes the settings live (for example one interface from DHCP to static and back).
    /// Everything is validated first; on a validation error nothing changes. Interfaces whose
    /// method did not change are left alone, so applying the same settings twice is a no-op.
    pub fn apply(&self, settings: NetSettings) -> Result<(), NetError> {
        let plan = settings::plan(&settings)?;
        let links =
            Rtnl::open()
                .and_then(|mut r| r.links())
                .map_err(|source| NetError::Netlink {
                    iface: "*".to_owned(),
                    op: "listing links",
                    source,
                })?;
        if let Some(list) = &plan.interfaces {
            for (name, _) in list {
                if !links.iter().any(|l| l.name == name.as_str()) {
                    return Err(NetError::NoSuchInterface(name.to_string()));
                }
            }
        }
        let mut control = lock(&self.inner.control);
        if control.stopped {
            return Err(NetError::Stopped);
        }
        *lock(&self.inner.shared.hostname) = plan.hostname.clone();
        let wanted = desired(&plan, &links);
        let started = self.inner.reconcile(&mut control, true, wanted);
        // Give static interfaces a moment so that `status` right after shows them configured.
        let deadline = Instant::now() + APPLY_SETTLE;
        for name in started {
            let Some(managed) = control.ifaces.get(&name) else {
                continue;
            };
            if !matches!(managed.method, PlannedMethod::Static(_)) {
                continue;
            }
            while Instant::now() < deadline
                && managed.handle.as_ref().is_some_and(|h| !h.is_finished())
            {
                thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// For shutdown: releases DHCP leases (DHCPRELEASE), removes the addresses and routes the
    /// init added, and stops the threads, all within about a second.
    pub fn stop(&self) {
        let mut control = lock(&self.inner.control);
        if control.stopped {
            return;
        }
        control.stopped = true;
        if let Some((stop, _)) = &control.scanner {
            stop.store(true, Ordering::Relaxed);
        }
        let names: Vec<IfaceName> = control.ifaces.keys().cloned().collect();
        let deadline = Instant::now() + STOP_BUDGET;
        let mut stopping = Vec::new();
        for name in names {
            if let Some(managed) = control.ifaces.remove(&name) {
                managed.ctx.stop.store(true, Ordering::Relaxed);
                stopping.push(managed);
            }
        }
        finish(stopping, deadline);
        control.scanner = None;
        log::info!("net: stopped");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // The init keeps its Network for its whole life; a dropped one (tests) stops cleanly.
        if Arc::strong_count(&self.inner) == 1 {
            self.stop();
        }
    }
}

/// The method status of a managed interface.
fn method_status(method: &PlannedMethod, record: &Record, now: Instant) -> MethodStatus {
    match method {
        PlannedMethod::Static(_) => MethodStatus::Static,
        PlannedMethod::Dhcp => MethodStatus::Dhcp {
            state: match &record.dhcp {
                Some(view) => dhcp_state(view, now),
                None => match &record.error {
                    Some(error) => DhcpState::Failed(error.clone()),
                    None => DhcpState::Init,
                },
            },
        },
    }
}

/// Turns a machine snapshot into remaining times as of `now`.
fn dhcp_state(view: &dhcp::machine::View, now: Instant) -> DhcpState {
    use dhcp::machine::Phase;
    let left = |secs: u32| -> u32 {
        match view.since {
            Some(since) => {
                let end = since + Duration::from_secs(u64::from(secs));
                u32::try_from(end.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX)
            }
            None => 0,
        }
    };
    match (&view.phase, &view.lease) {
        (Phase::Bound, Some(lease)) => DhcpState::Bound {
            server: lease.server,
            lease_secs: lease.lease_secs,
            renew_in_secs: left(lease.t1_secs),
        },
        (Phase::Renewing, Some(lease)) => DhcpState::Renewing {
            server: lease.server,
            expires_in_secs: left(lease.lease_secs),
        },
        (Phase::Rebinding, Some(lease)) => DhcpState::Rebinding {
            expires_in_secs: left(lease.lease_secs),
        },
        (Phase::Selecting, _) => DhcpState::Selecting,
        (Phase::Requesting, _) => DhcpState::Requesting,
        (Phase::Failed(reason), _) => DhcpState::Failed(reason.clone()),
        (Phase::Released, _) => DhcpState::Stopped,
        _ => DhcpState::Init,
    }
}

/// The interfaces a plan asks for, given the links the kernel has now: the listed ones as
/// listed, and every other physical ethernet NIC by DHCP (so configuring one NIC statically
/// never leaves another unconfigured).
fn desired(plan: &Plan, links: &[rtnl::Link]) -> BTreeMap<IfaceName, PlannedMethod> {
    let mut wanted: BTreeMap<IfaceName, PlannedMethod> =
        plan.interfaces.iter().flatten().cloned().collect();
    for name in links
        .iter()
        .filter(|l| l.physical_ethernet && !l.loopback)
        .filter_map(|l| IfaceName::parse(&l.name).ok())
    {
        wanted.entry(name).or_insert(PlannedMethod::Dhcp);
    }
    wanted
}

/// Waits (until `deadline`) for stopping workers, then removes what they left configured.
fn finish(stopping: Vec<Managed>, deadline: Instant) {
    // Cuts short a restart's backoff, so each worker sees its stop flag at once.
    for handle in stopping.iter().filter_map(|m| m.handle.as_ref()) {
        handle.thread().unpark();
    }
    while Instant::now() < deadline
        && stopping
            .iter()
            .any(|m| m.handle.as_ref().is_some_and(|h| !h.is_finished()))
    {
        thread::sleep(Duration::from_millis(10));
    }
    let mut rtnl = match Rtnl::open() {
        Ok(rtnl) => Some(rtnl),
        Err(e) => {
            log::warn!("net: cannot open netlink to remove addresses: {e}");
            None
        }
    };
    for managed in stopping {
        if let Some(handle) = managed.handle {
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                log::warn!(
                    "net: {}: worker did not stop in time; removing its addresses anyway",
                    managed.ctx.name
                );
            }
        }
        if let Some(rtnl) = rtnl.as_mut() {
            if let Err(e) = iface::deconfigure(&managed.ctx, rtnl) {
                log::warn!("net: {e}");
            }
        }
    }
}

impl Inner {
    /// Makes the managed interfaces match `wanted`; returns the interfaces (re)started.
    fn reconcile(
        self: &Arc<Self>,
        control: &mut Control,
        auto: bool,
        wanted: BTreeMap<IfaceName, PlannedMethod>,
    ) -> Vec<IfaceName> {
        let unchanged =
            |name: &IfaceName, managed: &Managed| wanted.get(name) == Some(&managed.method);
        let leaving: Vec<IfaceName> = control
            .ifaces
            .iter()
            .filter(|(name, managed)| !unchanged(name, managed))
            .map(|(name, _)| name.clone())
            .collect();
        let mut stopping = Vec::new();
        for name in &leaving {
            if let Some(managed) = control.ifaces.remove(name) {
                log::info!("net: {name}: stopping its current configuration");
                managed.ctx.stop.store(true, Ordering::Relaxed);
                stopping.push(managed);
            }
        }
        finish(stopping, Instant::now() + STOP_BUDGET);

        let mut started = Vec::new();
        for (name, method) in wanted {
            if control.ifaces.contains_key(&name) {
                continue;
            }
            self.spawn(control, name.clone(), method);
            started.push(name);
        }

        control.auto = auto;
        if auto && control.scanner.is_none() {
            let stop = Arc::new(AtomicBool::new(false));
            let weak = Arc::downgrade(self);
            let every = self.shared.options.rescan_every;
            let flag = Arc::clone(&stop);
            match supervise::spawn_supervised("net-scan", Policy::RESTART, move || {
                scan(weak.clone(), Arc::clone(&flag), every)
            }) {
                Ok(handle) => control.scanner = Some((stop, handle)),
                Err(e) => log::warn!("net: cannot start the NIC scanner: {e}"),
            }
        } else if !auto {
            if let Some((stop, _)) = control.scanner.take() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        started
    }

    /// Starts the worker for one interface.
    fn spawn(&self, control: &mut Control, name: IfaceName, method: PlannedMethod) {
        let ctx = IfaceCtx {
            shared: Arc::clone(&self.shared),
            name: name.clone(),
            record: Arc::new(Mutex::new(Record::default())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let what = match &method {
            PlannedMethod::Dhcp => "DHCP".to_owned(),
            PlannedMethod::Static(c) => format!("static {}/{}", c.address, c.prefix),
        };
        log::info!("net: {name}: configuring ({what})");
        let worker_ctx = ctx.clone();
        let worker_method = method.clone();
        // DHCP (or a static address) runs again after a panic, unless the interface was
        // stopped meanwhile.
        let handle =
            supervise::spawn_supervised(format!("net-{name}"), Policy::RESTART, move || {
                if !worker_ctx.stopped() {
                    iface::run(worker_ctx.clone(), worker_method.clone());
                }
            });
        let handle = match handle {
            Ok(handle) => Some(handle),
            Err(e) => {
                ctx.fail(format!("{name}: cannot start its worker thread: {e}"));
                None
            }
        };
        control.ifaces.insert(
            name,
            Managed {
                method,
                ctx,
                handle,
            },
        );
    }
}

/// With no interface listed, starts DHCP on NICs that appear after boot (late drivers, USB).
fn scan(inner: Weak<Inner>, stop: Arc<AtomicBool>, every: Duration) {
    let mut rtnl = None;
    loop {
        let end = Instant::now() + every;
        while Instant::now() < end {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let Some(inner) = inner.upgrade() else { return };
        if rtnl.is_none() {
            rtnl = Rtnl::open().ok();
        }
        let Some(links) = rtnl.as_mut().and_then(|r| r.links().ok()) else {
            rtnl = None;
            continue;
        };
        let mut control = lock(&inner.control);
        if control.stopped || !control.auto || stop.load(Ordering::Relaxed) {
            return;
        }
        for link in links.iter().filter(|l| l.physical_ethernet && !l.loopback) {
            let Ok(name) = IfaceName::parse(&link.name) else {
                continue;
            };
            if !control.ifaces.contains_key(&name) {
                log::info!("net: {name}: new network interface");
                inner.spawn(&mut control, name, PlannedMethod::Dhcp);
            }
        }
    }
}

/// Brings `lo` up with 127.0.0.1/8; failures are logged, never fatal.
fn bring_up_loopback() {
    let result = Rtnl::open().and_then(|mut rtnl| {
        let Some(lo) = rtnl.links()?.into_iter().find(|l| l.loopback) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no loopback link",
            ));
        };
        rtnl.set_up(lo.index)?;
        rtnl.add_address(lo.index, Ipv4Addr::LOCALHOST, 8)
    });
    match result {
        Ok(()) => log::info!("net: lo up with 127.0.0.1/8"),
        Err(e) => log::warn!("net: cannot bring up lo: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("valid address")
    }

    #[test]
    fn network_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Network>();
    }

    #[test]
    fn one_line_summaries() {
        let mut link = LinkStatus {
            name: "eth0".to_owned(),
            mac: "52:54:00:12:34:56".to_owned(),
            up: true,
            carrier: true,
            addresses: vec![(ip("10.0.2.15"), 24)],
            gateway: Some(ip("10.0.2.2")),
            dns: vec![ip("10.0.2.3")],
            method: MethodStatus::Dhcp {
                state: DhcpState::Bound {
                    server: ip("10.0.2.2"),
                    lease_secs: 86400,
                    renew_in_secs: 43190,
                },
            },
            error: None,
        };
        assert_eq!(
            link.to_string(),
            "eth0 52:54:00:12:34:56 up 10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3 \
             dhcp bound (lease 86400 s, renew in 43190 s)"
        );
        link.carrier = false;
        link.addresses.clear();
        link.gateway = None;
        link.dns.clear();
        link.method = MethodStatus::Dhcp {
            state: DhcpState::Failed("no DHCP offer after 6 DISCOVERs".to_owned()),
        };
        assert_eq!(
            link.to_string(),
            "eth0 52:54:00:12:34:56 up no-carrier no-address \
             dhcp failed: no DHCP offer after 6 DISCOVERs"
        );
        let lo = LinkStatus {
            name: "lo".to_owned(),
            mac: String::new(),
            up: true,
            carrier: true,
            addresses: vec![(ip("127.0.0.1"), 8)],
            gateway: None,
            dns: vec![],
            method: MethodStatus::Static,
            error: None,
        };
        assert_eq!(lo.to_string(), "lo up 127.0.0.1/8 static");
        let missing = LinkStatus {
            name: "eth9".to_owned(),
            mac: String::new(),
            up: false,
            carrier: false,
            addresses: vec![],
            gateway: None,
            dns: vec![],
            method: MethodStatus::Static,
            error: Some("eth9: no such interface yet; waiting for it to appear".to_owned()),
        };
        assert_eq!(
            missing.to_string(),
            "eth9 down no-address static (eth9: no such interface yet; waiting for it to appear)"
        );
    }

    #[test]
    fn dhcp_state_counts_down() {
        use dhcp::machine::{Lease, Phase, View};
        let since = Instant::now();
        let lease = Lease {
            address: ip("10.0.2.15"),
            prefix: 24,
            server: ip("10.0.2.2"),
            routers: vec![ip("10.0.2.2")],
            dns: vec![ip("10.0.2.3")],
            ntp: Vec::new(),
            domain: None,
            lease_secs: 86400,
            t1_secs: 43200,
            t2_secs: 75600,
        };
        let view = View {
            phase: Phase::Bound,
            lease: Some(lease.clone()),
            since: Some(since),
        };
        assert_eq!(
            dhcp_state(&view, since + Duration::from_secs(10)),
            DhcpState::Bound {
                server: ip("10.0.2.2"),
                lease_secs: 86400,
                renew_in_secs: 43190,
            }
        );
        let view = View {
            phase: Phase::Rebinding,
            lease: Some(lease),
            since: Some(since),
        };
        assert_eq!(
            dhcp_state(&view, since + Duration::from_secs(90000)),
            DhcpState::Rebinding { expires_in_secs: 0 }
        );
    }

    #[test]
    fn mac_formatting() {
        assert_eq!(
            format_mac(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            "52:54:00:12:34:56"
        );
        assert_eq!(format_mac(&[]), "");
    }

    #[test]
    fn auto_plan_picks_physical_ethernet() {
        let link = |name: &str, physical: bool, loopback: bool| rtnl::Link {
            index: 1,
            name: name.to_owned(),
            mac: vec![0; 6],
            up: false,
            carrier: false,
            loopback,
            physical_ethernet: physical,
        };
        let links = [
            link("lo", false, true),
            link("eth0", true, false),
            link("veth0", false, false),
            link("eth1", true, false),
        ];
        let plan = Plan {
            hostname: "tank".to_owned(),
            interfaces: None,
        };
        let names: Vec<String> = desired(&plan, &links)
            .into_keys()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["eth0", "eth1"]);

        // A NIC configured statically leaves the others on DHCP.
        let eth1 = IfaceName::parse("eth1").unwrap();
        let static_eth1 = PlannedMethod::Static(settings::StaticConfig {
            address: Ipv4Addr::new(10, 0, 3, 1),
            prefix: 24,
            gateway: None,
            dns: Vec::new(),
        });
        let plan = Plan {
            hostname: "tank".to_owned(),
            interfaces: Some(vec![(eth1.clone(), static_eth1.clone())]),
        };
        let wanted = desired(&plan, &links);
        assert_eq!(wanted.get(&eth1), Some(&static_eth1));
        assert_eq!(
            wanted.get(&IfaceName::parse("eth0").unwrap()),
            Some(&PlannedMethod::Dhcp)
        );
        assert_eq!(wanted.len(), 2);
    }
}
