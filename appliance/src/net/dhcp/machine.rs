//! The DHCPv4 client state machine (RFC 2131 section 4.4), as a pure struct.
//!
//! [`Machine`] owns no socket and no clock: the driver feeds it events (start, a parsed reply,
//! the timer, release) with the current time, and it answers with [`Action`]s (send this,
//! configure that lease, remove that lease). That is what makes it testable on the host in
//! microseconds. Transaction ids come from an injected source so tests are deterministic.
//!
//! ```text
//!  start ──► SELECTING ──offer──► REQUESTING ──ack──► BOUND ──T1──► RENEWING ──T2──► REBINDING
//!               ▲  │ (no offer:                │nak      ▲ ack           │ack/nak        │ expiry
//!               │  ▼  backoff)                 ▼         └───────────────┴───────────────┤
//!               └─ FAILED ◄────────────────────┴──────── (restart) ◄─────────────────────┘
//! ```

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::packet::{Destination, Outgoing, Reply, ReplyKind, RequestKind};
use crate::net::settings::prefix_of_mask;

/// Retransmission delays for DISCOVER; after the last one the client backs off.
const DISCOVER_DELAYS: [u64; 6] = [2, 4, 8, 16, 32, 32];
/// Retransmission delays for REQUEST while selecting; after the last one the client restarts.
const REQUEST_DELAYS: [u64; 4] = [2, 4, 8, 16];
/// How long to wait before trying again after DISCOVER went unanswered.
const FAILED_BACKOFF: Duration = Duration::from_secs(60);
/// How long to wait before trying again after repeated NAKs.
const NAK_BACKOFF: Duration = Duration::from_secs(10);
/// How many NAKs in a row make the client back off.
const MAX_NAKS: u32 = 3;
/// The shortest retransmission interval while renewing or rebinding (RFC 2131 section 4.4.5).
const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);

/// A lease as granted by a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_secs: u32,
    pub t1_secs: u32,
    pub t2_secs: u32,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Outgoing),
    /// Put this lease on the interface (address, default route, DNS); also sent on renewal.
    Configure(Lease),
    /// Take this lease off the interface.
    Deconfigure(Lease),
}

/// The phases of the client, for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Init,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
    Failed(String),
    Released,
}

/// A snapshot of the machine that the status command can turn into remaining times later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub phase: Phase,
    pub lease: Option<Lease>,
    /// When the lease was granted.
    pub since: Option<Instant>,
}

/// T1 and T2 for a lease: the server's values when they are consistent, else the RFC 2131
/// defaults of 0.5 and 0.875 of the lease time. Returns `(lease, t1, t2)` with t1 <= t2 <= lease.
pub fn lease_times(lease: u32, t1: Option<u32>, t2: Option<u32>) -> (u32, u32, u32) {
    let default_t1 = lease / 2;
    let default_t2 = (u64::from(lease) * 7 / 8) as u32;
    let t2 = match t2 {
        Some(t2) if t2 <= lease => t2,
        _ => default_t2,
    };
    let t1 = match t1 {
        Some(t1) if t1 <= t2 => t1,
        _ => default_t1.min(t2),
    };
    (lease, t1, t2)
}

