//! Starting and stopping the kernel's NFS server through the `nfsd` filesystem's control
//! files (`fs/nfsd/nfsctl.c`), in rpc.nfsd's order: versions, block size, lease and grace
//! times and the client recovery directory before the listeners, then the threads.
//!
//! Each control file is a "simple transaction": open, one write, close. Values that must end
//! with a newline (`versions`, `nfsv4recoverydir`) get one; every write does, which the numeric
//! files accept. What does not live here: the export caches ([`super::upcall`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where the nfsd control filesystem is mounted.
pub const NFSD_DIR: &str = "/proc/fs/nfsd";

/// The only versions served: NFSv4.0, 4.1 and 4.2. NFSv3 would need lockd, statd and
/// rpc.mountd's MNT; v4 needs none of them.
pub const VERSIONS: &str = "-3 +4 +4.1 +4.2";

/// What the server starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub threads: u32,
    /// NFSv4 lease time in seconds: how long a silent client keeps its state.
    pub lease_secs: u32,
    /// How long after a start clients may reclaim their state before new opens are allowed.
    pub grace_secs: u32,
    /// Where the kernel records which clients may reclaim after a reboot (on the pool).
    pub recovery_dir: PathBuf,
    /// The largest READ or WRITE, in bytes.
    pub max_block_size: u32,
}

impl Settings {
    /// Defaults for this machine: 4 threads per CPU, at least 8 and at most 64; 1 MiB blocks
    /// (small guests otherwise get small defaults and clients sending large writes are cut off).
    pub fn for_machine(recovery_dir: PathBuf) -> Settings {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = u32::try_from(cpus * 4).unwrap_or(64).clamp(8, 64);
        Settings {
            threads,
            lease_secs: 30,
            grace_secs: 30,
            recovery_dir,
            max_block_size: 1 << 20,
        }
    }
}

/// Why the server did not start or stop.
#[derive(Debug, Error)]
pub enum NfsdError {
    #[error(
        "cannot mount the nfsd control filesystem on {NFSD_DIR}: {0}; is the nfsd module loaded?"
    )]
    Mount(rustix::io::Errno),
    #[error("cannot create the client recovery directory {path}: {source}")]
    RecoveryDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {value:?} to {file}: {source}")]
    Control {
        file: String,
        value: String,
        #[source]
        source: std::io::Error,
    },
}

fn control(name: &str, value: &str) -> Result<(), NfsdError> {
    let path = Path::new(NFSD_DIR).join(name);
    let failed = |source| NfsdError::Control {
        file: path.display().to_string(),
        value: value.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(failed)?;
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(failed)
}

fn read_control(name: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(NFSD_DIR).join(name))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Mounts the control filesystem unless it is there.
fn mount_control() -> Result<(), NfsdError> {
    if Path::new(NFSD_DIR).join("threads").exists() {
        return Ok(());
    }
    rustix::mount::mount(
        "nfsd",
        NFSD_DIR,
        "nfsd",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .map_err(NfsdError::Mount)
}

/// The number of running server threads (0 when stopped), if the control files are there.
pub fn threads() -> Option<u32> {
    read_control("threads")?.parse().ok()
}

/// Whether the recovery directory holds records of clients that may reclaim state.
fn has_reclaimable_clients(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Starts the server; returns whether a grace period is running (clients to reclaim).
pub fn start(settings: &Settings) -> Result<bool, NfsdError> {
    mount_control()?;
    if threads().unwrap_or(0) > 0 {
        return Ok(false);
    }
    std::fs::create_dir_all(&settings.recovery_dir).map_err(|source| NfsdError::RecoveryDir {
        path: settings.recovery_dir.clone(),
        source,
    })?;
    // No nfsdcltrack helper exists: make the kernel skip it and use the recovery directory.
    if let Err(e) = std::fs::write("/sys/module/nfsd/parameters/cltrack_prog", "\n") {
        log::warn!("nfs: cannot disable the nfsdcltrack helper: {e}");
    }
    control("max_block_size", &settings.max_block_size.to_string())?;
    control("versions", VERSIONS)?;
    control("nfsv4leasetime", &settings.lease_secs.to_string())?;
    control("nfsv4gracetime", &settings.grace_secs.to_string())?;
    control(
        "nfsv4recoverydir",
        &settings.recovery_dir.display().to_string(),
    )?;
    // The listeners are anonymous (never registered with rpcbind); the init's own rpcbind
    // lists them. A second start finds them in place.
    if !read_control("portlist").is_some_and(|p| p.contains("tcp 2049")) {
        control("portlist", "tcp 2049")?;
    }
    control("threads", &settings.threads.to_string())?;
    let reclaim = has_reclaimable_clients(&settings.recovery_dir);
    if !reclaim {
        // Nobody has state to reclaim: end the grace period so new opens work at once.
        if let Err(e) = control("v4_end_grace", "Y") {
            log::warn!("nfs: cannot end the grace period early: {e}");
        }
    }
    Ok(reclaim)
}

/// Stops the server: closes its listeners and drops all NFSv4 state (clients reclaim it from
/// the recovery directory after the next start).
pub fn stop() -> Result<(), NfsdError> {
    if threads().unwrap_or(0) == 0 {
        return Ok(());
    }
    control("threads", "0")
}

/// The NFSv4 clients the server knows (one directory each under `clients/`).
pub fn client_count() -> usize {
    std::fs::read_dir(Path::new(NFSD_DIR).join("clients")).map_or(0, |d| d.count())
}
