//! The top-level image build: kernel, module closure, initramfs, command line and manifest.
//!
//! [`build`] fetches the kernel package ([`crate::kernel`]), computes the board's module closure
//! ([`crate::modules`]), checks that a ksmbd module in it has the message layouts the init is
//! written for ([`crate::ksmbd`]), assembles the initramfs with [`crate::cpio`], compresses it
//! with zstd (single-threaded, so the bytes are reproducible) and writes the output folder:
//!
//! ```text
//! out_dir/vmlinuz         the kernel, copied from the package
//! out_dir/initramfs.img   zstd-compressed cpio newc archive
//! out_dir/cmdline         the board's kernel command line, one line
//! out_dir/manifest.json   what went in, with sizes and sha256 (no timestamps)
//! out_dir/release.json    the signed release manifest (crate::sign)
//! out_dir/release.sig     its ed25519 signature
//! out_dir/tank-<version>-<board>.img      the flashable GPT/UEFI disk image (crate::disk)
//! out_dir/tank-<version>-<board>.tar.gz   the release bundle (crate::bundle)
//! ```
//!
//! The initramfs holds `/init` (the init binary), `/sbin/modprobe` (a symlink to `/init`, so the
//! kernel's `request_module()` reaches it), the usual mount points, `/dev/console` and
//! `/dev/null`, `/etc/tank-release` (version, board, build id, signer), `/etc/tank/trusted-keys`
//! (the public keys releases must be signed with, [`crate::sign`]), and `lib/modules/<release>/` with the closure's modules
//! decompressed and the depmod-format files.
//!
//! What does not live here: running QEMU or flashing the image (xtask, tests).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bundle::BundleError;
use crate::cpio::{Archive, CpioError};
use crate::disk::DiskError;
use crate::kernel::{self, FetchError, KernelPackage};
use crate::ksmbd::LayoutError;
use crate::modules::{read_module_bytes, Closure, ClosureError, IndexError, ModuleIndex};

/// The zstd level of the initramfs.
pub const ZSTD_LEVEL: i32 = 19;

/// Bumped when the manifest's shape changes.
pub const MANIFEST_FORMAT: u32 = 3;

/// What to build.
pub struct BuildRequest<'a> {
    pub board: &'a board::Board,
    /// The init program (a static binary), copied to `/init`.
    pub init_binary: &'a Path,
    /// Where the kernel package, apt state and module index are kept between builds.
    pub cache_dir: &'a Path,
    /// Where `vmlinuz`, `initramfs.img`, `cmdline` and `manifest.json` are written.
    pub out_dir: &'a Path,
    /// The Tank version recorded in the image, with its build label (`0.1.0+rc1`).
    pub version: &'a str,
    /// The key the release manifest is signed with; the image trusts its public key.
    pub signer: &'a crate::sign::Signer,
    /// Refresh the apt lists even if they are recent.
    pub refresh: bool,
}

/// A failure to build an image.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("board {board}: {source}")]
    Closure { board: String, source: ClosureError },
    #[error(
        "cannot read the init binary `{path}`: {source}; build it first (cargo xtask builds it)"
    )]
    Init { path: PathBuf, source: io::Error },
    #[error("cannot assemble the initramfs: {0}")]
    Cpio(#[from] CpioError),
    #[error("cannot write `{path}`: {source}; check that the output folder is writable")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    KsmbdLayout(#[from] LayoutError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("`{path}` is not a valid manifest: {source}; build the image again")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The kernel an image carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestKernel {
    pub package: String,
    pub version: String,
    pub release: String,
}

/// One module in the image, in load order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestModule {
    pub name: String,
    /// Path under `lib/modules/<release>/`.
    pub path: String,
    /// Decompressed size in bytes.
    pub size: u64,
}

/// A Debian package the image carries besides the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPackage {
    pub package: String,
    pub version: String,
}

