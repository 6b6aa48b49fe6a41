//! File commands: write and read the test pattern with timings, checksums, stat, listings,
//! directory and name changes, copies; and [`OpError`], the error every command returns.
//!
//! Each function runs on the worker thread of one request and checks its deadline between
//! blocks, so a command that the agent already answered with `err timeout` stops soon after
//! when the file system lets it. Timings (`seconds`, `mib_s`) of `write` and `read` are the wall
//! clock from open to the last call (write: fsync and close), with nothing but file system
//! calls in between: a transfer of up to [`STAGE_LIMIT`] bytes is staged in memory, its pattern
//! made and its checksum taken off the clock. Leaving that work between the calls and only
//! stopping the clock for it would flatter the rate, because readahead and writeback carry on
//! in the background meanwhile. What does not live here: mounts ([`crate::mounts`]), TCP
//! ([`crate::tcp`]), parsing ([`crate::command`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::command::{ReadSpec, WriteSpec};
use crate::pattern;
use crate::protocol::Fields;

/// The largest file `cat` returns.
pub const CAT_LIMIT: usize = 64 << 10;

/// The largest `write` or `read` staged in memory, so that only file system calls are timed.
pub const STAGE_LIMIT: u64 = 32 << 20;

/// Why a command failed; [`OpError::code`] is the word the reply carries.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}")]
    Failed(String),
    #[error("{0} stopped at its deadline")]
    Deadline(&'static str),
}

impl OpError {
    /// A closure turning an `io::Error` into [`OpError::Io`] with `what` as context.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> OpError {
        let what = what.into();
        move |source| OpError::Io { what, source }
    }

    /// The errno name (`EACCES`, `EROFS`...) of a system error, `timeout` for a deadline,
    /// otherwise `failed`.
    pub fn code(&self) -> String {
        match self {
            OpError::Io { source, .. } => errno_name(source),
            OpError::Failed(_) => "failed".into(),
            OpError::Deadline(_) => "timeout".into(),
        }
    }
}

impl From<rustix::io::Errno> for OpError {
    fn from(e: rustix::io::Errno) -> Self {
        OpError::Io {
            what: "system call".into(),
            source: e.into(),
        }
    }
}

/// The errno name of an `io::Error` (`ETIMEDOUT`), or `failed` when it has no errno.
pub fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => match nix::errno::Errno::from_raw(n) {
            nix::errno::Errno::UnknownErrno => format!("E{n}"),
            known => format!("{known:?}"),
        },
        None if e.kind() == io::ErrorKind::TimedOut => "ETIMEDOUT".into(),
        None => "failed".into(),
    }
}

/// A path for messages, quoted when it needs to be.
pub fn show(path: &Path) -> String {
    crate::protocol::quote(path.as_os_str().as_bytes())
}

/// Fails once `deadline` has passed.
pub fn check(deadline: Instant, what: &'static str) -> Result<(), OpError> {
    if Instant::now() >= deadline {
        return Err(OpError::Deadline(what));
    }
    Ok(())
}

/// A page-aligned buffer (O_DIRECT needs one) made without `unsafe`: a larger vector, used
/// from its first page boundary.
pub struct Aligned {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    pub const ALIGN: usize = 4096;

    pub fn new(len: usize) -> Self {
        let raw = vec![0u8; len + Self::ALIGN];
        let misalign = raw.as_ptr() as usize % Self::ALIGN;
        let start = (Self::ALIGN - misalign) % Self::ALIGN;
        Aligned { raw, start, len }
    }