/// The classful prefix for servers that send no subnet mask.
fn classful_prefix(address: Ipv4Addr) -> u8 {
    match address.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// `base + secs`, saturating far in the future instead of overflowing.
fn after(base: Instant, secs: u32) -> Instant {
    let mut secs = u64::from(secs);
    loop {
        if let Some(t) = base.checked_add(Duration::from_secs(secs)) {
            return t;
        }
        secs /= 2;
    }
}

#[derive(Debug, Clone)]
enum State {
    Init,
    Selecting {
        xid: u32,
        started: Instant,
        tries: usize,
        next: Instant,
    },
    Requesting {
        xid: u32,
        started: Instant,
        tries: usize,
        next: Instant,
        offer: Reply,
        server: Ipv4Addr,
    },
    Bound {
        lease: Lease,
        since: Instant,
    },
    Renewing {
        lease: Lease,
        since: Instant,
        xid: u32,
        started: Instant,
        next: Instant,
    },
    Rebinding {
        lease: Lease,
        since: Instant,
        xid: u32,
        started: Instant,
        next: Instant,
    },
    Failed {
        reason: String,
        retry_at: Instant,
    },
    Released,
}

/// One DHCP client for one interface.
pub struct Machine {
    iface: String,
    mac: [u8; 6],
    state: State,
    naks: u32,
    /// The last address we held, asked for again in DISCOVER after a lost lease.
    last_address: Option<Ipv4Addr>,
    xids: Box<dyn FnMut() -> u32 + Send>,
}

impl Machine {
    /// A client for `iface` with hardware address `mac`, drawing xids from `xids`.
    pub fn new(iface: &str, mac: [u8; 6], xids: Box<dyn FnMut() -> u32 + Send>) -> Machine {
        Machine {
            iface: iface.to_owned(),
            mac,
            state: State::Init,
            naks: 0,
            last_address: None,
            xids,
        }
    }

    /// When [`Machine::on_timer`] wants to run next, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Init | State::Released => None,
            State::Selecting { next, .. }
            | State::Requesting { next, .. }
            | State::Renewing { next, .. }
            | State::Rebinding { next, .. } => Some(*next),
            State::Bound { lease, since } => Some(after(*since, lease.t1_secs)),
            State::Failed { retry_at, .. } => Some(*retry_at),
        }
    }

    /// A snapshot for status reports.
    pub fn view(&self) -> View {
        let (phase, lease, since) = match &self.state {
            State::Init => (Phase::Init, None, None),
            State::Selecting { .. } => (Phase::Selecting, None, None),
            State::Requesting { .. } => (Phase::Requesting, None, None),
            State::Bound { lease, since } => (Phase::Bound, Some(lease.clone()), Some(*since)),
            State::Renewing { lease, since, .. } => {
                (Phase::Renewing, Some(lease.clone()), Some(*since))
            }
            State::Rebinding { lease, since, .. } => {
                (Phase::Rebinding, Some(lease.clone()), Some(*since))
            }
            State::Failed { reason, .. } => (Phase::Failed(reason.clone()), None, None),
            State::Released => (Phase::Released, None, None),
        };
        View {
            phase,
            lease,
            since,
        }
    }

    /// Starts (or restarts) address acquisition: broadcasts a DISCOVER.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let xid = (self.xids)();
        self.state = State::Selecting {
            xid,
            started: now,
            tries: 1,
            next: now + Duration::from_secs(DISCOVER_DELAYS[0]),
        };
        vec![Action::Send(self.discover(xid, 0))]
    }

    /// Gives up the lease, if any: a RELEASE to the server and removal from the interface.
    pub fn release(&mut self, _now: Instant) -> Vec<Action> {
        let previous = std::mem::replace(&mut self.state, State::Released);
        match previous {
            State::Bound { lease, .. }
            | State::Renewing { lease, .. }
            | State::Rebinding { lease, .. } => {
                log::info!(
                    "net: {}: releasing {}/{} to {}",
                    self.iface,
                    lease.address,
                    lease.prefix,
                    lease.server
                );
                let release = Outgoing {
                    kind: RequestKind::Release,
                    xid: (self.xids)(),
                    secs: 0,
                    ciaddr: lease.address,
                    requested: None,
                    server_id: Some(lease.server),
                    broadcast_flag: false,
                    to: Destination::Unicast(lease.server),
                };
                vec![Action::Send(release), Action::Deconfigure(lease)]
            }
            _ => Vec::new(),
        }
    }

    /// Handles the timer: retransmissions, T1, T2, expiry and backoff.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match self.deadline() {
            Some(deadline) if now >= deadline => {}
            _ => return Vec::new(),
        }
        match self.state.clone() {
            State::Init | State::Released => Vec::new(),
            State::Failed { .. } => self.start(now),
            State::Selecting {
                xid,
                started,
                tries,
                ..
            } => {
                if tries >= DISCOVER_DELAYS.len() {
                    let reason = format!("no DHCP offer after {tries} DISCOVERs");
                    log::warn!(
                        "net: {}: {reason}; trying again in {} s",
                        self.iface,
                        FAILED_BACKOFF.as_secs()
                    );
                    self.state = State::Failed {
                        reason,
                        retry_at: now + FAILED_BACKOFF,
                    };
                    return Vec::new();
                }
                self.state = State::Selecting {
                    xid,
                    started,
                    tries: tries + 1,
                    next: now + Duration::from_secs(DISCOVER_DELAYS[tries]),
                };
                vec![Action::Send(self.discover(xid, secs_since(started, now)))]
            }
            State::Requesting {
                xid,
                started,
                tries,
                offer,
                server,
                ..
            } => {
                if tries >= REQUEST_DELAYS.len() {
                    log::warn!(
                        "net: {}: no answer from {server} to REQUEST; starting over",
                        self.iface
                    );
                    return self.start(now);
                }
                let request = self.select_request(xid, secs_since(started, now), &offer, server);
                self.state = State::Requesting {
                    xid,
                    started,
                    tries: tries + 1,
                    next: now + Duration::from_secs(REQUEST_DELAYS[tries]),
                    offer,
                    server,
                };
                vec![Action::Send(request)]
            }
            State::Bound { lease, since } => {
                // T1: renew with the server that granted the lease, by unicast.
                let xid = (self.xids)();
                log::info!(
                    "net: {}: renewing {} with {}",
                    self.iface,
                    lease.address,
                    lease.server
                );
                let request = self.renew_request(xid, 0, &lease, false);
                self.state = State::Renewing {
                    next: retry_before(now, after(since, lease.t2_secs)),
                    lease,
                    since,
                    xid,
                    started: now,
                };
                vec![Action::Send(request)]
            }
            State::Renewing {
                lease,
                since,
                xid,
                started,
                ..
            } => {
                let t2 = after(since, lease.t2_secs);
                if now < t2 {
                    let request = self.renew_request(xid, secs_since(started, now), &lease, false);
                    self.state = State::Renewing {
                        next: retry_before(now, t2),
                        lease,
                        since,
                        xid,
                        started,
                    };
                    return vec![Action::Send(request)];
                }
                // T2: any server may extend the lease now, so broadcast.
                let xid = (self.xids)();
                log::info!(
                    "net: {}: {} did not renew {}; rebinding",
                    self.iface,
                    lease.server,
                    lease.address
                );
                let request = self.renew_request(xid, 0, &lease, true);
                self.state = State::Rebinding {
                    next: retry_before(now, after(since, lease.lease_secs)),
                    lease,
                    since,
                    xid,
                    started: now,
                };
                vec![Action::Send(request)]
            }
            State::Rebinding {
                lease,
                since,
                xid,
                started,
                ..
            } => {
                let expiry = after(since, lease.lease_secs);
                if now < expiry {
                    let request = self.renew_request(xid, secs_since(started, now), &lease, true);
                    self.state = State::Rebinding {
                        next: retry_before(now, expiry),
                        lease,
                        since,
                        xid,
                        started,
                    };
                    return vec![Action::Send(request)];
                }
                log::info!(
                    "net: {}: lease on {} expired; removing it and starting over",
                    self.iface,
                    lease.address
                );
                let mut actions = vec![Action::Deconfigure(lease)];
                actions.extend(self.start(now));
                actions
            }
        }
    }

    /// Handles a parsed reply. Replies that are not for us or not for this state are ignored.
    pub fn on_reply(&mut self, now: Instant, reply: &Reply) -> Vec<Action> {
        if reply.chaddr != self.mac {
            log::debug!("net: {}: reply for another client ignored", self.iface);
            return Vec::new();
        }
        let current_xid = match &self.state {
            State::Selecting { xid, .. }
            | State::Requesting { xid, .. }
            | State::Renewing { xid, .. }
            | State::Rebinding { xid, .. } => *xid,
            _ => return Vec::new(),
        };
        if reply.xid != current_xid {
            log::debug!(
                "net: {}: reply with xid {:#010x} ignored (expecting {current_xid:#010x})",
                self.iface,
                reply.xid
            );
            return Vec::new();
        }
        match (self.state.clone(), reply.kind) {
            (State::Selecting { xid, started, .. }, ReplyKind::Offer) => {
                let Some(server) = reply.server_id else {
                    log::warn!(
                        "net: {}: offer without a server identifier (option 54) dropped",
                        self.iface
                    );
                    return Vec::new();
                };
                if !usable(reply.yiaddr) {
                    log::warn!(
                        "net: {}: offer of unusable address {} from {server} dropped",
                        self.iface,
                        reply.yiaddr
                    );
                    return Vec::new();
                }
                log::info!("net: {}: offered {} by {server}", self.iface, reply.yiaddr);
                let request = self.select_request(xid, secs_since(started, now), reply, server);
                self.state = State::Requesting {
                    xid,
                    started,
                    tries: 1,
                    next: now + Duration::from_secs(REQUEST_DELAYS[0]),
                    offer: reply.clone(),
                    server,
                };
                vec![Action::Send(request)]
            }
            (State::Requesting { server, .. }, ReplyKind::Ack) => {
                if reply.server_id.is_some_and(|s| s != server) {
                    return Vec::new();
                }
                let Some(lease) = self.lease_from(reply, server) else {
                    return Vec::new();
                };
                self.naks = 0;
                self.last_address = Some(lease.address);
                log::info!(
                    "net: {}: lease acquired: {}/{} from {} for {} s",
                    self.iface,
                    lease.address,
                    lease.prefix,
                    lease.server,
                    lease.lease_secs
                );
                self.state = State::Bound {
                    lease: lease.clone(),
                    since: now,
                };
                vec![Action::Configure(lease)]
            }
            (State::Renewing { lease: old, .. }, ReplyKind::Ack)
            | (State::Rebinding { lease: old, .. }, ReplyKind::Ack) => {
                let server = reply.server_id.unwrap_or(old.server);
                let Some(lease) = self.lease_from(reply, server) else {
                    return Vec::new();
                };
                self.last_address = Some(lease.address);
                let mut actions = Vec::new();
                if lease.address != old.address || lease.prefix != old.prefix {
                    log::info!(
                        "net: {}: lease moved from {}/{} to {}/{}",
                        self.iface,
                        old.address,
                        old.prefix,
                        lease.address,
                        lease.prefix
                    );
                    actions.push(Action::Deconfigure(old));
                } else {
                    log::info!(
                        "net: {}: lease renewed: {} from {} for {} s",
                        self.iface,
                        lease.address,
                        lease.server,
                        lease.lease_secs
                    );
                }
                self.state = State::Bound {
                    lease: lease.clone(),
                    since: now,
                };
                actions.push(Action::Configure(lease));
                actions
            }
            (State::Requesting { server, .. }, ReplyKind::Nak)
            | (
                State::Renewing {
                    lease: Lease { server, .. },
                    ..
                },
                ReplyKind::Nak,
            ) => {
                if reply.server_id.is_some_and(|s| s != server) {
                    return Vec::new();
                }
                self.nak(now, reply)
            }
            (State::Rebinding { .. }, ReplyKind::Nak) => self.nak(now, reply),
            _ => Vec::new(),
        }
    }

    /// A NAK: drop any lease and start over, backing off after several in a row.
    fn nak(&mut self, now: Instant, reply: &Reply) -> Vec<Action> {
        let why = reply.message.as_deref().unwrap_or("no reason given");
        log::info!(
            "net: {}: server {} refused the request (NAK: {why}); starting over",
            self.iface,
            reply
                .server_id
                .map_or_else(|| "?".to_owned(), |s| s.to_string())
        );
        let mut actions = Vec::new();
        if let State::Renewing { lease, .. } | State::Rebinding { lease, .. } = &self.state {
            actions.push(Action::Deconfigure(lease.clone()));
        }
        self.last_address = None;
        self.naks += 1;
        if self.naks >= MAX_NAKS {
            self.naks = 0;
            self.state = State::Failed {
                reason: format!("{MAX_NAKS} NAKs in a row ({why})"),
                retry_at: now + NAK_BACKOFF,
            };
            return actions;
        }
        actions.extend(self.start(now));
        actions
    }

    /// Builds a lease from an ACK, or logs why it cannot.
    fn lease_from(&self, reply: &Reply, server: Ipv4Addr) -> Option<Lease> {
        if !usable(reply.yiaddr) {
            log::warn!(
                "net: {}: ACK with unusable address {} dropped",
                self.iface,
                reply.yiaddr
            );
            return None;
        }
        let Some(lease_secs) = reply.lease_secs else {
            log::warn!(
                "net: {}: ACK from {server} without a lease time (option 51) dropped",
                self.iface
            );
            return None;
        };
        let prefix = match reply.subnet_mask {
            Some(mask) => match prefix_of_mask(mask) {
                Some(prefix) => prefix,
                None => {
                    log::warn!(
                        "net: {}: ACK from {server} with non-contiguous mask {mask} dropped",
                        self.iface
                    );
                    return None;
                }
            },
            None => classful_prefix(reply.yiaddr),
        };
        let (lease_secs, t1_secs, t2_secs) =
            lease_times(lease_secs, reply.renewal_secs, reply.rebinding_secs);
        Some(Lease {
            address: reply.yiaddr,
            prefix,
            server,
            routers: reply
                .routers
                .iter()
                .copied()
                .filter(|r| usable(*r))
                .collect(),
            dns: reply.dns.iter().copied().filter(|d| usable(*d)).collect(),
            ntp: reply.ntp.iter().copied().filter(|d| usable(*d)).collect(),
            domain: reply.domain.clone(),
            lease_secs,
            t1_secs,
            t2_secs,
        })
    }

    fn discover(&self, xid: u32, secs: u16) -> Outgoing {
        Outgoing {
            kind: RequestKind::Discover,
            xid,
            secs,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: self.last_address,
            server_id: None,
            broadcast_flag: true,
            to: Destination::Broadcast,
        }
    }

    fn select_request(&self, xid: u32, secs: u16, offer: &Reply, server: Ipv4Addr) -> Outgoing {
        Outgoing {
            kind: RequestKind::Request,
            xid,
            secs,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: Some(offer.yiaddr),
            server_id: Some(server),
            broadcast_flag: true,
            to: Destination::Broadcast,
        }
    }

    fn renew_request(&self, xid: u32, secs: u16, lease: &Lease, rebinding: bool) -> Outgoing {
        Outgoing {
            kind: RequestKind::Request,
            xid,
            secs,
            ciaddr: lease.address,
            requested: None,
            server_id: None,
            broadcast_flag: false,
            to: if rebinding {
                Destination::Broadcast
            } else {
                Destination::Unicast(lease.server)
            },
        }
    }
}

