//! Files inside datasets, for the console's `file` noun: write a test pattern, checksum, list,
//! remove. The appliance has no shell; these let an operator (and the end-to-end tests) check
//! that a dataset takes and returns data without a client.
//!
//! Paths are `DATASET/relative/path`; they are resolved under the dataset's mount point and
//! can never leave it (no `..`, no absolute paths, symlinks are not followed).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("'{0}' is not a path inside a dataset: write DATASET/path/in/it, without '..'")]
    BadPath(String),
    #[error("{path}: disk quota exceeded (EDQUOT): the dataset's quota is full; raise it with 'dataset set {dataset} quota SIZE' or remove files")]
    Quota { path: String, dataset: String },
    #[error("{path}: no space left on the pool (ENOSPC)")]
    NoSpace { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Splits `DATASET/rest` and checks `rest` stays inside.
pub fn split(text: &str) -> Result<(&str, PathBuf), FileError> {
    let bad = || FileError::BadPath(text.to_string());
    let (dataset, rest) = text.split_once('/').unwrap_or((text, ""));
    if crate::config::DatasetName::parse(dataset).is_err() {
        return Err(bad());
    }
    let mut rel = PathBuf::new();
    for c in Path::new(rest).components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            _ => return Err(bad()),
        }
    }
    Ok((dataset, rel))
}

fn io_error(path: &str, dataset: &str, e: std::io::Error) -> FileError {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::DQUOT.raw_os_error() => FileError::Quota {
            path: path.to_string(),
            dataset: dataset.to_string(),
        },
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() => FileError::NoSpace {
            path: path.to_string(),
        },
        _ => FileError::Io {
            path: path.to_string(),
            source: e,
        },
    }
}

/// The test pattern: lines `SEED OFFSET\n`, each 32 bytes, so every 32-byte line of a file is
/// unique and can be found again in a raw disk image.
pub fn pattern_chunk(seed: &str, start: u64, len: usize) -> Vec<u8> {
    const LINE: u64 = 32;
    let mut out = Vec::with_capacity(len + LINE as usize);
    let mut line_no = start / LINE;
    let skip = (start % LINE) as usize;
    // Seeds are at most 20 bytes (the console checks), leaving at least 10 digits.
    let mut end = seed.len().min(20);
    while !seed.is_char_boundary(end) {
        end -= 1;
    }
    let seed = &seed[..end];
    let width = 31 - seed.len() - 1;
    while out.len() < len + skip {
        let mut line = format!("{seed} {:0width$}", line_no * LINE);
        line.truncate(31);
        line.push('\n');
        out.extend_from_slice(line.as_bytes());
        line_no += 1;
    }
    out.drain(..skip);
    out.truncate(len);
    out
}

/// Writes `size` bytes of the test pattern to `path` (created or truncated) and syncs it.
/// Returns the SHA-256 of what was written.
pub fn write_pattern(
    mount: &Path,
    dataset: &str,
    rel: &Path,
    size: u64,
    seed: &str,
) -> Result<String, FileError> {
    let shown = format!("{dataset}/{}", rel.display());
    let path = mount.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(&shown, dataset, e))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|e| io_error(&shown, dataset, e))?;
    let mut hash = Sha256::new();
    let mut written = 0u64;
    while written < size {
        let n = (size - written).min(1 << 20) as usize;
        let chunk = pattern_chunk(seed, written, n);
        file.write_all(&chunk)
            .map_err(|e| io_error(&shown, dataset, e))?;
        hash.update(&chunk);
        written += n as u64;
    }
    file.sync_all().map_err(|e| io_error(&shown, dataset, e))?;
    Ok(hex(&hash.finalize()))
}

/// SHA-256 and size of a file.
pub fn checksum(mount: &Path, dataset: &str, rel: &Path) -> Result<(String, u64), FileError> {
    let shown = format!("{dataset}/{}", rel.display());
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(mount.join(rel))
        .map_err(|e| io_error(&shown, dataset, e))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| io_error(&shown, dataset, e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hash.finalize()), total))
}

/// Entries of a directory: name, size, is-directory; sorted by name.
/// One directory entry as `file list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub dir: bool,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

pub fn list(mount: &Path, dataset: &str, rel: &Path) -> Result<Vec<Entry>, FileError> {
    use std::os::unix::fs::MetadataExt;
    let shown = format!("{dataset}/{}", rel.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(mount.join(rel)).map_err(|e| io_error(&shown, dataset, e))? {
        let entry = entry.map_err(|e| io_error(&shown, dataset, e))?;
        let meta =
            std::fs::symlink_metadata(entry.path()).map_err(|e| io_error(&shown, dataset, e))?;
        out.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            size: meta.len(),
            dir: meta.is_dir(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        });
    }
    out.sort();
    Ok(out)
}

