//! The test client guest and its socket link: two agents stream TCP to each other and the
//! agent's file commands work on a tmpfs; then a client linked to a booted appliance reaches
//! it (a closed port on 10.0.3.1 refuses at once, an absent host does not).
//!
//! Needs the default board's image and the test client's (`cargo xtask test` builds both).
//! The figures (boot time, TCP MiB/s between two guests) are printed for the record.

use std::time::{Duration, Instant};

use tank_test_agent::pattern::sha256_hex;
use tank_tests::client::{self, Client, Link, Umount};

const MIB: u64 = 1 << 20;

/// The TCP payload each way: a few seconds under TCG.
const STREAM: u64 = 32 * MIB;

fn code(r: client::Result<impl std::fmt::Debug>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or("(harness)").to_string(),
    }
}

#[test]
fn client_guest_plumbing() {
    // Two agents on one link: one listens (10.0.3.1), one connects (10.0.3.2).
    let link = Link::new().unwrap();
    let mut a = Client::boot("client-a", &link.listening_client()).expect("agent A boots");
    let mut b = Client::boot("client-b", &link.client()).expect("agent B boots");
    for (name, c) in [("A", &a), ("B", &b)] {
        eprintln!(
            "agent {name}: ready after {:.1} s wall (guest uptime {} s, {} modules in {} s)",
            c.boot_time.as_secs_f64(),
            c.ready.text("uptime").unwrap_or_default(),
            c.ready.text("modules").unwrap_or_default(),
            c.ready.text("modules_seconds").unwrap_or_default(),
        );
    }
    assert_eq!(a.ready.text("iface").as_deref(), Some("eth0"));
    // The NIC took the link's MTU from QEMU.
    assert_eq!(
        b.ready.text("mtu"),
        link.mtu.map(|m| m.to_string()),
        "{:?}",
        b.ready
    );
    assert_eq!(
        b.ping().unwrap().text("hostname").as_deref(),
        Some("client-10-0-3-2")
    );

    // TCP B -> A, then A -> B.
    let timeout = Duration::from_secs(300);
    a.timeout = timeout;
    b.timeout = timeout;
    let port = a.tcp_listen(5001).unwrap();
    assert_eq!(port, 5001);
    let pending = a.tcp_accept_begin(port, None).unwrap();
    let sent = b.tcp_send("10.0.3.1:5001", STREAM).expect("B sends to A");
    let got = a.finish_transfer(pending).expect("A sinks");
    assert_eq!(sent.bytes, STREAM);
    assert_eq!(got.bytes, STREAM);
    assert_eq!(sent.fields.text("acked").as_deref(), Some("yes"));
    assert!(
        got.fields.text("peer").unwrap().starts_with("10.0.3.2:"),
        "{:?}",
        got.fields
    );
    let pending = a.tcp_accept_begin(port, Some(STREAM)).unwrap();
    let recv = b.tcp_recv("10.0.3.1:5001").expect("B receives from A");
    let source = a.finish_transfer(pending).expect("A sources");
    assert_eq!(recv.bytes, STREAM);
    assert_eq!(source.bytes, STREAM);
    eprintln!(
        "TCP guest to guest over the socket link ({} MiB each way, MTU {:?}): B->A {:.1} MiB/s \
         (receiver {:.1}), A->B {:.1} MiB/s (sender {:.1})",
        STREAM / MIB,
        link.mtu,
        sent.mib_s,
        got.mib_s,
        recv.mib_s,
        source.mib_s
    );
    assert!(sent.mib_s > 0.0 && recv.mib_s > 0.0);
    a.tcp_close(port).unwrap();
    // The port is closed now: A's kernel refuses at once.
    let t = Instant::now();
    assert_eq!(code(b.tcp_connect("10.0.3.1:5001")), "ECONNREFUSED");
    assert!(t.elapsed() < Duration::from_secs(10));
    b.poweroff().expect("agent B powers off");
    a.timeout = Duration::from_secs(60);

    file_commands(&mut a);
    a.poweroff().expect("agent A powers off");

    // A client linked to the appliance.
    let link = Link::new().unwrap();
    let disks = tank_tests::fresh_disks("client-nas", &[1 << 30, 1 << 30]);
    let mut nas = client::boot_appliance("client-nas", &disks, &link);
    let shown = client::configure_appliance_link(&mut nas, &link).expect("eth1 configured");
    eprintln!("appliance network:\n{shown}");
    assert!(
        shown.contains("eth0") && shown.contains("10.0.2.15"),
        "{shown}"
    );
    let mut c = Client::boot("client-c", &link.client()).expect("client boots");
    // Nothing listens on port 9 of the appliance: its kernel answers with a reset.
    let t = Instant::now();
    assert_eq!(code(c.tcp_connect("10.0.3.1:9")), "ECONNREFUSED");
    let refused_in = t.elapsed();
    // An address nobody has gets no answer at all (no ARP reply).
    let unanswered = c.with_timeout(Duration::from_secs(4), |c| {
        code(c.tcp_connect("10.0.3.99:9"))
    });
    assert!(
        ["timeout", "EHOSTUNREACH", "ETIMEDOUT"].contains(&unanswered.as_str()),
        "{unanswered}"
    );
    eprintln!(
        "client to appliance: refused in {:.3} s; absent host: {unanswered}",
        refused_in.as_secs_f64()
    );
    assert!(refused_in < Duration::from_secs(3));

    // The kernel clients take the options the agent builds: a mount gets as far as the
    // server (whatever the appliance serves yet), while a bad option is refused locally.
    c.timeout = Duration::from_secs(90);
    let mut tried = Vec::new();
    for (kind, source, options) in [
        ("nfs4", "10.0.3.1:/mnt/tank/vms", "vers=4.2"),
        ("nfs4", "10.0.3.1:/mnt/tank/vms", "vers=4.0"),
        (
            "cifs",
            "//10.0.3.1/media",
            "vers=3.1.1,username=alice,password=secret,uid=1000",
        ),
        ("cifs", "//10.0.3.1/media", "guest"),
    ] {
        let t = Instant::now();
        let outcome = match c.mount(kind, source, "/mnt/probe", options) {
            Ok(_) => {
                c.umount("/mnt/probe", Umount::Normal).unwrap();
                "mounted".to_string()
            }
            Err(e) => e.code().unwrap_or("(harness)").to_string(),
        };
        assert!(
            !["EINVAL", "ENODEV", "usage", "failed", "(harness)"].contains(&outcome.as_str()),
            "{kind} {source} -o {options}: {outcome}"
        );
        tried.push(format!(
            "{kind} {options}: {outcome} in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
    }
    eprintln!("mounts against the appliance: {}", tried.join("; "));
    assert_eq!(
        code(c.mount("nfs4", "10.0.3.1:/mnt/tank/vms", "/mnt/probe", "vers=4.9")),
        "EINVAL"
    );
    c.poweroff().expect("client powers off");
    nas.send(b"poweroff\r").unwrap();
    let exit = nas
        .wait_exit(Duration::from_secs(60))
        .expect("the appliance powers off");
    assert!(exit.success());
}

/// The file commands on a tmpfs in the agent, as a network file system test uses them.
fn file_commands(c: &mut Client) {
    c.mount("tmpfs", "scratch", "/mnt/s", "size=64m,mode=0755")
        .expect("mount tmpfs");
    assert!(c
        .mounts()
        .unwrap()
        .iter()
        .any(|m| m.target == "/mnt/s" && m.fstype == "tmpfs"));

    let w = c.write("/mnt/s/a", 4 * MIB + 3, 11).unwrap();
    assert_eq!(w.sha256, sha256_hex(11, 4 * MIB + 3));
    assert_eq!(w.bytes, 4 * MIB + 3);
    let r = c.read("/mnt/s/a").unwrap();
    assert_eq!(r.sha256, w.sha256);
    assert_eq!(r.fields.text("dropped").as_deref(), Some("yes"));
    eprintln!(
        "tmpfs in the client: write {:.0} MiB/s, read {:.0} MiB/s",
        w.mib_s, r.mib_s
    );
    let st = c.stat("/mnt/s/a").unwrap();
    assert_eq!(
        (st.kind.as_str(), st.size, st.mode, st.uid),
        ("file", 4 * MIB + 3, 0o644, 0)
    );

    // Names with spaces and non-ASCII bytes survive the serial line both ways.
    c.mkdir("/mnt/s/d", 0o755).unwrap();
    let odd = "/mnt/s/d/Season 01 é.mkv";
    c.write(odd, 1000, 2).unwrap();
    assert_eq!(
        c.ls("/mnt/s/d").unwrap(),
        vec!["Season 01 é.mkv".to_string()]
    );
    assert_eq!(c.ls("/mnt/s").unwrap(), vec!["a".to_string(), "d".into()]);
    c.rename(odd, "/mnt/s/d/b").unwrap();
    let plain = c.copy("/mnt/s/a", "/mnt/s/d/c", false).unwrap();
    assert_eq!(plain.sha256, w.sha256);
    c.copy("/mnt/s/a", "/mnt/s/d/e", true).unwrap();
    assert_eq!(
        c.sha256("/mnt/s/d/e").unwrap(),
        (4 * MIB + 3, w.sha256.clone())
    );
    assert_eq!(code(c.rmdir("/mnt/s/d")), "ENOTEMPTY");
    assert_eq!(code(c.rm("/mnt/s/d/missing")), "ENOENT");
    c.put("/mnt/s/note", b"hello\nworld\n").unwrap();
    assert_eq!(c.cat("/mnt/s/note").unwrap(), b"hello\nworld\n");
    c.symlink("note", "/mnt/s/link").unwrap();
    assert_eq!(
        c.stat("/mnt/s/link").unwrap().target.as_deref(),
        Some("note")
    );
    assert!(
        c.statfs("/mnt/s")
            .unwrap()
            .parse::<u64>("bytes_total")
            .unwrap()
            >= 60 * MIB
    );

    // Another user: refused in root's 0755 folder, owner of what it makes in a 1777 one.
    assert_eq!(
        code(c.as_user(1000, 1000, |c| c.write("/mnt/s/d/x", 10, 0))),
        "EACCES"
    );
    c.mkdir("/mnt/s/shared", 0o1777).unwrap();
    c.as_user_groups(1000, 1000, &[100], |c| c.write("/mnt/s/shared/mine", 10, 0))
        .unwrap();
    let st = c.stat("/mnt/s/shared/mine").unwrap();
    assert_eq!((st.uid, st.gid), (1000, 1000));
    c.chown("/mnt/s/d/b", 1000, 1000).unwrap();
    c.as_user(1000, 1000, |c| c.chmod("/mnt/s/d/b", 0o600))
        .unwrap();
    assert_eq!(
        code(c.as_user(1001, 1001, |c| c.chmod("/mnt/s/d/b", 0o666))),
        "EPERM"
    );
    assert_eq!(c.stat("/mnt/s/d/b").unwrap().mode, 0o600);

    // A read-only mount refuses writes with EROFS.
    c.mount("tmpfs", "ro", "/mnt/ro", "ro").unwrap();
    assert_eq!(code(c.write("/mnt/ro/x", 1, 0)), "EROFS");
    c.umount("/mnt/ro", Umount::Normal).unwrap();

    // A command that overstays its timeout is answered, and the agent goes on.
    let t = Instant::now();
    let slow = c.with_timeout(Duration::from_secs(1), |c| c.sleep(30.0));
    assert_eq!(code(slow), "timeout");
    assert!(t.elapsed() < Duration::from_secs(15));
    assert_eq!(code(c.request(&["frobnicate"])), "usage");
    assert_eq!(code(c.request(&["write", "relative/path", "1"])), "usage");
    c.ping().expect("the agent answers after errors");

    c.umount("/mnt/s", Umount::Lazy).unwrap();
    assert!(!c.mounts().unwrap().iter().any(|m| m.target == "/mnt/s"));
}