/// The disk image's layout facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDisk {
    /// File name of the disk image in the output folder.
    pub image: String,
    /// File name of the release bundle.
    pub bundle: String,
    pub size: u64,
    pub esp_size: u64,
    pub disk_guid: String,
    pub esp_guid: String,
}

/// One output file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// File name in the output folder.
    pub name: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// What a build produced; written as `manifest.json` (reproducible: no timestamps).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub board: String,
    pub tank_version: String,
    pub kernel: ManifestKernel,
    pub cmdline: String,
    /// Carried modules in load order.
    pub modules: Vec<ManifestModule>,
    /// Builtin modules that satisfied the board's requests or dependencies.
    pub builtin_modules: Vec<String>,
    /// Size of the uncompressed cpio archive.
    pub initramfs_uncompressed_size: u64,
    /// `vmlinuz`, `initramfs.img`, `cmdline`, the disk image.
    pub files: Vec<ManifestFile>,
    /// The UEFI boot loader on the disk image.
    #[serde(default)]
    pub bootloader: Option<ManifestPackage>,
    #[serde(default)]
    pub disk: Option<ManifestDisk>,
    /// The build id (also in `/etc/tank-release` and `release.json`).
    #[serde(default)]
    pub build_id: String,
    /// The key `release.json` is signed with.
    #[serde(default)]
    pub signer: Option<crate::sign::ReleaseSigner>,
}

impl Manifest {
    /// Reads a `manifest.json`.
    pub fn load(path: &Path) -> Result<Self, BuildError> {
        let bytes = fs::read(path).map_err(|source| BuildError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| BuildError::Manifest {
            path: path.to_owned(),
            source,
        })
    }