    pub fn get(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// MiB/s for `bytes` in `time` (0 when no time was measured).
pub fn mib_per_s(bytes: u64, time: Duration) -> f64 {
    let secs = time.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 / (1024.0 * 1024.0) / secs
}

/// The timing fields every transfer reports.
pub fn timing(fields: Fields, bytes: u64, io_time: Duration) -> Fields {
    fields
        .num("bytes", bytes)
        .secs("seconds", io_time.as_secs_f64())
        .put("mib_s", format!("{:.2}", mib_per_s(bytes, io_time)))
}

fn direct_flag() -> i32 {
    rustix::fs::OFlags::DIRECT.bits() as i32
}

/// Runs `f`, adding its duration to `total`.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    *total += t.elapsed();
    out
}

/// `write`: the pattern for `seed`, in blocks, optionally O_DIRECT, fsync at the end.
///
/// With `append` the pattern continues from the file's current size, so a file appended in
/// pieces with one seed equals the whole pattern. The reply's sha256 covers the bytes written.
pub fn write(spec: &WriteSpec, deadline: Instant) -> Result<Fields, OpError> {
    let what = || format!("write {}", show(&spec.path));
    let mut options = OpenOptions::new();
    options.write(true).mode(spec.mode);
    if spec.append {
        options.append(true).create(true);
    } else if spec.exclusive {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    if spec.direct {
        options.custom_flags(direct_flag());
    }
    let offset = if spec.append {
        fs::metadata(&spec.path).map(|m| m.len()).unwrap_or(0)
    } else {
        0
    };
    let mut hasher = Sha256::new();
    // The whole payload made and hashed before the clock starts, when it is small enough.
    let mut staged = (spec.size <= STAGE_LIMIT).then(|| {
        let mut data = Aligned::new(spec.size as usize);
        pattern::fill(spec.seed, offset, data.get());
        hasher.update(data.get());
        data
    });
    let mut block = Aligned::new(if staged.is_some() { 0 } else { spec.block });
    let started = Instant::now();
    let mut file = options
        .open(&spec.path)
        .map_err(OpError::io(format!("open {}", show(&spec.path))))?;
    let mut done = 0u64;
    while done < spec.size {
        check(deadline, "write")?;
        let n = (spec.size - done).min(spec.block as u64) as usize;
        let chunk: &[u8] = match staged.as_mut() {
            Some(data) => &data.get()[done as usize..done as usize + n],
            None => {
                let buf = &mut block.get()[..n];
                pattern::fill(spec.seed, offset + done, buf);
                hasher.update(&*buf);
                buf
            }
        };
        file.write_all(chunk).map_err(OpError::io(what()))?;
        done += n as u64;
    }
    if spec.fsync {
        file.sync_all()
            .map_err(OpError::io(format!("fsync {}", show(&spec.path))))?;
    }
    drop(file);
    Ok(timing(
        Fields::new().put("sha256", pattern::hex(&hasher.finalize())),
        done,
        started.elapsed(),
    ))
}

/// Reads a whole file in blocks; returns the byte count, the sha256 (if asked) and the wall
/// clock of the reads. A file of up to [`STAGE_LIMIT`] bytes is read into memory and hashed
/// after the clock stops; a larger one is hashed block by block, on the clock.
fn read_all(
    path: &Path,
    block: usize,
    direct: bool,
    hash: bool,
    deadline: Instant,
) -> Result<(u64, Option<String>, Duration), OpError> {
    let what = || format!("read {}", show(path));
    let mut options = OpenOptions::new();
    options.read(true);
    if direct {
        options.custom_flags(direct_flag());
    }
    let len = fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    // Room for the whole file and one more block, in which the read that finds the end lands.
    let capacity = if hash && len <= STAGE_LIMIT {
        (len as usize).div_ceil(block) * block + block
    } else {
        block
    };
    let mut buf = Aligned::new(capacity);
    let buf = buf.get();
    let mut hasher = hash.then(Sha256::new);
    let mut total = 0u64;
    // buf[..at] holds bytes read and not hashed yet.
    let mut at = 0usize;
    let started = Instant::now();
    let mut file = options
        .open(path)
        .map_err(OpError::io(format!("open {}", show(path))))?;
    loop {
        check(deadline, "read")?;
        // Full, or (O_DIRECT) no longer aligned after a short read: hash and start over.
        if at + block > buf.len() || (direct && !at.is_multiple_of(Aligned::ALIGN)) {
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..at]);
            }
            at = 0;
        }
        let n = match file.read(&mut buf[at..at + block]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(OpError::io(what())(e)),
        };
        at += n;
        total += n as u64;
    }
    let took = started.elapsed();
    drop(file);
    let sha = hasher.map(|mut h| {
        h.update(&buf[..at]);
        pattern::hex(&h.finalize())
    });
    Ok((total, sha, took))
}

