//! The test client guest: a second QEMU guest whose init is the test agent (`tests/agent`),
//! linked to the appliance by a QEMU socket network, so NFS and SMB tests mount the appliance
//! with the Linux kernel's own clients and the appliance sees a real client address.
//!
//! ```text
//!  appliance guest                          client guest (board::TEST_CLIENT)
//!  eth0: user network (host forwards)       eth0: 10.0.3.2/24, MAC 52:54:00:0a:03:02
//!  eth1: 10.0.3.1/24, MAC 52:54:00:0a:03:01 ──── -netdev socket, 127.0.0.1:PORT ────┘
//! ```
//!
//! [`Link::new`] picks a free port; [`boot_appliance`] starts the appliance listening on it
//! (QEMU takes one peer per listening port; [`boot_appliance_links`] gives it one NIC per
//! client), [`Client::boot`] starts a client connecting to it and waits for `tank-agent
//! ready`. [`Client`]'s methods send one request each, with a tag,
//! and parse the reply; an `err` reply comes back as [`ClientError::Agent`] with its code
//! (`EACCES`, `timeout`...), so a test asserts refusals as plainly as successes:
//!
//! ```no_run
//! use tank_tests::client::{self, Client, Link};
//! let link = Link::new().unwrap();
//! let disks = tank_tests::fresh_disks("nfs-basic", &[1 << 30, 1 << 30]);
//! let mut nas = client::boot_appliance("nfs-basic", &disks, &link);
//! client::configure_appliance_link(&mut nas, &link).unwrap();
//! let mut c = Client::boot("nfs-basic-client", &link.client()).unwrap();
//! c.mount("nfs4", "10.0.3.1:/mnt/tank/vms", "/mnt/vms", "vers=4.2").unwrap();
//! let w = c.write("/mnt/vms/disk.img", 8 << 20, 7).unwrap();
//! assert_eq!(w.sha256, tank_test_agent::pattern::sha256_hex(7, 8 << 20));
//! let e = c.as_user(1000, 1000, |c| c.write("/mnt/vms/root-only/x", 1, 0)).unwrap_err();
//! assert_eq!(e.code(), Some("EACCES"));
//! c.poweroff().unwrap();
//! ```

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tank_test_agent::protocol::{self, Fields, Reply};

use crate::guest::Guest;
use crate::qemu::{self, LinkSide, QemuConfig, SocketLink};

/// The appliance's address on the first link.
pub const APPLIANCE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);
/// The client's address on the first link.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);
/// The links' prefix length.
pub const PREFIX: u8 = 24;

/// The links' MTU unless a test sets another: jumbo frames, as on a storage network. Under
/// TCG a frame costs the same whatever its size, so this doubles what the link carries
/// (TCP guest to guest, measured: 21-27 MiB/s at 1500, 41-48 MiB/s at 9000).
pub const LINK_MTU: u16 = 9000;

/// How long a client may take to boot (TCG).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// How much longer than the agent's own deadline the harness waits for a reply (the serial
/// line and the guest's scheduling under TCG).
const REPLY_MARGIN: Duration = Duration::from_secs(20);

/// One socket link between two guests: a free port, a subnet, the two ends' addresses.
///
/// Link `n` ([`Link::numbered`]) is the subnet 10.0.(3+n).0/24: the listening side (the
/// appliance's `eth(1+n)`, or an agent) is `.1` with MAC `52:54:00:0a:(3+n):01`, the
/// connecting side `.2` with MAC `52:54:00:0a:(3+n):02`. QEMU's listening side takes one peer
/// at a time; when that peer's QEMU exits, a new one can connect (a client "reboot").
#[derive(Clone, Debug)]
pub struct Link {
    pub index: u8,
    pub port: u16,
    pub listen_ip: Ipv4Addr,
    pub connect_ip: Ipv4Addr,
    pub prefix: u8,
    /// Both ends' MTU ([`LINK_MTU`]; `None` for the driver's 1500).
    pub mtu: Option<u16>,
}

