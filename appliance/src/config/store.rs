//! The configuration store: numbered generations of record files in one directory.
//!
//! On the appliance the directory is a hidden subvolume of the pool, such as
//! `/mnt/tank/.tank/config`. Each save writes a new file `config-<generation>.tank`
//! (the generation as 20 decimal digits, so names sort like numbers) and keeps the newest
//! [`KEEP`] generations. A save is atomic: write `config-<generation>.tank.tmp`, fsync it, rename
//! it into place, fsync the directory; only then are old generations pruned, so the newest good
//! file survives any failed save.
//!
//! Loading picks the newest generation that decodes. A damaged or unreadable file is never
//! fatal and never deleted: it becomes a warning naming the file and why, and the previous
//! generation is used. What does not live here: the bytes of a record ([`record`](super::record))
//! and creating or mounting the subvolume (the storage code does that).
//!
//! # Secrets
//!
//! Records hold users' NT hashes, which log in to SMB as well as the passwords would. Every
//! record and temporary file is created with mode 0600 (and the directory is kept at 0700);
//! opening the store tightens files that older software left wider. After a save whose
//! configuration drops a hash (a password changed, a user removed), and at the first save after
//! opening, the older generations are rewritten in place, atomically, without the hashes the
//! new configuration does not have: see [`forget_stale_hashes`]. Damaged files are kept, with
//! any such hash the store knows of overwritten with zeros.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::model::{Config, ConfigError};
use super::record::{self, EncodeError};

/// How many generations a save keeps, the new one included.
pub const KEEP: usize = 5;

/// A record file larger than this is not read: no valid configuration comes close.
pub const MAX_FILE_LEN: u64 = 16 << 20;

/// The mode of every record and temporary file: only root reads the NT hashes.
pub const FILE_MODE: u32 = 0o600;

/// The mode the store's directory is kept at.
pub const DIR_MODE: u32 = 0o700;

const PREFIX: &str = "config-";
const SUFFIX: &str = ".tank";
const TMP_SUFFIX: &str = ".tank.tmp";

/// Why the store could not be opened or a save failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "configuration directory {path} does not exist: mount the pool (or create the \
         directory) before opening the store"
    )]
    DirMissing { path: PathBuf },
    #[error("configuration directory {path} is not a directory: move the file away")]
    NotADirectory { path: PathBuf },
    #[error("cannot read configuration directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create configuration directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the configuration is not saved: {0}")]
    Invalid(#[from] ConfigError),
    #[error("the configuration is not saved: {0}")]
    Encode(#[from] EncodeError),
    #[error(
        "cannot {action} {path}: {source}; the configuration is not saved, the previous \
         generation is still in place"
    )]
    Write {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot sync directory {path} after saving generation {generation}: {source}; the new \
         generation may not survive a power loss"
    )]
    SyncDir {
        path: PathBuf,
        generation: u64,
        #[source]
        source: io::Error,
    },
    #[error("no generation is left to save: the store has used up 2^64 generations")]
    GenerationsExhausted,
}

/// What [`Store::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The newest configuration that decodes, or `None` if there is none (a new store, or every
    /// file damaged: then `warnings` says which and why).
    pub config: Option<Config>,
    /// The generation of `config`; 0 when there is none.
    pub generation: u64,
    /// One sentence per file that was skipped or cleaned up, naming the file and why.
    pub warnings: Vec<String>,
}

/// A configuration store over one directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// The highest generation seen in a file name, good or bad, or saved; the next save uses the
    /// one after it, so a damaged file is never overwritten.
    last_generation: u64,
    /// The NT hashes of the configuration last loaded or saved: a save whose configuration
    /// drops one of them rewrites the older generations without it.
    hashes: Vec<[u8; 16]>,
    /// Whether the older generations have been checked against the configuration in force
    /// since the store was opened (software before this check left old hashes in them).
    scrubbed: bool,
}

/// The file name of generation `generation`.
pub fn file_name(generation: u64) -> String {
    format!("{PREFIX}{generation:020}{SUFFIX}")
}

/// The generation a file name holds, if it is a record file's name.
fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn is_tmp_name(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(TMP_SUFFIX)
}

/// The record files of a directory, newest generation first, and its leftover temporary files.
struct Listing {
    records: Vec<(u64, PathBuf)>,
    tmps: Vec<PathBuf>,
}

