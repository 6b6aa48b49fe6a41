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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::model::{Config, ConfigError};
use super::record::{self, EncodeError};

/// How many generations a save keeps, the new one included.
pub const KEEP: usize = 5;

/// A record file larger than this is not read: no valid configuration comes close.
pub const MAX_FILE_LEN: u64 = 16 << 20;

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

/// Reads and decodes one record file, checking the generation its name promises.
fn load_file(path: &Path, expected: u64) -> Result<Config, String> {
    let len = fs::metadata(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    if len > MAX_FILE_LEN {
        return Err(format!(
            "it is {len} bytes, more than any configuration record ({MAX_FILE_LEN})"
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
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
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
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
    /// newest [`KEEP`] generations. On error the previous generations are untouched.
    pub fn save(&mut self, config: &Config) -> Result<u64, StoreError> {
        config.validate()?;
        let generation = self
            .last_generation
            .checked_add(1)
            .ok_or(StoreError::GenerationsExhausted)?;
        let bytes = record::encode(config, generation)?;
        let path = self.path_of(generation);
        let tmp = self.dir.join(format!("{}.tmp", file_name(generation)));
        if let Err(error) = write_synced(&tmp, &bytes) {
            // Best effort: a leftover is also removed by the next open.
            let _ = fs::remove_file(&tmp);
            return Err(error);
        }
        if let Err(source) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::Write {
                action: "rename into place",
                path: tmp,
                source,
            });
        }
        self.last_generation = generation;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| StoreError::SyncDir {
                path: self.dir.clone(),
                generation,
                source,
            })?;
        self.prune();
        Ok(generation)
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

/// Writes `bytes` to a new file at `path` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let fail = |action, source| StoreError::Write {
        action,
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
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