/// An address a lease may hand out or point at.
fn usable(address: Ipv4Addr) -> bool {
    !(address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_loopback())
}

fn secs_since(started: Instant, now: Instant) -> u16 {
    u16::try_from(now.saturating_duration_since(started).as_secs()).unwrap_or(u16::MAX)
}

/// The next retransmission while renewing or rebinding: half the time left, at least a minute,
/// never after `limit`.
fn retry_before(now: Instant, limit: Instant) -> Instant {
    let half = limit.saturating_duration_since(now) / 2;
    (now + half.max(MIN_RENEW_RETRY)).min(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::dhcp::packet::tests::{reply_bytes, server_reply, MAC};
    use crate::net::dhcp::packet::{encode, parse_reply, Identity};
    use dhcproto::v4::{DhcpOption, MessageType};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("valid address")
    }

    /// A machine whose xids count up from 100.
    fn machine() -> Machine {
        let mut next = 100;
        Machine::new(
            "eth0",
            MAC,
            Box::new(move || {
                next += 1;
                next
            }),
        )
    }

    fn reply(kind: MessageType, xid: u32) -> Reply {
        parse_reply(&reply_bytes(&server_reply(kind, xid, ip("10.0.2.15")))).expect("parses")
    }

    fn sent(actions: &[Action]) -> Vec<&Outgoing> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    /// Drives a fresh machine to BOUND against a slirp-like server.
    fn bound(t0: Instant) -> (Machine, Lease) {
        let mut m = machine();
        let actions = m.start(t0);
        let discover = sent(&actions)[0].clone();
        assert_eq!(discover.kind, RequestKind::Discover);
        assert!(discover.broadcast_flag);
        assert_eq!(discover.to, Destination::Broadcast);
        let actions = m.on_reply(t0, &reply(MessageType::Offer, discover.xid));
        let request = sent(&actions)[0].clone();
        assert_eq!(request.kind, RequestKind::Request);
        assert_eq!(request.xid, discover.xid);
        assert_eq!(request.requested, Some(ip("10.0.2.15")));
        assert_eq!(request.server_id, Some(ip("10.0.2.2")));
        assert!(request.broadcast_flag);
        let actions = m.on_reply(t0, &reply(MessageType::Ack, request.xid));
        let [Action::Configure(lease)] = actions.as_slice() else {
            panic!("expected Configure, got {actions:?}");
        };
        (m, lease.clone())
    }

    #[test]
    fn acquires_a_lease_like_slirp_gives() {
        let t0 = Instant::now();
        let (m, lease) = bound(t0);
        assert_eq!(
            lease,
            Lease {
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
            }
        );
        assert_eq!(m.view().phase, Phase::Bound);
        assert_eq!(m.deadline(), Some(t0 + Duration::from_secs(43200)));
    }

    #[test]
    fn lease_timer_arithmetic() {
        assert_eq!(lease_times(86400, None, None), (86400, 43200, 75600));
        assert_eq!(
            lease_times(3600, Some(1000), Some(2000)),
            (3600, 1000, 2000)
        );
        // Inconsistent server values fall back to the defaults.
        assert_eq!(
            lease_times(3600, Some(3000), Some(2000)),
            (3600, 1800, 2000)
        );
        assert_eq!(lease_times(3600, None, Some(4000)), (3600, 1800, 3150));
        assert_eq!(lease_times(120, Some(60), None), (120, 60, 105));
        assert_eq!(lease_times(0, None, None), (0, 0, 0));
        // An infinite lease never overflows.
        assert_eq!(
            lease_times(u32::MAX, None, None),
            (u32::MAX, u32::MAX / 2, 3_758_096_383)
        );
        let t0 = Instant::now();
        assert!(after(t0, u32::MAX) > t0);
    }

    #[test]
    fn wrong_xid_and_foreign_replies_are_dropped() {
        let t0 = Instant::now();
        let mut m = machine();
        let xid = sent(&m.start(t0))[0].xid;
        assert!(m
            .on_reply(t0, &reply(MessageType::Offer, xid + 1))
            .is_empty());
        let mut foreign = reply(MessageType::Offer, xid);
        foreign.chaddr = [2, 0, 0, 0, 0, 1];
        assert!(m.on_reply(t0, &foreign).is_empty());
        // An ACK while selecting is out of order.
        assert!(m.on_reply(t0, &reply(MessageType::Ack, xid)).is_empty());
        let mut no_server = reply(MessageType::Offer, xid);
        no_server.server_id = None;
        assert!(m.on_reply(t0, &no_server).is_empty());
        let mut zero = reply(MessageType::Offer, xid);
        zero.yiaddr = Ipv4Addr::UNSPECIFIED;
        assert!(m.on_reply(t0, &zero).is_empty());
        assert_eq!(m.view().phase, Phase::Selecting);
    }

    #[test]
    fn ack_without_lease_time_or_with_bad_mask_is_dropped() {
        let t0 = Instant::now();
        let mut m = machine();
        let xid = sent(&m.start(t0))[0].xid;
        m.on_reply(t0, &reply(MessageType::Offer, xid));
        let mut no_time = reply(MessageType::Ack, xid);
        no_time.lease_secs = None;
        assert!(m.on_reply(t0, &no_time).is_empty());
        let mut bad_mask = reply(MessageType::Ack, xid);
        bad_mask.subnet_mask = Some(ip("255.0.255.0"));
        assert!(m.on_reply(t0, &bad_mask).is_empty());
        assert_eq!(m.view().phase, Phase::Requesting);
    }

    #[test]
    fn discover_retries_back_off_then_fail_then_restart() {
        let t0 = Instant::now();
        let mut m = machine();
        let first = sent(&m.start(t0))[0].clone();
        let mut now = t0;
        let mut delays = Vec::new();
        while let Some(deadline) = m.deadline() {
            delays.push(deadline.duration_since(now).as_secs());
            now = deadline;
            let actions = m.on_timer(now);
            if let Phase::Failed(reason) = m.view().phase {
                assert!(actions.is_empty());
                assert_eq!(reason, "no DHCP offer after 6 DISCOVERs");
                break;
            }
            let again = sent(&actions)[0];
            assert_eq!(again.xid, first.xid, "retransmissions keep the xid");
            assert_eq!(u64::from(again.secs), now.duration_since(t0).as_secs());
        }
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 32]);
        // Backoff, then a fresh transaction.
        let retry = m.deadline().expect("retry scheduled");
        assert_eq!(retry.duration_since(now), FAILED_BACKOFF);
        assert!(m.on_timer(now).is_empty(), "nothing before the deadline");
        let actions = m.on_timer(retry);
        let fresh = sent(&actions)[0];
        assert_eq!(fresh.kind, RequestKind::Discover);
        assert_ne!(fresh.xid, first.xid);
        assert_eq!(m.view().phase, Phase::Selecting);
    }

    #[test]
    fn request_retries_then_restart() {
        let t0 = Instant::now();
        let mut m = machine();
        let xid = sent(&m.start(t0))[0].xid;
        m.on_reply(t0, &reply(MessageType::Offer, xid));
        for _ in 0..REQUEST_DELAYS.len() - 1 {
            let now = m.deadline().expect("deadline");
            let actions = m.on_timer(now);
            assert_eq!(sent(&actions)[0].kind, RequestKind::Request);
        }
        let now = m.deadline().expect("deadline");
        let actions = m.on_timer(now);
        assert_eq!(sent(&actions)[0].kind, RequestKind::Discover);
        assert_ne!(sent(&actions)[0].xid, xid);
    }

    #[test]
    fn nak_restarts_and_repeated_naks_back_off() {
        let t0 = Instant::now();
        let mut m = machine();
        for round in 1..=MAX_NAKS {
            let xid = match m.view().phase {
                Phase::Init => sent(&m.start(t0))[0].xid,
                _ => panic!("unexpected phase"),
            };
            m.on_reply(t0, &reply(MessageType::Offer, xid));
            let actions = m.on_reply(t0, &reply(MessageType::Nak, xid));
            if round < MAX_NAKS {
                assert_eq!(sent(&actions)[0].kind, RequestKind::Discover);
                assert_eq!(m.view().phase, Phase::Selecting);
                m.state = State::Init;
            } else {
                assert!(actions.is_empty());
                assert!(matches!(m.view().phase, Phase::Failed(_)));
            }
        }
    }

    #[test]
    fn renew_at_t1_unicast_then_rebind_at_t2_then_expire() {
        let t0 = Instant::now();
        let (mut m, lease) = bound(t0);
        let t1 = t0 + Duration::from_secs(43200);
        assert!(m.on_timer(t1 - Duration::from_secs(1)).is_empty());
        let actions = m.on_timer(t1);
        let renew = sent(&actions)[0].clone();
        assert_eq!(renew.kind, RequestKind::Request);
        assert_eq!(renew.to, Destination::Unicast(ip("10.0.2.2")));
        assert_eq!(renew.ciaddr, ip("10.0.2.15"));
        assert_eq!(renew.requested, None);
        assert_eq!(renew.server_id, None);
        assert_eq!(m.view().phase, Phase::Renewing);
        // Retransmit at half the time to T2 (32400 s left, so 16200 s later).
        assert_eq!(m.deadline(), Some(t1 + Duration::from_secs(16200)));

        // No answer until T2: rebinding, broadcast, new xid.
        let t2 = t0 + Duration::from_secs(75600);
        let mut now = t1;
        let mut rebind = None;
        while let Some(deadline) = m.deadline() {
            now = deadline;
            let actions = m.on_timer(now);
            if m.view().phase == Phase::Rebinding {
                rebind = Some(sent(&actions)[0].clone());
                break;
            }
        }
        let rebind = rebind.expect("rebinding");
        assert_eq!(now, t2);
        assert_eq!(rebind.to, Destination::Broadcast);
        assert_ne!(rebind.xid, renew.xid);

        // No answer until expiry: the lease goes and DISCOVER asks for the old address.
        let expiry = t0 + Duration::from_secs(86400);
        let mut actions = Vec::new();
        while m.view().phase == Phase::Rebinding {
            now = m.deadline().expect("deadline");
            actions = m.on_timer(now);
        }
        assert_eq!(now, expiry);
        assert_eq!(actions[0], Action::Deconfigure(lease));
        let discover = sent(&actions)[0];
        assert_eq!(discover.kind, RequestKind::Discover);
        assert_eq!(discover.requested, Some(ip("10.0.2.15")));
        assert_eq!(m.view().phase, Phase::Selecting);
    }

    #[test]
    fn renewal_ack_extends_the_lease() {
        let t0 = Instant::now();
        let (mut m, lease) = bound(t0);
        let t1 = t0 + Duration::from_secs(43200);
        let xid = sent(&m.on_timer(t1))[0].xid;
        let actions = m.on_reply(t1, &reply(MessageType::Ack, xid));
        assert_eq!(actions, vec![Action::Configure(lease)]);
        assert_eq!(m.view().phase, Phase::Bound);
        assert_eq!(m.view().since, Some(t1));
        assert_eq!(m.deadline(), Some(t1 + Duration::from_secs(43200)));
    }

    #[test]
    fn renewal_nak_drops_the_lease() {
        let t0 = Instant::now();
        let (mut m, lease) = bound(t0);
        let t1 = t0 + Duration::from_secs(43200);
        let xid = sent(&m.on_timer(t1))[0].xid;
        let actions = m.on_reply(t1, &reply(MessageType::Nak, xid));
        assert_eq!(actions[0], Action::Deconfigure(lease));
        assert_eq!(sent(&actions)[0].kind, RequestKind::Discover);
    }

    #[test]
    fn release_sends_release_and_deconfigures() {
        let t0 = Instant::now();
        let (mut m, lease) = bound(t0);
        let actions = m.release(t0);
        let release = sent(&actions)[0];
        assert_eq!(release.kind, RequestKind::Release);
        assert_eq!(release.ciaddr, ip("10.0.2.15"));
        assert_eq!(release.server_id, Some(ip("10.0.2.2")));
        assert_eq!(release.to, Destination::Unicast(ip("10.0.2.2")));
        assert_eq!(actions[1], Action::Deconfigure(lease));
        assert_eq!(m.view().phase, Phase::Released);
        assert_eq!(m.deadline(), None);
        // Releasing without a lease sends nothing.
        let mut fresh = machine();
        fresh.start(t0);
        assert!(fresh.release(t0).is_empty());
    }

    #[test]
    fn replies_without_options_fall_back_sensibly() {
        let t0 = Instant::now();
        let mut m = machine();
        let xid = sent(&m.start(t0))[0].xid;
        m.on_reply(t0, &reply(MessageType::Offer, xid));
        let mut ack = server_reply(MessageType::Ack, xid, ip("192.168.7.20"));
        ack.opts_mut().remove(dhcproto::v4::OptionCode::SubnetMask);
        ack.opts_mut().insert(DhcpOption::Renewal(100));
        ack.opts_mut().insert(DhcpOption::Rebinding(200));
        let actions = m.on_reply(t0, &parse_reply(&reply_bytes(&ack)).expect("parses"));
        let [Action::Configure(lease)] = actions.as_slice() else {
            panic!("expected Configure, got {actions:?}");
        };
        assert_eq!(
            lease.prefix, 24,
            "classful default for 192.168/16 space is /24"
        );
        assert_eq!((lease.t1_secs, lease.t2_secs), (100, 200));
    }

    #[test]
    fn actions_encode() {
        let t0 = Instant::now();
        let mut m = machine();
        let identity = Identity {
            mac: MAC,
            hostname: None,
        };
        for action in m.start(t0) {
            if let Action::Send(out) = action {
                assert!(encode(&out, &identity).is_ok());
            }
        }
    }
}