/// `read`: the whole file, after dropping the page cache unless `cached`.
///
/// Dropping the cache needs root; under `as` it is skipped and the reply says `dropped=no`.
pub fn read(spec: &ReadSpec, deadline: Instant) -> Result<Fields, OpError> {
    let dropped = spec.drop_caches && crate::system::drop_caches().is_ok();
    let (bytes, sha, io_time) = read_all(&spec.path, spec.block, spec.direct, spec.hash, deadline)?;
    let mut fields = Fields::new();
    if let Some(sha) = sha {
        fields = fields.put("sha256", sha);
    }
    Ok(timing(fields, bytes, io_time).put("dropped", if dropped { "yes" } else { "no" }))
}

/// `sha256`: the checksum of a file as it reads now (page cache allowed).
pub fn sha256(path: &Path, deadline: Instant) -> Result<Fields, OpError> {
    let (bytes, sha, _) = read_all(path, 1 << 20, false, true, deadline)?;
    Ok(Fields::new()
        .num("bytes", bytes)
        .put("sha256", sha.unwrap_or_default()))
}

/// `cat`: a small file's contents.
pub fn cat(path: &Path) -> Result<Fields, OpError> {
    let file = File::open(path).map_err(OpError::io(format!("open {}", show(path))))?;
    let mut data = Vec::new();
    file.take(CAT_LIMIT as u64 + 1)
        .read_to_end(&mut data)
        .map_err(OpError::io(format!("read {}", show(path))))?;
    if data.len() > CAT_LIMIT {
        return Err(OpError::Failed(format!(
            "{} is larger than {} KiB: use 'read' or 'sha256' for large files",
            show(path),
            CAT_LIMIT >> 10
        )));
    }
    Ok(Fields::new().num("bytes", data.len()).put("data", data))
}

/// `put`: a small file with the given contents, fsynced.
pub fn put(path: &Path, data: &[u8], mode: u32) -> Result<Fields, OpError> {
    let what = || format!("write {}", show(path));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(OpError::io(format!("open {}", show(path))))?;
    file.write_all(data).map_err(OpError::io(what()))?;
    file.sync_all().map_err(OpError::io(what()))?;
    Ok(Fields::new().num("bytes", data.len()))
}

fn file_type(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        "file"
    } else if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block"
    } else if t.is_char_device() {
        "char"
    } else {
        "other"
    }
}

/// `stat`: the entry itself (a symlink is not followed).
pub fn stat(path: &Path) -> Result<Fields, OpError> {
    let meta = fs::symlink_metadata(path).map_err(OpError::io(format!("stat {}", show(path))))?;
    let mut fields = Fields::new()
        .put("type", file_type(&meta))
        .put("mode", format!("{:04o}", meta.mode() & 0o7777))
        .num("uid", meta.uid())
        .num("gid", meta.gid())
        .num("size", meta.size())
        .num("nlink", meta.nlink())
        .num("ino", meta.ino())
        .put(
            "mtime",
            format!("{}.{:09}", meta.mtime(), meta.mtime_nsec()),
        )
        .put(
            "ctime",
            format!("{}.{:09}", meta.ctime(), meta.ctime_nsec()),
        );
    if meta.file_type().is_symlink() {
        let target =
            fs::read_link(path).map_err(OpError::io(format!("readlink {}", show(path))))?;
        fields = fields.put("target", target.as_os_str().as_bytes());
    }
    Ok(fields)
}