/// Lists the files of `dir` that belong to the store.
fn list(dir: &Path) -> Result<Listing, StoreError> {
    let read_dir_error = |source| StoreError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let mut records = Vec::new();
    let mut tmps = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(generation) = parse_file_name(&name) {
            records.push((generation, entry.path()));
        } else if is_tmp_name(&name) {
            tmps.push(entry.path());
        }
    }
    records.sort_by_key(|&(generation, _)| std::cmp::Reverse(generation));
    Ok(Listing { records, tmps })
}

/// Reads one record file's bytes, refusing a file larger than any record.
fn read_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let len = fs::metadata(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    if len > MAX_FILE_LEN {
        return Err(format!(
            "it is {len} bytes, more than any configuration record ({MAX_FILE_LEN})"
        ));
    }
    fs::read(path).map_err(|e| format!("cannot read it: {e}"))
}

/// Reads and decodes one record file, checking the generation its name promises.
fn load_file(path: &Path, expected: u64) -> Result<Config, String> {
    let bytes = read_bytes(path)?;
    let (config, generation) = record::decode(&bytes).map_err(|e| e.to_string())?;
    if generation != expected {
        return Err(format!(
            "it holds generation {generation}, not the {expected} its name says; it was \
             renamed or copied by hand"
        ));
    }
    Ok(config)
}

