//! The boot slot this boot came from, and marking it good (systemd-boot boot counting).
//!
//! The disk image carries two slots, A and B, each with a boot entry on the EFI System
//! Partition (`docs/disk-layout.md`). A slot that has not yet come up once has a counter in its
//! entry's file name, `tank-a+3.conf`; systemd-boot renames it on every attempt
//! (`tank-a+2-1.conf`, ...) and tells us the new name in the EFI variable
//! `LoaderBootCountPath`. Once the appliance reaches the prompt with the pool assembled (or
//! with no pool on the disks, as on a new box), [`boot_ready`] mounts the ESP with the
//! kernel's vfat driver and renames the entry to `tank-a.conf`: good. A slot whose tries run
//! out (`+0-N`) is sorted last by systemd-boot, so the other slot boots; this module notices
//! that (a newer entry with no tries left) and says so in `status`. [`esp_slots`] reads both
//! slots' entries (version, state, install time) for `system version`.
//!
//! What does not live here: finding the boot disk ([`super::bootdev`]), writing the image
//! (the host-side `image` crate).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::bootdev;

/// The boot loader's vendor GUID for its EFI variables.
const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// Where the ESP is mounted while its entries are read or renamed.
const ESP_MOUNT: &str = "/run/tank/esp";
/// How long to wait for the boot disk to appear (USB sticks are probed late).
const BOOT_DISK_WAIT: Duration = Duration::from_secs(15);

/// One of the image's two slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    fn parse(id: &str) -> Option<Slot> {
        match id {
            "a" | "A" => Some(Slot::A),
            "b" | "B" => Some(Slot::B),
            _ => None,
        }
    }

    fn id(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    pub fn letter(self) -> char {
        match self {
            Slot::A => 'A',
            Slot::B => 'B',
        }
    }
}

/// A boot entry's file name taken apart: `tank-a+2-1.conf` → slot A, 2 left, 1 done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryName {
    pub slot: Slot,
    /// `None`: no counter, the entry is good.
    pub tries_left: Option<u32>,
    pub tries_done: u32,
}

impl EntryName {
    /// Parses a Tank entry's name; other names give `None`.
    pub fn parse(name: &str) -> Option<EntryName> {
        let stem = name.strip_suffix(".conf")?;
        let (base, counter) = match stem.rsplit_once('+') {
            Some((base, counter)) => (base, Some(counter)),
            None => (stem, None),
        };
        let slot = Slot::parse(base.strip_prefix("tank-")?)?;
        let (tries_left, tries_done) = match counter {
            None => (None, 0),
            Some(c) => {
                let (left, done) = match c.split_once('-') {
                    Some((l, d)) => (l, d.parse().ok()?),
                    None => (c, 0),
                };
                (Some(left.parse().ok()?), done)
            }
        };
        Some(EntryName {
            slot,
            tries_left,
            tries_done,
        })
    }

    /// The name once marked good.
    pub fn good_name(&self) -> String {
        format!("tank-{}.conf", self.slot.id())
    }
}

/// What happened to this boot's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Not decided yet: the pool is still being assembled.
    Pending,
    /// The entry had no counter: good from an earlier boot.
    AlreadyGood,
    /// Renamed to its good name this boot.
    MarkedNow,
    /// Left counting, with the reason.
    NotMarked(String),
}

/// The slot this boot came from, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotStatus {
    pub slot: Slot,
    /// Tries left after this boot's attempt, when the entry is counting.
    pub tries_left: Option<u32>,
    pub mark: Mark,
    /// Why this slot runs instead of a newer one (e.g. "slot B ran out of tries").
    pub fallback: Option<String>,
}

impl SlotStatus {
    /// `slot A (tries left 2)`, `slot A (good): fell back, slot B ran out of tries`, ...
    pub fn line(&self) -> String {
        let state = match (&self.mark, self.tries_left) {
            (Mark::AlreadyGood, _) => "good".to_string(),
            (Mark::MarkedNow, _) => "good, marked this boot".to_string(),
            (Mark::Pending, Some(n)) => format!("tries left {n}"),
            (Mark::Pending, None) => "good".to_string(),
            (Mark::NotMarked(why), Some(n)) => format!("tries left {n}; not marked good: {why}"),
            (Mark::NotMarked(why), None) => format!("not marked good: {why}"),
        };
        let mut line = format!("slot {} ({state})", self.slot.letter());
        if let Some(why) = &self.fallback {
            line.push_str(&format!(": fell back, {why}"));
        }
        line
    }
}

