//! Pool lifecycle and datasets, as the engine drives them: discovery and assembly, create,
//! status, replace, scrub, and dataset create/list/set/destroy.
//!
//! Every change is validated first and applied second; a step that fails undoes the steps
//! before it, so a failed request leaves the pool as it was. Persisting the new configuration
//! is the engine's job.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::btrfs::{self, probe::Signature};
use super::{
    config_dir, dataset_mountpoint, pool_mountpoint, DatasetInfo, ErrorCounters, Health,
    MemberStatus, PoolStatus, ScrubSummary, META_SUBVOL, POOL_ROOT,
};
use crate::config::{Compression, Config, DatasetConfig, DatasetName, PoolConfig, PoolName};
use crate::console::request::{DatasetProps, DiskName, MemberRef};
use crate::system::disks::{self, Disk};

/// How long assembly waits for a missing member before mounting degraded.
pub const MISSING_MEMBER_WAIT: Duration = Duration::from_secs(10);

/// A disk and what is on it.
#[derive(Clone, Debug)]
pub struct Found {
    pub disk: Disk,
    pub signatures: Vec<Signature>,
    /// The disk the appliance booted from: never a pool member.
    pub boot: bool,
}

impl Found {
    fn member(&self) -> Option<(uuid::Uuid, &str, u64, u64)> {
        self.signatures.iter().find_map(|s| match s {
            Signature::Btrfs(m) => Some((m.fsid, m.label.as_str(), m.devid, m.num_devices)),
            _ => None,
        })
    }
}

/// Every disk with its signatures, the boot device marked.
pub fn discover() -> Vec<Found> {
    let all = disks::list();
    let kernel: Vec<String> = all.iter().map(|d| d.kernel.clone()).collect();
    let boot = crate::system::bootdev::boot_disk(&kernel);
    all.into_iter()
        .filter(|d| d.size_bytes > 0)
        .map(|disk| {
            let signatures = btrfs::probe::probe(&kernel_node(&disk)).unwrap_or_default();
            Found {
                boot: Some(&disk.kernel) == boot.as_ref(),
                disk,
                signatures,
            }
        })
        .collect()
}

/// The device node of the disk Tank calls `name` (names follow the bus order, the kernel's
/// may not: see `system::disks`).
pub fn dev_path(name: &str) -> PathBuf {
    disks::node(name)
}

fn kernel_node(disk: &Disk) -> PathBuf {
    Path::new("/dev").join(&disk.kernel)
}

/// A pool found and mounted at boot.
#[derive(Clone, Debug)]
pub struct Assembled {
    pub name: String,
    pub uuid: uuid::Uuid,
    pub degraded: bool,
    pub missing: u64,
    pub devices: Vec<PathBuf>,
}

/// A pool on the disks that Tank could have made (its label is a valid pool name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub uuid: uuid::Uuid,
    pub name: String,
    /// Members the superblock counts.
    pub expected: u64,
    /// Members present, by device node.
    pub devices: Vec<PathBuf>,
}

impl Candidate {
    fn describe(&self) -> String {
        let disks: Vec<String> = self
            .devices
            .iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        format!("'{}' ({}; uuid {})", self.name, disks.join(", "), self.uuid)
    }
}

/// Which pool to assemble: the one asked for by name or UUID, else the one this box
/// remembers, else the only one. With several on the disks and none asked for or remembered,
/// none is chosen: a disk brought from another box must never take over this one's shares, so
/// the operator names the pool with `pool import`.
pub fn choose<'a>(
    candidates: &'a [Candidate],
    wanted: Option<&str>,
    remembered: Option<uuid::Uuid>,
) -> Result<Option<&'a Candidate>, String> {
    if let Some(wanted) = wanted {
        let by_name: Vec<&Candidate> = candidates.iter().filter(|c| c.name == wanted).collect();
        return match (
            candidates.iter().find(|c| c.uuid.to_string() == wanted),
            by_name.as_slice(),
        ) {
            (Some(c), _) => Ok(Some(c)),
            (None, [c]) => Ok(Some(*c)),
            (None, []) => Err(format!(
                "no pool '{wanted}' on the disks; found {}",
                list_or_none(candidates)
            )),
            (None, _) => Err(format!(
                "several pools are named '{wanted}': {}; name one by its uuid",
                list_or_none(&by_name.into_iter().cloned().collect::<Vec<_>>())
            )),
        };
    }
    if let Some(uuid) = remembered {
        return match candidates.iter().find(|c| c.uuid == uuid) {
            Some(own) => {
                for other in candidates.iter().filter(|c| c.uuid != uuid) {
                    log::warn!(
                        "pool {} is not this box's pool; it is left alone ('pool import' after \
                         a 'poweroff' without this box's disks would use it)",
                        other.describe()
                    );
                }
                Ok(Some(own))
            }
            None if candidates.is_empty() => Ok(None),
            None => Err(format!(
                "this box's pool (uuid {uuid}) is not on the disks; found {}; none was mounted: \
                 'pool import NAME' uses one of them instead",
                list_or_none(candidates)
            )),
        };
    }
    match candidates {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        several => Err(format!(
            "several pools are on the disks: {}; none was mounted, so a disk from another box \
             cannot take this one's place: mount the right one with 'pool import NAME' (or its uuid)",
            list_or_none(several)
        )),
    }
}

