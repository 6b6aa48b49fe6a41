//! Host tests with the real Debian clients: `rpcinfo` (package rpcbind) and `showmount`
//! (package nfs-common) against the services on 127.0.0.1 and ::1, rpcbind on port 111.
//!
//! showmount and rpcinfo find every service through port 111, so these tests must bind it:
//! they need root and no other rpcbind on the host. They run whenever the tests run; if the
//! tools are missing or port 111 is held they fail and say so, rather than pass unseen.

use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::test_util::sample_exports;
use super::{start_with, Netid, RpcConfig, RpcError, RpcServices, NFS_PROGRAM};

/// Runs a client; returns its exit success, standard output and standard error.
fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program}: {e}; install Debian's rpcbind (rpcinfo) and nfs-common \
                 (showmount) packages"
            )
        });
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let result = (out.status.success(), text(&out.stdout), text(&out.stderr));
    eprintln!("$ {program} {}\n{}{}", args.join(" "), result.1, result.2);
    result
}

/// The services on loopback with rpcbind on port 111, waiting a little for another run of
/// this test to let go of the port, and failing loudly if something else holds it.
fn start_on_111() -> RpcServices {
    let config = RpcConfig {
        ipv4: Some(Ipv4Addr::LOCALHOST),
        ipv6: Some(Ipv6Addr::LOCALHOST),
        rpcbind_port: 111,
        mount_port: 0,
        ..RpcConfig::default()
    };
    let exports = Arc::new(sample_exports);
    let start = Instant::now();
    loop {
        match start_with(&config, exports.clone()) {
            Ok(services) => return services,
            Err(RpcError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && start.elapsed() < Duration::from_secs(20) =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                let holder = run("ss", &["-ltnup", "sport = :111"]).1;
                panic!(
                    "the rpcbind host test needs port 111 on loopback (as root, with no rpcbind \
                     running): {e}\n{holder}"
                );
            }
        }
    }
}

/// The rows of a table `rpcinfo` printed, split at white space, without the header.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn row(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

/// A port on 127.0.0.1 that accepts one connection and closes it; returns the port and a
/// thread that says whether a connection came within 10 s.
fn one_shot_listener() -> (u16, std::thread::JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let seen = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match listener.accept() {
                Ok(_) => return true,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    });
    (port, seen)
}

