//! The SNTP client (RFC 5905 client mode, RFC 4330): which servers to ask, the 48-byte packet,
//! the checks every answer must pass, the choice among several servers' answers, and the
//! thread that polls them and sets the clock.
//!
//! Servers: those DHCP gave (option 42) when any lease has them, else the configured ones
//! (`time server HOST...`), else `pool.ntp.org`. Names are resolved with the C library's
//! resolver (`ToSocketAddrs`): the init is a static glibc binary, whose resolver reads
//! `/etc/resolv.conf` (written by `net/dns.rs`) and, with no `/etc/nsswitch.conf` and no NSS
//! modules in the image, asks DNS; up to four addresses of a name are asked, each counting as
//! a server.
//!
//! Every answer is checked ([`check`]): mode 4 (server), our transmit timestamp echoed as its
//! origin (anything else is not an answer to us and is dropped), stratum 0 is a kiss-of-death
//! whose code is read from the reference id (`RATE`: ask that server less often; `DENY` and
//! `RSTR`: stop asking it), leap indicator 3 (the server is not synchronized) and stratum 16 or
//! more are refused, and so is a zero transmit timestamp. Answers from several servers must
//! agree ([`select`]): the largest group within 1 s of each other must be a majority, or the
//! poll is refused. A packet that does not parse is logged through `peer_log!` and dropped.
//!
//! The clock: the first good poll of a boot steps it (`clock_settime`), later ones slew it
//! (`adjtimex`), and each marks the kernel's clock synchronized, so the kernel writes it to the
//! hardware clock every 11 minutes (see `system/clock.rs`). The poll interval starts at 64 s,
//! doubles to 1024 s while the offsets stay small, and a failed poll is retried sooner. Results
//! reach the engine as [`crate::init::Event::Clock`]; the thread never touches engine state.
//!
//! Why the packet is encoded here rather than by a crate: the maintained blocking client
//! (`rsntp`) resolves names itself and asks only the first address, and it does not expose its
//! packet parser, so neither the several-server agreement check nor a test that feeds the
//! parser crafted or random datagrams could be written against it. The format is one fixed
//! 48-byte header.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::time::{TimeServer, TimeSettings};
use crate::init::Event;
use crate::system::clock;

use super::lock;

/// The NTP header's length; extension fields and a MAC may follow and are ignored.
pub const PACKET_LEN: usize = 48;
/// Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01.
const NTP_TO_UNIX: u64 = 2_208_988_800;
/// The first poll interval and the longest.
pub const MIN_POLL: Duration = Duration::from_secs(64);
pub const MAX_POLL: Duration = Duration::from_secs(1024);
/// How long to wait for one server's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// Answers further apart than this disagree.
pub const AGREEMENT: f64 = 1.0;
/// Addresses asked per server name (`pool.ntp.org` gives four).
const ADDRESSES_PER_NAME: usize = 4;
/// An offset below this lets the poll interval grow.
const STABLE_OFFSET: f64 = 0.128;

/// An answer's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub leap: u8,
    pub version: u8,
    pub mode: u8,
    pub stratum: u8,
    pub poll: i8,
    pub precision: i8,
    /// 16.16 fixed-point seconds.
    pub root_delay: u32,
    pub root_dispersion: u32,
    pub refid: [u8; 4],
    /// 32.32 fixed-point seconds since 1900 (in the current NTP era).
    pub reference: u64,
    pub origin: u64,
    pub receive: u64,
    pub transmit: u64,
}

/// Why a datagram is not an NTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("{0} bytes is too short for an NTP packet (48)")]
    TooShort(usize),
}

/// Why a well-formed answer is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("mode {0} is not a server's answer (4)")]
    NotServer(u8),
    #[error("NTP version {0} is not one we speak (1 to 4)")]
    Version(u8),
    #[error("its origin timestamp is not our request's transmit timestamp")]
    Origin,
    #[error("kiss-of-death {}", kiss_text(.0))]
    Kiss([u8; 4]),
    #[error("the server says it is not synchronized (leap indicator 3)")]
    Unsynchronized,
    #[error("stratum {0} is not synchronized (16 or more)")]
    Stratum(u8),
    #[error("its transmit timestamp is zero")]
    NoTransmit,
}

