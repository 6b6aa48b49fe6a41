//! One managed interface: its worker thread, and putting addressing on and off the link.
//!
//! A worker waits for its link to appear, sets it up, waits briefly for carrier, then either
//! applies static addressing and ends, or runs the DHCP client (`dhcp::run`) until told to
//! stop. Everything a worker put on the interface is written down in its [`Record`], so that
//! whoever removes it later (the worker on release, or [`super::Network::stop`]) removes
//! exactly that and nothing the administrator added by hand.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::dhcp;
use super::dns::DnsEntry;
use super::rtnl::{Link, Origin, Rtnl};
use super::settings::{in_subnet, IfaceName, PlannedMethod, StaticConfig};
use super::{lock, NetError, Shared};

/// How often a waiting worker looks again for a missing link or for carrier.
const POLL: Duration = Duration::from_millis(100);

/// What we put on an interface, so it can be taken off again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub metric: u32,
    pub origin: Origin,
    pub dns: Vec<Ipv4Addr>,
}

/// Addressing to put on an interface, from static settings or a DHCP lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// NTP servers (from DHCP option 42; none for static settings).
    pub ntp: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub origin: Origin,
}

impl From<&StaticConfig> for Addressing {
    fn from(config: &StaticConfig) -> Addressing {
        Addressing {
            address: config.address,
            prefix: config.prefix,
            gateway: config.gateway,
            dns: config.dns.clone(),
            ntp: Vec::new(),
            domain: None,
            origin: Origin::Static,
        }
    }
}

/// The state of one managed interface, shared between its worker and the status command.
#[derive(Debug, Default)]
pub struct Record {
    pub index: Option<u32>,
    pub applied: Option<Applied>,
    pub dhcp: Option<dhcp::machine::View>,
    /// The last thing that went wrong, cleared when the interface is configured.
    pub error: Option<String>,
}

/// Everything a worker thread needs.
#[derive(Clone)]
pub struct IfaceCtx {
    pub shared: Arc<Shared>,
    pub name: IfaceName,
    pub record: Arc<Mutex<Record>>,
    pub stop: Arc<AtomicBool>,
}

impl IfaceCtx {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps for `duration` unless told to stop first; returns whether it was told to stop.
    pub fn sleep(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            if self.stopped() {
                return true;
            }
            thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
        }
        self.stopped()
    }

    /// Notes an error for the status command and logs it once.
    pub fn fail(&self, error: String) {
        let mut record = lock(&self.record);
        if record.error.as_deref() != Some(error.as_str()) {
            log::warn!("net: {error}");
        }
        record.error = Some(error);
    }

    fn netlink_error(&self, op: &'static str, source: std::io::Error) -> NetError {
        NetError::Netlink {
            iface: self.name.to_string(),
            op,
            source,
        }
    }
}

/// The route metric for an interface's default route: one per interface, lower index first.
pub fn metric_for(index: u32) -> u32 {
    100u32.saturating_add(index)
}

/// Puts `addressing` on the interface, replacing what was there before, and records it.
pub fn configure(
    ctx: &IfaceCtx,
    rtnl: &mut Rtnl,
    index: u32,
    addressing: &Addressing,
) -> Result<(), NetError> {
    let name = ctx.name.as_str();
    let previous = lock(&ctx.record).applied.clone();
    let metric = metric_for(index);
    if let Some(old) = &previous {
        if old.gateway.is_some() && old.gateway != addressing.gateway {
            if let Some(gateway) = old.gateway {
                rtnl.del_default_route(index, gateway, old.metric, old.origin)
                    .map_err(|e| ctx.netlink_error("removing the old default route", e))?;
            }
        }
        if (old.address, old.prefix) != (addressing.address, addressing.prefix) {
            rtnl.del_address(index, old.address, old.prefix)
                .map_err(|e| ctx.netlink_error("removing the old address", e))?;
            lock(&ctx.record).applied = None;
        }
    }
    rtnl.add_address(index, addressing.address, addressing.prefix)
        .map_err(|e| ctx.netlink_error("adding the address", e))?;
    let mut applied = Applied {
        address: addressing.address,
        prefix: addressing.prefix,
        gateway: None,
        metric,
        origin: addressing.origin,
        dns: addressing.dns.clone(),
    };
    lock(&ctx.record).applied = Some(applied.clone());
    if previous.as_ref().map(|p| (p.address, p.prefix))
        != Some((addressing.address, addressing.prefix))
    {
        log::info!(
            "net: {name}: address {}/{} set",
            addressing.address,
            addressing.prefix
        );
    }
    if let Some(gateway) = addressing.gateway {
        if !in_subnet(addressing.address, addressing.prefix, gateway) {
            log::warn!(
                "net: {name}: gateway {gateway} is outside {}/{}; the kernel may refuse the route",
                addressing.address,
                addressing.prefix
            );
        }
        rtnl.replace_default_route(index, gateway, metric, addressing.origin)
            .map_err(|e| ctx.netlink_error("setting the default route", e))?;
        applied.gateway = Some(gateway);
        lock(&ctx.record).applied = Some(applied);
    }
    ctx.shared.resolver.set(
        name,
        DnsEntry {
            servers: addressing.dns.clone(),
            domain: addressing.domain.clone(),
        },
    );
    super::sntp::set_dhcp_servers(name, &addressing.ntp);
    lock(&ctx.record).error = None;
    Ok(())
}