fn list_or_none(candidates: &[Candidate]) -> String {
    if candidates.is_empty() {
        return "none".into();
    }
    candidates
        .iter()
        .map(Candidate::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pools on `found` disks that Tank could have made (a valid pool name as label), the boot
/// device left out.
pub fn candidates(found: &[Found]) -> Vec<Candidate> {
    let mut pools: Vec<Candidate> = Vec::new();
    for f in found.iter().filter(|f| !f.boot) {
        if let Some((fsid, label, _devid, num)) = f.member() {
            let path = kernel_node(&f.disk);
            match pools.iter_mut().find(|p| p.uuid == fsid) {
                Some(p) => p.devices.push(path),
                None => pools.push(Candidate {
                    uuid: fsid,
                    name: label.to_string(),
                    expected: num,
                    devices: vec![path],
                }),
            }
        }
    }
    pools.retain(|p| PoolName::parse(&p.name).is_ok());
    pools
}

/// Finds the pool's members, waits a bounded time for a missing one, registers them and mounts
/// the top level at [`POOL_ROOT`] (degraded if a member stayed missing). `wanted` names the
/// pool by name or UUID (`pool import`); without it, the only pool on the disks. `Ok(None)`: no
/// pool on these disks.
pub fn assemble(wait: Duration, wanted: Option<String>) -> Result<Option<Assembled>, String> {
    let deadline = Instant::now() + wait;
    let mut remembered: Option<Option<uuid::Uuid>> = None;
    loop {
        let found = discover();
        let pools = candidates(&found);
        // Only an ESP remembers the pool; without candidates there is nothing to ask it.
        if remembered.is_none() && !pools.is_empty() {
            remembered = Some(crate::system::identity::remembered().map(|id| id.uuid));
        }
        let Some(pool) = choose(&pools, wanted.as_deref(), remembered.flatten())?.cloned() else {
            if Instant::now() >= deadline
                || found.is_empty() && Instant::now() + wait / 2 >= deadline
            {
                return Ok(None);
            }
            // Disks may still be probing: look again shortly.
            if found.is_empty() {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            return Ok(None);
        };
        let Candidate {
            uuid: fsid,
            name: label,
            expected,
            devices,
        } = pool;
        let present = devices.len() as u64;
        if present < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        for dev in &devices {
            if let Err(e) = btrfs::scan_device(dev) {
                log::warn!("registering {}: {e}", dev.display());
            }
        }
        let degraded = present < expected;
        if degraded {
            log::error!(
                "pool '{label}': {} of {expected} members present after waiting {} s; mounting DEGRADED",
                present,
                wait.as_secs()
            );
        }
        std::fs::create_dir_all(POOL_ROOT)
            .map_err(|e| format!("cannot create {POOL_ROOT}: {e}"))?;
        btrfs::mount_pool(&devices, Path::new(POOL_ROOT), degraded, None, "")
            .map_err(|e| format!("cannot mount pool '{label}': {e}"))?;
        if remembered.flatten() != Some(fsid) {
            remember(fsid, &label);
        }
        return Ok(Some(Assembled {
            name: label,
            uuid: fsid,
            degraded,
            missing: expected.saturating_sub(present),
            devices,
        }));
    }
}

/// The metadata subvolume and the configuration folder on the mounted pool, made where
/// missing (a btrfs file system imported that Tank did not make).
pub fn make_store_dirs() -> Result<(), String> {
    let meta = Path::new(POOL_ROOT).join(META_SUBVOL);
    if !meta.exists() {
        btrfs::create_subvolume(Path::new(POOL_ROOT), META_SUBVOL)
            .map_err(|e| format!("cannot create the metadata subvolume: {e}"))?;
    }
    std::fs::create_dir_all(config_dir())
        .map_err(|e| format!("cannot create {}: {e}", config_dir().display()))
}

/// Remembers the pool as this box's on the ESP; a box without one goes on without.
pub fn remember(uuid: uuid::Uuid, name: &str) {
    let id = crate::system::identity::PoolIdentity {
        uuid,
        name: name.to_string(),
    };
    match crate::system::identity::remember(&id) {
        Ok(()) => log::info!("pool '{name}' (uuid {uuid}) is this box's pool from now on"),
        Err(e) => log::info!("pool '{name}' is not remembered: {e}"),
    }
}

/// Mounts `/mnt/<pool>` (a tmpfs for the mount points) and every dataset of `config`. Returns a
/// line per dataset that could not be mounted.
pub fn mount_datasets(config: &Config) -> Vec<String> {
    let Some(pool) = &config.pool else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if let Err(e) = mount_pool_dir(pool.name.as_str()) {
        problems.push(e);
        return problems;
    }
    for ds in &config.datasets {
        if let Err(e) = mount_dataset(pool.name.as_str(), ds.name.as_str()) {
            problems.push(format!("dataset {}: {e}", ds.name.as_str()));
            continue;
        }
        for problem in super::snapshots::mount_all(pool.name.as_str(), ds.name.as_str()) {
            problems.push(format!("snapshots of {}: {problem}", ds.name.as_str()));
        }
    }
    problems
}

fn mount_pool_dir(pool: &str) -> Result<(), String> {
    let dir = pool_mountpoint(pool);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if is_mountpoint(&dir) {
        return Ok(());
    }
    rustix::mount::mount(
        "tmpfs",
        &dir,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        Some(c"mode=0755,size=1m"),
    )
    .map_err(|e| format!("cannot mount {}: {e}", dir.display()))
}

/// Whether `path` is a mount point now.
pub fn is_mountpoint(path: &Path) -> bool {
    let p = path.to_string_lossy();
    crate::system::mounts::mount_points()
        .iter()
        .any(|m| *m == p)
}

fn mount_dataset(pool: &str, name: &str) -> Result<(), String> {
    let target = dataset_mountpoint(pool, name);
    if is_mountpoint(&target) {
        return Ok(());
    }
    std::fs::create_dir_all(&target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let id = btrfs::subvolume_id(&Path::new(POOL_ROOT).join(name)).map_err(|e| e.to_string())?;
    let dev = any_member_device().ok_or("no member device is present")?;
    btrfs::mount_subvolume(&dev, &target, id, None).map_err(|e| e.to_string())
}

fn unmount_dataset(pool: &str, name: &str) -> Result<(), String> {
    super::snapshots::unmount_all(pool, name);
    let target = dataset_mountpoint(pool, name);
    if is_mountpoint(&target) {
        rustix::mount::unmount(&target, rustix::mount::UnmountFlags::empty())
            .map_err(|e| format!("cannot unmount {}: {e} (files open?)", target.display()))?;
    }
    let _ = std::fs::remove_dir(&target);
    Ok(())
}

/// A present member's device node (any member mounts the whole pool).
pub(super) fn any_member_device() -> Option<PathBuf> {
    btrfs::devices(Path::new(POOL_ROOT))
        .ok()?
        .into_iter()
        .find(|d| !gone(d))
        .and_then(|d| d.path)
}

/// A member the kernel has no device for: missing at mount, or its disk removed since (the
/// kernel keeps the member with its old path, whose node is gone).
fn gone(d: &btrfs::DeviceStatus) -> bool {
    d.missing || d.path.as_ref().is_some_and(|p| !p.exists())
}

/// Why `pool create` or `pool replace` may not use a disk, or `None` if it is blank.
fn disk_in_use(found: &Found) -> Option<String> {
    if found.signatures.is_empty() {
        None
    } else {
        Some(
            found
                .signatures
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// Checks the disks named for a create or replace. Disks that hold something need `force` and
/// a confirmation (the disk's name or serial typed by the operator): the result is then
/// `Err(Confirm)` for the first unconfirmed one.
pub enum DiskCheck {
    Ok(Vec<Found>),
    Refused(String),
    Confirm {
        question: String,
        answers: Vec<String>,
    },
}

pub fn check_disks(names: &[DiskName], force: bool, confirmations: &[String]) -> DiskCheck {
    let found = discover();
    let mut chosen = Vec::new();
    for name in names {
        let Some(f) = found.iter().find(|f| f.disk.name == name.as_str()) else {
            let known: Vec<&str> = found.iter().map(|f| f.disk.name.as_str()).collect();
            return DiskCheck::Refused(format!(
                "there is no disk '{}' (disks: {}); nothing was changed",
                name.as_str(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        if f.boot {
            return DiskCheck::Refused(format!(
                "{} is the boot device; nothing was changed",
                name.as_str()
            ));
        }
        if f.disk.read_only {
            return DiskCheck::Refused(format!(
                "{} is read-only; nothing was changed",
                name.as_str()
            ));
        }
        if let Some(what) = disk_in_use(f) {
            if !force {
                return DiskCheck::Refused(format!(
                    "{} holds {what}; nothing was changed. To erase it, repeat the command with 'force' \
                     and confirm with the disk's name or serial",
                    name.as_str()
                ));
            }
            let mut answers = vec![f.disk.name.clone()];
            if !f.disk.serial.is_empty() {
                answers.push(f.disk.serial.clone());
            }
            if !confirmations.iter().any(|c| answers.contains(c)) {
                return DiskCheck::Confirm {
                    question: format!(
                        "{} ({}, serial {}) holds {what}. Everything on it will be erased.\n\
                         Type its name ({}) or serial to confirm, anything else to cancel:",
                        f.disk.name,
                        disks::human_size(f.disk.size_bytes),
                        if f.disk.serial.is_empty() {
                            "-"
                        } else {
                            &f.disk.serial
                        },
                        f.disk.name
                    ),
                    answers,
                };
            }
        }
        chosen.push(f.clone());
    }
    DiskCheck::Ok(chosen)
}

/// Formats the two disks as pool `name`, mounts it and prepares the metadata subvolume.
/// Returns the new pool's configuration entry.
pub fn create(name: &PoolName, disks: &[Found]) -> Result<PoolConfig, String> {
    if !crate::system::info::entropy_ready() {
        return Err(
            "the kernel's random pool is not ready yet, so the pool's UUIDs cannot be made; \
                    add a hardware RNG (virtio-rng, TPM) or wait a minute and try again"
                .into(),
        );
    }
    let paths: Vec<PathBuf> = disks.iter().map(|d| kernel_node(&d.disk)).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let fsid =
        btrfs::mkfs_raid1(&refs, name.as_str()).map_err(|e| format!("formatting failed: {e}"))?;
    for p in &paths {
        btrfs::scan_device(p).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(POOL_ROOT).map_err(|e| format!("cannot create {POOL_ROOT}: {e}"))?;
    btrfs::mount_pool(&paths, Path::new(POOL_ROOT), false, None, "")
        .map_err(|e| format!("cannot mount the new pool: {e}"))?;
    // btrfs-mkfs leaves the first system chunk `single` on one member: convert everything to
    // RAID1 now, while the pool is empty and it takes milliseconds.
    btrfs::balance_convert_raid1(Path::new(POOL_ROOT))
        .map_err(|e| format!("cannot mirror the new pool's chunks: {e}"))?;
    btrfs::create_subvolume(Path::new(POOL_ROOT), META_SUBVOL)
        .map_err(|e| format!("cannot create the metadata subvolume: {e}"))?;
    std::fs::create_dir_all(config_dir())
        .map_err(|e| format!("cannot create {}: {e}", config_dir().display()))?;
    mount_pool_dir(name.as_str())?;
    remember(fsid, name.as_str());
    Ok(PoolConfig {
        name: name.clone(),
        uuid: *fsid.as_bytes(),
    })
}

/// The pool's status.
pub fn status(
    config: &Config,
    degraded_mount: bool,
    job: Option<String>,
    last_scrub: Option<ScrubSummary>,
) -> Option<PoolStatus> {
    let pool = config.pool.as_ref()?;
    let root = Path::new(POOL_ROOT);
    let zone = crate::system::clock::zone();
    let schedule = match config.scrub.next_slot(now(), &zone) {
        Some(next) => format!(
            "{} (next {})",
            config.scrub.in_zone(&crate::system::clock::zone_name()),
            crate::system::clock::console_time(next)
        ),
        None => config.scrub.in_zone(&crate::system::clock::zone_name()),
    };
    let mut st = PoolStatus {
        name: pool.name.as_str().to_string(),
        uuid: uuid::Uuid::from_bytes(pool.uuid).to_string(),
        health: Health::Unavailable,
        mountpoint: pool_mountpoint(pool.name.as_str()).display().to_string(),
        members: Vec::new(),
        size_bytes: 0,
        used_bytes: 0,
        free_bytes: 0,
        profiles: Vec::new(),
        job,
        last_scrub,
        scrub_schedule: schedule,
        advice: Vec::new(),
    };
    let devices = match btrfs::devices(root) {
        Ok(d) => d,
        Err(e) => {
            st.advice.push(format!(
                "the pool is not mounted ({e}); check that its disks are attached, then reboot"
            ));
            return Some(st);
        }
    };
    let all_disks = disks::list();
    for d in &devices {
        let disk = d
            .path
            .as_ref()
            .and_then(|p| disks::name_of_node(&all_disks, p))
            .filter(|_| !gone(d));
        let serial = disk
            .as_ref()
            .and_then(|n| all_disks.iter().find(|x| &x.name == n))
            .map(|x| x.serial.clone())
            .unwrap_or_default();
        let errors = btrfs::device_stats(root, d.devid)
            .map(|e| ErrorCounters {
                read: e.read,
                write: e.write,
                flush: e.flush,
                corruption: e.corruption,
                generation: e.generation,
            })
            .unwrap_or_default();
        st.members.push(MemberStatus {
            devid: d.devid,
            disk,
            serial,
            size_bytes: d.size,
            missing: gone(d),
            errors,
        });
    }
    let missing = st.members.iter().filter(|m| m.missing).count();
    if let Ok(vfs) = rustix::fs::statvfs(root) {
        st.size_bytes = vfs.f_blocks * vfs.f_frsize;
        st.free_bytes = vfs.f_bavail * vfs.f_frsize;
        st.used_bytes = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    }
    if let Ok(spaces) = btrfs::space_info(root) {
        for sp in spaces
            .iter()
            .filter(|s| s.kind != btrfs::BlockGroupKind::GlobalReserve)
        {
            let entry = (sp.kind.to_string(), sp.profile.to_string());
            if !st.profiles.contains(&entry) {
                st.profiles.push(entry);
            }
        }
    }
    let unmirrored: Vec<String> = st
        .profiles
        .iter()
        .filter(|(_, p)| p != "RAID1")
        .map(|(k, p)| format!("{k} {p}"))
        .collect();
    st.health = if missing > 0 || degraded_mount || !unmirrored.is_empty() {
        Health::Degraded
    } else {
        Health::Online
    };
    if missing > 0 {
        st.advice.push(format!(
            "{missing} member(s) missing: the pool has no redundancy. Attach a blank disk at least as \
             large and run 'pool replace missing DISK'"
        ));
    } else if !unmirrored.is_empty() {
        st.advice.push(format!(
            "chunks not mirrored ({}): run 'pool replace' to finish, or wait for the running re-mirror",
            unmirrored.join(", ")
        ));
    }
    for m in &st.members {
        let e = m.errors;
        if e.read + e.write + e.flush + e.corruption + e.generation > 0 {
            st.advice.push(format!(
                "devid {} has recorded errors; run 'pool scrub start' and watch the counters; \
                 if they keep rising, replace the disk",
                m.devid
            ));
        }
    }
    if let Some(s) = &st.last_scrub {
        if s.uncorrectable > 0 {
            st.advice.push(format!(
                "the last scrub found {} uncorrectable error(s): some data is damaged on both copies; \
                 restore the affected files from a backup or snapshot (see 'log')",
                s.uncorrectable
            ));
        }
    }
    Some(st)
}

/// Which pool each disk belongs to, for `disks` and `status`.
pub fn disk_roles() -> Vec<(String, String)> {
    discover()
        .into_iter()
        .filter_map(|f| {
            if f.boot {
                return Some((f.disk.name.clone(), "boot device".to_string()));
            }
            let (_, label, devid, _) = f.member()?;
            Some((f.disk.name.clone(), format!("pool {label} (devid {devid})")))
        })
        .collect()
}

/// Resolves the member a replace takes out.
pub fn member_devid(old: &MemberRef) -> Result<u64, String> {
    let devices = btrfs::devices(Path::new(POOL_ROOT))
        .map_err(|e| format!("the pool is not mounted: {e}"))?;
    let pick = match old {
        MemberRef::Missing => devices.iter().find(|d| gone(d)),
        MemberRef::Devid(id) => devices.iter().find(|d| d.devid == *id),
        MemberRef::Disk(name) => {
            let all = disks::list();
            devices.iter().find(|d| {
                !gone(d)
                    && d.path
                        .as_ref()
                        .and_then(|p| disks::name_of_node(&all, p))
                        .is_some_and(|n| n == name.as_str())
            })
        }
    };
    pick.map(|d| d.devid).ok_or_else(|| match old {
        MemberRef::Missing => {
            "no member is missing; name the member to replace by devid or disk".to_string()
        }
        MemberRef::Devid(id) => {
            format!("the pool has no devid {id}; 'pool status' lists the members")
        }
        MemberRef::Disk(n) => format!(
            "{} is not a member of the pool; 'pool status' lists the members",
            n.as_str()
        ),
    })
}

/// Replaces `devid` with `new` and re-mirrors every chunk (blocking: run it in a thread).
/// Reports progress through `progress`.
pub fn replace_and_remirror(
    devid: u64,
    new: &Path,
    progress: &(dyn Fn(String) + Sync),
) -> Result<(), String> {
    let root = Path::new(POOL_ROOT);
    progress(format!(
        "replacing devid {devid} with {}: starting",
        new.display()
    ));
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        // The replace ioctl blocks until the copy is done; report its progress meanwhile.
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(st) = btrfs::replace_status(root) {
                    progress(format!(
                        "replacing devid {devid} with {}: {:.1}%",
                        new.display(),
                        st.percent
                    ));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let r = btrfs::replace_start(root, devid, new);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
    result.map_err(|e| format!("replace failed: {e}"))?;
    progress("re-mirroring chunks written while degraded".into());
    let relocated =
        btrfs::balance_convert_raid1(root).map_err(|e| format!("re-mirroring failed: {e}"))?;
    log::info!("re-mirroring relocated {relocated} chunk(s)");
    Ok(())
}

/// Scrubs every present member (blocking: run it in a thread).
pub fn scrub(progress: &(dyn Fn(String) + Sync)) -> Result<(ScrubSummary, f64), String> {
    let root = Path::new(POOL_ROOT);
    let started = now();
    let clock = Instant::now();
    let devices = btrfs::devices(root).map_err(|e| format!("the pool is not mounted: {e}"))?;
    let mut summary = ScrubSummary {
        started,
        ..Default::default()
    };
    for d in devices.iter().filter(|d| !gone(d)) {
        progress(format!("scrubbing devid {}", d.devid));
        let done = std::sync::atomic::AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            // The scrub ioctl blocks until the device is done; report its progress meanwhile.
            s.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    if let Ok(all) = btrfs::scrub_progress(root) {
                        if let Some((_, Some(p))) = all.iter().find(|(id, _)| *id == d.devid) {
                            progress(format!(
                                "scrubbing devid {}: {} done, {} error(s) so far",
                                d.devid,
                                disks::human_size(p.bytes_scrubbed),
                                p.errors()
                            ));
                        }
                    }
                }
            });
            let r = btrfs::scrub_device(root, d.devid, false);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        });
        match result {
            Ok(r) => {
                summary.bytes_scrubbed += r.bytes_scrubbed;
                summary.corrected += r.corrected;
                summary.uncorrectable += r.uncorrectable;
            }
            Err(btrfs::BtrfsError::Cancelled { .. }) => {
                summary.cancelled = true;
                break;
            }
            Err(e) => return Err(format!("scrub of devid {} failed: {e}", d.devid)),
        }
    }
    summary.finished = now();
    Ok((summary, clock.elapsed().as_secs_f64()))
}

/// Cancels a running scrub.
pub fn scrub_cancel() -> Result<(), String> {
    btrfs::scrub_cancel(Path::new(POOL_ROOT))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Commits the pool's running transaction (`syncfs` on the pool).
pub fn sync_pool() -> Result<(), String> {
    let root =
        std::fs::File::open(POOL_ROOT).map_err(|e| format!("cannot open {POOL_ROOT}: {e}"))?;
    rustix::fs::syncfs(&root).map_err(|e| format!("syncing the pool: {e}"))
}

/// Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Creates a dataset: subvolume, properties, mount. Undoes what it did on failure.
pub fn dataset_create(
    config: &Config,
    name: &DatasetName,
    props: &DatasetProps,
) -> Result<DatasetConfig, String> {
    let pool = config
        .pool
        .as_ref()
        .ok_or("there is no pool yet; create one with 'pool create'")?;
    if config.datasets.iter().any(|d| d.name == *name) {
        return Err(format!(
            "dataset '{}' already exists; 'dataset list' shows them",
            name.as_str()
        ));
    }
    let (uid, gid) = props.owner.unwrap_or((0, 0));
    let ds = DatasetConfig {
        name: name.clone(),
        quota: props.quota.flatten(),
        compression: props.compression.unwrap_or(Compression::None),
        uid,
        gid,
        mode: props.mode.unwrap_or(0o755),
    };
    let path = Path::new(POOL_ROOT).join(name.as_str());
    if path.exists() {
        return Err(format!(
            "the pool already holds '{}' (not a dataset Tank knows); nothing was changed",
            name.as_str()
        ));
    }
    btrfs::create_subvolume(Path::new(POOL_ROOT), name.as_str())
        .map_err(|e| format!("cannot create the subvolume: {e}"))?;
    let result = apply_props(&path, &ds, true)
        .and_then(|()| mount_dataset(pool.name.as_str(), name.as_str()));
    if let Err(e) = result {
        let _ = unmount_dataset(pool.name.as_str(), name.as_str());
        let _ = btrfs::delete_subvolume(&path);
        return Err(format!("{e}; nothing was changed"));
    }
    for problem in super::snapshots::mount_all(pool.name.as_str(), name.as_str()) {
        log::warn!("dataset {}: {problem}", name.as_str());
    }
    Ok(ds)
}

/// Applies a dataset's properties to its subvolume root.
fn apply_props(path: &Path, ds: &DatasetConfig, new: bool) -> Result<(), String> {
    let compression = match ds.compression {
        Compression::None => btrfs::Compression::None,
        Compression::Zstd => btrfs::Compression::Zstd,
        Compression::Lzo => btrfs::Compression::Lzo,
        Compression::Zlib => btrfs::Compression::Zlib,
    };
    btrfs::set_compression(path, compression)
        .map_err(|e| format!("cannot set compression: {e}"))?;
    rustix::fs::chown(
        path,
        Some(rustix::process::Uid::from_raw(ds.uid)),
        Some(rustix::process::Gid::from_raw(ds.gid)),
    )
    .map_err(|e| format!("cannot set the owner of {}: {e}", path.display()))?;
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(ds.mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    if ds.quota.is_some() || !new {
        set_quota(path, ds.quota.map(|q| q.bytes()))?;
    }
    Ok(())
}

fn set_quota(path: &Path, limit: Option<u64>) -> Result<(), String> {
    let root = Path::new(POOL_ROOT);
    let enabled = btrfs::quotas_enabled(root).unwrap_or(false);
    if limit.is_none() && !enabled {
        return Ok(());
    }
    if !enabled {
        log::info!("enabling simple quotas on the pool (first dataset quota)");
        btrfs::enable_simple_quotas(root).map_err(|e| format!("cannot enable quotas: {e}"))?;
    }
    let id = btrfs::subvolume_id(path).map_err(|e| e.to_string())?;
    match limit {
        Some(bytes) => btrfs::set_subvolume_limit(root, id, bytes),
        None => btrfs::clear_subvolume_limit(root, id),
    }
    .map_err(|e| format!("cannot set the quota: {e}"))
}

/// Changes a dataset's properties; returns the new entry.
pub fn dataset_set(
    config: &Config,
    name: &DatasetName,
    props: &DatasetProps,
) -> Result<DatasetConfig, String> {
    let old = config.dataset(name).ok_or_else(|| {
        format!(
            "there is no dataset '{}'; 'dataset list' shows them",
            name.as_str()
        )
    })?;
    let mut ds = old.clone();
    if let Some(q) = props.quota {
        ds.quota = q;
    }
    if let Some(c) = props.compression {
        ds.compression = c;
    }
    if let Some((u, g)) = props.owner {
        ds.uid = u;
        ds.gid = g;
    }
    if let Some(m) = props.mode {
        ds.mode = m;
    }
    let path = Path::new(POOL_ROOT).join(name.as_str());
    if let Err(e) = apply_props(&path, &ds, false) {
        // Put back what was there.
        let _ = apply_props(&path, old, false);
        return Err(format!("{e}; the dataset keeps its previous settings"));
    }
    Ok(ds)
}

/// Creates dataset `target` as a writable copy of snapshot `dataset@name`, with the source
/// dataset's compression, owner and mode and no quota, and mounts it. Undoes itself on failure.
pub fn dataset_clone(
    config: &Config,
    dataset: &DatasetName,
    name: &crate::config::SnapshotName,
    target: &DatasetName,
) -> Result<DatasetConfig, String> {
    let pool = config.pool.as_ref().ok_or("there is no pool")?;
    let source = config.dataset(dataset).ok_or_else(|| {
        format!(
            "there is no dataset '{}'; 'dataset list' shows them",
            dataset.as_str()
        )
    })?;
    if config.dataset(target).is_some() || Path::new(POOL_ROOT).join(target.as_str()).exists() {
        return Err(format!(
            "dataset '{}' already exists; choose another name",
            target.as_str()
        ));
    }
    super::snapshots::clone_to(dataset.as_str(), name, target.as_str())?;
    let ds = DatasetConfig {
        name: target.clone(),
        quota: None,
        ..source.clone()
    };
    let path = Path::new(POOL_ROOT).join(target.as_str());
    let result = apply_props(&path, &ds, true)
        .and_then(|()| mount_dataset(pool.name.as_str(), target.as_str()));
    if let Err(e) = result {
        let _ = unmount_dataset(pool.name.as_str(), target.as_str());
        let _ = btrfs::delete_subvolume(&path);
        return Err(format!("{e}; nothing was changed"));
    }
    let _ = super::snapshots::mount_all(pool.name.as_str(), target.as_str());
    Ok(ds)
}

/// Unmounts and deletes a dataset and its snapshots.
pub fn dataset_destroy(config: &Config, name: &DatasetName) -> Result<(), String> {
    let pool = config.pool.as_ref().ok_or("there is no pool")?;
    if !config.datasets.iter().any(|d| d.name == *name) {
        return Err(format!(
            "there is no dataset '{}'; 'dataset list' shows them",
            name.as_str()
        ));
    }
    unmount_dataset(pool.name.as_str(), name.as_str())?;
    for problem in super::snapshots::destroy_all(pool.name.as_str(), name.as_str()) {
        log::warn!("destroying dataset {}: {problem}", name.as_str());
    }
    let path = Path::new(POOL_ROOT).join(name.as_str());
    if let Err(e) = btrfs::delete_subvolume(&path) {
        let _ = mount_dataset(pool.name.as_str(), name.as_str());
        return Err(format!(
            "cannot delete the subvolume: {e}; the dataset is still there"
        ));
    }
    Ok(())
}

/// `dataset list`; the space snapshots hold is counted until `deadline`.
pub fn dataset_list(config: &Config, deadline: Instant) -> Vec<DatasetInfo> {
    let Some(pool) = &config.pool else {
        return Vec::new();
    };
    let root = Path::new(POOL_ROOT);
    let quotas_on = btrfs::quotas_enabled(root).unwrap_or(false);
    config
        .datasets
        .iter()
        .map(|ds| {
            let path = root.join(ds.name.as_str());
            let usage = if quotas_on {
                btrfs::subvolume_id(&path)
                    .ok()
                    .and_then(|id| btrfs::subvolume_usage(root, id).ok())
            } else {
                None
            };
            let mountpoint = dataset_mountpoint(pool.name.as_str(), ds.name.as_str());
            DatasetInfo {
                name: ds.name.as_str().to_string(),
                used: usage.map(|u| u.exclusive),
                referenced: usage.map(|u| u.referenced),
                snapshots: super::snapshots::held_by_all(ds.name.as_str(), deadline),
                quota: ds.quota.map(|q| q.bytes()),
                compression: ds.compression.to_string(),
                mounted: is_mountpoint(&mountpoint),
                mountpoint: mountpoint.display().to_string(),
                uid: ds.uid,
                gid: ds.gid,
                mode: ds.mode,
            }
        })
        .collect()
}

/// `(dataset, referenced bytes, quota bytes)` of each dataset with a quota, from the
/// qgroups (cheap: sysfs reads, no walking of files).
pub fn quota_usage(config: &Config) -> Vec<(String, u64, u64)> {
    let root = Path::new(POOL_ROOT);
    if config.pool.is_none() || !btrfs::quotas_enabled(root).unwrap_or(false) {
        return Vec::new();
    }
    config
        .datasets
        .iter()
        .filter_map(|ds| {
            let quota = ds.quota?.bytes();
            let id = btrfs::subvolume_id(&root.join(ds.name.as_str())).ok()?;
            let usage = btrfs::subvolume_usage(root, id).ok()?;
            Some((ds.name.as_str().to_string(), usage.referenced, quota))
        })
        .collect()
}

/// Reads `bytes` from the start of a disk and returns MiB/s (for `disk readtest`).
pub fn read_test(disk: &DiskName, bytes: u64) -> Result<f64, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dev_path(disk.as_str());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // O_DIRECT wants aligned buffers: over-allocate and read into an aligned window.
    let chunk = 1usize << 20;
    let mut raw = vec![0u8; chunk + 4096];
    let offset = raw.as_ptr().align_offset(4096);
    let buf = &mut raw[offset..offset + chunk];
    let start = Instant::now();
    let mut done = 0u64;
    while done < bytes {
        let n = f
            .read(buf)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        done += n as u64;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-6);
    Ok(done as f64 / 1048576.0 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, n: u8, disks: &[&str]) -> Candidate {
        Candidate {
            uuid: uuid::Uuid::from_bytes([n; 16]),
            name: name.into(),
            expected: disks.len() as u64,
            devices: disks.iter().map(|d| dev_path(d)).collect(),
        }
    }

    #[test]
    fn several_pools_are_never_guessed() {
        let tank = candidate("tank", 1, &["sda", "sdb"]);
        let other = candidate("other", 2, &["sdc"]);
        assert_eq!(choose(&[], None, None), Ok(None));
        assert_eq!(
            choose(std::slice::from_ref(&tank), None, None),
            Ok(Some(&tank))
        );
        let both = [other.clone(), tank.clone()];
        let e = choose(&both, None, None).unwrap_err();
        assert!(
            e.contains("several pools")
                && e.contains("'other' (sdc;")
                && e.contains("'tank' (sda, sdb;")
                && e.contains("pool import"),
            "{e}"
        );
        assert_eq!(choose(&both, Some("tank"), None), Ok(Some(&tank)));
        assert_eq!(
            choose(&both, Some(&other.uuid.to_string()), None),
            Ok(Some(&other))
        );
        let e = choose(&both, Some("backup"), None).unwrap_err();
        assert!(
            e.contains("no pool 'backup'") && e.contains("'tank'"),
            "{e}"
        );
        // Two pools of one name (two boxes' "tank"): only the uuid tells them apart.
        let twin = candidate("tank", 3, &["sdd"]);
        let e = choose(&[tank.clone(), twin.clone()], Some("tank"), None).unwrap_err();
        assert!(e.contains("uuid"), "{e}");
        assert_eq!(
            choose(
                &[tank.clone(), twin.clone()],
                Some(&twin.uuid.to_string()),
                None
            ),
            Ok(Some(&twin))
        );
        // The pool this box remembers wins over a foreign one; an import still overrides it.
        assert_eq!(choose(&both, None, Some(tank.uuid)), Ok(Some(&tank)));
        assert_eq!(
            choose(&both, Some("other"), Some(tank.uuid)),
            Ok(Some(&other))
        );
        // Its pool gone and another present: still no guess.
        let e = choose(std::slice::from_ref(&other), None, Some(tank.uuid)).unwrap_err();
        assert!(
            e.contains("this box's pool") && e.contains("'other'"),
            "{e}"
        );
        assert_eq!(choose(&[], None, Some(tank.uuid)), Ok(None));
    }
}