fn kiss_text(code: &[u8; 4]) -> String {
    if code
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b' ' || *b == 0)
    {
        String::from_utf8_lossy(code)
            .trim_end_matches(['\0', ' '])
            .to_owned()
    } else {
        format!("{code:02x?}")
    }
}

/// What a kiss-of-death code asks of us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kiss {
    /// `RATE`: poll this server less often.
    SlowDown,
    /// `DENY`, `RSTR`: never ask this server again (until the server list changes).
    Stop,
    /// Any other code: this answer is not used.
    Other,
}

pub fn kiss(code: &[u8; 4]) -> Kiss {
    match code {
        b"RATE" => Kiss::SlowDown,
        b"DENY" | b"RSTR" => Kiss::Stop,
        _ => Kiss::Other,
    }
}

/// A client request: version 4, mode 3, with `transmit` as its transmit timestamp (the server
/// echoes it as the origin of its answer). Everything else is zero (RFC 4330 section 5).
pub fn request(transmit: u64) -> [u8; PACKET_LEN] {
    let mut bytes = [0u8; PACKET_LEN];
    bytes[0] = (4 << 3) | 3;
    bytes[40..48].copy_from_slice(&transmit.to_be_bytes());
    bytes
}

/// Reads the header of a datagram. Only the length can be wrong: every field's value is
/// judged by [`check`].
pub fn parse(bytes: &[u8]) -> Result<Packet, PacketError> {
    let Some(header) = bytes.get(..PACKET_LEN) else {
        return Err(PacketError::TooShort(bytes.len()));
    };
    let u32_at = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let u64_at = |at: usize| (u64::from(u32_at(at)) << 32) | u64::from(u32_at(at + 4));
    Ok(Packet {
        leap: header[0] >> 6,
        version: (header[0] >> 3) & 7,
        mode: header[0] & 7,
        stratum: header[1],
        poll: header[2] as i8,
        precision: header[3] as i8,
        root_delay: u32_at(4),
        root_dispersion: u32_at(8),
        refid: [header[12], header[13], header[14], header[15]],
        reference: u64_at(16),
        origin: u64_at(24),
        receive: u64_at(32),
        transmit: u64_at(40),
    })
}

/// Whether `answer` is a usable answer to the request we sent with transmit timestamp `sent`.
/// The origin is checked before the kiss codes, so a forged kiss-of-death that does not echo
/// our request cannot silence a server.
pub fn check(answer: &Packet, sent: u64) -> Result<(), Refusal> {
    if answer.mode != 4 {
        return Err(Refusal::NotServer(answer.mode));
    }
    if !(1..=4).contains(&answer.version) {
        return Err(Refusal::Version(answer.version));
    }
    if answer.origin != sent {
        return Err(Refusal::Origin);
    }
    if answer.stratum == 0 {
        return Err(Refusal::Kiss(answer.refid));
    }
    if answer.leap == 3 {
        return Err(Refusal::Unsynchronized);
    }
    if answer.stratum >= 16 {
        return Err(Refusal::Stratum(answer.stratum));
    }
    if answer.transmit == 0 {
        return Err(Refusal::NoTransmit);
    }
    Ok(())
}

/// A Unix time (seconds with a fraction) as an NTP timestamp (the era wraps in 2036, which the
/// differences below tolerate).
pub fn ntp_time(unix: f64) -> u64 {
    let secs = unix.max(0.0).floor();
    let frac = ((unix.max(0.0) - secs) * 4_294_967_296.0) as u64 & 0xffff_ffff;
    let ntp_secs = (secs as u64).wrapping_add(NTP_TO_UNIX) & 0xffff_ffff;
    (ntp_secs << 32) | frac
}

/// `a - b` in seconds, in two's complement as RFC 5905 section 6 does, so the NTP era does not
/// matter while the two are within 68 years.
fn diff(a: u64, b: u64) -> f64 {
    a.wrapping_sub(b) as i64 as f64 / 4_294_967_296.0
}