/// What `status` and `system version` say when there are no boot slots.
pub const NO_SLOTS: &str = "no boot slots (the kernel was not started by the image's boot loader)";

static STATUS: Mutex<Option<SlotStatus>> = Mutex::new(None);
static BOOTED: OnceLock<Option<SlotStatus>> = OnceLock::new();

/// The `boot` line of `status`.
pub fn status_line() -> String {
    let known = STATUS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match known.or_else(|| booted().clone()) {
        Some(s) => s.line(),
        None => NO_SLOTS.into(),
    }
}

/// The slot this boot came from; `None` when the kernel was not started by the image's boot
/// loader.
pub fn booted_slot() -> Option<Slot> {
    booted().as_ref().map(|s| s.slot)
}

/// A slot's boot entry as the boot loader will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// No counter: marked good.
    Good,
    /// Counting: tries left, tries used.
    Trying { left: u32, done: u32 },
    /// No tries left: systemd-boot sorts it last, the other slot boots.
    Bad { done: u32 },
}

impl EntryState {
    fn of(name: &EntryName) -> EntryState {
        match name.tries_left {
            None => EntryState::Good,
            Some(0) => EntryState::Bad {
                done: name.tries_done,
            },
            Some(left) => EntryState::Trying {
                left,
                done: name.tries_done,
            },
        }
    }

    /// `good`, `trying (2 tries left, 1 used)`, `bad (no tries left after 3)`.
    pub fn describe(&self) -> String {
        match self {
            EntryState::Good => "good".into(),
            EntryState::Trying { left, done: 0 } => {
                format!("trying ({left} tries left, none used)")
            }
            EntryState::Trying { left, done } => format!("trying ({left} tries left, {done} used)"),
            EntryState::Bad { done } => format!("bad (no tries left after {done})"),
        }
    }
}

/// One slot as `system version` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotEntry {
    pub slot: Slot,
    /// From the entry's title, `Tank 0.1.0+rc1 (slot A)`.
    pub version: Option<String>,
    pub state: EntryState,
    pub generation: u64,
    /// When the slot's kernel was written (Unix seconds); `None` for the disk image's own
    /// files, whose times are the FAT epoch.
    pub installed: Option<i64>,
}

/// The version in an entry's `title` line.
pub fn title_version(text: &str) -> Option<String> {
    let title = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("title"))?
        .trim();
    let rest = title.strip_prefix("Tank ")?;
    let version = rest.split("(slot").next()?.trim();
    (!version.is_empty()).then(|| version.to_owned())
}

/// Before 1980-01-03: a time the image builder set (the FAT epoch in any time zone).
const IMAGE_TIME_LIMIT: i64 = 315_705_600;

/// Both slots' entries in the ESP mounted at `root`, in slot order.
pub fn read_slots(root: &Path) -> Result<Vec<SlotEntry>, String> {
    let dir = root.join("loader/entries");
    let list =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut slots = Vec::new();
    for item in list.flatten() {
        let file = item.file_name().to_string_lossy().into_owned();
        let Some(name) = EntryName::parse(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(item.path()).unwrap_or_default();
        let kernel = root.join("tank").join(name.slot.id()).join("vmlinuz");
        let installed = std::fs::metadata(&kernel)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .filter(|&t| t >= IMAGE_TIME_LIMIT);
        slots.push(SlotEntry {
            slot: name.slot,
            version: title_version(&text),
            state: EntryState::of(&name),
            generation: generation(&text),
            installed,
        });
    }
    slots.sort_by_key(|s| s.slot.letter());
    Ok(slots)
}

/// Both slots' entries, read from the boot device's ESP.
pub fn esp_slots() -> Result<Vec<SlotEntry>, String> {
    with_esp(read_slots)
}

/// This boot's slot from the kernel command line and the boot loader's variables (read once).
fn booted() -> &'static Option<SlotStatus> {
    BOOTED.get_or_init(|| {
        bootdev::mount_efivarfs();
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        let selected = efivar_string("LoaderEntrySelected");
        let count_path = efivar_string("LoaderBootCountPath");
        from_boot_facts(&cmdline, selected.as_deref(), count_path.as_deref())
    })
}

/// The slot from `tank.slot=` (or the selected entry's name) and the tries left from the
/// counting path, if the boot loader set one.
pub fn from_boot_facts(
    cmdline: &str,
    selected: Option<&str>,
    count_path: Option<&str>,
) -> Option<SlotStatus> {
    selected?;
    let counted = count_path
        .and_then(|p| p.rsplit(['\\', '/']).next())
        .and_then(EntryName::parse);
    let slot = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tank.slot="))
        .and_then(Slot::parse)
        .or_else(|| selected.and_then(EntryName::parse).map(|e| e.slot))
        .or_else(|| counted.as_ref().map(|e| e.slot))?;
    Some(SlotStatus {
        slot,
        tries_left: counted.and_then(|e| e.tries_left),
        mark: Mark::Pending,
        fallback: None,
    })
}