impl Link {
    /// Link 0 on a free port: 10.0.3.1 listens, 10.0.3.2 connects.
    pub fn new() -> anyhow::Result<Link> {
        Link::numbered(0)
    }

    /// Link `index` on a free port (up to 200 links).
    pub fn numbered(index: u8) -> anyhow::Result<Link> {
        if index > 200 {
            bail!("link {index}: at most 200 links (10.0.3.0/24 to 10.0.203.0/24)");
        }
        let third = 3 + index;
        Ok(Link {
            index,
            port: qemu::free_port().context("no free port for the socket link")?,
            listen_ip: Ipv4Addr::new(10, 0, third, 1),
            connect_ip: Ipv4Addr::new(10, 0, third, 2),
            prefix: PREFIX,
            mtu: Some(LINK_MTU),
        })
    }

    fn nic(&self, side: LinkSide) -> SocketLink {
        let end = if side == LinkSide::Listen { 1 } else { 2 };
        SocketLink {
            side,
            port: self.port,
            nic: "virtio-net-pci",
            mac: format!("52:54:00:0a:{:02x}:{end:02x}", 3 + self.index),
            mtu: self.mtu,
        }
    }

    /// The listening side's NIC.
    pub fn listen_nic(&self) -> SocketLink {
        self.nic(LinkSide::Listen)
    }

    /// The connecting side's NIC.
    pub fn connect_nic(&self) -> SocketLink {
        self.nic(LinkSide::Connect)
    }

    /// The appliance's interface on this link when [`boot_appliance_links`] got the links in
    /// index order (`eth0` is the user network).
    pub fn appliance_iface(&self) -> String {
        format!("eth{}", 1 + u32::from(self.index))
    }

    /// `listen_ip:port` as text, e.g. for `tcp send`.
    pub fn listen_addr(&self, port: u16) -> String {
        format!("{}:{port}", self.listen_ip)
    }

    /// A client on the connecting side.
    pub fn client(&self) -> ClientSpec {
        ClientSpec {
            nic: self.connect_nic(),
            address: self.connect_ip,
            prefix: self.prefix,
            hostname: None,
        }
    }

    /// A client on the listening side (for agent-to-agent tests; boot it first).
    pub fn listening_client(&self) -> ClientSpec {
        ClientSpec {
            nic: self.listen_nic(),
            address: self.listen_ip,
            prefix: self.prefix,
            hostname: None,
        }
    }
}

/// How to start one client.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub nic: SocketLink,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// Default `client-A-B-C-D`.
    pub hostname: Option<String>,
}

/// Boots the default appliance board with `disks` and a second NIC (`eth1`) on `link`,
/// listening, and waits for the prompt.
pub fn boot_appliance(name: &str, disks: &[PathBuf], link: &Link) -> Guest {
    boot_appliance_links(name, disks, std::slice::from_ref(link))
}

/// Like [`boot_appliance`] with one NIC per link, in order (`eth1`, `eth2`...): one client
/// each.
pub fn boot_appliance_links(name: &str, disks: &[PathBuf], links: &[Link]) -> Guest {
    boot_appliance_config(name, appliance_config(disks, links))
}

/// The default board's QEMU configuration with `disks` and one listening NIC per link, for a
/// test that also wants host port forwards (`config.forwards`) or more memory.
pub fn appliance_config(disks: &[PathBuf], links: &[Link]) -> QemuConfig {
    let board = board::default_board();
    let mut config = QemuConfig::new(board, crate::image_dir(board.name));
    config.disks = disks.to_vec();
    config.socket_links = links.iter().map(Link::listen_nic).collect();
    config
}

/// Boots an appliance configuration (see [`appliance_config`]) and waits for the prompt.
pub fn boot_appliance_config(name: &str, config: QemuConfig) -> Guest {
    let mut guest = match Guest::start(config, name) {
        Ok(g) => g,
        Err(e) => panic!("cannot start QEMU: {e:#}"),
    };
    if let Err(e) = guest.wait_prompt(Duration::from_secs(180)) {
        panic!("no prompt: {e:#}");
    }
    guest
}

