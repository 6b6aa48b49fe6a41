//! The file-sharing figures of `cargo xtask bench`: NFS from the test client guest over the
//! socket link, SMB from smbclient on the host through a QEMU port forward, each transfer set
//! against a plain TCP stream of the same size over the same path (the appliance's diagnostic
//! sink and source, `network perf`). Under TCG the rig's network sets the pace, not the
//! protocol (field-notes.md), so the ratios are the figures that mean something; the MiB/s
//! are printed for the record.
//!
//! One appliance boot serves both: its `eth1` is on the client's socket link, its user network
//! forwards host ports to 445 and to the diagnostic ports. The client guest boots while the
//! appliance creates its pool and shares. What does not live here: the other sections of the
//! benchmark (`bench.rs`), the harness (`tank_tests::client`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use tank_test_agent::pattern;
use tank_tests::client::{self, Client, Link, Umount};
use tank_tests::guest::Guest;
use tank_tests::qemu::{self, Accel, Forward, QemuConfig};

/// The size of every transfer: a few seconds through the slirp forward under TCG.
pub const PAYLOAD: u64 = 32 << 20;

/// The appliance's diagnostic sink and source (`appliance/src/net/diag.rs`).
const SINK_PORT: u16 = 5001;
const SOURCE_PORT: u16 = 5002;
/// How long one `network perf` keeps them open (`diag::ARMED_FOR`).
const ARMED_FOR: Duration = Duration::from_secs(300);

/// Each figure is the best of this many rounds (the machine is shared: a round can stall).
const ROUNDS: usize = 2;

/// The pattern seed of the benchmark's files.
const SEED: u64 = 4242;

/// The SMB account the benchmark creates.
const SMB_USER: &str = "alice";
const SMB_PASSWORD: &str = "bench-Pw1";

/// One transfer next to a plain TCP stream of the same size over the same path, each the best
/// of [`ROUNDS`].
#[derive(Serialize, Default, Clone, Copy)]
pub struct Versus {
    pub mib_s: f64,
    pub tcp_mib_s: f64,
    /// `mib_s / tcp_mib_s`.
    pub ratio: f64,
}

/// The rates of each round in one direction, MiB/s.
#[derive(Default)]
struct Rounds {
    protocol: Vec<f64>,
    tcp: Vec<f64>,
}

impl Rounds {
    fn push(&mut self, protocol: f64, tcp: f64) {
        self.protocol.push(protocol);
        self.tcp.push(tcp);
    }

    /// The best of each, and their ratio.
    fn best(&self) -> Versus {
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let (mib_s, tcp_mib_s) = (max(&self.protocol), max(&self.tcp));
        Versus {
            mib_s,
            tcp_mib_s,
            ratio: mib_s / tcp_mib_s.max(1e-9),
        }
    }
}

impl Versus {
    /// `12.3 MiB/s (TCP 20.1 MiB/s, ratio 0.61)`.
    pub fn show(&self) -> String {
        format!(
            "{:.1} MiB/s (TCP {:.1} MiB/s, ratio {:.2})",
            self.mib_s, self.tcp_mib_s, self.ratio
        )
    }
}

/// NFS from the client guest (kernel client, `vers=4.2`) over the socket link.
#[derive(Serialize, Default)]
pub struct NfsFigures {
    pub payload_bytes: u64,
    pub link_mtu: Option<u16>,
    /// Buffered write and fsync, against `tcp send` to the sink.
    pub write: Versus,
    /// Read after the client dropped its page cache, against `tcp recv` from the source.
    pub read: Versus,
}

/// SMB from smbclient on the host through the user network's forward.
#[derive(Serialize, Default)]
pub struct SmbFigures {
    pub payload_bytes: u64,
    /// `put` (smbclient's own timing, open to close), against a stream host → guest.
    pub put: Versus,
    /// `get`, against a stream guest → host.
    pub get: Versus,
}