/// `statfs`: sizes and free space of the file system holding `path`.
pub fn statfs(path: &Path) -> Result<Fields, OpError> {
    let s = rustix::fs::statvfs(path)
        .map_err(|e| OpError::io(format!("statfs {}", show(path)))(e.into()))?;
    let frsize = s.f_frsize.max(1);
    Ok(Fields::new()
        .num("block_size", frsize)
        .num("blocks", s.f_blocks)
        .num("blocks_free", s.f_bfree)
        .num("blocks_avail", s.f_bavail)
        .num("bytes_total", s.f_blocks.saturating_mul(frsize))
        .num("bytes_avail", s.f_bavail.saturating_mul(frsize))
        .num("files", s.f_files)
        .num("files_free", s.f_ffree))
}

/// `ls`: the names in a directory, sorted by bytes, without `.` and `..`.
pub fn ls(path: &Path, deadline: Instant) -> Result<Fields, OpError> {
    let what = || format!("ls {}", show(path));
    let mut names = Vec::new();
    for entry in fs::read_dir(path).map_err(OpError::io(what()))? {
        check(deadline, "ls")?;
        let entry = entry.map_err(OpError::io(what()))?;
        names.push(entry.file_name().as_bytes().to_vec());
    }
    names.sort();
    let mut fields = Fields::new().num("count", names.len());
    for n in names {
        fields = fields.put("name", n);
    }
    Ok(fields)
}

/// `mkdir`, with `parents` like `mkdir -p`.
pub fn mkdir(path: &Path, mode: u32, parents: bool) -> Result<Fields, OpError> {
    fs::DirBuilder::new()
        .mode(mode)
        .recursive(parents)
        .create(path)
        .map_err(OpError::io(format!("mkdir {}", show(path))))?;
    Ok(Fields::new())
}

/// `rmdir`, `rm`, `rename`, `link`, `symlink`, `chmod`, `chown`, `truncate`: one system call
/// each.
pub fn rmdir(path: &Path) -> Result<Fields, OpError> {
    fs::remove_dir(path).map_err(OpError::io(format!("rmdir {}", show(path))))?;
    Ok(Fields::new())
}

pub fn rm(path: &Path) -> Result<Fields, OpError> {
    fs::remove_file(path).map_err(OpError::io(format!("rm {}", show(path))))?;
    Ok(Fields::new())
}

pub fn rename(from: &Path, to: &Path) -> Result<Fields, OpError> {
    fs::rename(from, to).map_err(OpError::io(format!(
        "rename {} to {}",
        show(from),
        show(to)
    )))?;
    Ok(Fields::new())
}

pub fn link(from: &Path, to: &Path) -> Result<Fields, OpError> {
    fs::hard_link(from, to).map_err(OpError::io(format!("link {} to {}", show(from), show(to))))?;
    Ok(Fields::new())
}

pub fn symlink(target: &Path, path: &Path) -> Result<Fields, OpError> {
    std::os::unix::fs::symlink(target, path).map_err(OpError::io(format!(
        "symlink {} to {}",
        show(path),
        show(target)
    )))?;
    Ok(Fields::new())
}

pub fn chmod(path: &Path, mode: u32) -> Result<Fields, OpError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(OpError::io(format!("chmod {}", show(path))))?;
    Ok(Fields::new())
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> Result<Fields, OpError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(OpError::io(format!("chown {}", show(path))))?;
    Ok(Fields::new())
}

pub fn truncate(path: &Path, size: u64) -> Result<Fields, OpError> {
    let what = || format!("truncate {}", show(path));
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(OpError::io(what()))?;
    file.set_len(size).map_err(OpError::io(what()))?;
    Ok(Fields::new())
}

