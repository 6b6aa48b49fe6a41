//! The appliance against the Linux kernel's own clients, in a second guest on a socket link
//! (appliance 10.0.3.1 on eth1, client 10.0.3.2): the NFS client as Proxmox VE uses it
//! (NFSv4.2, 4.1 and 4.0, per-share client lists, read-only, root squash, live share removal,
//! a reboot of the server under a mounted client), Proxmox VE's probes from the host
//! (`showmount`, `rpcinfo`, through forwards of ports 111, 20048 and 2049), and the CIFS
//! client as Sonarr or Radarr on a Linux host use it.

use std::process::Command;
use std::time::Duration;

use tank_test_agent::pattern::sha256_hex;
use tank_tests::client::{self, Client, Link, Umount};
use tank_tests::console::{create_pool, fails, ok, poweroff, reboot};
use tank_tests::qemu::Forward;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn code<T: std::fmt::Debug>(r: client::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or("(no answer)").to_string(),
    }
}

fn host_tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program}: {e}; install nfs-common and rpcbind (cargo xtask prereqs)"
            )
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn nfs_and_cifs_with_the_kernel_clients() {
    let disks = tank_tests::fresh_disks("clients", &[GIB, GIB]);
    let link = Link::new().unwrap();
    let mut config = client::appliance_config(&disks, std::slice::from_ref(&link));
    // Proxmox VE's probes use the well-known ports on the host: forward them as they are.
    for port in [111, 20048, 2049] {
        config.forwards.push(Forward {
            udp: false,
            host: port,
            guest: port,
        });
    }
    let mut nas = client::boot_appliance_config("clients", config);
    client::configure_appliance_link(&mut nas, &link).unwrap();
    create_pool(&mut nas);

    ok(&mut nas, "dataset create vms");
    ok(&mut nas, "dataset create media mode 0777");
    ok(&mut nas, "dataset create iso");
    ok(&mut nas, "dataset create private");
    ok(&mut nas, "file write iso/debian.iso 1M seed iso");
    // Bad input first: nothing is shared.
    fails(&mut nas, "nfs share add nothere", "nothere");
    fails(
        &mut nas,
        "nfs share add vms clients 10.0.3.7/24",
        "did you mean 10.0.3.0/24",
    );
    fails(
        &mut nas,
        "nfs share add vms maproot nobodyhere",
        "nobodyhere",
    );
    // Proxmox VE's storage: no_root_squash for the hypervisor's network. A client on
    // localhost (the host's probes through the forwards) may mount it too.
    ok(
        &mut nas,
        "nfs share add vms clients 10.0.3.0/24,10.0.2.2 no_root_squash",
    );
    let warned = ok(&mut nas, "nfs share add media");
    assert!(
        warned.contains("warning: every address may mount media"),
        "{warned}"
    );
    ok(&mut nas, "nfs share add iso ro clients 10.0.3.0/24");
    ok(&mut nas, "nfs share add private clients 10.0.9.0/24");
    fails(&mut nas, "nfs share add vms", "already shared");
    let list = ok(&mut nas, "nfs share list");
    assert!(
        list.contains("/mnt/tank/vms") && list.contains("10.0.3.0/24"),
        "{list}"
    );

    // Proxmox VE's checks, from the host: showmount (rpcbind + MOUNT EXPORT) and rpcinfo.
    let (good, out) = host_tool("showmount", &["--no-headers", "--exports", "127.0.0.1"]);
    assert!(good, "showmount failed:\n{out}");
    assert!(
        out.contains("/mnt/tank/vms") && out.contains("/mnt/tank/iso"),
        "{out}"
    );
    let (good, out) = host_tool("rpcinfo", &["-T", "tcp", "127.0.0.1", "nfs", "4"]);
    assert!(
        good && out.contains("ready and waiting"),
        "rpcinfo failed:\n{out}"
    );

    let mut c = Client::boot("clients-client", &link.client()).unwrap();
    c.timeout = Duration::from_secs(120);

    // NFSv4.2: write, read back byte for byte, rename, remove, owners and modes.
    c.mkdir_all("/mnt/vms").unwrap();
    c.mount("nfs4", "10.0.3.1:/mnt/tank/vms", "/mnt/vms", "vers=4.2")
        .unwrap();
    let written = c.write("/mnt/vms/disk-100.raw", 8 * MIB, 100).unwrap();
    assert_eq!(written.sha256, sha256_hex(100, 8 * MIB));
    assert_eq!(
        c.read("/mnt/vms/disk-100.raw").unwrap().sha256,
        written.sha256
    );
    c.rename("/mnt/vms/disk-100.raw", "/mnt/vms/vm-100-disk-0.raw")
        .unwrap();
    c.mkdir("/mnt/vms/images", 0o750).unwrap();
    let dir = c.stat("/mnt/vms/images").unwrap();
    assert_eq!(
        (dir.kind.as_str(), dir.mode & 0o7777, dir.uid),
        ("dir", 0o750, 0)
    );
    c.chmod("/mnt/vms/vm-100-disk-0.raw", 0o600).unwrap();
    let file = c.stat("/mnt/vms/vm-100-disk-0.raw").unwrap();
    assert_eq!(
        (file.mode & 0o7777, file.uid, file.gid, file.size),
        (0o600, 0, 0, 8 * MIB)
    );
    c.chown("/mnt/vms/images", 1000, 1000).unwrap();
    c.as_user(1000, 1000, |c| {
        c.write("/mnt/vms/images/user.bin", 64 * 1024, 5)
    })
    .unwrap();
    let user = c.stat("/mnt/vms/images/user.bin").unwrap();
    assert_eq!((user.uid, user.gid), (1000, 1000));
    // The appliance sees the same ids.
    let listed = ok(&mut nas, "file list vms/images");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("user.bin") && l.ends_with("1000:1000")),
        "{listed}"
    );
    c.rm("/mnt/vms/images/user.bin").unwrap();
    assert!(c.ls("/mnt/vms/images").unwrap().is_empty());

    // NFSv4.1 and 4.0 mount the same export.
    for vers in ["4.1", "4.0"] {
        let at = format!("/mnt/v{vers}");
        c.mkdir_all(&at).unwrap();
        c.mount(
            "nfs4",
            "10.0.3.1:/mnt/tank/vms",
            &at,
            &format!("vers={vers}"),
        )
        .unwrap();
        assert_eq!(
            c.sha256(&format!("{at}/vm-100-disk-0.raw")).unwrap().1,
            written.sha256
        );
        c.write(&format!("{at}/v{vers}.bin"), MIB, 41).unwrap();
        c.umount(&at, Umount::Normal).unwrap();
    }

    // Root squash: root's files become nobody's. Read-only refuses writes. A client outside
    // the list is refused.
    c.mkdir_all("/mnt/media").unwrap();
    c.mount("nfs4", "10.0.3.1:/mnt/tank/media", "/mnt/media", "vers=4.2")
        .unwrap();
    c.write("/mnt/media/by-root.bin", 4096, 1).unwrap();
    let squashed = c.stat("/mnt/media/by-root.bin").unwrap();
    assert_eq!((squashed.uid, squashed.gid), (65534, 65534));
    c.mkdir_all("/mnt/iso").unwrap();
    c.mount("nfs4", "10.0.3.1:/mnt/tank/iso", "/mnt/iso", "vers=4.2")
        .unwrap();
    assert_eq!(c.sha256("/mnt/iso/debian.iso").unwrap().0, MIB);
    assert_eq!(code(c.write("/mnt/iso/new.iso", 4096, 2)), "EROFS");
    c.mkdir_all("/mnt/private").unwrap();
    let refused = code(c.mount(
        "nfs4",
        "10.0.3.1:/mnt/tank/private",
        "/mnt/private",
        "vers=4.2",
    ));
    assert!(
        ["EACCES", "EPERM", "ENOENT"].contains(&refused.as_str()),
        "{refused}"
    );

    // Removing a share cuts its access at once; the other shares go on.
    ok(&mut nas, "nfs share remove media");
    let cut = c.with_timeout(Duration::from_secs(60), |c| c.ls("/mnt/media"));
    assert!(cut.is_err(), "the removed share still answers: {cut:?}");
    c.umount("/mnt/media", Umount::Force).ok();
    c.write("/mnt/vms/still.bin", MIB, 9).unwrap();

    // The server reboots under a mounted client: the exports come back by themselves, the
    // client's handles still work and it carries on writing (after reclaiming its state).
    reboot(&mut nas);
    let status = ok(&mut nas, "status");
    assert!(status.contains("nfs        running"), "{status}");
    c.timeout = Duration::from_secs(240);
    assert_eq!(
        c.sha256("/mnt/vms/vm-100-disk-0.raw").unwrap().1,
        written.sha256,
        "a file written before the reboot came back different"
    );
    let after = c.write("/mnt/vms/after-reboot.bin", 2 * MIB, 77).unwrap();
    assert_eq!(
        c.read("/mnt/vms/after-reboot.bin").unwrap().sha256,
        after.sha256
    );
    c.umount("/mnt/vms", Umount::Normal).unwrap();

    // The kernel CIFS client, as a *arr service on a Linux host: SMB 3.1.1, write, read back,
    // rename, remove; files belong to the forced user.
    nas.run_with_password("user add sonarr", "sonarr-Pw1")
        .unwrap();
    ok(
        &mut nas,
        "smb share add media force_user sonarr create_mask 0664 directory_mask 0775",
    );
    c.timeout = Duration::from_secs(120);
    c.mkdir_all("/mnt/smb").unwrap();
    c.mount(
        "cifs",
        "//10.0.3.1/media",
        "/mnt/smb",
        "vers=3.1.1,username=sonarr,password=sonarr-Pw1",
    )
    .unwrap();
    c.mkdir_all("/mnt/smb/tv/Show").unwrap();
    let episode = c
        .write("/mnt/smb/tv/Show/episode.mkv.partial", 6 * MIB, 3)
        .unwrap();
    c.rename(
        "/mnt/smb/tv/Show/episode.mkv.partial",
        "/mnt/smb/tv/Show/S01E01.mkv",
    )
    .unwrap();
    assert_eq!(
        c.read("/mnt/smb/tv/Show/S01E01.mkv").unwrap().sha256,
        episode.sha256
    );
    let names = c.ls("/mnt/smb/tv/Show").unwrap();
    assert_eq!(names, ["S01E01.mkv"]);
    let owners = ok(&mut nas, "file list media/tv/Show");
    assert!(
        owners.contains("S01E01.mkv") && owners.contains("1000:1000"),
        "{owners}"
    );
    c.rm("/mnt/smb/tv/Show/S01E01.mkv").unwrap();
    assert!(c.ls("/mnt/smb/tv/Show").unwrap().is_empty());
    // A wrong password is refused.
    c.mkdir_all("/mnt/smb2").unwrap();
    let refused = code(c.mount(
        "cifs",
        "//10.0.3.1/media",
        "/mnt/smb2",
        "vers=3.1.1,username=sonarr,password=wrong",
    ));
    assert!(["EACCES", "EPERM"].contains(&refused.as_str()), "{refused}");
    c.umount("/mnt/smb", Umount::Normal).unwrap();

    c.poweroff().unwrap();
    poweroff(&mut nas);
}