/// Gives the appliance its address on `link` from its console (`network static eth1 ...`),
/// keeping DHCP on `eth0` (an interface list without it would leave eth0 unconfigured), and
/// waits until `network show` lists the address; returns that `network show`.
pub fn configure_appliance_link(guest: &mut Guest, link: &Link) -> anyhow::Result<String> {
    let t = Duration::from_secs(60);
    let iface = link.appliance_iface();
    // The network starts once the drivers are in; until then the console says so.
    guest.run_until("network show", Duration::from_secs(120), |s| {
        s.contains(&iface)
    })?;
    for line in [
        "network dhcp eth0".to_string(),
        format!("network static {iface} {}/{}", link.listen_ip, link.prefix),
    ] {
        let out = guest.run(&line, t)?;
        if out.contains("error:") {
            bail!("'{line}' failed on the appliance:\n{out}");
        }
    }
    let want = format!("{}/{}", link.listen_ip, link.prefix);
    guest.run_until("network show", Duration::from_secs(60), |s| {
        s.lines().any(|l| l.contains(&iface) && l.contains(&want))
    })
}

/// An `err` reply, or the harness failing to get a reply at all.
#[derive(Debug)]
pub enum ClientError {
    /// The agent answered `err CODE MESSAGE`.
    Agent {
        request: String,
        code: String,
        message: String,
    },
    /// No usable reply (the guest died, the reply never came, it did not parse).
    Harness(anyhow::Error),
}

impl ClientError {
    /// The agent's error code (`EACCES`, `timeout`, `usage`, `failed`...), if it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Agent { code, .. } => Some(code),
            ClientError::Harness(_) => None,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Agent {
                request,
                code,
                message,
            } => write!(f, "'{request}' failed: {code}: {message}"),
            ClientError::Harness(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<anyhow::Error> for ClientError {
    fn from(e: anyhow::Error) -> Self {
        ClientError::Harness(e)
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A write, read or copy: bytes, sha256 (when computed), I/O time and throughput.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub bytes: u64,
    /// Empty when the command did not hash (`read ... nohash`, `copy ... server`).
    pub sha256: String,
    pub seconds: f64,
    pub mib_s: f64,
    /// All the reply's fields.
    pub fields: Fields,
}

impl Transfer {
    fn from(fields: Fields) -> Self {
        Transfer {
            bytes: fields.parse("bytes").unwrap_or(0),
            sha256: fields.text("sha256").unwrap_or_default(),
            seconds: fields.parse("seconds").unwrap_or(0.0),
            mib_s: fields.parse("mib_s").unwrap_or(0.0),
            fields,
        }
    }
}

/// `stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// `file`, `dir`, `symlink`, `fifo`, `socket`, `block`, `char`.
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u64,
    /// A symlink's target.
    pub target: Option<String>,
    pub fields: Fields,
}

/// One line of `/proc/mounts` in the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: String,
}

/// How `umount` goes about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Umount {
    Normal,
    /// MNT_DETACH.
    Lazy,
    /// MNT_FORCE (NFS aborts requests in flight), also detached: for a server that went away.
    Force,
}

/// A request sent whose reply has not been read yet (see [`Client::begin`]).
#[must_use = "read the reply with Client::finish"]
pub struct Pending {
    tag: u64,
    line: String,
    wait: Duration,
}

/// A running test client.
pub struct Client {
    guest: Guest,
    next_tag: u64,
    creds: Option<String>,
    /// The agent-side deadline of each request (default 60 s).
    pub timeout: Duration,
    /// The `tank-agent ready` line's fields (version, hostname, modules, iface, ip, uptime).
    pub ready: Fields,
    /// Wall time from QEMU's start to the ready line.
    pub boot_time: Duration,
    pub address: Ipv4Addr,
}