impl Store {
    /// Opens the store in `dir`, which must exist, and loads the newest good configuration.
    ///
    /// Damaged files are skipped with a warning; leftover temporary files from an interrupted
    /// save are removed. Only a missing or unreadable directory is an error.
    pub fn open(dir: impl Into<PathBuf>) -> Result<(Store, Loaded), StoreError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(StoreError::NotADirectory { path: dir }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::DirMissing { path: dir })
            }
            Err(source) => return Err(StoreError::ReadDir { path: dir, source }),
        }
        let Listing { records, tmps } = list(&dir)?;
        let mut warnings = Vec::new();
        tighten(&dir, DIR_MODE, &mut warnings);
        for (_, path) in &records {
            tighten(path, FILE_MODE, &mut warnings);
        }
        for tmp in tmps {
            match fs::remove_file(&tmp) {
                Ok(()) => warnings.push(format!(
                    "removed {}, left over from an interrupted save",
                    tmp.display()
                )),
                Err(e) => warnings.push(format!(
                    "cannot remove {}, left over from an interrupted save: {e}",
                    tmp.display()
                )),
            }
        }
        let last_generation = records.first().map_or(0, |&(generation, _)| generation);
        let mut loaded = None;
        for (generation, path) in &records {
            match load_file(path, *generation) {
                Ok(config) => {
                    loaded = Some((config, *generation));
                    break;
                }
                Err(why) => {
                    warnings.push(format!("skipped configuration {}: {why}", path.display()))
                }
            }
        }
        if loaded.is_none() && !records.is_empty() {
            warnings.push(format!(
                "no configuration in {} could be read: starting from the defaults; the damaged \
                 files are kept",
                dir.display()
            ));
        }
        for warning in &warnings {
            log::warn!("config: {warning}");
        }
        let (config, generation) = match loaded {
            Some((config, generation)) => (Some(config), generation),
            None => (None, 0),
        };
        let store = Store {
            dir,
            last_generation,
            hashes: config.as_ref().map_or_else(Vec::new, hashes_of),
            scrubbed: false,
        };
        Ok((
            store,
            Loaded {
                config,
                generation,
                warnings,
            },
        ))
    }

    /// Creates `dir` (and its parents) if it is missing, then [`open`](Store::open)s it.
    pub fn create(dir: impl Into<PathBuf>) -> Result<(Store, Loaded), StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        Store::open(dir)
    }

    /// The newest generation on disk or saved (0 for an empty store); the next save is one
    /// more.
    #[cfg(test)]
    pub fn last_generation(&self) -> u64 {
        self.last_generation
    }

    /// The path of generation `generation`'s file.
    pub fn path_of(&self, generation: u64) -> PathBuf {
        self.dir.join(file_name(generation))
    }

    /// Saves `config` as a new generation and returns that generation; then keeps only the
    /// newest [`KEEP`] generations and, if `config` dropped an NT hash (or this is the first
    /// save since the store was opened), rewrites the older ones without the hashes `config`
    /// does not have. On error the previous generations are untouched.
    pub fn save(&mut self, config: &Config) -> Result<u64, StoreError> {
        config.validate()?;
        let generation = self
            .last_generation
            .checked_add(1)
            .ok_or(StoreError::GenerationsExhausted)?;
        let bytes = record::encode(config, generation)?;
        self.put(generation, &bytes)?;
        self.last_generation = generation;
        self.sync_dir(generation)?;
        self.prune();
        let hashes = hashes_of(config);
        if !self.scrubbed || self.hashes.iter().any(|h| !hashes.contains(h)) {
            self.scrubbed = self.scrub(config, generation);
        }
        self.hashes = hashes;
        Ok(generation)
    }

    /// Writes `bytes` as the file of generation `generation`, atomically: a new temporary file
    /// (mode 0600), fsynced, renamed over the record. The directory is not synced.
    fn put(&self, generation: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!("{}.tmp", file_name(generation)));
        if let Err(error) = write_synced(&tmp, bytes) {
            // Best effort: a leftover is also removed by the next open.
            let _ = fs::remove_file(&tmp);
            return Err(error);
        }
        if let Err(source) = fs::rename(&tmp, self.path_of(generation)) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::Write {
                action: "rename into place",
                path: tmp,
                source,
            });
        }
        Ok(())
    }

    fn sync_dir(&self, generation: u64) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| StoreError::SyncDir {
                path: self.dir.clone(),
                generation,
                source,
            })
    }

    /// Rewrites every generation but `newest` without the NT hashes `current` does not have
    /// ([`forget_stale_hashes`]); damaged files get those hashes, where the store knows them,
    /// overwritten with zeros. Returns whether every file could be checked and rewritten;
    /// failures are logged, not returned, because the new generation is already safe.
    fn scrub(&self, current: &Config, newest: u64) -> bool {
        let records = match list(&self.dir) {
            Ok(listing) => listing.records,
            Err(e) => {
                log::warn!("config: cannot remove old NT hashes from older generations: {e}");
                return false;
            }
        };
        let current_hashes = hashes_of(current);
        let mut stale: Vec<[u8; 16]> = self
            .hashes
            .iter()
            .filter(|h| !current_hashes.contains(h))
            .copied()
            .collect();
        let mut complete = true;
        let mut rewritten = false;
        let mut damaged = Vec::new();
        for (name_generation, path) in records.iter().filter(|(g, _)| *g != newest) {
            let decoded = read_bytes(path)
                .and_then(|bytes| record::decode(&bytes).map_err(|e| e.to_string()));
            let (mut old, generation) = match decoded {
                Ok(decoded) => decoded,
                Err(_) => {
                    damaged.push((*name_generation, path));
                    continue;
                }
            };
            let forgotten = match forget_stale_hashes(&mut old, current) {
                Ok(forgotten) => forgotten,
                Err(e) => {
                    log::warn!(
                        "config: {} keeps NT hashes the configuration no longer has: no \
                         random value for a removed user's hash ({e}); the next save tries \
                         again",
                        path.display()
                    );
                    complete = false;
                    continue;
                }
            };
            if forgotten.is_empty() {
                continue;
            }
            stale.extend(forgotten);
            // The record keeps the generation it holds, even in a file renamed by hand.
            let written = record::encode(&old, generation)
                .map_err(StoreError::from)
                .and_then(|bytes| self.put(*name_generation, &bytes));
            match written {
                Ok(()) => rewritten = true,
                Err(e) => {
                    log::warn!(
                        "config: cannot rewrite {} without old NT hashes: {e}; the next save \
                         tries again",
                        path.display()
                    );
                    complete = false;
                }
            }
        }
        for (name_generation, path) in damaged {
            let Ok(mut bytes) = read_bytes(path) else {
                complete = false;
                continue;
            };
            if !zero_hashes(&mut bytes, &stale) {
                continue;
            }
            match self.put(name_generation, &bytes) {
                Ok(()) => rewritten = true,
                Err(e) => {
                    log::warn!(
                        "config: cannot rewrite damaged {} without old NT hashes: {e}",
                        path.display()
                    );
                    complete = false;
                }
            }
        }
        if rewritten {
            if let Err(e) = self.sync_dir(newest) {
                log::warn!("config: {e}");
                complete = false;
            }
        }
        complete
    }

    /// Removes all but the newest [`KEEP`] generations; failures are logged, not returned,
    /// because the new generation is already safe.
    fn prune(&self) {
        let records = match list(&self.dir) {
            Ok(listing) => listing.records,
            Err(e) => {
                log::warn!("config: cannot prune old generations: {e}");
                return;
            }
        };
        for (_, path) in records.iter().skip(KEEP) {
            if let Err(e) = fs::remove_file(path) {
                log::warn!(
                    "config: cannot remove old generation {}: {e}",
                    path.display()
                );
            }
        }
    }
}