fn short(fixed: u32) -> f64 {
    f64::from(fixed) / 65_536.0
}

/// One server's measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// What was asked, as the operator wrote it (`pool.ntp.org`, `10.0.2.2:1123`).
    pub server: String,
    pub address: SocketAddr,
    /// Seconds to add to our clock.
    pub offset: f64,
    /// The round trip, seconds.
    pub delay: f64,
    pub stratum: u8,
    /// How far the server may be from true time: half its root delay plus its dispersion.
    pub root_distance: f64,
}

/// The offset and delay of an answer (RFC 5905 section 8): `t1` our transmit, `t4` when the
/// answer arrived, both on our clock.
pub fn measure(answer: &Packet, t1: u64, t4: u64) -> (f64, f64) {
    let (t2, t3) = (answer.receive, answer.transmit);
    let offset = (diff(t2, t1) + diff(t3, t4)) / 2.0;
    let delay = (diff(t4, t1) - diff(t3, t2)).max(0.0);
    (offset, delay)
}

/// The sample to use from one poll's answers: the largest group within [`AGREEMENT`] of each
/// other must hold more than half of them; within it, the shortest round trip wins.
pub fn select(samples: &[Sample]) -> Result<Sample, String> {
    let group = |s: &Sample| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|o| (o.offset - s.offset).abs() <= AGREEMENT)
            .collect()
    };
    let Some(largest) = samples.iter().map(group).max_by_key(|g| g.len()) else {
        return Err("no server answered".into());
    };
    if largest.len() * 2 <= samples.len() {
        let offsets: Vec<String> = samples
            .iter()
            .map(|s| format!("{} {:+.3} s", s.server, s.offset))
            .collect();
        return Err(format!(
            "the servers disagree (offsets {}): no majority within {AGREEMENT} s of each other",
            offsets.join(", ")
        ));
    }
    largest
        .into_iter()
        .min_by(|a, b| a.delay.total_cmp(&b.delay))
        .cloned()
        .ok_or_else(|| "no server answered".into())
}

/// Where the servers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Dhcp,
    Configured,
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Dhcp => "from DHCP",
            Source::Configured => "configured",
            Source::Default => "default",
        })
    }
}

/// The servers to ask, as (host, port): DHCP's when any, else the configured ones, else the
/// default.
pub fn choose(dhcp: &[Ipv4Addr], configured: &[TimeServer]) -> (Source, Vec<(String, u16)>) {
    if !dhcp.is_empty() {
        let mut hosts: Vec<(String, u16)> = Vec::new();
        for server in dhcp {
            let host = (server.to_string(), TimeServer::PORT);
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        (Source::Dhcp, hosts)
    } else if !configured.is_empty() {
        let hosts = configured
            .iter()
            .map(|s| (s.host.as_str().to_owned(), s.port))
            .collect();
        (Source::Configured, hosts)
    } else {
        (
            Source::Default,
            vec![(TimeSettings::DEFAULT_SERVER.to_owned(), TimeServer::PORT)],
        )
    }
}

/// `10.0.2.2:1123`, or `pool.ntp.org (192.0.2.1:123)` when the address says more than the name.
fn who(name: &str, address: SocketAddr) -> String {
    if address.to_string() == name
        || (address.port() == TimeServer::PORT && address.ip().to_string() == name)
    {
        name.to_owned()
    } else {
        format!("{name} ({address})")
    }
}

fn server_text(host: &str, port: u16) -> String {
    match (port, host.contains(':')) {
        (TimeServer::PORT, _) => host.to_owned(),
        (port, true) => format!("[{host}]:{port}"),
        (port, false) => format!("{host}:{port}"),
    }
}

/// The NTP servers each interface's DHCP lease gave (option 42).
static DHCP_SERVERS: Mutex<BTreeMap<String, Vec<Ipv4Addr>>> = Mutex::new(BTreeMap::new());

/// Records the servers `iface`'s lease gave (none when the lease is gone).
pub fn set_dhcp_servers(iface: &str, servers: &[Ipv4Addr]) {
    let mut all = lock(&DHCP_SERVERS);
    if servers.is_empty() {
        all.remove(iface);
    } else {
        all.insert(iface.to_owned(), servers.to_vec());
    }
}

fn dhcp_servers() -> Vec<Ipv4Addr> {
    lock(&DHCP_SERVERS).values().flatten().copied().collect()
}

/// What one poll did, for the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Synced {
        /// The server used (as written) and its address.
        server: String,
        address: SocketAddr,
        source: Source,
        offset: f64,
        delay: f64,
        stratum: u8,
        /// The clock was stepped by `offset` (the first sync of the boot); otherwise slewed.
        stepped: bool,
        /// When, on the corrected clock (Unix seconds).
        at: u64,
        /// The next poll, seconds from now.
        next_poll: u64,
    },
    Failed {
        reason: String,
        source: Source,
        at: u64,
        next_poll: u64,
    },
}

