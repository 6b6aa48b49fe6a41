//! The agent's system duties as PID 1: early mounts, the kernel command line, the host name,
//! kernel modules, the page cache, power-off.
//!
//! Modules: the image builder writes `modules.dep` for exactly the modules the test client
//! needs, so the agent loads every one of them, each after its dependencies (resolved through
//! their own `modules.dep` lines, as modprobe does), with `finit_module`. What does not live
//! here: the network ([`crate::net`]) and the serial console ([`crate::console`]).

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

/// What the kernel command line tells the agent (`tank.agent.*` words).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentConfig {
    /// `tank.agent.ip=A.B.C.D/P`.
    pub address: Option<(Ipv4Addr, u8)>,
    /// `tank.agent.iface=NAME`; otherwise the first ethernet link.
    pub iface: Option<String>,
    /// `tank.agent.hostname=NAME`; otherwise made from the address. NFSv4 clients identify
    /// themselves by host name, so two clients must not share one.
    pub hostname: Option<String>,
    /// `tank.agent.console=NAME` under /dev; otherwise `ttyS0`.
    pub console: Option<String>,
}

impl AgentConfig {
    /// The host name to set.
    pub fn hostname(&self) -> String {
        match (&self.hostname, self.address) {
            (Some(h), _) => h.clone(),
            (None, Some((ip, _))) => format!("client-{}", ip.to_string().replace('.', "-")),
            (None, None) => "tank-client".into(),
        }
    }
}

/// Reads the `tank.agent.*` words of a kernel command line. Bad values are returned as
/// messages (the agent logs them and goes on without the value).
pub fn parse_cmdline(text: &str) -> (AgentConfig, Vec<String>) {
    let mut cfg = AgentConfig::default();
    let mut problems = Vec::new();
    for word in text.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "tank.agent.ip" => match parse_cidr(value) {
                Some(a) => cfg.address = Some(a),
                None => problems.push(format!(
                    "tank.agent.ip={value} is not ADDRESS/PREFIX such as 10.0.3.2/24; the network stays down"
                )),
            },
            "tank.agent.iface" => cfg.iface = Some(value.to_string()),
            "tank.agent.hostname" => {
                if !value.is_empty()
                    && value.len() <= 63
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    cfg.hostname = Some(value.to_string());
                } else {
                    problems.push(format!(
                        "tank.agent.hostname={value} is not a host name (letters, digits, '-', at most 63)"
                    ));
                }
            }
            "tank.agent.console" => cfg.console = Some(value.to_string()),
            k if k.starts_with("tank.agent.") => {
                problems.push(format!("unknown kernel parameter {k}; ignored"))
            }
            _ => {}
        }
    }
    (cfg, problems)
}

/// `A.B.C.D/P`.
pub fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = text.split_once('/')?;
    let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
    Some((a.parse().ok()?, prefix))
}

