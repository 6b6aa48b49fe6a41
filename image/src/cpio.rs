//! A deterministic writer for the cpio "newc" format (the format the kernel unpacks as an
//! initramfs).
//!
//! We write our own (about a hundred lines) instead of driving the `cpio` tool or a general
//! crate because the image must be byte-for-byte reproducible, and that needs full control of
//! every header field: inode numbers are assigned sequentially in path order (not taken from the
//! host file system), every modification time is 0, every owner is root (uid and gid 0), link
//! counts are fixed (1 for files, 2 for directories), and the entries are sorted by path so that
//! a parent directory always comes before what it holds. Nothing from the host's file metadata
//! leaks in: contents are passed as bytes.
//!
//! What does not live here: choosing what goes into the initramfs (see [`mod@crate::build`]) and
//! compressing it.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// The modification time of every entry (seconds since the epoch).
pub const MTIME: u32 = 0;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    /// A symbolic link to the given target.
    Symlink(String),
    /// A character device node with its major and minor numbers.
    CharDev {
        major: u32,
        minor: u32,
    },
}

/// One entry: its kind and permission bits (the file type bits are added from the kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub perm: u32,
}

/// A failure to add an entry to an [`Archive`].
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("cpio path `{0}` is not a clean relative path (no leading `/`, no `.`/`..`/empty components)")]
    InvalidPath(String),
    #[error(
        "cpio path `{0}` was added twice with different contents; each path must be added once"
    )]
    Duplicate(String),
    #[error(
        "cpio path `{path}` needs `{parent}` to be a directory, but it was added as something else"
    )]
    ParentNotDir { path: String, parent: String },
    #[error("cpio entry `{0}` is larger than 4 GiB, which the newc format cannot hold")]
    TooLarge(String),
}

/// An archive being assembled in memory; [`Archive::write`] emits it.
#[derive(Clone, Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (mode `perm`), creating missing parents with mode 0755.
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<(), CpioError> {
        self.insert(
            path,
            Entry {
                kind: Kind::Dir,
                perm,
            },
        )
    }

    /// Adds a regular file with the given contents and permission bits.
    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> Result<(), CpioError> {
        self.insert(
            path,
            Entry {
                kind: Kind::File(data),
                perm,
            },
        )
    }

    /// Adds a symbolic link (mode 0777, as symlinks have).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        self.insert(
            path,
            Entry {
                kind: Kind::Symlink(target.to_owned()),
                perm: 0o777,
            },
        )
    }

    /// Adds a character device node.
    pub fn char_dev(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.insert(
            path,
            Entry {
                kind: Kind::CharDev { major, minor },
                perm,
            },
        )
    }

    /// The entries, sorted by path.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<(), CpioError> {
        if path.is_empty()
            || path.starts_with('/')
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(CpioError::InvalidPath(path.to_owned()));
        }
        // Parents first: each one must be a directory, created if missing.
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            match self.entries.get(parent) {
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                Some(_) => {
                    return Err(CpioError::ParentNotDir {
                        path: path.to_owned(),
                        parent: parent.to_owned(),
                    })
                }
                None => {
                    self.entries.insert(
                        parent.to_owned(),
                        Entry {
                            kind: Kind::Dir,
                            perm: 0o755,
                        },
                    );
                }
            }
            end += i + 1;
        }
        match self.entries.get(path) {
            // A directory added again (possibly implicitly first) takes the later mode.
            Some(old) if old.kind == Kind::Dir && entry.kind == Kind::Dir => {}
            Some(old) if *old == entry => {}
            Some(_) => return Err(CpioError::Duplicate(path.to_owned())),
            None => {}
        }
        self.entries.insert(path.to_owned(), entry);
        Ok(())
    }

    /// Writes the archive: entries sorted by path (so parents precede children), inode numbers
    /// 1, 2, 3... in that order, then the `TRAILER!!!` record.
    pub fn write<W: Write>(&self, out: &mut W) -> io::Result<()> {
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let (ftype, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match &entry.kind {
                Kind::Dir => (S_IFDIR, 2, &[], (0, 0)),
                Kind::File(d) => (S_IFREG, 1, d, (0, 0)),
                Kind::Symlink(t) => (S_IFLNK, 1, t.as_bytes(), (0, 0)),
                Kind::CharDev { major, minor } => (S_IFCHR, 1, &[], (*major, *minor)),
            };
            let size = u32::try_from(data.len()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    CpioError::TooLarge(path.clone()),
                )
            })?;
            let header = Header {
                ino,
                mode: ftype | (entry.perm & 0o7777),
                nlink,
                size,
                rdev,
            };
            write_record(out, &header, path, data)?;
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            size: 0,
            rdev: (0, 0),
        };
        write_record(out, &trailer, "TRAILER!!!", &[])
    }

    /// The archive as bytes.
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write(&mut v)?;
        Ok(v)
    }
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    size: u32,
    rdev: (u32, u32),
}

