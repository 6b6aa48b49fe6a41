//! The UEFI boot loader: systemd-boot from Debian trixie's `systemd-boot-efi` package.
//!
//! The package (`board::BOOTLOADER_PACKAGE`) is fetched with the same private apt setup as the
//! kernel ([`crate::apt`]) and only `systemd-bootx64.efi` is taken out of it, in memory. The
//! disk image carries it as the removable-media loader `\EFI\BOOT\BOOTX64.EFI`, which UEFI
//! firmware starts from a disk with no boot entries of its own.
//!
//! What does not live here: the loader's configuration and entries ([`crate::esp`]).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::kernel::FetchError;

/// The loader's path inside the package.
pub const LOADER_IN_PACKAGE: &str = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// The boot loader an image carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootLoader {
    pub package: String,
    pub version: String,
    /// The EFI program.
    pub efi: Vec<u8>,
}

/// Fetches the boot loader package into `cache_dir` (if needed) and reads the loader from it.
pub fn fetch(cache_dir: &Path, refresh: bool) -> Result<BootLoader, FetchError> {
    let package = board::BOOTLOADER_PACKAGE;
    let deb = crate::apt::download(cache_dir, package, refresh)?;
    let (version, efi) = read_member(&deb, Path::new(LOADER_IN_PACKAGE))?;
    Ok(BootLoader {
        package: package.to_owned(),
        version,
        efi,
    })
}

/// The package version and the bytes of `wanted` (a path in the package's data) from `deb`.
pub fn read_member(deb: &Path, wanted: &Path) -> Result<(String, Vec<u8>), FetchError> {
    let bad = |detail: String| FetchError::BadDeb {
        deb: deb.to_owned(),
        detail,
    };
    let file = std::fs::File::open(deb).map_err(|e| crate::kernel::io_err(deb, e))?;
    let mut archive = ar::Archive::new(io::BufReader::new(file));
    let (mut version, mut data) = (None, None);
    while let Some(member) = archive.next_entry() {
        let member = member.map_err(|e| bad(format!("ar: {e}")))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        let is_control = name.starts_with("control.tar");
        if !is_control && !name.starts_with("data.tar") {
            continue;
        }
        if !name.ends_with(".xz") {
            return Err(bad(format!("member `{name}` is not xz-compressed")));
        }
        let mut tar = tar::Archive::new(liblzma::read::XzDecoder::new(member));
        for entry in tar.entries().map_err(|e| bad(format!("{name}: {e}")))? {
            let mut entry = entry.map_err(|e| bad(format!("{name}: {e}")))?;
            let path: PathBuf = entry
                .path()
                .map_err(|e| bad(format!("{name}: {e}")))?
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect();
            let mut bytes = Vec::new();
            if is_control && path == Path::new("control") {
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| bad(format!("control: {e}")))?;
                version = String::from_utf8_lossy(&bytes)
                    .lines()
                    .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_owned()));
            } else if !is_control && path == wanted {
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| bad(format!("{}: {e}", wanted.display())))?;
                data = Some(bytes);
            }
        }
    }
    let version = version.ok_or_else(|| bad("no Version in its control file".to_owned()))?;
    let data = data.ok_or_else(|| bad(format!("no {} in it", wanted.display())))?;
    Ok((version, data))
}