/// Boots the appliance and the test client once and measures NFS, then SMB.
pub fn share_figures(
    board: &'static board::Board,
    image_dir: &Path,
    scratch: &Path,
) -> Result<(NfsFigures, SmbFigures)> {
    let link = Link::new()?;
    let disks = tank_tests::fresh_disks("bench-shares", &[2 << 30, 2 << 30]);
    let mut config = QemuConfig::new(board, image_dir.to_path_buf());
    config.disks = disks.clone();
    config.accel = Accel::from_env().map_err(anyhow::Error::msg)?;
    config.socket_links = vec![link.listen_nic()];
    let mut ports = Vec::new();
    for guest in [445, SINK_PORT, SOURCE_PORT] {
        let host = qemu::free_port().context("no free host port for a forward")?;
        config.forwards.push(Forward {
            udp: false,
            host,
            guest,
        });
        ports.push(host);
    }
    let mut nas = Guest::start(config, "bench-shares")?;
    nas.wait_prompt(Duration::from_secs(180))?;
    // The appliance's QEMU listens on the link by now: the client can boot meanwhile.
    let spec = link.client();
    let booting = std::thread::spawn(move || Client::boot("bench-shares-client", &spec));
    let prepared = prepare_appliance(&mut nas, &link);
    let mut client = booting
        .join()
        .map_err(|_| anyhow::anyhow!("the thread booting the test client panicked"))??;
    prepared?;

    let mut armed = Armed::default();
    armed.ensure(&mut nas)?;
    let nfs = nfs_figures(&mut client, &link)?;
    client.poweroff()?;
    drop(client);

    armed.ensure(&mut nas)?;
    let smb = smb_figures(ports[0], ports[1], ports[2], scratch)?;
    nas.send(b"poweroff\r")?;
    let _ = nas.wait_exit(Duration::from_secs(60));
    drop(nas);
    if let Some(dir) = disks.first().and_then(|d| d.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok((nfs, smb))
}

/// The link address, the pool, the NFS export and the SMB share with its user.
fn prepare_appliance(nas: &mut Guest, link: &Link) -> Result<()> {
    client::configure_appliance_link(nas, link)?;
    super::create_pool(nas)?;
    let t = Duration::from_secs(300);
    for line in [
        "dataset create vms compression none".to_string(),
        format!(
            "nfs share add vms clients {} no_root_squash",
            link.connect_ip
        ),
        "dataset create media compression none mode 0777".into(),
        "smb share add media".into(),
    ] {
        let out = nas.run(&line, t)?;
        ensure!(!out.contains("error:"), "'{line}' failed:\n{out}");
    }
    let out = nas.run_with_password(&format!("user add {SMB_USER}"), SMB_PASSWORD)?;
    ensure!(!out.contains("error:"), "'user add' failed:\n{out}");
    Ok(())
}

/// When `network perf` last opened the diagnostic ports.
#[derive(Default)]
struct Armed(Option<Instant>);

impl Armed {
    /// Opens the diagnostic ports unless they stay open for a while yet; ports about to close
    /// are waited out first (they cannot be opened twice).
    fn ensure(&mut self, nas: &mut Guest) -> Result<()> {
        if let Some(at) = self.0 {
            let left = ARMED_FOR.saturating_sub(at.elapsed());
            if left > Duration::from_secs(90) {
                return Ok(());
            }
            std::thread::sleep(left + Duration::from_secs(2));
        }
        let line = format!("network perf {}M", PAYLOAD >> 20);
        let out = nas.run(&line, Duration::from_secs(60))?;
        ensure!(out.contains("TCP sink on port"), "'{line}' failed:\n{out}");
        self.0 = Some(Instant::now());
        Ok(())
    }
}

/// In the client: TCP to the sink, NFS write, TCP from the source, NFS read.
fn nfs_figures(c: &mut Client, link: &Link) -> Result<NfsFigures> {
    c.timeout = Duration::from_secs(300);
    let source = format!("{}:/mnt/tank/vms", link.listen_ip);
    c.mount("nfs4", &source, "/mnt/vms", "vers=4.2")?;
    // The first open waits out the server's grace period: not part of the figure.
    c.write("/mnt/vms/warm-up.bin", 1 << 20, 1)?;

    let path = "/mnt/vms/bench.bin";
    let want = pattern::sha256_hex(SEED, PAYLOAD);
    let (mut write, mut read) = (Rounds::default(), Rounds::default());
    for _ in 0..ROUNDS {
        let sent = c.tcp_send(&link.listen_addr(SINK_PORT), PAYLOAD)?;
        ensure!(
            sent.bytes == PAYLOAD && sent.fields.text("acked").as_deref() == Some("yes"),
            "the sink did not take the stream: {:?}",
            sent.fields
        );
        let w = c.write(path, PAYLOAD, SEED)?;
        ensure!(w.sha256 == want, "NFS write: {:?}", w.fields);
        let got = c.tcp_recv(&link.listen_addr(SOURCE_PORT))?;
        ensure!(
            got.bytes == PAYLOAD,
            "the source sent {} bytes, not {PAYLOAD}",
            got.bytes
        );
        let r = c.read(path)?;
        ensure!(
            r.sha256 == want && r.fields.text("dropped").as_deref() == Some("yes"),
            "NFS read (the file must come back whole, past a dropped cache): {:?}",
            r.fields
        );
        write.push(w.mib_s, sent.mib_s);
        read.push(r.mib_s, got.mib_s);
    }
    c.umount("/mnt/vms", Umount::Normal)?;
    Ok(NfsFigures {
        payload_bytes: PAYLOAD,
        link_mtu: link.mtu,
        write: write.best(),
        read: read.best(),
    })
}

/// On the host: a stream to the sink, `put`, a stream from the source, `get`.
fn smb_figures(smb: u16, sink: u16, source: u16, scratch: &Path) -> Result<SmbFigures> {
    std::fs::create_dir_all(scratch)?;
    let data = pattern::bytes(SEED, PAYLOAD as usize);
    let up = scratch.join("put.bin");
    let down = scratch.join("get.bin");
    std::fs::write(&up, &data).with_context(|| format!("writing {}", up.display()))?;

    let rate = |out: String| {
        smbclient_mib_s(&out).with_context(|| format!("no rate in smbclient's output:\n{out}"))
    };
    let (mut put, mut get) = (Rounds::default(), Rounds::default());
    for _ in 0..ROUNDS {
        let tcp = tcp_upload(sink, &data)?;
        put.push(
            rate(smbclient(
                smb,
                &format!("put \"{}\" bench.bin", up.display()),
            )?)?,
            tcp,
        );
        let tcp = tcp_download(source, PAYLOAD)?;
        let _ = std::fs::remove_file(&down);
        get.push(
            rate(smbclient(
                smb,
                &format!("get bench.bin \"{}\"", down.display()),
            )?)?,
            tcp,
        );
        ensure!(
            std::fs::read(&down)? == data,
            "the file smbclient got back differs from the one it put"
        );
    }
    let _ = std::fs::remove_dir_all(scratch);
    Ok(SmbFigures {
        payload_bytes: PAYLOAD,
        put: put.best(),
        get: get.best(),
    })
}

/// Runs one smbclient command against the share; returns stdout and stderr.
fn smbclient(port: u16, command: &str) -> Result<String> {
    let mut cmd = Command::new("smbclient");
    // Without a UTF-8 locale smbclient mangles names.
    cmd.env("LC_ALL", "C.UTF-8")
        .arg("//127.0.0.1/media")
        .arg("-p")
        .arg(port.to_string())
        .arg("-U")
        .arg(format!("{SMB_USER}%{SMB_PASSWORD}"))
        .arg("-c")
        .arg(command);
    let out = cmd
        .output()
        .context("cannot run smbclient: install it with `cargo xtask prereqs`")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("smbclient -c '{command}' failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

/// smbclient's own rate for a put or get, `(8191.9 kb/s)` or `(8191.9 KiloBytes/sec)`, both
/// KiB/s (bytes / 1.024 ms), as MiB/s.
fn smbclient_mib_s(output: &str) -> Option<f64> {
    [" kb/s)", " KiloBytes/sec)"].iter().find_map(|unit| {
        let end = output.find(unit)?;
        let start = output[..end].rfind('(')? + 1;
        let kib_s: f64 = output[start..end].trim().parse().ok()?;
        Some(kib_s / 1024.0)
    })
}

fn mib_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1048576.0 / took.as_secs_f64().max(1e-9)
}

/// Streams `data` to the sink through the forward at `port` and waits for its answer, so the
/// time covers delivery; MiB/s.
fn tcp_upload(port: u16, data: &[u8]) -> Result<f64> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to the sink's forward, port {port}"))?;
    stream.set_write_timeout(Some(Duration::from_secs(300)))?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    stream.write_all(data).context("streaming to the sink")?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .context("the sink's answer")?;
    let took = started.elapsed();
    ensure!(
        sink_count(&answer) == Some(data.len() as u64),
        "the sink answered {answer:?} after {} bytes (are the diagnostic ports open?)",
        data.len()
    );
    Ok(mib_s(data.len() as u64, took))
}

/// The count in the sink's `received N bytes` answer.
fn sink_count(answer: &str) -> Option<u64> {
    answer
        .trim()
        .strip_prefix("received ")?
        .strip_suffix(" bytes")?
        .parse()
        .ok()
}

/// Reads the source through the forward at `port` until it closes; MiB/s.
fn tcp_download(port: u16, expect: u64) -> Result<f64> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to the source's forward, port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let total = std::io::copy(&mut stream, &mut std::io::sink()).context("reading the source")?;
    let took = started.elapsed();
    ensure!(
        total == expect,
        "the source sent {total} bytes, not {expect} (are the diagnostic ports open?)"
    );
    Ok(mib_s(total, took))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smbclient_rates() {
        // smbclient 4.17's lines.
        let put = "putting file /tmp/put.bin as \\bench.bin (8192.0 kb/s) (average 8192.0 kb/s)\n";
        assert_eq!(smbclient_mib_s(put), Some(8.0));
        let get = "getting file \\bench.bin of size 33554432 as /tmp/get.bin \
                   (3072.5 KiloBytes/sec) (average 3072.5 KiloBytes/sec)\n";
        assert_eq!(smbclient_mib_s(get), Some(3072.5 / 1024.0));
        assert_eq!(
            smbclient_mib_s("NT_STATUS_ACCESS_DENIED opening remote file"),
            None
        );
        assert_eq!(smbclient_mib_s("(fast kb/s)"), None);
    }

    #[test]
    fn sink_answers() {
        assert_eq!(sink_count("received 33554432 bytes\n"), Some(33554432));
        assert_eq!(sink_count(""), None);
        assert_eq!(sink_count("received many bytes\n"), None);
    }

    #[test]
    fn ratios() {
        let mut r = Rounds::default();
        r.push(4.0, 10.0);
        r.push(5.0, 8.0);
        let v = r.best();
        assert_eq!(v.ratio, 0.5);
        assert_eq!(v.show(), "5.0 MiB/s (TCP 10.0 MiB/s, ratio 0.50)");
    }
}