impl Client {
    /// Starts a client guest and waits for its agent to be ready, with its modules loaded and
    /// its address set (the listening side of its link must be running).
    pub fn boot(name: &str, spec: &ClientSpec) -> anyhow::Result<Client> {
        let board = &board::TEST_CLIENT;
        let mut config = QemuConfig::new(board, crate::image_dir(board.name));
        config.user_network = false;
        config.socket_links = vec![spec.nic.clone()];
        config.extra_cmdline = format!("tank.agent.ip={}/{}", spec.address, spec.prefix);
        if let Some(h) = &spec.hostname {
            config
                .extra_cmdline
                .push_str(&format!(" tank.agent.hostname={h}"));
        }
        let mut guest = Guest::start(config, name)?;
        guest.expect("tank-agent ready ", BOOT_TIMEOUT)?;
        let line = guest.expect("\n", Duration::from_secs(10))?;
        let boot_time = guest.elapsed();
        let words = format!("ok {}", line.trim());
        let ready = match protocol::parse_reply(&words) {
            Ok((_, Reply::Ok(f))) => f,
            _ => bail!("the ready line does not parse: {line}"),
        };
        if ready.parse::<u64>("modules_failed") != Some(0) {
            bail!(
                "modules failed to load in the test client:\n{}",
                guest.transcript()
            );
        }
        let want = format!("{}/{}", spec.address, spec.prefix);
        if ready.text("ip").as_deref() != Some(want.as_str()) {
            bail!(
                "the test client's network is not up (ip={}):\n{}",
                ready.text("ip").unwrap_or_default(),
                guest.transcript()
            );
        }
        Ok(Client {
            guest,
            next_tag: 1,
            creds: None,
            timeout: Duration::from_secs(60),
            ready,
            boot_time,
            address: spec.address,
        })
    }

    /// The guest underneath (transcript, QMP, kill).
    pub fn guest(&mut self) -> &mut Guest {
        &mut self.guest
    }