/// Called once pool assembly has finished: marks this boot's slot good when `pool_ok`, and
/// finds out whether a newer slot was given up. Runs on its own thread; never blocks the
/// engine.
pub fn boot_ready(pool_ok: bool) {
    let Some(status) = booted().clone() else {
        return;
    };
    let fallback = status.clone();
    let spawned = crate::supervise::spawn_job(
        "slot",
        move || settle(status.clone(), pool_ok).unwrap_or_else(|e| not_marked(status, e)),
        move |end| {
            let status = end.unwrap_or_else(|message| {
                not_marked(fallback, format!("internal error (panic): {message}"))
            });
            log::info!("boot: {}", status.line());
            *STATUS.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
        },
    );
    if let Err(e) = spawned {
        log::error!("cannot start the boot slot check: {e}");
    }
}

/// `status` with the reason its slot was not marked, logged.
fn not_marked(status: SlotStatus, why: String) -> SlotStatus {
    log::error!("boot slot: {why}");
    SlotStatus {
        mark: Mark::NotMarked(why),
        ..status
    }
}

/// Mounts the ESP, marks the entry and reads the other slot's, unmounts.
fn settle(status: SlotStatus, pool_ok: bool) -> Result<SlotStatus, String> {
    with_esp(|root| settle_mounted(status, pool_ok, &root.join("loader/entries")))
}

/// Runs `f` with the boot device's ESP mounted (one user at a time), then unmounts it. `Err`
/// when this boot did not come through the image's boot loader or the ESP cannot be mounted.
pub fn with_esp<T>(f: impl FnOnce(&Path) -> Result<T, String>) -> Result<T, String> {
    static ESP: Mutex<()> = Mutex::new(());
    if booted().is_none() {
        return Err("not booted from Tank's boot loader: there is no ESP".into());
    }
    let _one = ESP.lock().unwrap_or_else(|p| p.into_inner());
    let part = wait_for_esp()?;
    let mount = Path::new(ESP_MOUNT);
    std::fs::create_dir_all(mount).map_err(|e| format!("cannot create {ESP_MOUNT}: {e}"))?;
    bootdev::mount_noexec(&part, mount, "vfat").map_err(|e| {
        format!(
            "cannot mount the EFI System Partition {}: {e}",
            part.display()
        )
    })?;
    let result = f(mount);
    if let Err(e) = rustix::mount::unmount(mount, rustix::mount::UnmountFlags::empty()) {
        log::warn!("cannot unmount {ESP_MOUNT}: {e}");
    }
    result
}

fn settle_mounted(
    mut status: SlotStatus,
    pool_ok: bool,
    entries_dir: &Path,
) -> Result<SlotStatus, String> {
    let entries = read_entries(entries_dir)?;
    let own = entries
        .iter()
        .find(|(name, _, _)| name.slot == status.slot)
        .ok_or_else(|| {
            format!(
                "no entry for slot {} in {}",
                status.slot.letter(),
                entries_dir.display()
            )
        })?;
    status.fallback = fallback_reason(status.slot, own.2, &entries);
    status.mark = if own.0.tries_left.is_none() {
        Mark::AlreadyGood
    } else if !pool_ok {
        Mark::NotMarked("the pool did not assemble".into())
    } else {
        let from = entries_dir.join(&own.1);
        let to = entries_dir.join(own.0.good_name());
        std::fs::rename(&from, &to)
            .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))?;
        std::fs::File::open(entries_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", entries_dir.display()))?;
        Mark::MarkedNow
    };
    Ok(status)
}

