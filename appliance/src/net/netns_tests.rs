//! End-to-end test of [`Network`] against a real DHCP server (dnsmasq) in network namespaces.
//!
//! Gated by `TANK_NETNS_TESTS=1` because it needs root, `ip` (iproute2) and `dnsmasq`
//! (`apt-get install -y dnsmasq-base`). It creates two namespaces of its own, joined by a veth
//! pair: the server side runs dnsmasq on 192.168.77.1/24, the client side is where this test's
//! thread moves (`setns`) before starting [`Network`], so the worker threads live there too.
//! Nothing outside those two namespaces is touched, and the resolver file goes to a temporary
//! directory.

#![cfg(test)]

use std::fs::{self, File};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

const GATE: &str = "TANK_NETNS_TESTS";

/// Prints the module's log lines, so a failing run shows what the workers did.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("[{}] {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

/// Runs a command and panics with its output if it fails.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespaces, dnsmasq and the temporary directory; removed on drop, even after a panic.
struct Lab {
    server_ns: String,
    client_ns: String,
    dir: PathBuf,
    dnsmasq: Option<Child>,
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("tank-netns-{id}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temporary directory");
        let mut lab = Lab {
            server_ns: format!("tank-srv-{id}"),
            client_ns: format!("tank-cli-{id}"),
            dir,
            dnsmasq: None,
        };
        let (s, c) = (lab.server_ns.clone(), lab.client_ns.clone());
        run(&["ip", "netns", "add", &s]);
        run(&["ip", "netns", "add", &c]);
        // The appliance kernel has reverse-path filtering off; make the client side match.
        for key in ["all", "default"] {
            run(&[
                "ip",
                "netns",
                "exec",
                &c,
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{key}.rp_filter=0"),
            ]);
        }
        run(&[
            "ip", "link", "add", "srv0", "netns", &s, "type", "veth", "peer", "name", "eth0",
            "netns", &c,
        ]);
        run(&[
            "ip",
            "-n",
            &s,
            "addr",
            "add",
            "192.168.77.1/24",
            "dev",
            "srv0",
        ]);
        run(&["ip", "-n", &s, "link", "set", "srv0", "up"]);
        run(&["ip", "-n", &s, "link", "set", "lo", "up"]);
        let log = File::create(lab.dir.join("dnsmasq.log")).expect("log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &s,
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
            ])
            .args([
                "--port=0",
                "--interface=srv0",
                "--bind-interfaces",
                "--log-dhcp",
            ])
            .arg("--log-facility=-")
            .arg("--dhcp-range=192.168.77.50,192.168.77.99,255.255.255.0,2m")
            .arg("--dhcp-option=option:router,192.168.77.1")
            .arg("--dhcp-option=option:dns-server,192.168.77.53")
            .arg("--dhcp-option=option:domain-name,tank.test")
            .arg(format!("--dhcp-leasefile={}", lab.leases().display()))
            .arg(format!(
                "--pid-file={}",
                lab.dir.join("dnsmasq.pid").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dnsmasq starts");
        lab.dnsmasq = Some(child);
        lab
    }

    fn leases(&self) -> PathBuf {
        self.dir.join("leases")
    }

    fn lease_text(&self) -> String {
        fs::read_to_string(self.leases()).unwrap_or_default()
    }

    fn dnsmasq_log(&self) -> String {
        fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// Moves the calling thread into the client namespace; threads it starts later follow.
    fn enter_client(&self) {
        let ns = File::open(format!("/var/run/netns/{}", self.client_ns)).expect("netns file");
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns into the client namespace");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            // `ip netns exec` execs dnsmasq, so this is dnsmasq's own pid.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server_ns])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client_ns])
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Polls `status()` until `eth0` satisfies `done`, or panics after `limit`.
fn wait_for(
    network: &Network,
    lab: &Lab,
    limit: Duration,
    done: impl Fn(&LinkStatus) -> bool,
) -> LinkStatus {
    let start = Instant::now();
    loop {
        let status = network.status();
        if let Some(eth0) = status.iter().find(|l| l.name == "eth0") {
            if done(eth0) {
                return eth0.clone();
            }
            if start.elapsed() > limit {
                panic!(
                    "eth0 never got there: {eth0}\ndnsmasq log:\n{}",
                    lab.dnsmasq_log()
                );
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("valid address")
}

fn in_pool(address: Ipv4Addr) -> bool {
    (50..=99).contains(&address.octets()[3]) && address.octets()[..3] == [192, 168, 77]
}

#[test]
fn dhcp_static_and_back_against_dnsmasq() {
    const TEST: &str = "the DHCP client's network namespace suite";
    if !tank_test_gate::enabled(GATE, TEST, "root, ip and dnsmasq")
        || !tank_test_gate::tool(TEST, "ip", "iproute2")
        || !tank_test_gate::tool(TEST, "dnsmasq", "dnsmasq-base")
    {
        return;
    }
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let lab = Lab::new();
    lab.enter_client();
    let resolv = lab.dir.join("resolv.conf");
    let options = NetOptions {
        resolv_conf: Some(resolv.clone()),
        carrier_wait: Duration::from_secs(2),
        rescan_every: Duration::from_secs(2),
    };
    let dhcp = NetSettings {
        hostname: "tank-test".to_owned(),
        interfaces: vec![IfaceSettings {
            name: "eth0".to_owned(),
            method: Method::Dhcp,
        }],
    };

    // Start returns at once, long before DHCP is done.
    let started = Instant::now();
    let network = Network::start_with(dhcp.clone(), options);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "start took {:?}",
        started.elapsed()
    );

    let bound = |l: &LinkStatus| {
        matches!(
            l.method,
            MethodStatus::Dhcp {
                state: DhcpState::Bound { .. }
            }
        ) && !l.addresses.is_empty()
    };
    let eth0 = wait_for(&network, &lab, Duration::from_secs(20), bound);
    eprintln!("{eth0}");
    let (leased, prefix) = eth0.addresses[0];
    assert!(in_pool(leased), "{eth0}");
    assert_eq!(prefix, 24);
    assert_eq!(eth0.gateway, Some(ip("192.168.77.1")));
    assert_eq!(eth0.dns, vec![ip("192.168.77.53")]);
    assert!(eth0.up && eth0.carrier);
    let MethodStatus::Dhcp {
        state:
            DhcpState::Bound {
                server,
                lease_secs,
                renew_in_secs,
            },
    } = eth0.method.clone()
    else {
        panic!("not bound: {eth0}");
    };
    assert_eq!(server, ip("192.168.77.1"));
    assert_eq!(lease_secs, 120);
    assert!((55..=60).contains(&renew_in_secs), "{eth0}");
    let text = fs::read_to_string(&resolv).expect("resolv.conf written");
    assert!(text.contains("nameserver 192.168.77.53\n"), "{text}");
    assert!(text.contains("search tank.test\n"), "{text}");
    // dnsmasq recorded our MAC and the hostname we sent (option 12).
    let leases = lab.lease_text();
    assert!(
        leases.contains(&eth0.mac) && leases.contains("tank-test"),
        "{leases}"
    );
    let lo = network
        .status()
        .into_iter()
        .find(|l| l.name == "lo")
        .expect("lo listed");
    assert!(
        lo.up && lo.addresses.contains(&(ip("127.0.0.1"), 8)),
        "{lo}"
    );

    // Renewal at T1 (60 s into the 2 minute lease) by unicast to the server; slow, so asked
    // for separately.
    if std::env::var("TANK_NETNS_RENEW").as_deref() == Ok("1") {
        let acks = lab.dnsmasq_log().matches("DHCPACK").count();
        let eth0 = wait_for(&network, &lab, Duration::from_secs(75), |l| {
            lab.dnsmasq_log().matches("DHCPACK").count() > acks
                && matches!(
                    l.method,
                    MethodStatus::Dhcp { state: DhcpState::Bound { renew_in_secs, .. } }
                        if renew_in_secs > 30
                )
        });
        eprintln!("{eth0}");
        assert_eq!(eth0.addresses, vec![(leased, 24)]);
        assert!(lab
            .dnsmasq_log()
            .contains(&format!("DHCPREQUEST(srv0) {leased}")));
    } else {
        eprintln!("renewal not exercised: set TANK_NETNS_RENEW=1 as well (takes a minute)");
    }

    // Applying the same settings again changes nothing.
    network.apply(dhcp.clone()).expect("same settings");
    assert!(bound(&wait_for(
        &network,
        &lab,
        Duration::from_secs(1),
        |_| true
    )));

    // Invalid settings are refused and leave the interface as it was.
    let mut bad = dhcp.clone();
    bad.interfaces[0].method = Method::Static {
        address: ip("192.168.77.10"),
        prefix: 24,
        gateway: Some(ip("10.9.9.9")),
        dns: vec![],
    };
    let err = network.apply(bad).expect_err("gateway outside the subnet");
    assert!(err.to_string().contains("eth0"), "{err}");
    let mut missing = dhcp.clone();
    missing.interfaces[0].name = "eth7".to_owned();
    assert!(matches!(network.apply(missing), Err(NetError::NoSuchInterface(n)) if n == "eth7"));
    let eth0 = wait_for(&network, &lab, Duration::from_secs(1), |_| true);
    assert!(
        bound(&eth0) && eth0.addresses == vec![(leased, 24)],
        "{eth0}"
    );

    // Switch to static: the lease is released and its address replaced.
    let mut fixed = dhcp.clone();
    fixed.interfaces[0].method = Method::Static {
        address: ip("192.168.77.10"),
        prefix: 24,
        gateway: Some(ip("192.168.77.1")),
        dns: vec![ip("192.168.77.54")],
    };
    network.apply(fixed).expect("static settings");
    let eth0 = wait_for(&network, &lab, Duration::from_secs(3), |l| {
        l.method == MethodStatus::Static && l.addresses == vec![(ip("192.168.77.10"), 24)]
    });
    eprintln!("{eth0}");
    assert_eq!(eth0.gateway, Some(ip("192.168.77.1")));
    assert_eq!(eth0.dns, vec![ip("192.168.77.54")]);
    let text = fs::read_to_string(&resolv).expect("resolv.conf");
    assert!(
        text.contains("nameserver 192.168.77.54\n") && !text.contains(".53"),
        "{text}"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while lab.lease_text().contains(&eth0.mac) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        lab.dnsmasq_log().contains("DHCPRELEASE"),
        "dnsmasq saw no release:\n{}",
        lab.dnsmasq_log()
    );

    // And back to DHCP.
    network.apply(dhcp).expect("dhcp again");
    let eth0 = wait_for(&network, &lab, Duration::from_secs(20), bound);
    eprintln!("{eth0}");
    assert!(in_pool(eth0.addresses[0].0), "{eth0}");
    assert!(
        !eth0.addresses.contains(&(ip("192.168.77.10"), 24)),
        "{eth0}"
    );

    // Shutdown: bounded, the lease released, the address and route gone.
    let releases_before = lab.dnsmasq_log().matches("DHCPRELEASE").count();
    let stopping = Instant::now();
    network.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        stopping.elapsed()
    );
    let eth0 = network
        .status()
        .into_iter()
        .find(|l| l.name == "eth0")
        .expect("eth0 still listed");
    assert!(
        eth0.addresses.is_empty() && eth0.gateway.is_none(),
        "{eth0}"
    );
    assert_eq!(eth0.method, MethodStatus::Unmanaged);
    let deadline = Instant::now() + Duration::from_secs(2);
    while lab.dnsmasq_log().matches("DHCPRELEASE").count() == releases_before
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(lab.dnsmasq_log().matches("DHCPRELEASE").count() > releases_before);
    assert!(matches!(
        network.apply(NetSettings::default()),
        Err(NetError::Stopped)
    ));
}