/// The NT hashes of a configuration's users.
fn hashes_of(config: &Config) -> Vec<[u8; 16]> {
    config.users.iter().map(|u| u.nt_hash).collect()
}

/// Replaces, in an older generation `old`, every NT hash the configuration in force
/// (`current`) does not have, and returns the hashes replaced.
///
/// The record has no way to say "this user has no password" (version 2 stores 16 bytes, and
/// any 16 bytes are a hash someone could log in with by presenting them), so the least bad
/// stand-in keeps the older generation usable as a fallback: a user who still exists gets the
/// hash in force (a fallback then keeps today's passwords, which a rollback is not meant to
/// undo); a removed user gets [`unknown_nt_hash`](super::accounts::unknown_nt_hash), random
/// bytes no password gives and nobody has seen, so the user is locked out until `user
/// passwd` sets a password. Users are never taken out of an older generation: shares there
/// may name them. A removed user's stand-in is in no configuration in force, so the next full
/// check (the first save after the store is opened again) draws a new one: a rewrite of a few
/// small files, and still a hash nobody knows.
pub fn forget_stale_hashes(old: &mut Config, current: &Config) -> io::Result<Vec<[u8; 16]>> {
    let mut forgotten = Vec::new();
    for user in &mut old.users {
        if current.users.iter().any(|u| u.nt_hash == user.nt_hash) {
            continue;
        }
        let replacement = match current.users.iter().find(|u| u.name == user.name) {
            Some(now) => now.nt_hash,
            None => super::accounts::unknown_nt_hash()?,
        };
        forgotten.push(std::mem::replace(&mut user.nt_hash, replacement));
    }
    Ok(forgotten)
}

/// Overwrites every occurrence of each of `hashes` in `bytes` with zeros; returns whether
/// there was one.
fn zero_hashes(bytes: &mut [u8], hashes: &[[u8; 16]]) -> bool {
    let mut found = false;
    for hash in hashes {
        let mut at = 0;
        while let Some(offset) = bytes
            .get(at..)
            .and_then(|rest| rest.windows(hash.len()).position(|w| w == hash))
        {
            let start = at + offset;
            bytes[start..start + hash.len()].fill(0);
            at = start + hash.len();
            found = true;
        }
    }
    found
}

/// Narrows the mode of `path` to `mode` if it allows more; failures become warnings, since
/// the file holds NT hashes.
fn tighten(path: &Path, mode: u32, warnings: &mut Vec<String>) {
    let current = match fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) => {
            warnings.push(format!("cannot check the mode of {}: {e}", path.display()));
            return;
        }
    };
    if current & !mode == 0 {
        return;
    }
    match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        Ok(()) => log::info!(
            "config: {} had mode {current:04o}, now {mode:04o}",
            path.display()
        ),
        Err(e) => warnings.push(format!(
            "cannot restrict {} (mode {current:04o}, it holds NT hashes) to {mode:04o}: {e}",
            path.display()
        )),
    }
}