/// Tank's entries in `dir`: parsed name, file name, generation (`version` line).
fn read_entries(dir: &Path) -> Result<Vec<(EntryName, String, u64)>, String> {
    let list = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut entries = Vec::new();
    for item in list.flatten() {
        let file = item.file_name().to_string_lossy().into_owned();
        let Some(name) = EntryName::parse(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(item.path()).unwrap_or_default();
        entries.push((name, file, generation(&text)));
    }
    Ok(entries)
}

/// The `version` line of an entry (the slot generation); 0 if absent.
pub fn generation(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("version"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Why `own` runs although another slot is newer: that slot has no tries left.
pub fn fallback_reason(
    own: Slot,
    own_generation: u64,
    entries: &[(EntryName, String, u64)],
) -> Option<String> {
    entries
        .iter()
        .find(|(name, _, generation)| {
            name.slot != own && name.tries_left == Some(0) && *generation > own_generation
        })
        .map(|(name, _, _)| format!("slot {} ran out of tries", name.slot.letter()))
}

/// The ESP's partition device, waiting a while for the boot disk to appear.
fn wait_for_esp() -> Result<PathBuf, String> {
    let raw = std::fs::read(efivar_path("LoaderDevicePartUUID"))
        .map_err(|e| format!("cannot read LoaderDevicePartUUID: {e}"))?;
    let guid =
        bootdev::parse_efivar_guid(&raw).ok_or("LoaderDevicePartUUID does not hold a GUID")?;
    let deadline = Instant::now() + BOOT_DISK_WAIT;
    loop {
        for disk in super::disks::list() {
            let dev = Path::new("/dev").join(&disk.kernel);
            if let Ok(Some(n)) = bootdev::partition_number(&dev, &guid) {
                return partition_device(&disk.kernel, n)
                    .ok_or_else(|| format!("{} has no partition {n} in /sys/block", disk.name));
            }
        }
        if Instant::now() >= deadline {
            return Err("the boot disk (LoaderDevicePartUUID) is not among the disks".into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `/dev/<name>` of partition `number` of `disk` (sda1, nvme0n1p1, ...), from sysfs.
fn partition_device(disk: &str, number: u32) -> Option<PathBuf> {
    let dir = Path::new("/sys/block").join(disk);
    std::fs::read_dir(&dir).ok()?.flatten().find_map(|e| {
        let n: u32 = std::fs::read_to_string(e.path().join("partition"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (n == number).then(|| Path::new("/dev").join(e.file_name()))
    })
}

fn efivar_path(name: &str) -> PathBuf {
    Path::new("/sys/firmware/efi/efivars").join(format!("{name}-{LOADER_GUID}"))
}

/// A boot loader string variable (UTF-16LE after 4 bytes of attributes).
fn efivar_string(name: &str) -> Option<String> {
    bootdev::parse_efivar_string(&std::fs::read(efivar_path(name)).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::bootdev::parse_efivar_string;

    fn efivar(text: &str) -> Vec<u8> {
        let mut raw = vec![6, 0, 0, 0];
        for u in text.encode_utf16().chain([0]) {
            raw.extend_from_slice(&u.to_le_bytes());
        }
        raw
    }

    #[test]
    fn entry_names() {
        let e = EntryName::parse("tank-a+2-1.conf").unwrap();
        assert_eq!(
            e,
            EntryName {
                slot: Slot::A,
                tries_left: Some(2),
                tries_done: 1
            }
        );
        assert_eq!(e.good_name(), "tank-a.conf");
        assert_eq!(
            EntryName::parse("tank-b+3.conf").unwrap().tries_left,
            Some(3)
        );
        assert_eq!(EntryName::parse("tank-b.conf").unwrap().tries_left, None);
        assert_eq!(
            EntryName::parse("tank-b+0-3.conf").unwrap().tries_left,
            Some(0)
        );
        for bad in [
            "tank-c.conf",
            "tank-a",
            "other.conf",
            "tank-a+x.conf",
            "tank-a+1-y.conf",
            "tank-.conf",
        ] {
            assert_eq!(EntryName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        let facts = from_boot_facts(
            "console=ttyS0 tank.slot=a",
            Some("tank-a.conf"),
            Some("\\loader\\entries\\tank-a+2-1.conf"),
        )
        .unwrap();
        assert_eq!(facts.line(), "slot A (tries left 2)");
        let marked = SlotStatus {
            mark: Mark::MarkedNow,
            ..facts.clone()
        };
        assert_eq!(marked.line(), "slot A (good, marked this boot)");
        let not = SlotStatus {
            mark: Mark::NotMarked("the pool did not assemble".into()),
            ..facts.clone()
        };
        assert_eq!(
            not.line(),
            "slot A (tries left 2; not marked good: the pool did not assemble)"
        );
        // A good entry: no counting path; the slot from the selected entry when the command
        // line does not say.
        let good = from_boot_facts("console=ttyS0", Some("tank-b.conf"), None).unwrap();
        assert_eq!(good.slot, Slot::B);
        assert_eq!(good.line(), "slot B (good)");
        // No boot loader, no slot.
        assert_eq!(from_boot_facts("tank.slot=a", None, None), None);
    }

    #[test]
    fn fallback_after_tries_run_out() {
        let entries = vec![
            (
                EntryName::parse("tank-a.conf").unwrap(),
                "tank-a.conf".into(),
                2,
            ),
            (
                EntryName::parse("tank-b+0-2.conf").unwrap(),
                "tank-b+0-2.conf".into(),
                3,
            ),
        ];
        let why = fallback_reason(Slot::A, 2, &entries);
        assert_eq!(why.as_deref(), Some("slot B ran out of tries"));
        let status = SlotStatus {
            slot: Slot::A,
            tries_left: None,
            mark: Mark::AlreadyGood,
            fallback: why,
        };
        assert_eq!(
            status.line(),
            "slot A (good): fell back, slot B ran out of tries"
        );
        // An older slot with no tries left is no fallback; nor is one with tries left.
        assert_eq!(fallback_reason(Slot::A, 4, &entries), None);
        let counting = vec![(
            EntryName::parse("tank-b+1-1.conf").unwrap(),
            "tank-b+1-1.conf".into(),
            3,
        )];
        assert_eq!(fallback_reason(Slot::A, 2, &counting), None);
    }

    #[test]
    fn marks_the_entry_in_a_folder() {
        let dir = std::env::temp_dir().join(format!("tank-slot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tank-a+2-1.conf"), "title x\nversion 2\n").unwrap();
        std::fs::write(dir.join("tank-b+3.conf"), "version 1\n").unwrap();
        let facts = from_boot_facts("tank.slot=a", Some("tank-a.conf"), None).unwrap();
        let not = settle_mounted(facts.clone(), false, &dir).unwrap();
        assert!(matches!(not.mark, Mark::NotMarked(_)));
        assert!(dir.join("tank-a+2-1.conf").exists());
        let done = settle_mounted(facts.clone(), true, &dir).unwrap();
        assert_eq!(done.mark, Mark::MarkedNow);
        assert!(dir.join("tank-a.conf").exists());
        assert!(!dir.join("tank-a+2-1.conf").exists());
        assert_eq!(
            settle_mounted(facts, true, &dir).unwrap().mark,
            Mark::AlreadyGood
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn slots_on_an_esp_folder() {
        let root = std::env::temp_dir().join(format!("tank-slots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let entries = root.join("loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::create_dir_all(root.join("tank/a")).unwrap();
        std::fs::write(
            entries.join("tank-a.conf"),
            "title      Tank 0.1.0+rc1 (slot A)\nsort-key   tank\nversion    2\n",
        )
        .unwrap();
        std::fs::write(
            entries.join("tank-b+0-3.conf"),
            "title      Tank 0.2.0 (slot B)\nversion    3\n",
        )
        .unwrap();
        std::fs::write(entries.join("other.conf"), "title x\n").unwrap();
        std::fs::write(root.join("tank/a/vmlinuz"), b"k").unwrap();
        let slots = read_slots(&root).unwrap();
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].slot, Slot::A);
        assert_eq!(slots[0].version.as_deref(), Some("0.1.0+rc1"));
        assert_eq!(slots[0].state, EntryState::Good);
        assert_eq!(slots[0].generation, 2);
        assert!(slots[0].installed.is_some(), "written now, so dated");
        assert_eq!(slots[1].state, EntryState::Bad { done: 3 });
        assert_eq!(slots[1].installed, None, "no kernel file");
        assert_eq!(slots[1].state.describe(), "bad (no tries left after 3)");
        assert_eq!(
            EntryState::of(&EntryName::parse("tank-b+3.conf").unwrap()).describe(),
            "trying (3 tries left, none used)"
        );
        assert_eq!(
            EntryState::of(&EntryName::parse("tank-b+2-1.conf").unwrap()).describe(),
            "trying (2 tries left, 1 used)"
        );
        assert_eq!(title_version("title Tank (slot A)\n"), None);
        assert_eq!(title_version("version 2\n"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn efivar_strings_and_random_bytes() {
        assert_eq!(
            parse_efivar_string(&efivar("tank-a.conf")).as_deref(),
            Some("tank-a.conf")
        );
        assert_eq!(parse_efivar_string(&[1, 2]), None);
        assert_eq!(parse_efivar_string(&efivar("")), None);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut raw = Vec::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for _ in 0..(state % 64) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                raw.push(state as u8);
            }
            if let Some(s) = parse_efivar_string(&raw) {
                let _ = EntryName::parse(&s);
                let _ = from_boot_facts("", Some(&s), Some(&s));
            }
        }
    }
}