/// Takes off the interface whatever [`configure`] put there.
pub fn deconfigure(ctx: &IfaceCtx, rtnl: &mut Rtnl) -> Result<(), NetError> {
    ctx.shared.resolver.remove(ctx.name.as_str());
    super::sntp::set_dhcp_servers(ctx.name.as_str(), &[]);
    let (index, applied) = {
        let record = lock(&ctx.record);
        (record.index, record.applied.clone())
    };
    let (Some(index), Some(applied)) = (index, applied) else {
        return Ok(());
    };
    if let Some(gateway) = applied.gateway {
        rtnl.del_default_route(index, gateway, applied.metric, applied.origin)
            .map_err(|e| ctx.netlink_error("removing the default route", e))?;
    }
    rtnl.del_address(index, applied.address, applied.prefix)
        .map_err(|e| ctx.netlink_error("removing the address", e))?;
    lock(&ctx.record).applied = None;
    log::info!(
        "net: {}: address {}/{} removed",
        ctx.name,
        applied.address,
        applied.prefix
    );
    Ok(())
}

/// The worker thread's body.
pub fn run(ctx: IfaceCtx, method: PlannedMethod) {
    let Some(mut rtnl) = open_rtnl(&ctx) else {
        return;
    };
    let Some(link) = wait_for_link(&ctx, &mut rtnl) else {
        return;
    };
    lock(&ctx.record).index = Some(link.index);
    if let Err(e) = rtnl.set_up(link.index) {
        ctx.fail(ctx.netlink_error("setting the link up", e).to_string());
    }
    wait_for_carrier(&ctx, &mut rtnl, link.index);
    if ctx.stopped() {
        return;
    }
    match method {
        PlannedMethod::Static(config) => {
            if let Err(e) = configure(&ctx, &mut rtnl, link.index, &Addressing::from(&config)) {
                ctx.fail(e.to_string());
            }
        }
        PlannedMethod::Dhcp => {
            let mac = match <[u8; 6]>::try_from(link.mac.as_slice()) {
                Ok(mac) => mac,
                Err(_) => {
                    ctx.fail(format!(
                        "{}: no ethernet address, so DHCP cannot run here",
                        ctx.name
                    ));
                    return;
                }
            };
            dhcp::run(&ctx, &mut rtnl, link.index, mac);
        }
    }
}

fn open_rtnl(ctx: &IfaceCtx) -> Option<Rtnl> {
    loop {
        match Rtnl::open() {
            Ok(rtnl) => return Some(rtnl),
            Err(e) => ctx.fail(ctx.netlink_error("opening a netlink socket", e).to_string()),
        }
        if ctx.sleep(Duration::from_secs(1)) {
            return None;
        }
    }
}

/// Waits until the link exists (a driver may still be loading); `None` if told to stop.
fn wait_for_link(ctx: &IfaceCtx, rtnl: &mut Rtnl) -> Option<Link> {
    loop {
        match rtnl.link(ctx.name.as_str()) {
            Ok(Some(link)) => return Some(link),
            Ok(None) => ctx.fail(format!(
                "{}: no such interface yet; waiting for it to appear",
                ctx.name
            )),
            Err(e) => ctx.fail(ctx.netlink_error("listing links", e).to_string()),
        }
        if ctx.sleep(Duration::from_millis(500)) {
            return None;
        }
    }
}

/// Waits up to the configured time for carrier; carrier is not required to go on.
fn wait_for_carrier(ctx: &IfaceCtx, rtnl: &mut Rtnl, index: u32) {
    let deadline = Instant::now() + ctx.shared.options.carrier_wait;
    loop {
        let carrier = rtnl
            .links()
            .map(|links| links.iter().any(|l| l.index == index && l.carrier))
            .unwrap_or(false);
        if carrier {
            log::debug!("net: {}: carrier up", ctx.name);
            return;
        }
        if Instant::now() >= deadline {
            log::info!(
                "net: {}: no carrier after {} ms; configuring anyway",
                ctx.name,
                ctx.shared.options.carrier_wait.as_millis()
            );
            return;
        }
        if ctx.sleep(POLL) {
            return;
        }
    }
}
