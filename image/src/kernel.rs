//! Debian's kernel package: resolve, download and extract it into a cache directory.
//!
//! The kernel comes from Debian trixie (see `board::KERNEL_SOURCES`): the meta package
//! `board::KERNEL_PACKAGE` (`linux-image-amd64`) is resolved at build time to the current
//! `linux-image-6.12.NNN+deb13-amd64`, downloaded with `apt-get download`, and its `.deb` is
//! unpacked here (ar, then tar + xz) keeping only `boot/vmlinuz-*` and
//! `usr/lib/modules/<release>/`. apt runs with a private sources list, list folder, archive
//! cache and an empty dpkg status, all under the cache directory, so nothing on the host
//! changes and no root is needed for the files we write.
//!
//! Cache layout (under the directory given to [`fetch`]):
//! ```text
//! apt/sources.list  apt/lists/  apt/cache/  apt/lists.stamp   private apt state
//! debs/<package>_<version>_amd64.deb                            downloaded packages
//! kernel/<release>/vmlinuz  kernel/<release>/modules/           extracted kernel
//! kernel/<release>/extracted.json                               marker: extraction complete
//! current.json                                                  the last kernel resolved
//! ```
//!
//! What does not live here: reading the modules (see [`crate::modules`]).

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::apt::Apt;
pub use crate::apt::MAX_LIST_AGE;

/// An extracted kernel package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelPackage {
    /// The Debian package, e.g. `linux-image-6.12.118+deb13-amd64`.
    pub package: String,
    /// The package version, e.g. `6.12.118-1`.
    pub version: String,
    /// The kernel release (`uname -r`), e.g. `6.12.118+deb13-amd64`.
    pub release: String,
    /// The kernel image.
    pub vmlinuz: PathBuf,
    /// The package's `usr/lib/modules/<release>` folder (`kernel/**.ko.xz`, `modules.builtin`...).
    pub modules_dir: PathBuf,
}

/// A failure to resolve, download or extract the kernel package.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "cannot create or write `{path}`: {source}; check that the cache directory is writable"
    )]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot run `{command}`: {source}; install apt (Debian/Ubuntu build host) or put it on PATH")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` failed ({status}):\n{output}\nCheck the network and the sources in {sources}; if you run as non-root, check that the cache directory is yours (apt also runs with APT::Sandbox::User=root, which only matters when run as root)")]
    Command {
        command: String,
        status: String,
        output: String,
        sources: PathBuf,
    },
    #[error("`{command}` printed no `Depends: linux-image-*` line for {meta}; output was:\n{output}\nCheck that {meta} exists in the configured suites (board::KERNEL_SOURCES)")]
    Unresolved {
        command: String,
        meta: String,
        output: String,
    },
    #[error("`apt-get download {package}` succeeded but no `{package}_*.deb` appeared in {dir}")]
    NoDeb { package: String, dir: PathBuf },
    #[error("cannot read the Debian package {deb}: {detail}; delete it and run again to download it afresh")]
    BadDeb { deb: PathBuf, detail: String },
}

/// Resolves, downloads (if needed) and extracts the kernel package into `cache_dir`.
///
/// The apt lists are refreshed when `refresh` is set, when they are missing or older than
/// [`MAX_LIST_AGE`]. If apt fails (no network) but a kernel was extracted earlier, that one is
/// used with a warning.
pub fn fetch(cache_dir: &Path, refresh: bool) -> Result<KernelPackage, FetchError> {
    let apt = Apt::new(cache_dir)?;
    let package = match resolve(&apt, refresh) {
        Ok(p) => p,
        Err(err) => match load_current(cache_dir) {
            Some(k) => {
                log::warn!("{err}");
                log::warn!(
                    "could not resolve {}: using the kernel fetched earlier, {} {}",
                    board::KERNEL_PACKAGE,
                    k.package,
                    k.version
                );
                return Ok(k);
            }
            None => return Err(err),
        },
    };
    let debs = cache_dir.join("debs");
    mkdir(&debs)?;
    let deb = match find_deb(&debs, &package)? {
        Some(deb) => deb,
        None => {
            log::info!("downloading {package} (about 110 MB)");
            if let Err(err) = apt.run("apt-get", &["download", &package], Some(&debs)) {
                if let Some(k) = load_current(cache_dir) {
                    log::warn!("{err}");
                    log::warn!(
                        "could not download {package}: using {} {} fetched earlier",
                        k.package,
                        k.version
                    );
                    return Ok(k);
                }
                return Err(err);
            }
            find_deb(&debs, &package)?.ok_or_else(|| FetchError::NoDeb {
                package: package.clone(),
                dir: debs.clone(),
            })?
        }
    };
    let kernel = extract(&deb, &package, &cache_dir.join("kernel"))?;
    let current = cache_dir.join("current.json");
    let json =
        serde_json::to_vec_pretty(&kernel).map_err(|e| io_err(&current, io::Error::other(e)))?;
    fs::write(&current, json).map_err(|e| io_err(&current, e))?;
    Ok(kernel)
}

/// The kernel recorded by the last successful [`fetch`], if it is still on disk.
fn load_current(cache_dir: &Path) -> Option<KernelPackage> {
    let k: KernelPackage =
        serde_json::from_slice(&fs::read(cache_dir.join("current.json")).ok()?).ok()?;
    (k.vmlinuz.is_file() && k.modules_dir.is_dir()).then_some(k)
}