struct Control {
    configured: Vec<TimeServer>,
    /// The configured servers changed: poll at once.
    changed: bool,
}

struct Shared {
    control: Mutex<Control>,
    wake: Condvar,
    /// The clock was stepped this boot: later polls slew (kept here so a restarted thread
    /// does not step again).
    stepped: AtomicBool,
}

/// The handle the engine keeps on the client thread.
pub struct Sntp {
    shared: Arc<Shared>,
}

impl Sntp {
    /// Starts the client thread, asking `configured` when DHCP names no servers.
    pub fn start(events: Sender<Event>, configured: Vec<TimeServer>) -> std::io::Result<Sntp> {
        let shared = Arc::new(Shared {
            control: Mutex::new(Control {
                configured,
                changed: false,
            }),
            wake: Condvar::new(),
            stepped: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        crate::supervise::spawn_supervised("sntp", crate::supervise::Policy::RESTART, move || {
            run(&thread_shared, &events)
        })?;
        Ok(Sntp { shared })
    }

    /// Replaces the configured servers and polls at once.
    pub fn set_servers(&self, configured: Vec<TimeServer>) {
        let mut control = lock(&self.shared.control);
        if control.configured != configured {
            control.configured = configured;
            control.changed = true;
            self.shared.wake.notify_all();
        }
    }
}

/// Per-address state from kiss codes.
#[derive(Default)]
struct Kisses {
    /// `RATE`: not before this instant.
    slowed: BTreeMap<SocketAddr, Instant>,
    /// `DENY`, `RSTR`: never.
    stopped: Vec<SocketAddr>,
}

fn run(shared: &Shared, events: &Sender<Event>) {
    let mut poll = MIN_POLL;
    let mut stable = 0u32;
    let mut failures = 0u32;
    let mut kisses = Kisses::default();
    let mut last_targets: Vec<(String, u16)> = Vec::new();
    loop {
        let configured = {
            let mut control = lock(&shared.control);
            control.changed = false;
            control.configured.clone()
        };
        let (source, targets) = choose(&dhcp_servers(), &configured);
        if targets != last_targets {
            kisses = Kisses::default();
            poll = MIN_POLL;
            stable = 0;
            last_targets = targets.clone();
        }
        let result = poll_once(&targets, &mut kisses, poll).and_then(|sample| {
            let stepped = apply(&sample, &shared.stepped)?;
            Ok((sample, stepped))
        });
        let wait = match result {
            Ok((sample, stepped)) => {
                failures = 0;
                if sample.offset.abs() < STABLE_OFFSET && !stepped {
                    stable += 1;
                    if stable >= 4 && poll < MAX_POLL {
                        poll = (poll * 2).min(MAX_POLL);
                        stable = 0;
                    }
                } else {
                    stable = 0;
                    poll = MIN_POLL;
                }
                let report = Report::Synced {
                    server: sample.server.clone(),
                    address: sample.address,
                    source,
                    offset: sample.offset,
                    delay: sample.delay,
                    stratum: sample.stratum,
                    stepped,
                    at: now(),
                    next_poll: poll.as_secs(),
                };
                if events.send(Event::Clock(report)).is_err() {
                    return;
                }
                poll
            }
            Err(reason) => {
                failures = failures.saturating_add(1);
                // Sooner than a poll: 8 s, 16 s, 32 s, then every 64 s.
                let retry =
                    Duration::from_secs(8u64 << failures.saturating_sub(1).min(3)).min(poll);
                let report = Report::Failed {
                    reason,
                    source,
                    at: now(),
                    next_poll: retry.as_secs(),
                };
                if events.send(Event::Clock(report)).is_err() {
                    return;
                }
                retry
            }
        };
        let deadline = Instant::now() + wait;
        let mut control = lock(&shared.control);
        while !control.changed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            control = match shared.wake.wait_timeout(control, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

fn now() -> u64 {
    clock::now_f64() as u64
}

/// Asks every address of every target once and picks the sample to use.
fn poll_once(
    targets: &[(String, u16)],
    kisses: &mut Kisses,
    poll: Duration,
) -> Result<Sample, String> {
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for (host, port) in targets {
        let name = server_text(host, *port);
        let addresses: Vec<SocketAddr> = match (host.as_str(), *port).to_socket_addrs() {
            Ok(found) => found.take(ADDRESSES_PER_NAME).collect(),
            Err(e) => {
                problems.push(format!("{name}: cannot resolve: {e}"));
                continue;
            }
        };
        if addresses.is_empty() {
            problems.push(format!("{name}: the name has no address"));
        }
        for address in addresses {
            let peer = who(&name, address);
            if kisses.stopped.contains(&address) {
                problems.push(format!("{peer}: denied us; not asked again"));
                continue;
            }
            if kisses
                .slowed
                .get(&address)
                .is_some_and(|until| Instant::now() < *until)
            {
                problems.push(format!("{peer}: asked us to slow down"));
                continue;
            }
            match ask(&name, address) {
                Ok(sample) => samples.push(sample),
                Err(Asked::Refused(Refusal::Kiss(code))) => {
                    let what = match kiss(&code) {
                        Kiss::SlowDown => {
                            let until = Instant::now() + (poll * 4).max(MAX_POLL);
                            kisses.slowed.insert(address, until);
                            "asking it less often"
                        }
                        Kiss::Stop => {
                            kisses.stopped.push(address);
                            "not asking it again"
                        }
                        Kiss::Other => "answer not used",
                    };
                    log::warn!(
                        "sntp: {peer} sent kiss-of-death {}: {what}",
                        kiss_text(&code)
                    );
                    problems.push(format!("{peer}: kiss-of-death {}", kiss_text(&code)));
                }
                Err(Asked::Refused(refusal)) => problems.push(format!("{peer}: {refusal}")),
                Err(Asked::Failed(e)) => problems.push(format!("{peer}: {e}")),
            }
        }
    }
    if samples.is_empty() {
        return Err(if problems.is_empty() {
            "no server to ask".into()
        } else {
            problems.join("; ")
        });
    }
    for problem in &problems {
        log::info!("sntp: {problem}");
    }
    select(&samples)
}

enum Asked {
    Refused(Refusal),
    Failed(String),
}

/// Sends one request to `address` and waits for its answer.
fn ask(name: &str, address: SocketAddr) -> Result<Sample, Asked> {
    let failed = |what: &str, e: std::io::Error| Asked::Failed(format!("{what}: {e}"));
    let local: SocketAddr = if address.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(|e| failed("cannot open a socket", e))?;
    // Connected: the kernel passes on datagrams from that address only.
    socket
        .connect(address)
        .map_err(|e| failed("cannot reach it", e))?;
    let t1 = ntp_time(clock::now_f64());
    socket
        .send(&request(t1))
        .map_err(|e| failed("cannot send", e))?;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Asked::Failed(format!(
                "no answer in {} s",
                ANSWER_TIMEOUT.as_secs()
            )));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| failed("cannot wait", e))?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(failed("no answer", e)),
        };
        let t4 = ntp_time(clock::now_f64());
        let answer = match parse(&buf[..len]) {
            Ok(answer) => answer,
            Err(e) => {
                crate::peer_log!(
                    log::Level::Warn,
                    "sntp: malformed packets",
                    "sntp: dropped a packet from {address}: {e}"
                );
                continue;
            }
        };
        match check(&answer, t1) {
            Ok(()) => {}
            Err(Refusal::Origin) => {
                // Not an answer to this request (a late or forged one): wait for ours.
                crate::peer_log!(
                    log::Level::Warn,
                    "sntp: stray answers",
                    "sntp: dropped an answer from {address}: {}",
                    Refusal::Origin
                );
                continue;
            }
            Err(refusal) => return Err(Asked::Refused(refusal)),
        }
        let (offset, delay) = measure(&answer, t1, t4);
        return Ok(Sample {
            server: name.to_owned(),
            address,
            offset,
            delay,
            stratum: answer.stratum,
            root_distance: short(answer.root_delay) / 2.0 + short(answer.root_dispersion),
        });
    }
}

/// Sets the clock from `sample`: a step the first time this boot, a slew afterwards; then
/// marks it synchronized. Returns whether it stepped.
fn apply(sample: &Sample, stepped: &AtomicBool) -> Result<bool, String> {
    let step = !stepped.load(Ordering::SeqCst);
    if step {
        clock::step(sample.offset)?;
        stepped.store(true, Ordering::SeqCst);
        log::info!(
            "sntp: clock stepped by {:+.3} s from {} ({})",
            sample.offset,
            sample.server,
            sample.address
        );
    } else {
        clock::slew(sample.offset)?;
        log::debug!(
            "sntp: slewing {:+.6} s from {} ({})",
            sample.offset,
            sample.server,
            sample.address
        );
    }
    clock::mark_synchronized(true, sample.delay / 2.0 + sample.root_distance)?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's answer to a request sent at `t1` (NTP time), the server's clock `offset`
    /// seconds ahead and the network `delay` seconds each way.
    fn answer_to(t1: u64, offset: f64, delay: f64) -> Vec<u8> {
        let at = |secs: f64| {
            let shift = (secs * 4_294_967_296.0) as i64;
            t1.wrapping_add(shift as u64)
        };
        let mut b = vec![0u8; PACKET_LEN];
        b[0] = (4 << 3) | 4; // no leap warning, version 4, server
        b[1] = 2;
        b[2] = 6;
        b[3] = 0xec;
        b[12..16].copy_from_slice(&[192, 168, 1, 1]);
        b[16..24].copy_from_slice(&at(offset - 10.0).to_be_bytes());
        b[24..32].copy_from_slice(&t1.to_be_bytes());
        b[32..40].copy_from_slice(&at(offset + delay).to_be_bytes());
        b[40..48].copy_from_slice(&at(offset + delay + 0.001).to_be_bytes());
        b
    }

    fn offset_of(bytes: &[u8], t1: u64, delay: f64) -> (f64, f64) {
        let p = parse(bytes).unwrap();
        check(&p, t1).unwrap();
        let t4 = t1.wrapping_add(((2.0 * delay + 0.001) * 4_294_967_296.0) as u64);
        measure(&p, t1, t4)
    }

    #[test]
    fn requests_and_timestamps() {
        let t = ntp_time(1_795_766_383.5);
        assert_eq!(t >> 32, 1_795_766_383 + NTP_TO_UNIX);
        assert_eq!(t & 0xffff_ffff, 0x8000_0000);
        let r = request(t);
        assert_eq!(r[0], 0x23, "version 4, client mode");
        assert!(r[1..40].iter().all(|b| *b == 0));
        assert_eq!(parse(&r).unwrap().transmit, t);
        // After the 2036 era wrap, differences still come out right.
        let before = ntp_time(2_085_978_495.0); // 2036-02-07 06:28:15 UTC
        let after = ntp_time(2_085_978_497.0);
        assert!(after < before);
        assert_eq!(diff(after, before), 2.0);
    }

    #[test]
    fn a_good_answer_gives_the_offset_and_delay() {
        let t1 = ntp_time(1_795_766_383.25);
        let (offset, delay) = offset_of(&answer_to(t1, 3600.0, 0.05), t1, 0.05);
        assert!((offset - 3600.0).abs() < 1e-6, "{offset}");
        assert!((delay - 0.1).abs() < 1e-6, "{delay}");
        let (offset, _) = offset_of(&answer_to(t1, -2.5, 0.01), t1, 0.01);
        assert!((offset + 2.5).abs() < 1e-6, "{offset}");
    }

    #[test]
    fn refusals() {
        let t1 = ntp_time(1_795_766_383.0);
        let good = answer_to(t1, 0.2, 0.01);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            check(&parse(&b).unwrap(), t1)
        };
        assert_eq!(with(&|_| {}), Ok(()));
        // Mode 3 (a client) and 5 (broadcast) are not answers.
        assert_eq!(with(&|b| b[0] = (4 << 3) | 3), Err(Refusal::NotServer(3)));
        assert_eq!(with(&|b| b[0] = (4 << 3) | 5), Err(Refusal::NotServer(5)));
        assert_eq!(with(&|b| b[0] = 4), Err(Refusal::Version(0)));
        // Version 3 servers are fine.
        assert_eq!(with(&|b| b[0] = (3 << 3) | 4), Ok(()));
        assert_eq!(with(&|b| b[31] ^= 1), Err(Refusal::Origin));
        assert_eq!(
            with(&|b| b[0] = (3 << 6) | (4 << 3) | 4),
            Err(Refusal::Unsynchronized)
        );
        assert_eq!(with(&|b| b[1] = 16), Err(Refusal::Stratum(16)));
        assert_eq!(with(&|b| b[1] = 255), Err(Refusal::Stratum(255)));
        assert_eq!(with(&|b| b[40..48].fill(0)), Err(Refusal::NoTransmit));
        // Kiss-of-death: stratum 0, the code in the reference id (usually with LI 3).
        for (code, meaning) in [
            (*b"RATE", Kiss::SlowDown),
            (*b"DENY", Kiss::Stop),
            (*b"RSTR", Kiss::Stop),
            (*b"INIT", Kiss::Other),
        ] {
            let refused = with(&|b| {
                b[0] = (3 << 6) | (4 << 3) | 4;
                b[1] = 0;
                b[12..16].copy_from_slice(&code);
            });
            assert_eq!(refused, Err(Refusal::Kiss(code)));
            assert_eq!(kiss(&code), meaning);
            assert!(refused
                .unwrap_err()
                .to_string()
                .contains(std::str::from_utf8(&code).unwrap()));
        }
        // A kiss that does not echo our request is not ours: it cannot silence a server.
        assert_eq!(
            with(&|b| {
                b[1] = 0;
                b[12..16].copy_from_slice(b"DENY");
                b[24..32].fill(0);
            }),
            Err(Refusal::Origin)
        );
        assert_eq!(parse(&good[..47]), Err(PacketError::TooShort(47)));
        // Extension fields and a MAC after the header are ignored.
        let mut long = good.clone();
        long.extend_from_slice(&[0u8; 20]);
        assert_eq!(check(&parse(&long).unwrap(), t1), Ok(()));
    }