/// `copy`: read and write in blocks (with a sha256 of the bytes), or with `server`
/// copy_file_range, which NFSv4.2 and SMB3 turn into a copy on the server.
pub fn copy(
    from: &Path,
    to: &Path,
    block: usize,
    server: bool,
    deadline: Instant,
) -> Result<Fields, OpError> {
    let mut io_time = Duration::ZERO;
    let mut src = timed(&mut io_time, || File::open(from))
        .map_err(OpError::io(format!("open {}", show(from))))?;
    let mut dst = timed(&mut io_time, || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(to)
    })
    .map_err(OpError::io(format!("open {}", show(to))))?;
    let what = || format!("copy {} to {}", show(from), show(to));
    let mut total = 0u64;
    let mut fields = Fields::new();
    if server {
        loop {
            check(deadline, "copy")?;
            let n = timed(&mut io_time, || {
                rustix::fs::copy_file_range(&src, None, &dst, None, block)
            })
            .map_err(|e| OpError::io(what())(e.into()))?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    } else {
        let mut buf = vec![0u8; block];
        let mut hasher = Sha256::new();
        loop {
            check(deadline, "copy")?;
            let n = match timed(&mut io_time, || src.read(&mut buf)) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(OpError::io(what())(e)),
            };
            hasher.update(&buf[..n]);
            timed(&mut io_time, || dst.write_all(&buf[..n])).map_err(OpError::io(what()))?;
            total += n as u64;
        }
        fields = fields.put("sha256", pattern::hex(&hasher.finalize()));
    }
    timed(&mut io_time, || dst.sync_all()).map_err(OpError::io(format!("fsync {}", show(to))))?;
    Ok(timing(fields, total, io_time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tank-agent-ops-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn write_read_copy_and_names() {
        let dir = scratch("files");
        let file = dir.join("a b");
        let spec = WriteSpec {
            path: file.clone(),
            size: (3 << 20) + 17,
            seed: 5,
            block: 1 << 20,
            direct: false,
            fsync: true,
            append: false,
            exclusive: false,
            mode: 0o640,
        };
        let w = write(&spec, later()).unwrap();
        let expected = pattern::sha256_hex(5, spec.size);
        assert_eq!(w.text("sha256").unwrap(), expected);
        assert_eq!(w.parse::<u64>("bytes"), Some(spec.size));
        assert_eq!(
            fs::read(&file).unwrap(),
            pattern::bytes(5, spec.size as usize)
        );

        let r = read(
            &ReadSpec {
                path: file.clone(),
                block: 64 << 10,
                direct: false,
                drop_caches: false,
                hash: true,
            },
            later(),
        )
        .unwrap();
        assert_eq!(r.text("sha256").unwrap(), expected);
        assert_eq!(r.parse::<u64>("bytes"), Some(spec.size));
        assert_eq!(
            sha256(&file, later()).unwrap().text("sha256").unwrap(),
            expected
        );

        // Appending with the same seed continues the pattern.
        let first = WriteSpec {
            path: dir.join("pieces"),
            size: 1000,
            ..spec.clone()
        };
        write(&first, later()).unwrap();
        write(
            &WriteSpec {
                size: 2333,
                append: true,
                ..first.clone()
            },
            later(),
        )
        .unwrap();
        assert_eq!(
            sha256(&dir.join("pieces"), later())
                .unwrap()
                .text("sha256")
                .unwrap(),
            pattern::sha256_hex(5, 3333)
        );
        // excl refuses an existing file, with its errno.
        let e = write(
            &WriteSpec {
                exclusive: true,
                ..first.clone()
            },
            later(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "EEXIST");

        let st = stat(&file).unwrap();
        assert_eq!(st.text("type").unwrap(), "file");
        assert_eq!(st.text("mode").unwrap(), "0640");
        assert_eq!(st.parse::<u64>("size"), Some(spec.size));

        for server in [false, true] {
            let to = dir.join(format!("copy-{server}"));
            let c = copy(&file, &to, 1 << 20, server, later()).unwrap();
            assert_eq!(c.parse::<u64>("bytes"), Some(spec.size));
            assert_eq!(
                sha256(&to, later()).unwrap().text("sha256").unwrap(),
                expected
            );
        }

        mkdir(&dir.join("d/e"), 0o750, true).unwrap();
        assert_eq!(stat(&dir.join("d/e")).unwrap().text("type").unwrap(), "dir");
        rename(&dir.join("copy-true"), &dir.join("d/moved")).unwrap();
        symlink(Path::new("moved"), &dir.join("d/link")).unwrap();
        assert_eq!(
            stat(&dir.join("d/link")).unwrap().text("target").unwrap(),
            "moved"
        );
        link(&dir.join("d/moved"), &dir.join("d/hard")).unwrap();
        assert_eq!(
            stat(&dir.join("d/hard")).unwrap().parse::<u64>("nlink"),
            Some(2)
        );
        let l = ls(&dir.join("d"), later()).unwrap();
        let names: Vec<&[u8]> = l.all("name").collect();
        assert_eq!(names, vec![&b"e"[..], b"hard", b"link", b"moved"]);
        assert_eq!(l.parse::<u64>("count"), Some(4));
        assert_eq!(rmdir(&dir.join("d")).unwrap_err().code(), "ENOTEMPTY");
        rm(&dir.join("d/link")).unwrap();
        assert_eq!(rm(&dir.join("d/link")).unwrap_err().code(), "ENOENT");
        assert_eq!(rm(&dir.join("d/e")).unwrap_err().code(), "EISDIR");
        chmod(&dir.join("d/moved"), 0o600).unwrap();
        assert_eq!(
            stat(&dir.join("d/moved")).unwrap().text("mode").unwrap(),
            "0600"
        );
        truncate(&dir.join("d/moved"), 10).unwrap();
        assert_eq!(
            stat(&dir.join("d/moved")).unwrap().parse::<u64>("size"),
            Some(10)
        );

        put(&dir.join("note"), b"hello\nworld", 0o644).unwrap();
        let c = cat(&dir.join("note")).unwrap();
        assert_eq!(c.get("data").unwrap(), b"hello\nworld");
        assert_eq!(cat(&file).unwrap_err().code(), "failed");
        assert!(statfs(&dir).unwrap().parse::<u64>("bytes_total").unwrap() > 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Above [`STAGE_LIMIT`] the pattern and the checksum are made block by block; both ways
    /// write and read the same bytes and checksums.
    #[test]
    fn staged_and_streamed_transfers_agree() {
        let dir = scratch("staged");
        for size in [STAGE_LIMIT, STAGE_LIMIT + 4097] {
            let spec = WriteSpec {
                path: dir.join(format!("f{size}")),
                size,
                seed: 9,
                block: 1 << 20,
                direct: false,
                fsync: false,
                append: false,
                exclusive: false,
                mode: 0o644,
            };
            let w = write(&spec, later()).unwrap();
            let expected = pattern::sha256_hex(9, size);
            assert_eq!(w.text("sha256").unwrap(), expected, "write of {size}");
            assert!(w.parse::<f64>("seconds").unwrap() > 0.0);
            let (bytes, sha, _) = read_all(&spec.path, 1 << 20, false, true, later()).unwrap();
            assert_eq!(
                (bytes, sha.as_deref()),
                (size, Some(&*expected)),
                "read of {size}"
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn deadlines_stop_work() {
        let dir = scratch("deadline");
        let spec = WriteSpec {
            path: dir.join("f"),
            size: 1 << 20,
            seed: 0,
            block: 4096,
            direct: false,
            fsync: false,
            append: false,
            exclusive: false,
            mode: 0o644,
        };
        let e = write(&spec, Instant::now()).unwrap_err();
        assert_eq!(e.code(), "timeout");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(&io::Error::from_raw_os_error(13)), "EACCES");
        assert_eq!(errno_name(&io::Error::from_raw_os_error(30)), "EROFS");
        assert_eq!(errno_name(&io::Error::from_raw_os_error(122)), "EDQUOT");
        assert_eq!(errno_name(&io::Error::other("x")), "failed");
        assert_eq!(errno_name(&io::Error::from_raw_os_error(4095)), "E4095");
    }
}