    /// Sends `words` (quoted as needed) as one request, with this client's timeout and user,
    /// and does not wait for the reply.
    pub fn begin<W: AsRef<[u8]>>(&mut self, words: &[W]) -> anyhow::Result<Pending> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let mut line = format!("@{tag} timeout {:.3}", self.timeout.as_secs_f64());
        if let Some(c) = &self.creds {
            line.push_str(&format!(" as {c}"));
        }
        line.push(' ');
        line.push_str(&protocol::join(words));
        self.guest.send(line.as_bytes())?;
        self.guest.send(b"\n")?;
        Ok(Pending {
            tag,
            line,
            wait: self.timeout + REPLY_MARGIN,
        })
    }

    /// Reads the reply to a request sent with [`Client::begin`].
    pub fn finish(&mut self, pending: Pending) -> Result<Fields> {
        // The console's mark sits at the start of a line (after the ready line or the last
        // reply); the reply is the first line that starts with the tag.
        let needle = format!("@{} ", pending.tag);
        let deadline = Instant::now() + pending.wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let text = self.guest.expect(&needle, left)?;
            let before = &text[..text.len() - needle.len()];
            if before.is_empty() || before.ends_with('\n') {
                break;
            }
        }
        let rest = self.guest.expect("\n", Duration::from_secs(10))?;
        let reply = format!("@{} {}", pending.tag, rest.trim_end());
        match protocol::parse_reply(&reply) {
            Ok((_, Reply::Ok(fields))) => Ok(fields),
            Ok((_, Reply::Err { code, message })) => Err(ClientError::Agent {
                request: pending.line,
                code,
                message,
            }),
            Err(e) => Err(ClientError::Harness(anyhow::anyhow!(
                "reply to '{}' does not parse: {e}",
                pending.line
            ))),
        }
    }

    /// Sends one request and waits for its reply.
    pub fn request<W: AsRef<[u8]>>(&mut self, words: &[W]) -> Result<Fields> {
        let p = self.begin(words)?;
        self.finish(p)
    }

    /// Runs `f` with every request made as `uid:gid` (no supplementary groups).
    pub fn as_user<T>(&mut self, uid: u32, gid: u32, f: impl FnOnce(&mut Client) -> T) -> T {
        self.as_user_groups(uid, gid, &[], f)
    }

    /// Runs `f` with every request made as `uid:gid` with supplementary `groups`.
    pub fn as_user_groups<T>(
        &mut self,
        uid: u32,
        gid: u32,
        groups: &[u32],
        f: impl FnOnce(&mut Client) -> T,
    ) -> T {
        let mut who = format!("{uid}:{gid}");
        if !groups.is_empty() {
            let g: Vec<String> = groups.iter().map(u32::to_string).collect();
            who.push(':');
            who.push_str(&g.join(","));
        }
        let before = self.creds.replace(who);
        let out = f(self);
        self.creds = before;
        out
    }

    /// Runs `f` with `timeout` as the agent-side deadline of each request.
    pub fn with_timeout<T>(&mut self, timeout: Duration, f: impl FnOnce(&mut Client) -> T) -> T {
        let before = std::mem::replace(&mut self.timeout, timeout);
        let out = f(self);
        self.timeout = before;
        out
    }

    pub fn ping(&mut self) -> Result<Fields> {
        self.request(&["ping"])
    }

    /// `mount KIND SOURCE TARGET OPTIONS` (kind: `nfs4`, `nfs`, `cifs`, `smb3`, `tmpfs`);
    /// returns the options the kernel got (password hidden).
    pub fn mount(
        &mut self,
        kind: &str,
        source: &str,
        target: &str,
        options: &str,
    ) -> Result<String> {
        let f = self.request(&["mount", kind, source, target, options])?;
        Ok(f.text("options").unwrap_or_default())
    }

    pub fn umount(&mut self, target: &str, how: Umount) -> Result<()> {
        let words: &[&str] = match how {
            Umount::Normal => &["umount", target],
            Umount::Lazy => &["umount", target, "lazy"],
            Umount::Force => &["umount", target, "force", "lazy"],
        };
        self.request(words).map(drop)
    }

    pub fn mounts(&mut self) -> Result<Vec<MountEntry>> {
        let f = self.request(&["mounts"])?;
        Ok(f.all("mount")
            .filter_map(|m| {
                let text = String::from_utf8_lossy(m);
                let mut p = text.splitn(4, ' ');
                Some(MountEntry {
                    source: p.next()?.into(),
                    target: p.next()?.into(),
                    fstype: p.next()?.into(),
                    options: p.next().unwrap_or("").into(),
                })
            })
            .collect())
    }

    /// Writes `size` bytes of the pattern for `seed` (fsynced); the sha256 to expect is
    /// `tank_test_agent::pattern::sha256_hex(seed, size)`.
    pub fn write(&mut self, path: &str, size: u64, seed: u64) -> Result<Transfer> {
        self.write_opts(path, size, seed, &[])
    }

    /// [`Client::write`] with option words: `direct`, `nosync`, `append`, `excl`, `bs=SIZE`,
    /// `mode=OCTAL`.
    pub fn write_opts(
        &mut self,
        path: &str,
        size: u64,
        seed: u64,
        opts: &[&str],
    ) -> Result<Transfer> {
        let mut words = vec![
            "write".to_string(),
            path.to_string(),
            size.to_string(),
            format!("seed={seed}"),
        ];
        words.extend(opts.iter().map(|o| o.to_string()));
        self.request(&words).map(Transfer::from)
    }

    /// Reads a whole file after dropping the page cache.
    pub fn read(&mut self, path: &str) -> Result<Transfer> {
        self.read_opts(path, &[])
    }

    /// [`Client::read`] with option words: `direct`, `cached`, `nohash`, `bs=SIZE`.
    pub fn read_opts(&mut self, path: &str, opts: &[&str]) -> Result<Transfer> {
        let mut words = vec!["read", path];
        words.extend_from_slice(opts);
        self.request(&words).map(Transfer::from)
    }

    /// (size, sha256) of a file as it reads now.
    pub fn sha256(&mut self, path: &str) -> Result<(u64, String)> {
        let f = self.request(&["sha256", path])?;
        Ok((
            f.parse("bytes").unwrap_or(0),
            f.text("sha256").unwrap_or_default(),
        ))
    }

    /// A small file's bytes.
    pub fn cat(&mut self, path: &str) -> Result<Vec<u8>> {
        let f = self.request(&["cat", path])?;
        Ok(f.get("data").unwrap_or_default().to_vec())
    }

    /// A small file with `data` (mode 0644).
    pub fn put(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.request(&[&b"put"[..], path.as_bytes(), data])
            .map(drop)
    }

    pub fn stat(&mut self, path: &str) -> Result<Stat> {
        let f = self.request(&["stat", path])?;
        Ok(Stat {
            kind: f.text("type").unwrap_or_default(),
            mode: f
                .text("mode")
                .and_then(|m| u32::from_str_radix(&m, 8).ok())
                .unwrap_or(0),
            uid: f.parse("uid").unwrap_or(0),
            gid: f.parse("gid").unwrap_or(0),
            size: f.parse("size").unwrap_or(0),
            nlink: f.parse("nlink").unwrap_or(0),
            target: f.text("target"),
            fields: f,
        })
    }

    /// `statfs` fields: `bytes_total`, `bytes_avail`, `blocks`... (see the agent's doc).
    pub fn statfs(&mut self, path: &str) -> Result<Fields> {
        self.request(&["statfs", path])
    }

    /// The names in a directory, sorted (lossy UTF-8; `ls_bytes` for exact bytes).
    pub fn ls(&mut self, path: &str) -> Result<Vec<String>> {
        Ok(self
            .ls_bytes(path)?
            .into_iter()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .collect())
    }

    pub fn ls_bytes(&mut self, path: &str) -> Result<Vec<Vec<u8>>> {
        let f = self.request(&["ls", path])?;
        Ok(f.all("name").map(<[u8]>::to_vec).collect())
    }

    pub fn mkdir(&mut self, path: &str, mode: u32) -> Result<()> {
        self.request(&[
            "mkdir".to_string(),
            path.to_string(),
            format!("mode={mode:o}"),
        ])
        .map(drop)
    }

    pub fn mkdir_all(&mut self, path: &str) -> Result<()> {
        self.request(&["mkdir", path, "parents"]).map(drop)
    }

    pub fn rmdir(&mut self, path: &str) -> Result<()> {
        self.request(&["rmdir", path]).map(drop)
    }

    pub fn rm(&mut self, path: &str) -> Result<()> {
        self.request(&["rm", path]).map(drop)
    }

    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.request(&["rename", from, to]).map(drop)
    }

    pub fn link(&mut self, from: &str, to: &str) -> Result<()> {
        self.request(&["link", from, to]).map(drop)
    }

    pub fn symlink(&mut self, target: &str, path: &str) -> Result<()> {
        self.request(&["symlink", target, path]).map(drop)
    }

    pub fn chmod(&mut self, path: &str, mode: u32) -> Result<()> {
        self.request(&["chmod".to_string(), path.to_string(), format!("{mode:o}")])
            .map(drop)
    }

    pub fn chown(&mut self, path: &str, uid: u32, gid: u32) -> Result<()> {
        self.request(&[
            "chown".to_string(),
            path.to_string(),
            format!("{uid}:{gid}"),
        ])
        .map(drop)
    }

    pub fn truncate(&mut self, path: &str, size: u64) -> Result<()> {
        self.request(&["truncate".to_string(), path.to_string(), size.to_string()])
            .map(drop)
    }

    /// Copies with read and write (`server: false`, with a sha256) or copy_file_range
    /// (`server: true`: a server-side copy on NFSv4.2 and SMB3).
    pub fn copy(&mut self, from: &str, to: &str, server: bool) -> Result<Transfer> {
        let mut words = vec!["copy", from, to];
        if server {
            words.push("server");
        }
        self.request(&words).map(Transfer::from)
    }

    /// `tcp listen PORT` (0: any free port); returns the port.
    pub fn tcp_listen(&mut self, port: u16) -> Result<u16> {
        let f = self.request(&["tcp".to_string(), "listen".into(), port.to_string()])?;
        Ok(f.parse("port").unwrap_or(port))
    }

    /// Starts `tcp accept PORT sink` (or `source SIZE`); finish it with
    /// [`Client::finish_transfer`] after the peer has run.
    pub fn tcp_accept_begin(&mut self, port: u16, source: Option<u64>) -> anyhow::Result<Pending> {
        let mut words = vec!["tcp".to_string(), "accept".into(), port.to_string()];
        match source {
            None => words.push("sink".into()),
            Some(n) => {
                words.push("source".into());
                words.push(n.to_string());
            }
        }
        self.begin(&words)
    }

    /// The reply to a transfer started with `begin`.
    pub fn finish_transfer(&mut self, pending: Pending) -> Result<Transfer> {
        self.finish(pending).map(Transfer::from)
    }

    /// `tcp send HOST:PORT SIZE`.
    pub fn tcp_send(&mut self, addr: &str, size: u64) -> Result<Transfer> {
        self.request(&[
            "tcp".to_string(),
            "send".into(),
            addr.into(),
            size.to_string(),
        ])
        .map(Transfer::from)
    }

    /// `tcp recv HOST:PORT`.
    pub fn tcp_recv(&mut self, addr: &str) -> Result<Transfer> {
        self.request(&["tcp", "recv", addr]).map(Transfer::from)
    }

    /// `tcp connect HOST:PORT`: the connect time in seconds.
    pub fn tcp_connect(&mut self, addr: &str) -> Result<f64> {
        let f = self.request(&["tcp", "connect", addr])?;
        Ok(f.parse("seconds").unwrap_or(0.0))
    }

    pub fn tcp_close(&mut self, port: u16) -> Result<()> {
        self.request(&["tcp".to_string(), "close".into(), port.to_string()])
            .map(drop)
    }

    pub fn sync(&mut self) -> Result<()> {
        self.request(&["sync"]).map(drop)
    }

    pub fn drop_caches(&mut self) -> Result<()> {
        self.request(&["drop-caches"]).map(drop)
    }

    pub fn sleep(&mut self, secs: f64) -> Result<()> {
        self.request(&["sleep".to_string(), format!("{secs}")])
            .map(drop)
    }

    /// Powers the client off cleanly (sync, network mounts detached) and waits for QEMU to
    /// exit.
    pub fn poweroff(&mut self) -> anyhow::Result<()> {
        let p = self.begin(&["poweroff"])?;
        self.finish(p).map_err(|e| anyhow::anyhow!("{e}"))?;
        let started = Instant::now();
        let status = self.guest.wait_exit(Duration::from_secs(60))?;
        if !status.success() {
            bail!("the test client's QEMU exited with {status} after poweroff");
        }
        log_line(&format!(
            "test client powered off in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

fn log_line(text: &str) {
    eprintln!("client: {text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_links() {
        let l = Link::numbered(1).unwrap();
        assert_eq!(l.listen_ip, Ipv4Addr::new(10, 0, 4, 1));
        assert_eq!(l.connect_ip, Ipv4Addr::new(10, 0, 4, 2));
        assert_eq!(l.listen_nic().mac, "52:54:00:0a:04:01");
        assert_eq!(l.connect_nic().mac, "52:54:00:0a:04:02");
        assert_eq!(l.connect_nic().side, LinkSide::Connect);
        assert_eq!(l.appliance_iface(), "eth2");
        assert_eq!(l.listen_addr(5001), "10.0.4.1:5001");
        let first = Link::new().unwrap();
        assert_eq!(
            (first.listen_ip, first.connect_ip),
            (APPLIANCE_IP, CLIENT_IP)
        );
        assert_eq!(first.client().nic.mtu, Some(LINK_MTU));
        assert!(Link::numbered(201).is_err());
    }
}