    fn sample(server: &str, offset: f64, delay: f64) -> Sample {
        Sample {
            server: server.to_owned(),
            address: "10.0.0.1:123".parse().unwrap(),
            offset,
            delay,
            stratum: 2,
            root_distance: 0.01,
        }
    }

    #[test]
    fn servers_that_disagree_are_refused() {
        assert!(select(&[]).is_err());
        assert_eq!(select(&[sample("a", 5.0, 0.1)]).unwrap().server, "a");
        // Two that agree: the shorter round trip wins.
        let both = [sample("a", 0.30, 0.2), sample("b", 0.25, 0.05)];
        assert_eq!(select(&both).unwrap().server, "b");
        // Two that disagree: no majority.
        let e = select(&[sample("a", 0.0, 0.1), sample("b", 3600.0, 0.01)]).unwrap_err();
        assert!(e.contains("disagree") && e.contains("a +0.000 s"), "{e}");
        // Three with one far off: the two that agree win, however short the outlier's trip.
        let three = [
            sample("a", 0.1, 0.2),
            sample("b", 0.4, 0.3),
            sample("c", 50.0, 0.001),
        ];
        assert_eq!(select(&three).unwrap().server, "a");
        // Three spread out: refused.
        assert!(select(&[
            sample("a", 0.0, 0.1),
            sample("b", 2.0, 0.1),
            sample("c", 4.0, 0.1)
        ])
        .is_err());
        // Four, two and two: no majority.
        assert!(select(&[
            sample("a", 0.0, 0.1),
            sample("b", 0.5, 0.1),
            sample("c", 10.0, 0.1),
            sample("d", 10.5, 0.1)
        ])
        .is_err());
    }