    /// The output file called `name`.
    pub fn file(&self, name: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// Builds the image for `req.board` into `req.out_dir`.
pub fn build(req: &BuildRequest) -> Result<Manifest, BuildError> {
    let started = Instant::now();
    let kernel = kernel::fetch(req.cache_dir, req.refresh)?;
    let index = ModuleIndex::load_or_scan(req.cache_dir, &kernel.release, &kernel.modules_dir)?;
    let closure =
        index
            .closure(req.board.image_modules())
            .map_err(|source| BuildError::Closure {
                board: req.board.name.to_owned(),
                source,
            })?;
    // The init's SMB daemon speaks ksmbd's netlink layouts: check the module it will talk to.
    if let Some(ksmbd) = closure
        .modules
        .iter()
        .find(|m| m.name == crate::ksmbd::MODULE)
    {
        log::info!("checking ksmbd's message layouts in {}", ksmbd.path);
        crate::ksmbd::check(
            &kernel.vmlinuz,
            &kernel.modules_dir.join(&ksmbd.path),
            &kernel.release,
        )?;
    }
    let init = fs::read(req.init_binary).map_err(|source| BuildError::Init {
        path: req.init_binary.to_owned(),
        source,
    })?;
    log::info!(
        "assembling the initramfs: {} modules for {}",
        closure.modules.len(),
        req.board.name
    );
    let trusted = crate::sign::trusted_keys_text(&[(req.signer.kind, req.signer.public_key())]);
    let vmlinuz = fs::read(&kernel.vmlinuz).map_err(|source| BuildError::Read {
        path: kernel.vmlinuz.clone(),
        source,
    })?;
    let stamp = Stamp {
        build_id: crate::sign::build_id(&[
            req.version.as_bytes(),
            req.board.name.as_bytes(),
            req.board.cmdline.as_bytes(),
            kernel.package.as_bytes(),
            kernel.version.as_bytes(),
            &vmlinuz,
            &init,
            trusted.as_bytes(),
        ]),
        signer: crate::sign::ReleaseSigner {
            kind: req.signer.kind,
            fingerprint: req.signer.fingerprint(),
        },
        trusted_keys: trusted,
    };
    let (cpio, modules) = initramfs(req.board, req.version, &kernel, &closure, init, &stamp)?;
    let cpio_len = cpio.len() as u64;
    let compressed = compress(&cpio).map_err(|source| BuildError::Write {
        path: req.out_dir.join("initramfs.img"),
        source,
    })?;

    let write = |name: &str, data: &[u8]| -> Result<ManifestFile, BuildError> {
        let path = req.out_dir.join(name);
        fs::write(&path, data).map_err(|source| BuildError::Write { path, source })?;
        Ok(ManifestFile {
            name: name.to_owned(),
            size: data.len() as u64,
            sha256: hex(&Sha256::digest(data)),
        })
    };
    fs::create_dir_all(req.out_dir).map_err(|source| BuildError::Write {
        path: req.out_dir.to_owned(),
        source,
    })?;
    let mut files = vec![
        write("vmlinuz", &vmlinuz)?,
        write("initramfs.img", &compressed)?,
        write("cmdline", format!("{}\n", req.board.cmdline).as_bytes())?,
    ];
    let loader = crate::bootloader::fetch(req.cache_dir, req.refresh)?;
    log::info!(
        "writing the disk image ({} {}, two slots)",
        loader.package,
        loader.version
    );
    let esp_files = crate::esp::contents(
        &loader.efi,
        &vmlinuz,
        &compressed,
        req.board.cmdline,
        req.version,
    );
    let image = crate::disk::build(req.board.name, req.version, &esp_files)?;
    let image_name = crate::disk::image_name(req.version, req.board.name);
    crate::disk::write_sparse(&req.out_dir.join(&image_name), &image.bytes)?;
    files.push(ManifestFile {
        name: image_name.clone(),
        size: image.bytes.len() as u64,
        sha256: hex(&Sha256::digest(&image.bytes)),
    });
    let stem = crate::bundle::bundle_stem(req.version, req.board.name);
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        board: req.board.name.to_owned(),
        tank_version: req.version.to_owned(),
        kernel: ManifestKernel {
            package: kernel.package.clone(),
            version: kernel.version.clone(),
            release: kernel.release.clone(),
        },
        cmdline: req.board.cmdline.to_owned(),
        modules,
        builtin_modules: closure.builtin.clone(),
        initramfs_uncompressed_size: cpio_len,
        files,
        bootloader: Some(ManifestPackage {
            package: loader.package.clone(),
            version: loader.version.clone(),
        }),
        disk: Some(ManifestDisk {
            image: image_name.clone(),
            bundle: format!("{stem}.tar.gz"),
            size: image.bytes.len() as u64,
            esp_size: crate::esp::ESP_SIZE,
            disk_guid: image.disk_guid.to_string(),
            esp_guid: image.esp_guid.to_string(),
        }),
        build_id: stamp.build_id.clone(),
        signer: Some(stamp.signer.clone()),
    };
    let path = req.out_dir.join("manifest.json");
    let mut json = serde_json::to_vec_pretty(&manifest).map_err(|e| BuildError::Write {
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    json.push(b'\n');
    fs::write(&path, &json).map_err(|source| BuildError::Write { path, source })?;
    let mut parts: Vec<crate::sign::ReleasePart> = manifest
        .files
        .iter()
        .map(|f| crate::sign::ReleasePart {
            name: f.name.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
        })
        .collect();
    parts.push(crate::sign::ReleasePart {
        name: "manifest.json".into(),
        size: json.len() as u64,
        sha256: hex(&Sha256::digest(&json)),
    });
    let release = crate::sign::ReleaseManifest {
        kind: crate::sign::RELEASE_KIND.into(),
        format: crate::sign::RELEASE_FORMAT,
        tank_version: req.version.to_owned(),
        board: req.board.name.to_owned(),
        build_id: stamp.build_id.clone(),
        config_versions: crate::sign::ConfigVersions {
            oldest: crate::sign::CONFIG_VERSIONS.0,
            current: crate::sign::CONFIG_VERSIONS.1,
        },
        signer: stamp.signer.clone(),
        parts,
    };
    let release_bytes = release.to_bytes();
    write(crate::sign::RELEASE_MANIFEST, &release_bytes)?;
    write(
        crate::sign::RELEASE_SIGNATURE,
        &req.signer.sign(&release_bytes),
    )?;
    log::info!(
        "signed {} with the {} key {}",
        crate::sign::RELEASE_MANIFEST,
        req.signer.kind.as_str(),
        stamp.signer.fingerprint
    );
    // The signed manifest first, so a reader checks the signature before any part; the disk
    // image, which an upgrade only hashes, last.
    crate::bundle::write(
        req.out_dir,
        &stem,
        &[
            crate::sign::RELEASE_MANIFEST,
            crate::sign::RELEASE_SIGNATURE,
            "vmlinuz",
            "initramfs.img",
            "cmdline",
            "manifest.json",
            &image_name,
        ],
    )?;
    log::info!(
        "built {} in {:.1?}: initramfs {} bytes ({} uncompressed), {} modules",
        req.out_dir.display(),
        started.elapsed(),
        compressed.len(),
        cpio_len,
        manifest.modules.len()
    );
    Ok(manifest)
}

/// What an image says about its own build, in `/etc/tank-release` and `/etc/tank/trusted-keys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub build_id: String,
    pub signer: crate::sign::ReleaseSigner,
    /// The text of `/etc/tank/trusted-keys`.
    pub trusted_keys: String,
}

/// The uncompressed initramfs (cpio newc) and the list of modules it carries.
pub fn initramfs(
    board: &board::Board,
    version: &str,
    kernel: &KernelPackage,
    closure: &Closure,
    init: Vec<u8>,
    stamp: &Stamp,
) -> Result<(Vec<u8>, Vec<ManifestModule>), BuildError> {
    let mut a = Archive::new();
    for dir in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "mnt",
        "etc",
        "etc/tank",
        "root",
        "sbin",
        "lib/modules",
    ] {
        let perm = match dir {
            "tmp" => 0o1777,
            "root" => 0o700,
            _ => 0o755,
        };
        a.dir(dir, perm)?;
    }
    a.char_dev("dev/console", 0o600, 5, 1)?;
    a.char_dev("dev/null", 0o666, 1, 3)?;
    a.file("init", 0o755, init)?;
    a.symlink("sbin/modprobe", "/init")?;
    let release = format!(
        "TANK_VERSION={version}\nBOARD={}\nKERNEL_RELEASE={}\nKERNEL_PACKAGE={} {}\nBUILD_ID={}\nSIGNER={} {}\n",
        board.name,
        kernel.release,
        kernel.package,
        kernel.version,
        stamp.build_id,
        stamp.signer.kind.as_str(),
        stamp.signer.fingerprint
    );
    a.file("etc/tank-release", 0o644, release.into_bytes())?;
    a.file(
        crate::sign::TRUSTED_KEYS_PATH,
        0o644,
        stamp.trusted_keys.clone().into_bytes(),
    )?;

    let base = format!("lib/modules/{}", kernel.release);
    a.dir(&base, 0o755)?;
    let mut modules = Vec::new();
    for m in &closure.modules {
        let data = read_module_bytes(&kernel.modules_dir.join(&m.path))?;
        modules.push(ManifestModule {
            name: m.name.clone(),
            path: m.image_path().to_owned(),
            size: data.len() as u64,
        });
        a.file(&format!("{base}/{}", m.image_path()), 0o644, data)?;
    }
    let files = closure.depmod_files();
    for (name, text) in [
        ("modules.dep", files.dep),
        ("modules.alias", files.alias),
        ("modules.softdep", files.softdep),
        ("modules.builtin", files.builtin),
    ] {
        a.file(&format!("{base}/{name}"), 0o644, text.into_bytes())?;
    }
    let bytes = a.to_bytes().map_err(|source| BuildError::Write {
        path: PathBuf::from("initramfs.img"),
        source,
    })?;
    Ok((bytes, modules))
}

/// zstd at [`ZSTD_LEVEL`], single-threaded, with the content size in the frame header.
pub fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    zstd::bulk::compress(data, ZSTD_LEVEL)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn empty_kernel() -> (KernelPackage, Closure) {
        let index = ModuleIndex {
            format: 1,
            release: "6.12.0-test".into(),
            modules: BTreeMap::new(),
            builtin: BTreeMap::new(),
            builtin_file: "kernel/fs/unicode/unicode.ko\n".into(),
        };
        let kernel = KernelPackage {
            package: "linux-image-6.12.0-test".into(),
            version: "6.12.0-1".into(),
            release: "6.12.0-test".into(),
            vmlinuz: PathBuf::from("/nonexistent/vmlinuz"),
            modules_dir: PathBuf::from("/nonexistent/modules"),
        };
        (kernel, index.closure([]).unwrap())
    }