/// Writes `bytes` to `path` atomically with permission bits `mode`: a temporary file beside
/// it (created with `mode`, never wider), fsync, rename over `path`, fsync of the directory.
/// A file `path` names that is a symlink is replaced, never followed.
pub fn write_atomic(
    mount: &Path,
    dataset: &str,
    rel: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), FileError> {
    let shown = format!("{dataset}/{}", rel.display());
    let Some(name) = rel.file_name() else {
        return Err(FileError::BadPath(shown));
    };
    let path = mount.join(rel);
    let dir = path.parent().unwrap_or(mount).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&shown, dataset, e))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    let _ = std::fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&temp)?;
        // The umask may have narrowed the mode; set exactly what was asked.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error(&shown, dataset, e));
    }
    Ok(())
}

/// Reads a whole file of at most `max` bytes (a symlink is refused, not followed).
pub fn read_limited(
    mount: &Path,
    dataset: &str,
    rel: &Path,
    max: u64,
) -> Result<Vec<u8>, FileError> {
    let shown = format!("{dataset}/{}", rel.display());
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(mount.join(rel))
        .map_err(|e| io_error(&shown, dataset, e))?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(&shown, dataset, e))?;
    Ok(bytes)
}

/// Removes a file (or an empty directory).
pub fn remove(mount: &Path, dataset: &str, rel: &Path) -> Result<(), FileError> {
    let shown = format!("{dataset}/{}", rel.display());
    if rel.as_os_str().is_empty() {
        return Err(FileError::BadPath(shown));
    }
    let path = mount.join(rel);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| io_error(&shown, dataset, e))?;
    if meta.is_dir() {
        std::fs::remove_dir(&path)
    } else {
        std::fs::remove_file(&path)
    }
    .map_err(|e| io_error(&shown, dataset, e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(
            split("media/a/b.txt").unwrap(),
            ("media", PathBuf::from("a/b.txt"))
        );
        assert_eq!(split("media").unwrap(), ("media", PathBuf::new()));
        assert_eq!(split("media/./x").unwrap(), ("media", PathBuf::from("x")));
        assert!(split("media/../etc").is_err());
        assert!(split("/etc/passwd").is_err());
        assert!(split("").is_err());
        assert!(split("../etc").is_err());
        assert!(split("./x").is_err());
    }

    #[test]
    fn atomic_writes_have_their_mode_and_reads_are_bounded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tank-files-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rel = Path::new("backups/tank.exp");
        for (mode, bytes) in [(0o644, &b"first"[..]), (0o600, &b"second, longer"[..])] {
            write_atomic(&dir, "media", rel, bytes, mode).unwrap();
            let meta = std::fs::metadata(dir.join(rel)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, mode);
            assert_eq!(read_limited(&dir, "media", rel, 1 << 20).unwrap(), bytes);
        }
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.join("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["tank.exp"]);
        // A read stops one byte past the limit, so a too-large file is seen as such.
        assert_eq!(read_limited(&dir, "media", rel, 3).unwrap().len(), 4);
        let e = read_limited(&dir, "media", Path::new("nope"), 3).unwrap_err();
        assert!(e.to_string().contains("media/nope"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pattern_lines_are_unique_and_seekable() {
        let all = pattern_chunk("rot", 0, 4096);
        assert_eq!(all.len(), 4096);
        assert_eq!(&all[..32], format!("rot {}\n", "0".repeat(27)).as_bytes());
        assert_eq!(&all[32..64], format!("rot {:027}\n", 32).as_bytes());
        let lines: Vec<&[u8]> = all.chunks(32).collect();
        let mut sorted = lines.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), lines.len(), "every line is unique");
        assert!(lines.iter().all(|l| l.len() == 32 && l[31] == b'\n'));
        assert_eq!(pattern_chunk("rot", 100, 1000), all[100..1100].to_vec());
    }

    #[test]
    fn write_checksum_list_remove() {
        let dir = std::env::temp_dir().join(format!("tank-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sum = write_pattern(&dir, "media", Path::new("sub/a.bin"), 100_000, "seed").unwrap();
        let (again, size) = checksum(&dir, "media", Path::new("sub/a.bin")).unwrap();
        assert_eq!(sum, again);
        assert_eq!(size, 100_000);
        let entries = list(&dir, "media", Path::new("sub")).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].name.as_str(), entries[0].size, entries[0].dir),
            ("a.bin", 100_000, false)
        );
        remove(&dir, "media", Path::new("sub/a.bin")).unwrap();
        assert!(checksum(&dir, "media", Path::new("sub/a.bin")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
