//! The per-subvolume compression property (`btrfs.compression`).
//!
//! btrfs keeps properties as extended attributes in the `btrfs.` namespace. Setting
//! `btrfs.compression` on a subvolume's root directory makes files and directories created
//! under it afterwards compress with that algorithm (they inherit the property when they are
//! created); existing files keep what they had. [`Compression::None`] removes the property,
//! so new files follow the pool's mount options, which the appliance mounts without
//! `compress`. (Writing the value `"none"` instead would only mark the root directory itself
//! and is not inherited.)
//!
//! Levels (`zstd:3`) are accepted by the kernel's validation but not applied through the
//! property, so they are not offered.

use std::fmt;
use std::path::Path;

use log::info;
use rustix::fs::XattrFlags;

use super::{errno_of, open_btrfs, os_error, BtrfsError};

const NAME: &str = "btrfs.compression";

/// A compression algorithm for a subvolume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression property.
    None,
    /// zstd (the usual choice).
    Zstd,
    /// LZO (fastest, weakest).
    Lzo,
    /// zlib.
    Zlib,
}

impl Compression {
    /// The property value the kernel expects, or `None` for no property.
    pub fn value(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Zstd => Some("zstd"),
            Self::Lzo => Some("lzo"),
            Self::Zlib => Some("zlib"),
        }
    }

    /// Parses a property value as the kernel stores it (`"zstd"`, `"zstd:3"`, `"none"`, ...).
    pub fn from_value(value: &str) -> Option<Self> {
        let algo = value.split(':').next().unwrap_or(value).trim();
        Some(match algo {
            "" | "none" | "no" => Self::None,
            "zstd" => Self::Zstd,
            "lzo" => Self::Lzo,
            "zlib" => Self::Zlib,
            _ => return None,
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.value().unwrap_or("none"))
    }
}

/// Sets (or, for [`Compression::None`], removes) the compression property on the subvolume
/// root `path`.
pub fn set_compression(path: &Path, compression: Compression) -> Result<(), BtrfsError> {
    // Refuse paths that are not on btrfs with a clear message rather than EOPNOTSUPP.
    drop(open_btrfs(path)?);
    let result = match compression.value() {
        Some(value) => rustix::fs::setxattr(path, NAME, value.as_bytes(), XattrFlags::empty()),
        None => match rustix::fs::removexattr(path, NAME) {
            Err(e) if e == rustix::io::Errno::NODATA => Ok(()),
            other => other,
        },
    };
    result.map_err(|e| {
        let source = os_error(e);
        let hint = match errno_of(&source) {
            libc::EPERM | libc::EACCES => "this needs CAP_SYS_ADMIN or ownership of the path",
            libc::EROFS => "the subvolume or pool is read-only",
            libc::EINVAL => "the kernel does not know this algorithm",
            _ => "see the kernel log for details",
        };
        BtrfsError::Property {
            action: if compression == Compression::None {
                "remove"
            } else {
                "set"
            },
            name: NAME,
            path: path.to_path_buf(),
            source,
            hint,
        }
    })?;
    info!("compression of {} set to {compression}", path.display());
    Ok(())
}

/// Reads the compression property of `path` ([`Compression::None`] when it is not set).
pub fn compression(path: &Path) -> Result<Compression, BtrfsError> {
    drop(open_btrfs(path)?);
    let mut buf = [0u8; 64];
    let len = match rustix::fs::getxattr(path, NAME, &mut buf[..]) {
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::NODATA => return Ok(Compression::None),
        Err(e) => {
            return Err(BtrfsError::Property {
                action: "read",
                name: NAME,
                path: path.to_path_buf(),
                source: os_error(e),
                hint: "see the kernel log for details",
            })
        }
    };
    let value = String::from_utf8_lossy(&buf[..len.min(buf.len())]).into_owned();
    Compression::from_value(value.trim_end_matches('\0')).ok_or(BtrfsError::Unexpected {
        what: NAME,
        path: path.to_path_buf(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for c in [
            Compression::None,
            Compression::Zstd,
            Compression::Lzo,
            Compression::Zlib,
        ] {
            assert_eq!(Compression::from_value(&c.to_string()), Some(c));
        }
        assert_eq!(Compression::from_value("zstd:3"), Some(Compression::Zstd));
        assert_eq!(Compression::from_value("brotli"), None);
    }
}