    #[test]
    fn initramfs_layout_and_reproducibility() {
        let (kernel, closure) = empty_kernel();
        let board = board::default_board();
        let stamp = Stamp {
            build_id: "0123456789abcdef".into(),
            signer: crate::sign::ReleaseSigner {
                kind: crate::sign::KeyKind::Development,
                fingerprint: "ff".repeat(16),
            },
            trusted_keys: crate::sign::trusted_keys_text(&[(
                crate::sign::KeyKind::Development,
                [1; 32],
            )]),
        };
        let init = b"#!init".to_vec();
        let (a, mods) = initramfs(board, "0.1.0", &kernel, &closure, init.clone(), &stamp).unwrap();
        let (b, _) = initramfs(board, "0.1.0", &kernel, &closure, init, &stamp).unwrap();
        assert!(mods.is_empty());
        assert_eq!(a, b);
        assert_eq!(compress(&a).unwrap(), compress(&b).unwrap());
        let text = String::from_utf8_lossy(&a);
        for name in [
            "dev\0",
            "dev/console\0",
            "dev/null\0",
            "init\0",
            "sbin/modprobe\0",
            "etc/tank-release\0",
            "etc/tank/trusted-keys\0",
            "lib/modules/6.12.0-test/modules.dep\0",
            "lib/modules/6.12.0-test/modules.builtin\0",
            "TRAILER!!!\0",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        assert!(text.contains("BOARD=qemu-x86_64\nKERNEL_RELEASE=6.12.0-test\n"));
        assert!(text.contains(&format!(
            "BUILD_ID=0123456789abcdef\nSIGNER=development {}\n",
            "ff".repeat(16)
        )));
        assert!(text.contains(&format!("\ndevelopment {}\n", "01".repeat(32))));
        // The zstd frame decompresses back to the archive.
        let z = compress(&a).unwrap();
        assert_eq!(zstd::bulk::decompress(&z, a.len()).unwrap(), a);
    }

    #[test]
    fn manifest_round_trip() {
        let m = Manifest {
            format: MANIFEST_FORMAT,
            board: "b".into(),
            tank_version: "0.1.0".into(),
            kernel: ManifestKernel {
                package: "p".into(),
                version: "v".into(),
                release: "r".into(),
            },
            cmdline: "console=ttyS0".into(),
            modules: vec![ManifestModule {
                name: "btrfs".into(),
                path: "kernel/fs/btrfs/btrfs.ko".into(),
                size: 3,
            }],
            builtin_modules: vec![],
            initramfs_uncompressed_size: 10,
            files: vec![ManifestFile {
                name: "cmdline".into(),
                size: 1,
                sha256: hex(&Sha256::digest(b"x")),
            }],
            bootloader: None,
            disk: None,
            build_id: "0123456789abcdef".into(),
            signer: None,
        };
        let dir = std::env::temp_dir().join(format!("tank-image-manifest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("manifest.json");
        fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        assert_eq!(Manifest::load(&path).unwrap(), m);
        assert_eq!(
            m.file("cmdline").unwrap().sha256,
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