    #[test]
    fn servers_come_from_dhcp_then_the_configuration_then_the_default() {
        let configured = vec![TimeServer::parse("10.0.2.2:1123").unwrap()];
        let dhcp = [
            "192.168.1.1".parse().unwrap(),
            "192.168.1.1".parse().unwrap(),
        ];
        assert_eq!(
            choose(&dhcp, &configured),
            (Source::Dhcp, vec![("192.168.1.1".to_owned(), 123)])
        );
        assert_eq!(
            choose(&[], &configured),
            (Source::Configured, vec![("10.0.2.2".to_owned(), 1123)])
        );
        assert_eq!(
            choose(&[], &[]),
            (Source::Default, vec![("pool.ntp.org".to_owned(), 123)])
        );
        assert_eq!(server_text("fd00::1", 124), "[fd00::1]:124");
        assert_eq!(server_text("10.0.2.2", 123), "10.0.2.2");
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(who("10.0.2.2:1123", at("10.0.2.2:1123")), "10.0.2.2:1123");
        assert_eq!(who("10.0.2.2", at("10.0.2.2:123")), "10.0.2.2");
        assert_eq!(
            who("pool.ntp.org", at("192.0.2.1:123")),
            "pool.ntp.org (192.0.2.1:123)"
        );
    }