fn write_record<W: Write>(out: &mut W, h: &Header, name: &str, data: &[u8]) -> io::Result<()> {
    let namesize = name.len() + 1;
    let fields = [
        h.ino,
        h.mode,
        0,
        0,
        h.nlink,
        MTIME,
        h.size,
        0,
        0,
        h.rdev.0,
        h.rdev.1,
        namesize as u32,
        0,
    ];
    let mut head = String::with_capacity(110);
    head.push_str("070701");
    for f in fields {
        head.push_str(&format!("{f:08X}"));
    }
    out.write_all(head.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    out.write_all(&[0; 3][..pad4(110 + namesize)])?;
    out.write_all(data)?;
    out.write_all(&[0; 3][..pad4(data.len())])?;
    Ok(())
}

/// Bytes needed to bring `n` up to a multiple of 4.
fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: [u32; 13], name: &str, data: &[u8]) -> Vec<u8> {
        let mut v = b"070701".to_vec();
        for f in fields {
            v.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        while v.len() & 3 != 0 {
            v.push(0);
        }
        v.extend_from_slice(data);
        while v.len() & 3 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn golden_tiny_archive() {
        let mut a = Archive::new();
        a.file("init", 0o755, b"hello".to_vec()).unwrap();
        a.char_dev("dev/console", 0o600, 5, 1).unwrap();
        a.symlink("sbin/modprobe", "/init").unwrap();
        let got = a.to_bytes().unwrap();

        // Literal bytes of the first record: "dev", a directory created implicitly.
        let dev: &[u8] = b"070701\
00000001\
000041ED\
00000000\
00000000\
00000002\
00000000\
00000000\
00000000\
00000000\
00000000\
00000000\
00000004\
00000000\
dev\0";
        assert_eq!(&got[..dev.len()], dev);
        // 110 + 4 = 114 bytes, padded with two NULs to 116.
        assert_eq!(&got[114..116], b"\0\0");

        let mut want = Vec::new();
        want.extend(rec(
            [1, 0o40755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 4, 0],
            "dev",
            b"",
        ));
        want.extend(rec(
            [2, 0o20600, 0, 0, 1, 0, 0, 0, 0, 5, 1, 12, 0],
            "dev/console",
            b"",
        ));
        want.extend(rec(
            [3, 0o100755, 0, 0, 1, 0, 5, 0, 0, 0, 0, 5, 0],
            "init",
            b"hello",
        ));
        want.extend(rec(
            [4, 0o40755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 5, 0],
            "sbin",
            b"",
        ));
        want.extend(rec(
            [5, 0o120777, 0, 0, 1, 0, 5, 0, 0, 0, 0, 14, 0],
            "sbin/modprobe",
            b"/init",
        ));
        want.extend(rec(
            [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0],
            "TRAILER!!!",
            b"",
        ));
        assert_eq!(got, want);

        // Spot-check the padding rules on literal offsets: "init" record header+name is
        // 110 + 5 = 115 bytes, padded to 116; its 5 data bytes are padded to 8.
        let init_at = 116 + (110 + 12 + 2);
        assert_eq!(&got[init_at..init_at + 6], b"070701");
        assert_eq!(&got[init_at + 110..init_at + 116], b"init\0\0");
        assert_eq!(&got[init_at + 116..init_at + 124], b"hello\0\0\0");
        assert_eq!(got.len() % 4, 0);
        assert!(got.ends_with(b"TRAILER!!!\0\0\0\0"));
    }

    #[test]
    fn rejects_bad_paths_and_conflicts() {
        let mut a = Archive::new();
        assert!(matches!(
            a.dir("/abs", 0o755),
            Err(CpioError::InvalidPath(_))
        ));
        assert!(matches!(
            a.dir("a/../b", 0o755),
            Err(CpioError::InvalidPath(_))
        ));
        a.file("f", 0o644, vec![1]).unwrap();
        a.file("f", 0o644, vec![1]).unwrap();
        assert!(matches!(
            a.file("f", 0o644, vec![2]),
            Err(CpioError::Duplicate(_))
        ));
        assert!(matches!(
            a.file("f/g", 0o644, vec![]),
            Err(CpioError::ParentNotDir { .. })
        ));
    }

    #[test]
    fn output_is_independent_of_insertion_order() {
        let mut a = Archive::new();
        a.file("b/x", 0o644, vec![1]).unwrap();
        a.dir("a", 0o700).unwrap();
        let mut b = Archive::new();
        b.dir("a", 0o700).unwrap();
        b.file("b/x", 0o644, vec![1]).unwrap();
        assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    }
}