/// Writes `bytes` to a new file at `path`, created with mode [`FILE_MODE`], and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let fail = |action, source| StoreError::Write {
        action,
        path: path.to_owned(),
        source,
    };
    // A leftover of an interrupted save goes first: an existing file would keep its mode.
    // Whatever stays (nothing, or something that is not a file) makes `create_new` fail below,
    // which says so.
    let _ = fs::remove_file(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| fail("create", e))?;
    file.write_all(bytes).map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("sync", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{DatasetConfig, PoolConfig};
    use crate::config::names::{DatasetName, PoolName};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "tank-config-{}-{}-{name}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A valid configuration that differs for each `n`.
    fn config(n: u32) -> Config {
        Config {
            hostname: format!("nas{n}"),
            pool: Some(PoolConfig {
                name: PoolName::parse("tank").unwrap(),
                uuid: [1; 16],
            }),
            datasets: vec![DatasetConfig::new(DatasetName::parse("media").unwrap())],
            ..Config::default()
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Saves configurations 1..=n into a fresh store.
    fn saved(dir: &Path, n: u32) -> Store {
        let (mut store, _) = Store::open(dir).unwrap();
        for i in 1..=n {
            assert_eq!(store.save(&config(i)).unwrap(), u64::from(i));
        }
        store
    }

    #[test]
    fn empty_store() {
        let dir = TempDir::new("empty");
        let (store, loaded) = Store::open(&dir.0).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                config: None,
                generation: 0,
                warnings: vec![]
            }
        );
        assert_eq!(store.last_generation(), 0);
    }

    #[test]
    fn round_trip() {
        let dir = TempDir::new("round-trip");
        let (mut store, _) = Store::open(&dir.0).unwrap();
        assert_eq!(store.save(&config(1)).unwrap(), 1);
        assert_eq!(names(&dir.0), vec![file_name(1)]);
        assert_eq!(file_name(1), "config-00000000000000000001.tank");
        let (store, loaded) = Store::open(&dir.0).unwrap();
        assert_eq!(loaded.config, Some(config(1)));
        assert_eq!(loaded.generation, 1);
        assert!(loaded.warnings.is_empty());
        assert_eq!(store.last_generation(), 1);
    }

    #[test]
    fn generations_increase_and_prune_to_five() {
        let dir = TempDir::new("prune");
        let mut store = saved(&dir.0, 8);
        assert_eq!(names(&dir.0), (4..=8).map(file_name).collect::<Vec<_>>());
        drop(store);
        let (reopened, loaded) = Store::open(&dir.0).unwrap();
        store = reopened;
        assert_eq!(loaded.config, Some(config(8)));
        assert_eq!(loaded.generation, 8);
        assert_eq!(store.save(&config(9)).unwrap(), 9);
        assert_eq!(names(&dir.0), (5..=9).map(file_name).collect::<Vec<_>>());
    }

    #[test]
    fn invalid_config_is_not_saved() {
        let dir = TempDir::new("invalid");
        let mut store = saved(&dir.0, 1);
        let mut bad = config(2);
        bad.hostname = "no such host".to_owned();
        let message = store.save(&bad).unwrap_err().to_string();
        assert!(message.contains("\"no such host\""), "{message}");
        assert_eq!(names(&dir.0), vec![file_name(1)]);
        assert_eq!(Store::open(&dir.0).unwrap().1.config, Some(config(1)));
    }

    /// Each kind of damage to the newest file falls back to the one before, with a warning
    /// that names the file and the reason.
    #[test]
    fn damaged_newest_falls_back() {
        type Damage = fn(&mut Vec<u8>);
        let damages: [(&str, Damage, &str); 5] = [
            ("flip", |b| b[40] ^= 0x10, "checksum"),
            ("truncate", |b| b.truncate(b.len() / 2), "truncated"),
            ("zero-length", |b| b.clear(), "truncated"),
            (
                "garbage",
                |b| *b = b"{\"hostname\": \"tank\"}".to_vec(),
                "magic",
            ),
            (
                "newer-version",
                |b| {
                    b[8..12].copy_from_slice(&99u32.to_le_bytes());
                    let crc_at = b.len() - 4;
                    let crc = crc32fast::hash(&b[..crc_at]);
                    b[crc_at..].copy_from_slice(&crc.to_le_bytes());
                },
                "version 99",
            ),
        ];
        for (what, damage, says) in damages {
            let dir = TempDir::new(what);
            let store = saved(&dir.0, 3);
            let newest = store.path_of(3);
            let mut bytes = fs::read(&newest).unwrap();
            damage(&mut bytes);
            fs::write(&newest, &bytes).unwrap();

            let (mut store, loaded) = Store::open(&dir.0).unwrap();
            assert_eq!(loaded.config, Some(config(2)), "{what}");
            assert_eq!(loaded.generation, 2, "{what}");
            assert_eq!(loaded.warnings.len(), 1, "{what}: {:?}", loaded.warnings);
            let warning = &loaded.warnings[0];
            assert!(warning.contains(&file_name(3)), "{what}: {warning}");
            assert!(warning.contains(says), "{what}: {warning}");

            // The next save goes past the damaged generation and leaves it in place.
            assert_eq!(store.save(&config(4)).unwrap(), 4, "{what}");
            assert!(newest.exists(), "{what}");
            assert_eq!(Store::open(&dir.0).unwrap().1.config, Some(config(4)));
        }
    }

    #[test]
    fn all_damaged_gives_no_config_and_keeps_files() {
        let dir = TempDir::new("all-damaged");
        let store = saved(&dir.0, 3);
        for generation in 1..=3 {
            fs::write(store.path_of(generation), b"").unwrap();
        }
        let (mut store, loaded) = Store::open(&dir.0).unwrap();
        assert_eq!(loaded.config, None);
        assert_eq!(loaded.generation, 0);
        assert_eq!(loaded.warnings.len(), 4, "{:?}", loaded.warnings);
        for generation in 1..=3 {
            assert!(loaded
                .warnings
                .iter()
                .any(|w| w.contains(&file_name(generation))));
        }
        assert!(loaded.warnings[3].contains("defaults"));
        assert_eq!(names(&dir.0), (1..=3).map(file_name).collect::<Vec<_>>());
        assert_eq!(store.save(&Config::default()).unwrap(), 4);
    }

    #[test]
    fn renamed_file_is_skipped() {
        let dir = TempDir::new("renamed");
        let store = saved(&dir.0, 2);
        fs::copy(store.path_of(1), store.path_of(7)).unwrap();
        let (store, loaded) = Store::open(&dir.0).unwrap();
        assert_eq!(loaded.config, Some(config(2)));
        assert!(
            loaded.warnings[0].contains("generation 1, not the 7"),
            "{:?}",
            loaded.warnings
        );
        assert_eq!(store.last_generation(), 7);
    }

    #[test]
    fn leftover_tmp_is_ignored_and_removed() {
        let dir = TempDir::new("tmp");
        let store = saved(&dir.0, 2);
        let tmp = dir.0.join(format!("{}.tmp", file_name(3)));
        fs::write(&tmp, &fs::read(store.path_of(2)).unwrap()[..10]).unwrap();
        fs::write(dir.0.join("notes.txt"), b"not ours").unwrap();
        let (mut store, loaded) = Store::open(&dir.0).unwrap();
        assert_eq!(loaded.config, Some(config(2)));
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("interrupted save"));
        assert!(!tmp.exists());
        assert_eq!(store.save(&config(3)).unwrap(), 3);
        assert!(dir.0.join("notes.txt").exists());
    }

    #[test]
    fn failed_write_keeps_last_good() {
        let dir = TempDir::new("failed-write");
        let mut store = saved(&dir.0, 1);
        // A directory where the temporary file should go makes the write fail.
        fs::create_dir(dir.0.join(format!("{}.tmp", file_name(2)))).unwrap();
        let message = store.save(&config(2)).unwrap_err().to_string();
        assert!(message.contains("not saved"), "{message}");
        assert!(store.path_of(1).exists());
        assert!(!store.path_of(2).exists());
        assert_eq!(store.last_generation(), 1);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = TempDir::new("missing");
        let missing = dir.0.join("nope");
        let error = Store::open(&missing).unwrap_err();
        assert!(matches!(error, StoreError::DirMissing { .. }));
        assert!(error.to_string().contains(&missing.display().to_string()));

        let file = dir.0.join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            Store::open(&file).unwrap_err(),
            StoreError::NotADirectory { .. }
        ));

        let (_, loaded) = Store::create(&missing).unwrap();
        assert_eq!(loaded.config, None);
        assert!(missing.is_dir());
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// `config(n)` with users of the given names and passwords, uids from 1000.
    fn with_users(n: u32, users: &[(&str, &str)]) -> Config {
        let mut config = config(n);
        config.users = users
            .iter()
            .zip(1000..)
            .map(
                |(&(name, password), uid)| crate::config::accounts::UserConfig {
                    name: crate::config::accounts::UserName::parse(name).unwrap(),
                    uid,
                    gid: uid,
                    groups: vec![],
                    nt_hash: crate::config::accounts::nt_hash(password),
                },
            )
            .collect();
        config
    }

    /// The names of the store's files whose bytes contain `hash`.
    fn holding(dir: &Path, hash: [u8; 16]) -> Vec<String> {
        names(dir)
            .into_iter()
            .filter(|name| {
                fs::read(dir.join(name))
                    .unwrap()
                    .windows(16)
                    .any(|w| w == hash)
            })
            .collect()
    }

    fn hash_of(config: &Config, name: &str) -> Option<[u8; 16]> {
        config
            .users
            .iter()
            .find(|u| u.name.as_str() == name)
            .map(|u| u.nt_hash)
    }

    #[test]
    fn records_are_private() {
        let dir = TempDir::new("private");
        let mut store = saved(&dir.0, 2);
        // A rewritten older generation is private too.
        store.save(&with_users(3, &[("alice", "one")])).unwrap();
        store.save(&with_users(4, &[("alice", "two")])).unwrap();
        for generation in 1..=4 {
            assert_eq!(mode(&store.path_of(generation)), 0o600, "{generation}");
        }
        assert_eq!(mode(&dir.0), 0o700);

        let created = dir.0.join("new/config");
        Store::create(&created).unwrap();
        assert_eq!(mode(&created), 0o700);
    }

    #[test]
    fn open_tightens_wide_modes() {
        let dir = TempDir::new("tighten");
        let store = saved(&dir.0, 2);
        for (path, wide) in [
            (store.path_of(1), 0o644),
            (store.path_of(2), 0o666),
            (dir.0.clone(), 0o755),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(wide)).unwrap();
        }
        fs::write(dir.0.join("notes.txt"), b"not ours").unwrap();
        fs::set_permissions(dir.0.join("notes.txt"), fs::Permissions::from_mode(0o644)).unwrap();
        let (_, loaded) = Store::open(&dir.0).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(mode(&store.path_of(1)), 0o600);
        assert_eq!(mode(&store.path_of(2)), 0o600);
        assert_eq!(mode(&dir.0), 0o700);
        // Files that are not the store's are left alone.
        assert_eq!(mode(&dir.0.join("notes.txt")), 0o644);
    }

    /// A leftover temporary file with a wide mode is replaced, not reused with its mode.
    #[test]
    fn leftover_tmp_does_not_lend_its_mode() {
        let dir = TempDir::new("tmp-mode");
        let mut store = saved(&dir.0, 1);
        let tmp = dir.0.join(format!("{}.tmp", file_name(2)));
        fs::write(&tmp, b"half").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(store.save(&config(2)).unwrap(), 2);
        assert_eq!(mode(&store.path_of(2)), 0o600);
        assert!(!tmp.exists());
    }

    /// After a password change and after a user's removal, no file of the store holds the old
    /// hash; the older generations still load, with the hash in force for a user who stays
    /// and an unknown one for a removed user.
    #[test]
    fn old_hashes_leave_older_generations() {
        let dir = TempDir::new("old-hashes");
        let (mut store, _) = Store::open(&dir.0).unwrap();
        let old_alice = crate::config::accounts::nt_hash("alice-old");
        let bob = crate::config::accounts::nt_hash("bob-pw");
        let new_alice = crate::config::accounts::nt_hash("alice-new");
        store
            .save(&with_users(1, &[("alice", "alice-old"), ("bob", "bob-pw")]))
            .unwrap();
        store
            .save(&with_users(2, &[("alice", "alice-old"), ("bob", "bob-pw")]))
            .unwrap();
        assert_eq!(holding(&dir.0, old_alice).len(), 2);

        // alice's password changes.
        store
            .save(&with_users(3, &[("alice", "alice-new"), ("bob", "bob-pw")]))
            .unwrap();
        assert_eq!(holding(&dir.0, old_alice), Vec::<String>::new());
        // bob is removed, then one more save.
        store
            .save(&with_users(4, &[("alice", "alice-new")]))
            .unwrap();
        assert_eq!(holding(&dir.0, bob), Vec::<String>::new());
        store
            .save(&with_users(5, &[("alice", "alice-new")]))
            .unwrap();
        assert_eq!(holding(&dir.0, old_alice), Vec::<String>::new());
        assert_eq!(holding(&dir.0, bob), Vec::<String>::new());
        assert_eq!(names(&dir.0), (1..=5).map(file_name).collect::<Vec<_>>());

        // Every older generation still loads, with everything else as it was saved.
        for generation in 1..=3 {
            let old = load_file(&store.path_of(generation), generation).unwrap();
            assert_eq!(old.hostname, format!("nas{generation}"));
            assert_eq!(old.users.len(), 2);
            assert_eq!(hash_of(&old, "alice"), Some(new_alice), "{generation}");
            let locked = hash_of(&old, "bob").unwrap();
            assert_ne!(locked, bob);
            assert_ne!(locked, new_alice);
            assert_ne!(locked, [0; 16]);
        }
        // And as fallbacks: damaged newer generations give way to them.
        for newest in [5, 4] {
            fs::write(store.path_of(newest), b"").unwrap();
        }
        let (_, loaded) = Store::open(&dir.0).unwrap();
        assert_eq!(loaded.generation, 3);
        let fallback = loaded.config.unwrap();
        assert_eq!(hash_of(&fallback, "alice"), Some(new_alice));
        assert_eq!(fallback.hostname, "nas3");
    }

    /// Saves that keep every hash do not rewrite older generations.
    #[test]
    fn ordinary_saves_leave_older_generations_alone() {
        let dir = TempDir::new("untouched");
        let (mut store, _) = Store::open(&dir.0).unwrap();
        store.save(&with_users(1, &[("alice", "a")])).unwrap();
        store
            .save(&with_users(2, &[("alice", "a"), ("bob", "b")]))
            .unwrap();
        let before = fs::read(store.path_of(1)).unwrap();
        store
            .save(&with_users(3, &[("bob", "b"), ("alice", "a")]))
            .unwrap();
        store
            .save(&with_users(4, &[("alice", "a"), ("bob", "b")]))
            .unwrap();
        assert_eq!(fs::read(store.path_of(1)).unwrap(), before);
    }

    /// A store written by software that kept old hashes is cleaned at the first save after
    /// opening, even if that save changes no password.
    #[test]
    fn first_save_after_open_cleans_up_older_software() {
        let dir = TempDir::new("older-software");
        let old_alice = crate::config::accounts::nt_hash("alice-old");
        let old = with_users(1, &[("alice", "alice-old")]);
        let now = with_users(2, &[("alice", "alice-new")]);
        for (generation, config) in [(1, &old), (2, &now)] {
            fs::write(
                dir.0.join(file_name(generation)),
                record::encode(config, generation).unwrap(),
            )
            .unwrap();
        }
        let (mut store, loaded) = Store::open(&dir.0).unwrap();
        assert_eq!(loaded.config.as_ref(), Some(&now));
        assert_eq!(holding(&dir.0, old_alice), vec![file_name(1)]);
        store
            .save(&with_users(3, &[("alice", "alice-new")]))
            .unwrap();
        assert_eq!(holding(&dir.0, old_alice), Vec::<String>::new());
        assert_eq!(
            load_file(&store.path_of(1), 1).unwrap().users,
            with_users(1, &[("alice", "alice-new")]).users
        );
    }

    /// A damaged older generation is kept, without the old hashes the store knows of.
    #[test]
    fn damaged_generation_loses_old_hashes() {
        let dir = TempDir::new("damaged-hashes");
        let (mut store, _) = Store::open(&dir.0).unwrap();
        let old_alice = crate::config::accounts::nt_hash("alice-old");
        store
            .save(&with_users(1, &[("alice", "alice-old")]))
            .unwrap();
        store
            .save(&with_users(2, &[("alice", "alice-old")]))
            .unwrap();
        // Generation 1 loses its checksum's last byte: it no longer decodes.
        let mut bytes = fs::read(store.path_of(1)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(store.path_of(1), &bytes).unwrap();
        store
            .save(&with_users(3, &[("alice", "alice-new")]))
            .unwrap();
        assert_eq!(holding(&dir.0, old_alice), Vec::<String>::new());
        assert!(store.path_of(1).exists());
        assert_eq!(mode(&store.path_of(1)), 0o600);
    }

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("config-99999999999999999999.tank"), None);
        assert_eq!(parse_file_name("config-1.tank"), None);
        assert_eq!(
            parse_file_name("config-00000000000000000001.tank.tmp"),
            None
        );
        assert!(is_tmp_name("config-00000000000000000001.tank.tmp"));
    }
}