    /// Random datagrams never panic the parser or the checks.
    #[test]
    fn random_datagrams_never_panic() {
        let mut state = 0x5eed_0123_4567_89abu64;
        let t1 = ntp_time(1_795_766_383.0);
        for round in 0..20_000 {
            let len = (round % 80) as usize;
            let mut bytes = tank_probe::samples::noise(&mut state, len);
            if round % 3 == 0 && bytes.len() >= PACKET_LEN {
                // Often a server answer to us, so the checks past the origin run too.
                bytes[0] = (bytes[0] & 0xf8) | 4;
                bytes[24..32].copy_from_slice(&t1.to_be_bytes());
            }
            if let Ok(p) = parse(&bytes) {
                if check(&p, t1).is_ok() {
                    let (offset, delay) = measure(&p, t1, t1);
                    assert!(offset.is_finite() && delay.is_finite() && delay >= 0.0);
                }
            }
        }
    }

    /// A real exchange over loopback with a responder that answers with a known offset.
    #[test]
    fn asks_a_server_over_udp() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = server.local_addr().unwrap();
        let responder = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (len, from) = server.recv_from(&mut buf).unwrap();
            let request = parse(&buf[..len]).unwrap();
            assert_eq!(request.mode, 3);
            // A garbage datagram first (dropped), then the answer.
            server.send_to(b"junk", from).unwrap();
            server
                .send_to(&answer_to(request.transmit, 42.0, 0.0), from)
                .unwrap();
        });
        let sample = ask("test", address).unwrap_or_else(|_| panic!("no sample"));
        responder.join().unwrap();
        assert!((sample.offset - 42.0).abs() < 0.5, "{sample:?}");
        assert_eq!(sample.stratum, 2);
    }
}