/// Refreshes the lists if needed and resolves the meta package to a versioned package name.
fn resolve(apt: &Apt, refresh: bool) -> Result<String, FetchError> {
    apt.update(refresh)?;
    let meta = board::KERNEL_PACKAGE;
    let out = apt.run("apt-cache", &["depends", meta], None)?;
    let package = out.lines().find_map(|l| {
        let dep = l.trim().strip_prefix("Depends:")?.trim();
        dep.starts_with("linux-image-").then(|| dep.to_owned())
    });
    match package {
        Some(p) => {
            log::info!("{meta} resolves to {p}");
            Ok(p)
        }
        None => Err(FetchError::Unresolved {
            command: format!("apt-cache depends {meta}"),
            meta: meta.to_owned(),
            output: out,
        }),
    }
}

/// The newest-looking downloaded `.deb` of `package` in `dir`, if any.
pub(crate) fn find_deb(dir: &Path, package: &str) -> Result<Option<PathBuf>, FetchError> {
    let prefix = format!("{package}_");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    found.sort();
    Ok(found.pop())
}

/// Unpacks `deb` into `kernel_root/<release>/` unless its marker says it was done already.
fn extract(deb: &Path, package: &str, kernel_root: &Path) -> Result<KernelPackage, FetchError> {
    // The release is the package name without its `linux-image-` prefix.
    let release = package
        .strip_prefix("linux-image-")
        .unwrap_or(package)
        .to_owned();
    let dest = kernel_root.join(&release);
    let marker = dest.join("extracted.json");
    if let Ok(bytes) = fs::read(&marker) {
        if let Ok(k) = serde_json::from_slice::<KernelPackage>(&bytes) {
            if k.package == package && k.vmlinuz.is_file() && k.modules_dir.is_dir() {
                log::debug!("{} already extracted in {}", deb.display(), dest.display());
                return Ok(k);
            }
        }
    }
    log::info!("extracting {} into {}", deb.display(), dest.display());
    let tmp = kernel_root.join(format!(".{release}.partial"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    }
    mkdir(&tmp)?;
    let bad = |detail: String| FetchError::BadDeb {
        deb: deb.to_owned(),
        detail,
    };
    let file = fs::File::open(deb).map_err(|e| io_err(deb, e))?;
    let mut archive = ar::Archive::new(io::BufReader::new(file));
    let mut version = None;
    let mut vmlinuz = None;
    let modules_prefix = Path::new("usr/lib/modules").join(&release);
    while let Some(member) = archive.next_entry() {
        let member = member.map_err(|e| bad(format!("ar: {e}")))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        let is_control = name.starts_with("control.tar");
        let is_data = name.starts_with("data.tar");
        if !is_control && !is_data {
            continue;
        }
        if !name.ends_with(".xz") {
            return Err(bad(format!(
                "member `{name}` is not xz-compressed, which this builder does not read"
            )));
        }
        let mut tar = tar::Archive::new(liblzma::read::XzDecoder::new(member));
        for entry in tar.entries().map_err(|e| bad(format!("{name}: {e}")))? {
            let mut entry = entry.map_err(|e| bad(format!("{name}: {e}")))?;
            let path = entry
                .path()
                .map_err(|e| bad(format!("{name}: {e}")))?
                .into_owned();
            let path: PathBuf = path
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            if is_control {
                if path == Path::new("control") {
                    let mut text = String::new();
                    entry
                        .read_to_string(&mut text)
                        .map_err(|e| bad(format!("control: {e}")))?;
                    version = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_owned()));
                }
                continue;
            }
            let is_file = entry.header().entry_type().is_file();
            let target = if let Ok(rel) = path.strip_prefix(&modules_prefix) {
                tmp.join("modules").join(rel)
            } else if path.parent() == Some(Path::new("boot"))
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vmlinuz-"))
            {
                vmlinuz = Some(dest.join("vmlinuz"));
                tmp.join("vmlinuz")
            } else {
                continue;
            };
            if !is_file {
                if !entry.header().entry_type().is_dir() {
                    log::debug!("skipping non-file {} in {}", path.display(), deb.display());
                }
                continue;
            }
            if let Some(parent) = target.parent() {
                mkdir(parent)?;
            }
            let mut out = fs::File::create(&target).map_err(|e| io_err(&target, e))?;
            io::copy(&mut entry, &mut out).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        }
    }
    let version = version.ok_or_else(|| bad("no Version in its control file".to_owned()))?;
    let vmlinuz = vmlinuz.ok_or_else(|| bad("no boot/vmlinuz-* in it".to_owned()))?;
    if !tmp.join("modules").is_dir() {
        return Err(bad(format!("no {}/ in it", modules_prefix.display())));
    }
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(|e| io_err(&dest, e))?;
    }
    fs::rename(&tmp, &dest).map_err(|e| io_err(&dest, e))?;
    let kernel = KernelPackage {
        package: package.to_owned(),
        version,
        release,
        vmlinuz,
        modules_dir: dest.join("modules"),
    };
    let json =
        serde_json::to_vec_pretty(&kernel).map_err(|e| io_err(&marker, io::Error::other(e)))?;
    fs::write(&marker, json).map_err(|e| io_err(&marker, e))?;
    Ok(kernel)
}

pub(crate) fn mkdir(path: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(path).map_err(|e| io_err(path, e))
}

pub(crate) fn io_err(path: &Path, source: io::Error) -> FetchError {
    FetchError::Io {
        path: path.to_owned(),
        source,
    }
}