/// Mounts proc, sysfs, devtmpfs and the tmpfs folders; failures are returned as messages.
pub fn early_mounts() -> Vec<String> {
    let mut problems = Vec::new();
    let table: &[(&str, &str, &str, MountFlags)] = &[
        (
            "proc",
            "/proc",
            "proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        ),
        (
            "sysfs",
            "/sys",
            "sysfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        ),
        ("devtmpfs", "/dev", "devtmpfs", MountFlags::NOSUID),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
        ),
    ];
    for (source, target, fstype, flags) in table {
        let _ = std::fs::create_dir_all(target);
        match rustix::mount::mount(*source, *target, *fstype, *flags, None) {
            Ok(()) | Err(rustix::io::Errno::BUSY) => {}
            Err(e) => problems.push(format!("mount {fstype} on {target}: {e}")),
        }
    }
    problems
}

/// Sets the host name.
pub fn set_hostname(name: &str) -> Result<(), String> {
    rustix::system::sethostname(name.as_bytes()).map_err(|e| format!("sethostname {name}: {e}"))
}

/// Guest uptime in seconds.
pub fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A `modules.dep` that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepError {
    #[error("modules.dep line {0} has no ':': '{1}'")]
    Line(usize, String),
    #[error("modules.dep names {0} as a dependency of {1} but has no line for it")]
    Missing(String, String),
    #[error("modules.dep has a dependency cycle through {0}")]
    Cycle(String),
}

/// Every module of a `modules.dep`, each after its dependencies (file order otherwise).
pub fn load_order(dep: &str) -> Result<Vec<String>, DepError> {
    let mut deps: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut order_in_file = Vec::new();
    for (i, line) in dep.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (module, list) = line
            .split_once(':')
            .ok_or_else(|| DepError::Line(i + 1, line.to_string()))?;
        let module = module.trim();
        deps.insert(module, list.split_whitespace().collect());
        order_in_file.push(module);
    }
    fn visit<'a>(
        m: &'a str,
        parent: &str,
        deps: &HashMap<&'a str, Vec<&'a str>>,
        state: &mut HashMap<&'a str, bool>,
        out: &mut Vec<String>,
    ) -> Result<(), DepError> {
        match state.get(m) {
            Some(true) => return Ok(()),
            Some(false) => return Err(DepError::Cycle(m.to_string())),
            None => {}
        }
        let list = deps
            .get(m)
            .ok_or_else(|| DepError::Missing(m.to_string(), parent.to_string()))?;
        state.insert(m, false);
        // depmod lists the deepest dependency last: load from the right.
        for d in list.iter().rev() {
            visit(d, m, deps, state, out)?;
        }
        state.insert(m, true);
        out.push(m.to_string());
        Ok(())
    }
    let mut state = HashMap::new();
    let mut out = Vec::new();
    for m in order_in_file {
        visit(m, "", &deps, &mut state, &mut out)?;
    }
    Ok(out)
}

/// What loading the image's modules did.
#[derive(Debug, Default, Clone)]
pub struct ModuleReport {
    pub loaded: Vec<String>,
    /// ENODEV: hardware this machine lacks (an accelerated crypto variant under TCG).
    pub not_applicable: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// Modules whose initialisation took longest, slowest first, with seconds.
    pub slowest: Vec<(String, f64)>,
}

/// `/lib/modules/<release>`.
pub fn modules_dir() -> PathBuf {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    Path::new("/lib/modules").join(release)
}

/// Loads every module of `dir/modules.dep`, dependencies first. A module already in the kernel
/// counts as loaded; each file is removed once loaded (the initramfs is RAM).
pub fn load_modules(dir: &Path) -> Result<ModuleReport, String> {
    let dep_path = dir.join("modules.dep");
    let dep = std::fs::read_to_string(&dep_path)
        .map_err(|e| format!("cannot read {}: {e}", dep_path.display()))?;
    let order = load_order(&dep).map_err(|e| e.to_string())?;
    let mut report = ModuleReport::default();
    for rel in order {
        let name = module_name(&rel);
        let path = dir.join(&rel);
        let started = std::time::Instant::now();
        let result = File::open(&path).map_err(|e| e.to_string()).and_then(|f| {
            match rustix::system::finit_module(&f, c"", 0) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(true),
                Err(rustix::io::Errno::NODEV) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        });
        report
            .slowest
            .push((name.clone(), started.elapsed().as_secs_f64()));
        match result {
            Ok(true) => {
                let _ = std::fs::remove_file(&path);
                report.loaded.push(name);
            }
            Ok(false) => report.not_applicable.push(name),
            Err(e) => report.failed.push((name, e)),
        }
    }
    report.slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    report.slowest.truncate(5);
    Ok(report)
}

/// `kernel/fs/nfs/nfsv4.ko` → `nfsv4`.
fn module_name(rel: &str) -> String {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    file.trim_end_matches(".ko").replace('-', "_")
}