#[test]
fn real_rpcinfo_and_showmount() {
    let services = start_on_111();
    let mount_port = services.mount_port().to_string();
    let ipv6 = TcpListener::bind("[::1]:0").is_ok();

    // Before nfs is registered, Proxmox's vers=4 probe learns that from rpcbind.
    let (ok, _, err) = run("rpcinfo", &["-T", "tcp", "127.0.0.1", "nfs", "4"]);
    assert!(!ok && err.contains("Program not registered"), "{err}");

    // With nfs registered, the probe asks rpcbind (GETADDR) and then calls NULL at the
    // address it got: here a listener that closes the connection, since this host runs no
    // nfsd. That the listener saw rpcinfo arrive shows GETADDR gave the registered port.
    let (port, seen) = one_shot_listener();
    services.register(NFS_PROGRAM, 4, Netid::Tcp, port);
    let (ok, _, err) = run("rpcinfo", &["-T", "tcp", "127.0.0.1", "nfs", "4"]);
    assert!(!ok, "no nfsd answers NULL here");
    assert!(!err.contains("not registered"), "{err}");
    assert!(
        seen.join().unwrap(),
        "rpcinfo never connected to the registered nfs port"
    );
    services.register(NFS_PROGRAM, 4, Netid::Tcp, 2049);

    // rpcinfo -p: portmapper v2 DUMP, through a GETADDR for rpcbind itself.
    let (ok, out, _) = run("rpcinfo", &["-p", "127.0.0.1"]);
    assert!(ok);
    let mut want = Vec::new();
    for proto in ["tcp", "udp"] {
        for vers in ["4", "3", "2"] {
            want.push(row(&["100000", vers, proto, "111", "portmapper"]));
        }
    }
    for proto in ["tcp", "udp"] {
        for vers in ["3", "1"] {
            want.push(row(&["100005", vers, proto, &mount_port, "mountd"]));
        }
    }
    want.push(row(&["100003", "4", "tcp", "2049", "nfs"]));
    assert_eq!(rows(&out), want);

    // rpcinfo (rpcbind v4/v3 DUMP), -s and -l (GETADDRLIST).
    let (ok, out, _) = run("rpcinfo", &["127.0.0.1"]);
    assert!(ok);
    let dump = rows(&out);
    assert!(dump.contains(&row(&[
        "100003",
        "4",
        "tcp",
        "0.0.0.0.8.1",
        "nfs",
        "superuser"
    ])));
    assert!(dump.contains(&row(&[
        "100000",
        "2",
        "udp",
        "0.0.0.0.0.111",
        "portmapper",
        "superuser"
    ])));
    assert_eq!(dump.len(), if ipv6 { 19 } else { 11 }, "{out}");
    let (ok, out, _) = run("rpcinfo", &["-s", "127.0.0.1"]);
    assert!(ok);
    let netids = if ipv6 { "udp6,tcp6,udp,tcp" } else { "udp,tcp" };
    assert_eq!(
        rows(&out),
        [
            row(&["100000", "2,3,4", netids, "portmapper", "superuser"]),
            row(&["100005", "1,3", netids, "mountd", "superuser"]),
            row(&["100003", "4", "tcp", "nfs", "superuser"]),
        ]
    );
    let (ok, out, _) = run("rpcinfo", &["-l", "127.0.0.1", "100003", "4"]);
    assert!(ok);
    assert_eq!(
        rows(&out),
        [row(&[
            "100003",
            "4",
            "inet/tcp/cots_ord",
            "127.0.0.1.8.1",
            "nfs"
        ])]
    );

    // Pings through GETADDR on each transport.
    let mut pings = vec![
        ("tcp", "127.0.0.1", "100005", "3"),
        ("udp", "127.0.0.1", "100005", "3"),
        ("tcp", "127.0.0.1", "100005", "1"),
        ("udp", "127.0.0.1", "100005", "1"),
        ("tcp", "127.0.0.1", "100000", "4"),
        ("udp", "127.0.0.1", "100000", "2"),
    ];
    if ipv6 {
        pings.extend([
            ("tcp6", "::1", "100005", "3"),
            ("udp6", "::1", "100000", "4"),
        ]);
    } else {
        tank_test_gate::skip("the rpcbind IPv6 checks", "this host has no ::1");
    }
    for (netid, host, prog, vers) in pings {
        let (ok, out, err) = run("rpcinfo", &["-T", netid, host, prog, vers]);
        assert!(ok, "{netid} {prog} {vers}: {err}");
        assert_eq!(
            out.trim(),
            format!("program {prog} version {vers} ready and waiting")
        );
    }
    // -u and -t ask for version 0 to learn the range from PROG_MISMATCH.
    let (ok, out, _) = run("rpcinfo", &["-u", "127.0.0.1", "100000"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 3, "{out}");

    // GETSTAT.
    let (ok, out, _) = run("rpcinfo", &["-m", "127.0.0.1"]);
    assert!(
        ok && out.contains("RPCBIND (version 4) statistics"),
        "{out}"
    );
    // The nfs lookups: one failed before the registration, one found it.
    let nfs = out
        .lines()
        .find(|l| l.starts_with("nfs "))
        .unwrap_or_default();
    assert_eq!(
        nfs.split_whitespace().collect::<Vec<_>>(),
        ["nfs", "4", "tcp", "1", "1"],
        "{out}"
    );

    // showmount, as Proxmox VE runs it and plainly.
    let (ok, out, err) = run("showmount", &["--no-headers", "--exports", "127.0.0.1"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "/mnt/tank/media 10.0.3.0/24,*\n/mnt/tank/vms   10.0.3.7\n"
    );
    let (ok, out, _) = run("showmount", &["-e", "127.0.0.1"]);
    assert!(ok);
    assert!(
        out.starts_with("Export list for 127.0.0.1:\n/mnt/tank/media"),
        "{out}"
    );
    let (ok, out, _) = run("showmount", &["-a", "127.0.0.1"]);
    assert!(ok);
    assert_eq!(out, "All mount points on 127.0.0.1:\n");

    // A local `rpcinfo -d` cannot remove the init's registration; unregister can.
    let (ok, _, err) = run("rpcinfo", &["-d", "100003", "4"]);
    assert!(!ok && err.contains("Could not delete"), "{err}");
    let (ok, out, _) = run("rpcinfo", &["-s", "127.0.0.1"]);
    assert!(ok && out.contains("100003"));
    assert!(services.unregister(NFS_PROGRAM, 4, Netid::Tcp));
    let (ok, _, err) = run("rpcinfo", &["-T", "tcp", "127.0.0.1", "nfs", "4"]);
    assert!(!ok && err.contains("Program not registered"), "{err}");

    // After stop, nothing answers on 111.
    services.stop();
    let (ok, _, err) = run("rpcinfo", &["-p", "127.0.0.1"]);
    assert!(!ok, "{err}");
}
