//! The DHCPv4 client: the pure state machine (`machine`), the wire format (`packet`), and the
//! driver loop here that joins them to a UDP socket, the clock and rtnetlink.
//!
//! One driver runs per interface in its own thread, with its own socket bound to
//! `0.0.0.0:68` on that interface (`SO_BINDTODEVICE`), so several interfaces can run DHCP at
//! once. Requests ask servers to broadcast their replies, because an interface without an
//! address would drop unicast ones. The loop wakes at least every [`POLL`] to notice a stop.

pub mod machine;
pub mod packet;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use machine::{Action, Lease, Machine};
use packet::{Destination, Identity, CLIENT_PORT, SERVER_PORT};
use socket2::{Domain, Protocol, Socket, Type};

use super::iface::{configure, deconfigure, Addressing, IfaceCtx};
use super::rtnl::{Origin, Rtnl};
use super::settings::{dhcp_hostname, in_subnet};
use super::{lock, random};

/// The longest the driver sleeps without checking whether it must stop.
const POLL: Duration = Duration::from_millis(100);

/// Opens the client socket for one interface.
fn open_socket(iface: &str) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(iface.as_bytes()))?;
    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT).into())?;
    Ok(socket.into())
}

/// Runs the client on one interface until `ctx.stop` is set, then releases the lease.
pub fn run(ctx: &IfaceCtx, rtnl: &mut Rtnl, index: u32, mac: [u8; 6]) {
    let socket = loop {
        match open_socket(ctx.name.as_str()) {
            Ok(socket) => break socket,
            Err(e) => ctx.fail(format!(
                "{}: cannot open the DHCP socket (UDP port {CLIENT_PORT}): {e}",
                ctx.name
            )),
        }
        if ctx.sleep(Duration::from_secs(1)) {
            return;
        }
    };
    let mut machine = Machine::new(ctx.name.as_str(), mac, Box::new(random::random_u32));
    let mut actions = machine.start(Instant::now());
    let mut buf = vec![0u8; 2048];
    loop {
        for action in actions.drain(..) {
            execute(ctx, rtnl, &socket, index, mac, action);
        }
        lock(&ctx.record).dhcp = Some(machine.view());
        if ctx.stopped() {
            for action in machine.release(Instant::now()) {
                execute(ctx, rtnl, &socket, index, mac, action);
            }
            lock(&ctx.record).dhcp = Some(machine.view());
            return;
        }
        let now = Instant::now();
        let wait = machine
            .deadline()
            .map_or(POLL, |d| d.saturating_duration_since(now))
            .clamp(Duration::from_millis(1), POLL);
        if let Err(e) = socket.set_read_timeout(Some(wait)) {
            // Never wait on the socket without a timeout: that could block a stop forever.
            log::warn!("net: {}: cannot set the DHCP socket timeout: {e}", ctx.name);
            ctx.sleep(POLL);
            actions.extend(machine.on_timer(Instant::now()));
            continue;
        }
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => match packet::parse_reply(&buf[..len]) {
                Ok(reply) => actions = machine.on_reply(Instant::now(), &reply),
                Err(e) => log::warn!("net: {}: dropped a packet from {from}: {e}", ctx.name),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!("net: {}: DHCP socket receive failed: {e}", ctx.name);
                ctx.sleep(POLL);
            }
        }
        actions.extend(machine.on_timer(Instant::now()));
    }
}

/// Carries out one action of the state machine.
fn execute(
    ctx: &IfaceCtx,
    rtnl: &mut Rtnl,
    socket: &UdpSocket,
    index: u32,
    mac: [u8; 6],
    action: Action,
) {
    match action {
        Action::Send(out) => {
            let hostname = lock(&ctx.shared.hostname).clone();
            let identity = Identity {
                mac,
                hostname: dhcp_hostname(&hostname).map(str::to_owned),
            };
            let bytes = match packet::encode(&out, &identity) {
                Ok(bytes) => bytes,
                Err(e) => {
                    log::warn!("net: {}: {e}", ctx.name);
                    return;
                }
            };
            let to = match out.to {
                Destination::Broadcast => Ipv4Addr::BROADCAST,
                Destination::Unicast(server) => server,
            };
            if let Err(e) = socket.send_to(&bytes, SocketAddrV4::new(to, SERVER_PORT)) {
                log::warn!(
                    "net: {}: sending DHCP {:?} to {to} failed: {e}",
                    ctx.name,
                    out.kind
                );
            } else {
                log::debug!(
                    "net: {}: sent DHCP {:?} (xid {:#010x}) to {to}",
                    ctx.name,
                    out.kind,
                    out.xid
                );
            }
        }
        Action::Configure(lease) => {
            if let Err(e) = configure(ctx, rtnl, index, &addressing(&lease)) {
                ctx.fail(e.to_string());
            }
        }
        Action::Deconfigure(_) => {
            // The machine has logged why; the record knows what to remove.
            if let Err(e) = deconfigure(ctx, rtnl) {
                ctx.fail(e.to_string());
            }
        }
    }
}

/// What a lease puts on the interface: the first router inside the subnet is the gateway.
pub fn addressing(lease: &Lease) -> Addressing {
    let gateway = lease
        .routers
        .iter()
        .copied()
        .find(|r| in_subnet(lease.address, lease.prefix, *r) && *r != lease.address)
        .or_else(|| lease.routers.first().copied());
    Addressing {
        address: lease.address,
        prefix: lease.prefix,
        gateway,
        dns: lease.dns.clone(),
        ntp: lease.ntp.clone(),
        domain: lease.domain.clone(),
        origin: Origin::Dhcp,
    }
}