/// Writes back dirty pages, then drops the page cache, dentries and inodes.
pub fn drop_caches() -> Result<(), std::io::Error> {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
}

/// Syncs (bounded: a dead NFS server must not hold the power-off), detaches the network
/// mounts and powers off. Returns only if the kernel refused, with the reason.
pub fn poweroff() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        rustix::fs::sync();
        let _ = tx.send(());
    });
    if rx.recv_timeout(std::time::Duration::from_secs(10)).is_err() {
        log::warn!("sync did not finish in 10 s (a server may be gone); powering off anyway");
    }
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
        for line in mounts.lines().rev() {
            let f: Vec<&str> = line.split(' ').collect();
            if let [_, target, fstype, ..] = f[..] {
                if matches!(fstype, "nfs" | "nfs4" | "cifs" | "smb3") {
                    let _ = rustix::mount::unmount(
                        target,
                        rustix::mount::UnmountFlags::DETACH | rustix::mount::UnmountFlags::FORCE,
                    );
                }
            }
        }
    }
    match rustix::system::reboot(rustix::system::RebootCommand::PowerOff) {
        Ok(()) => "the kernel returned from power-off".into(),
        Err(e) => format!("the kernel refused to power off: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline() {
        let (c, p) = parse_cmdline(
            "console=ttyS0,115200 tank.board=test-client tank.agent.ip=10.0.3.2/24 \
             tank.agent.hostname=client-a",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.address, Some((Ipv4Addr::new(10, 0, 3, 2), 24)));
        assert_eq!(c.hostname(), "client-a");
        let (c, p) = parse_cmdline("tank.agent.ip=10.0.3.300/24 tank.agent.colour=red");
        assert_eq!(c.address, None);
        assert_eq!(p.len(), 2);
        assert!(p[0].contains("not ADDRESS/PREFIX"), "{p:?}");
        assert!(p[1].contains("unknown kernel parameter"), "{p:?}");
        let (c, _) = parse_cmdline("tank.agent.ip=10.0.3.7/24");
        assert_eq!(c.hostname(), "client-10-0-3-7");
        let (_, p) = parse_cmdline("tank.agent.hostname=no_underscores");
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn dependency_order() {
        // depmod's format: every transitive dependency, the deepest last.
        let dep = "kernel/fs/nfs/nfsv4.ko: kernel/fs/nfs/nfs.ko kernel/fs/lockd/lockd.ko kernel/net/sunrpc/sunrpc.ko\n\
                   kernel/fs/lockd/lockd.ko: kernel/net/sunrpc/sunrpc.ko\n\
                   kernel/fs/nfs/nfs.ko: kernel/fs/lockd/lockd.ko kernel/net/sunrpc/sunrpc.ko\n\
                   kernel/net/sunrpc/sunrpc.ko:\n\
                   kernel/drivers/char/hw_random/virtio-rng.ko:\n";
        let order = load_order(dep).unwrap();
        let names: Vec<String> = order.iter().map(|p| module_name(p)).collect();
        assert_eq!(names, ["sunrpc", "lockd", "nfs", "nfsv4", "virtio_rng"]);
        assert!(matches!(
            load_order("a.ko: b.ko\n"),
            Err(DepError::Missing(..))
        ));
        assert!(matches!(
            load_order("a.ko: b.ko\nb.ko: a.ko\n"),
            Err(DepError::Cycle(_))
        ));
        assert!(matches!(load_order("garbage\n"), Err(DepError::Line(1, _))));
    }

    /// Random modules.dep text never panics the ordering.
    #[test]
    fn fuzz_load_order() {
        let mut state = 0xdead_beef_cafe_f00du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let parts = ["a.ko", "b.ko", "c.ko", ":", " ", "\n", "::", "d.ko"];
        for _ in 0..20_000 {
            let text: String = (0..next() % 16)
                .map(|_| parts[(next() % parts.len() as u64) as usize])
                .collect();
            let _ = load_order(&text);
        }
    }
}
