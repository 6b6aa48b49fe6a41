//! Checking a release bundle before anything of it is used: the signature of its manifest with
//! the keys this image trusts, the board, and every part's size and SHA-256.
//!
//! A bundle (`tank-<version>-<board>.tar.gz`, written by `image/src/bundle.rs`) is a gzip'd
//! tar whose entries all sit in one folder. Its first entry is `release.json`, the release
//! manifest, and its second `release.sig`, the 64-byte ed25519 signature over the exact bytes
//! of `release.json`; the parts it lists follow, then `SHA256SUMS` (for people, not trusted).
//! The format is documented in `docs/disk-layout.md`.
//!
//! The checks are pure functions ([`verify_manifest`], [`Verified::check_part`],
//! [`Verified::check_complete`], [`verify_parts`]); [`verify_bundle`] is the I/O around them:
//! it streams a bundle from any reader, hashing each part as it goes and keeping only the
//! parts the caller asks for in memory, and returns them only when every check passed. Nothing
//! here writes anywhere, so a caller that writes only what [`verify_bundle`] returned never
//! writes a byte of a bundle that fails.
//!
//! What does not live here: fetching a bundle, writing a slot, the trusted keys themselves
//! ([`crate::system::release`]).

use std::collections::BTreeMap;
use std::io::Read;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::system::release::{hex, KeyKind, TrustedKey};

/// The manifest's file name; the first entry of a bundle.
pub const MANIFEST: &str = "release.json";
/// The signature's file name; the second entry.
pub const SIGNATURE: &str = "release.sig";
/// The unsigned checksum list a bundle ends with; read past, never trusted.
pub const SUMS: &str = "SHA256SUMS";
/// `release.json`'s `kind`.
pub const KIND: &str = "tank-release";
/// The manifest format this appliance reads.
pub const FORMAT: u32 = 1;
/// The largest manifest read (it lists a handful of parts).
const MAX_MANIFEST: u64 = 1 << 20;

/// Who signed a release, as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ManifestSigner {
    pub kind: String,
    pub fingerprint: String,
}

/// The configuration record versions a release reads (from `oldest`) and writes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ConfigVersions {
    pub oldest: u32,
    pub current: u32,
}

/// One part of a release.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Part {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// `release.json`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    pub kind: String,
    pub format: u32,
    pub tank_version: String,
    pub board: String,
    pub build_id: String,
    pub config_versions: ConfigVersions,
    pub signer: ManifestSigner,
    pub parts: Vec<Part>,
}

/// Why a bundle is refused. Each names what is wrong and why that stops it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the bundle cannot be read: {0}; it is damaged or truncated (an interrupted download?)"
    )]
    Archive(String),
    #[error(
        "the bundle does not start with {MANIFEST} (found {0:?}): it is not a signed Tank release"
    )]
    NoManifest(String),
    #[error("the bundle has no {SIGNATURE} after {MANIFEST} (found {0:?}): it is not signed")]
    NoSignature(String),
    #[error("{SIGNATURE} has {0} bytes, an ed25519 signature has 64: the signature is damaged")]
    SignatureLength(usize),
    #[error(
        "the signature of {MANIFEST} does not verify with any key this image trusts ({trusted}): \
         the bundle was signed by another key, or {MANIFEST} was changed after signing"
    )]
    BadSignature { trusted: String },
    #[error("{MANIFEST} is signed but not a release manifest this appliance reads: {0}")]
    Manifest(String),
    #[error(
        "the bundle is for board {bundle}, this box is {running}: a release only boots on its own board"
    )]
    Board { bundle: String, running: String },
    #[error(
        "{MANIFEST} says it was signed with {claimed}, but the key that verifies it is {actual}: \
         the release was assembled wrongly"
    )]
    SignerMismatch { claimed: String, actual: String },
    #[error("part {name}: the manifest lists it twice")]
    DuplicateListed { name: String },
    #[error("the bundle holds {name}, which the signed manifest does not list: refused rather than ignored")]
    Unlisted { name: String },
    #[error("part {name} appears twice in the bundle")]
    Duplicate { name: String },
    #[error("part {name} has {actual} bytes, the signed manifest says {expected}: it is truncated or replaced")]
    Size {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("part {name} has SHA-256 {actual}, the signed manifest says {expected}: it is damaged or replaced")]
    Hash {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("part {name}, listed in the signed manifest, is missing from the bundle (truncated?)")]
    Missing { name: String },
    #[error("entry {0:?} is not a file in the bundle's folder")]
    BadEntry(String),
}

/// A manifest whose signature, kind, format and board passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub manifest: Manifest,
    /// The trusted key that verified the signature.
    pub key: TrustedKey,
}

/// Checks `signature` over `manifest` with `trusted`, then the manifest's kind, format and
/// board. Only a verified manifest is parsed.
pub fn verify_manifest(
    manifest: &[u8],
    signature: &[u8],
    trusted: &[TrustedKey],
    board: &str,
) -> Result<Verified, VerifyError> {
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| VerifyError::SignatureLength(signature.len()))?;
    let signature = Signature::from_bytes(&signature);
    let key = trusted
        .iter()
        .find(|k| {
            VerifyingKey::from_bytes(&k.key)
                .is_ok_and(|vk| vk.verify_strict(manifest, &signature).is_ok())
        })
        .ok_or_else(|| VerifyError::BadSignature {
            trusted: trusted_list(trusted),
        })?;
    let parsed: Manifest =
        serde_json::from_slice(manifest).map_err(|e| VerifyError::Manifest(e.to_string()))?;
    if parsed.kind != KIND {
        return Err(VerifyError::Manifest(format!(
            "its kind is {:?}, not {KIND:?}",
            parsed.kind
        )));
    }
    if parsed.format != FORMAT {
        return Err(VerifyError::Manifest(format!(
            "format {} (this appliance reads format {FORMAT}; a newer release needs an \
             intermediate one)",
            parsed.format
        )));
    }
    if parsed.board != board {
        return Err(VerifyError::Board {
            bundle: parsed.board,
            running: board.to_owned(),
        });
    }
    let actual = format!("{} key {}", key.kind.as_str(), key.fingerprint());
    if parsed.signer.fingerprint != key.fingerprint() || parsed.signer.kind != key.kind.as_str() {
        return Err(VerifyError::SignerMismatch {
            claimed: format!("{} key {}", parsed.signer.kind, parsed.signer.fingerprint),
            actual,
        });
    }
    for (i, p) in parsed.parts.iter().enumerate() {
        if parsed.parts[..i].iter().any(|q| q.name == p.name) {
            return Err(VerifyError::DuplicateListed {
                name: p.name.clone(),
            });
        }
    }
    Ok(Verified {
        manifest: parsed,
        key: key.clone(),
    })
}

fn trusted_list(trusted: &[TrustedKey]) -> String {
    if trusted.is_empty() {
        return "none".into();
    }
    trusted
        .iter()
        .map(|k| format!("{} key {}", k.kind.as_str(), k.fingerprint()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Verified {
    /// The listed part called `name`, or why there is none.
    pub fn part(&self, name: &str) -> Result<&Part, VerifyError> {
        self.manifest
            .parts
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| VerifyError::Unlisted {
                name: name.to_owned(),
            })
    }

    /// Checks one part's size and SHA-256 (lower-case hex) against the manifest.
    pub fn check_part(&self, name: &str, size: u64, sha256: &str) -> Result<(), VerifyError> {
        let part = self.part(name)?;
        if size != part.size {
            return Err(VerifyError::Size {
                name: name.to_owned(),
                expected: part.size,
                actual: size,
            });
        }
        if sha256 != part.sha256 {
            return Err(VerifyError::Hash {
                name: name.to_owned(),
                expected: part.sha256.clone(),
                actual: sha256.to_owned(),
            });
        }
        Ok(())
    }

    /// Checks that every listed part was among `seen`.
    pub fn check_complete<'a>(
        &self,
        seen: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), VerifyError> {
        match self
            .manifest
            .parts
            .iter()
            .find(|p| !seen.clone().into_iter().any(|s| s == p.name))
        {
            Some(p) => Err(VerifyError::Missing {
                name: p.name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// `development key 0011…` or `release key 0011…`.
    pub fn signer_line(&self) -> String {
        match self.key.kind {
            KeyKind::Development => format!("development key {}", self.key.fingerprint()),
            KeyKind::Release => format!("release key {}", self.key.fingerprint()),
        }
    }
}

/// The whole check over parts already in memory: the manifest, then every part (each exactly
/// once, none unlisted but [`SUMS`]), then that none is missing.
pub fn verify_parts(
    manifest: &[u8],
    signature: &[u8],
    parts: &[(&str, &[u8])],
    trusted: &[TrustedKey],
    board: &str,
) -> Result<Verified, VerifyError> {
    let verified = verify_manifest(manifest, signature, trusted, board)?;
    let mut seen: Vec<&str> = Vec::new();
    for (name, data) in parts {
        if *name == SUMS {
            continue;
        }
        if seen.contains(name) {
            return Err(VerifyError::Duplicate {
                name: (*name).to_owned(),
            });
        }
        verified.check_part(name, data.len() as u64, &hex(&Sha256::digest(data)))?;
        seen.push(name);
    }
    verified.check_complete(seen.iter().copied())?;
    Ok(verified)
}

/// A bundle that passed every check, with the parts the caller kept.
#[derive(Debug)]
pub struct Bundle {
    pub verified: Verified,
    /// Part name → bytes, for the names `keep` chose.
    pub kept: BTreeMap<String, Vec<u8>>,
}

/// Streams a bundle from `reader` and checks it (see the module's documentation). `keep`
/// says which parts to return in memory (an upgrade keeps the kernel, initramfs and command
/// line; the disk image is only hashed). Returns nothing until every check has passed.
pub fn verify_bundle<R: Read>(
    reader: R,
    trusted: &[TrustedKey],
    board: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Bundle, VerifyError> {
    let archive = |e: std::io::Error| VerifyError::Archive(e.to_string());
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let (verified, kept, seen) = {
        let mut entries = tar.entries().map_err(archive)?;
        let mut folder: Option<String> = None;
        let mut next =
        |folder: &mut Option<String>| -> Result<Option<(String, tar::Entry<'_, _>)>, VerifyError> {
            let Some(entry) = entries.next() else {
                return Ok(None);
            };
            let entry = entry.map_err(archive)?;
            let path = entry
                .path()
                .map_err(archive)?
                .to_string_lossy()
                .into_owned();
            let name = entry_name(&path, folder)
                .filter(|_| entry.header().entry_type().is_file())
                .ok_or_else(|| VerifyError::BadEntry(path.clone()))?;
            Ok(Some((name, entry)))
        };
        let small = |entry: &mut tar::Entry<'_, _>| -> Result<Vec<u8>, VerifyError> {
            let mut data = Vec::new();
            entry
                .take(MAX_MANIFEST)
                .read_to_end(&mut data)
                .map_err(archive)?;
            Ok(data)
        };
        let (name, mut entry) =
            next(&mut folder)?.ok_or_else(|| VerifyError::NoManifest("nothing".into()))?;
        if name != MANIFEST {
            return Err(VerifyError::NoManifest(name));
        }
        let manifest = small(&mut entry)?;
        drop(entry);
        let (name, mut entry) =
            next(&mut folder)?.ok_or_else(|| VerifyError::NoSignature("nothing".into()))?;
        if name != SIGNATURE {
            return Err(VerifyError::NoSignature(name));
        }
        let signature = small(&mut entry)?;
        drop(entry);
        let verified = verify_manifest(&manifest, &signature, trusted, board)?;

        let mut kept = BTreeMap::new();
        let mut seen: Vec<String> = Vec::new();
        while let Some((name, mut entry)) = next(&mut folder)? {
            if name == SUMS {
                std::io::copy(&mut entry, &mut std::io::sink()).map_err(archive)?;
                continue;
            }
            if seen.contains(&name) {
                return Err(VerifyError::Duplicate { name });
            }
            let part = verified.part(&name)?;
            // The tar header says how long the entry is: refuse a wrong size before reading it.
            let declared = entry.header().size().map_err(archive)?;
            if declared != part.size {
                return Err(VerifyError::Size {
                    name,
                    expected: part.size,
                    actual: declared,
                });
            }
            let keep_it = keep(&name);
            let mut data = Vec::new();
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 << 10];
            let mut read = 0u64;
            loop {
                let n = entry.read(&mut buf).map_err(archive)?;
                if n == 0 {
                    break;
                }
                read += n as u64;
                hasher.update(&buf[..n]);
                if keep_it {
                    data.extend_from_slice(&buf[..n]);
                }
            }
            verified.check_part(&name, read, &hex(&hasher.finalize()))?;
            if keep_it {
                kept.insert(name.clone(), data);
            }
            seen.push(name);
        }
        (verified, kept, seen)
    };
    // The archive's end and the gzip trailer (length and CRC-32) too: a download cut after
    // the last part is still a damaged bundle.
    std::io::copy(&mut tar.into_inner(), &mut std::io::sink()).map_err(archive)?;
    verified.check_complete(seen.iter().map(String::as_str))?;
    Ok(Bundle { verified, kept })
}

/// `tank-0.1.0-b/vmlinuz` → `vmlinuz`, every entry in the same one folder.
fn entry_name(path: &str, folder: &mut Option<String>) -> Option<String> {
    let (dir, name) = path.split_once('/')?;
    if dir.is_empty() || name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    match folder {
        Some(f) if f != dir => None,
        Some(_) => Some(name.to_owned()),
        None => {
            *folder = Some(dir.to_owned());
            Some(name.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const BOARD: &str = "qemu-x86_64";

    struct Fixture {
        key: SigningKey,
        parts: Vec<(String, Vec<u8>)>,
    }

    fn trusted(key: &SigningKey, kind: KeyKind) -> TrustedKey {
        TrustedKey {
            kind,
            key: key.verifying_key().to_bytes(),
        }
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                key: SigningKey::from_bytes(&[3; 32]),
                parts: vec![
                    ("vmlinuz".into(), b"kernel bytes".to_vec()),
                    (
                        "initramfs.img".into(),
                        vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3],
                    ),
                    ("cmdline".into(), b"console=ttyS0\n".to_vec()),
                    ("manifest.json".into(), b"{}\n".to_vec()),
                    ("tank-0.1.0-qemu-x86_64.img".into(), vec![0; 4096]),
                ],
            }
        }

        fn trust(&self) -> Vec<TrustedKey> {
            vec![trusted(&self.key, KeyKind::Development)]
        }

        /// `release.json` as the image builder writes it (`image/src/sign.rs`).
        fn manifest(&self, board: &str, signer: &SigningKey) -> Vec<u8> {
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|(name, data)| {
                    format!(
                        "    {{\n      \"name\": \"{name}\",\n      \"size\": {},\n      \"sha256\": \"{}\"\n    }}",
                        data.len(),
                        hex(&Sha256::digest(data))
                    )
                })
                .collect();
            format!(
                "{{\n  \"kind\": \"tank-release\",\n  \"format\": 1,\n  \"tank_version\": \"0.1.0+rc1\",\n  \"board\": \"{board}\",\n  \"build_id\": \"0123456789abcdef\",\n  \"config_versions\": {{\n    \"oldest\": 1,\n    \"current\": 3\n  }},\n  \"signer\": {{\n    \"kind\": \"development\",\n    \"fingerprint\": \"{}\"\n  }},\n  \"parts\": [\n{}\n  ]\n}}\n",
                trusted(signer, KeyKind::Development).fingerprint(),
                parts.join(",\n")
            )
            .into_bytes()
        }

        /// A gzip'd tar of `entries` in one folder, as `image/src/bundle.rs` writes it.
        fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
            let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let mut tar = tar::Builder::new(gz);
            for (name, data) in entries {
                let mut h = tar::Header::new_ustar();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, format!("tank-0.1.0-qemu-x86_64/{name}"), *data)
                    .unwrap();
            }
            tar.into_inner().unwrap().finish().unwrap()
        }

        /// The bundle of the fixture's parts with `manifest` signed by `signer`.
        fn bundle_with(&self, manifest: &[u8], signer: &SigningKey) -> Vec<u8> {
            let sig = signer.sign(manifest).to_bytes();
            let mut entries: Vec<(&str, &[u8])> = vec![(MANIFEST, manifest), (SIGNATURE, &sig)];
            for (n, d) in &self.parts {
                entries.push((n, d));
            }
            entries.push((SUMS, b"unsigned\n"));
            Self::tar(&entries)
        }

        fn bundle(&self) -> Vec<u8> {
            self.bundle_with(&self.manifest(BOARD, &self.key), &self.key)
        }

        fn verify(&self, bundle: &[u8]) -> Result<Bundle, VerifyError> {
            verify_bundle(bundle, &self.trust(), BOARD, &|n| {
                n != "tank-0.1.0-qemu-x86_64.img"
            })
        }
    }

    #[test]
    fn a_good_bundle_passes_with_the_parts_kept() {
        let f = Fixture::new();
        let b = f.verify(&f.bundle()).unwrap();
        assert_eq!(b.verified.manifest.tank_version, "0.1.0+rc1");
        assert_eq!(b.verified.manifest.build_id, "0123456789abcdef");
        assert_eq!(b.verified.manifest.config_versions.oldest, 1);
        assert_eq!(b.verified.key.kind, KeyKind::Development);
        assert!(b.verified.signer_line().starts_with("development key "));
        assert_eq!(
            b.kept.keys().collect::<Vec<_>>(),
            ["cmdline", "initramfs.img", "manifest.json", "vmlinuz"]
        );
        assert_eq!(b.kept["vmlinuz"], b"kernel bytes");
        // The in-memory check agrees.
        let manifest = f.manifest(BOARD, &f.key);
        let sig = f.key.sign(&manifest).to_bytes();
        let parts: Vec<(&str, &[u8])> = f
            .parts
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        assert!(verify_parts(&manifest, &sig, &parts, &f.trust(), BOARD).is_ok());
    }

    #[test]
    fn one_flipped_byte_in_any_part_is_refused_naming_it() {
        let base = Fixture::new();
        let manifest = base.manifest(BOARD, &base.key);
        for i in 0..base.parts.len() {
            let mut f = Fixture::new();
            let last = f.parts[i].1.len() - 1;
            f.parts[i].1[last] ^= 0x01;
            let name = f.parts[i].0.clone();
            let e = f.verify(&f.bundle_with(&manifest, &f.key)).unwrap_err();
            assert!(
                matches!(&e, VerifyError::Hash { name: n, .. } if *n == name),
                "{name}: {e}"
            );
            let text = e.to_string();
            assert!(
                text.contains(&format!("part {name}")) && text.contains("damaged"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_truncated_part_or_download_is_refused() {
        let mut f = Fixture::new();
        let manifest = f.manifest(BOARD, &f.key);
        f.parts[1].1.pop();
        let e = f.verify(&f.bundle_with(&manifest, &f.key)).unwrap_err();
        assert_eq!(
            e,
            VerifyError::Size {
                name: "initramfs.img".into(),
                expected: 7,
                actual: 6
            }
        );
        assert!(e.to_string().contains("truncated"), "{e}");
        // A part left out.
        let mut f = Fixture::new();
        let manifest = f.manifest(BOARD, &f.key);
        f.parts.remove(4);
        let e = f.verify(&f.bundle_with(&manifest, &f.key)).unwrap_err();
        assert!(
            matches!(&e, VerifyError::Missing { name } if name == "tank-0.1.0-qemu-x86_64.img"),
            "{e}"
        );
        // The download cut at every length: never accepted.
        let f = Fixture::new();
        let whole = f.bundle();
        for len in (0..whole.len()).step_by(7) {
            let e = f.verify(&whole[..len]).unwrap_err();
            assert!(
                matches!(
                    e,
                    VerifyError::Archive(_)
                        | VerifyError::Missing { .. }
                        | VerifyError::NoManifest(_)
                ),
                "{len}: {e}"
            );
        }
    }

    #[test]
    fn another_keys_signature_is_refused() {
        let f = Fixture::new();
        let other = SigningKey::from_bytes(&[4; 32]);
        let bundle = f.bundle_with(&f.manifest(BOARD, &other), &other);
        let e = f.verify(&bundle).unwrap_err();
        assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("signed by another key") && text.contains(&f.trust()[0].fingerprint()),
            "{text}"
        );
        // No trusted key at all.
        let none = verify_bundle(&f.bundle()[..], &[], BOARD, &|_| true).unwrap_err();
        assert!(none.to_string().contains("(none)"), "{none}");
        // A damaged signature.
        let manifest = f.manifest(BOARD, &f.key);
        let e = verify_manifest(&manifest, &[0; 63], &f.trust(), BOARD).unwrap_err();
        assert_eq!(e, VerifyError::SignatureLength(63));
    }

    #[test]
    fn another_boards_bundle_is_refused() {
        let f = Fixture::new();
        let bundle = f.bundle_with(&f.manifest("pc-x86_64", &f.key), &f.key);
        let e = f.verify(&bundle).unwrap_err();
        assert_eq!(
            e,
            VerifyError::Board {
                bundle: "pc-x86_64".into(),
                running: BOARD.into()
            }
        );
        assert!(e
            .to_string()
            .contains("board pc-x86_64, this box is qemu-x86_64"));
    }

    #[test]
    fn a_manifest_edited_after_signing_is_refused() {
        let f = Fixture::new();
        let manifest = f.manifest(BOARD, &f.key);
        let sig = f.key.sign(&manifest).to_bytes();
        let text = String::from_utf8(manifest.clone()).unwrap();
        let edited = text.replace("0.1.0+rc1", "0.9.0+rc1").into_bytes();
        let mut entries: Vec<(&str, &[u8])> = vec![(MANIFEST, &edited), (SIGNATURE, &sig)];
        for (n, d) in &f.parts {
            entries.push((n, d));
        }
        let e = f.verify(&Fixture::tar(&entries)).unwrap_err();
        assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
        assert!(e.to_string().contains("changed after signing"), "{e}");
        // One byte anywhere in it, even whitespace.
        for i in (0..manifest.len()).step_by(13) {
            let mut m = manifest.clone();
            m[i] ^= 0x20;
            assert!(verify_manifest(&m, &sig, &f.trust(), BOARD).is_err(), "{i}");
        }
    }

    #[test]
    fn order_and_unlisted_entries() {
        let f = Fixture::new();
        let manifest = f.manifest(BOARD, &f.key);
        let sig = f.key.sign(&manifest).to_bytes();
        // Parts before the manifest: refused at the first entry.
        let e = f
            .verify(&Fixture::tar(&[
                ("vmlinuz", b"kernel bytes"),
                (MANIFEST, &manifest),
            ]))
            .unwrap_err();
        assert_eq!(e, VerifyError::NoManifest("vmlinuz".into()));
        let e = f
            .verify(&Fixture::tar(&[(MANIFEST, &manifest), ("vmlinuz", b"x")]))
            .unwrap_err();
        assert_eq!(e, VerifyError::NoSignature("vmlinuz".into()));
        // A file the manifest does not list.
        let e = f
            .verify(&Fixture::tar(&[
                (MANIFEST, &manifest),
                (SIGNATURE, &sig),
                ("extra", b"x"),
            ]))
            .unwrap_err();
        assert_eq!(
            e,
            VerifyError::Unlisted {
                name: "extra".into()
            }
        );
        // A part twice.
        let e = f
            .verify(&Fixture::tar(&[
                (MANIFEST, &manifest),
                (SIGNATURE, &sig),
                ("vmlinuz", b"kernel bytes"),
                ("vmlinuz", b"kernel bytes"),
            ]))
            .unwrap_err();
        assert_eq!(
            e,
            VerifyError::Duplicate {
                name: "vmlinuz".into()
            }
        );
        // Not a gzip at all.
        assert!(matches!(
            f.verify(b"not a bundle").unwrap_err(),
            VerifyError::Archive(_)
        ));
        // Entries outside the one folder.
        let mut other = None;
        assert_eq!(entry_name("a/b", &mut other).as_deref(), Some("b"));
        assert_eq!(entry_name("c/b", &mut other), None);
        assert_eq!(entry_name("a/x/y", &mut other), None);
        assert_eq!(entry_name("a/..", &mut other), None);
        assert_eq!(entry_name("b", &mut None), None);
    }

    #[test]
    fn the_image_builders_manifest_parses() {
        // The golden text of image/src/sign.rs's release_manifest_golden test.
        let golden = r#"{
  "kind": "tank-release",
  "format": 1,
  "tank_version": "0.1.0+rc1",
  "board": "qemu-x86_64",
  "build_id": "0123456789abcdef",
  "config_versions": {
    "oldest": 1,
    "current": 3
  },
  "signer": {
    "kind": "release",
    "fingerprint": "00112233445566778899aabbccddeeff"
  },
  "parts": [
    {
      "name": "vmlinuz",
      "size": 6,
      "sha256": "ab"
    }
  ]
}
"#;
        let m: Manifest = serde_json::from_str(golden).unwrap();
        assert_eq!(
            m.config_versions.oldest,
            crate::config::record::OLDEST_VERSION
        );
        assert_eq!(
            m.config_versions.current,
            crate::config::record::CURRENT_VERSION
        );
        assert_eq!(m.parts[0].size, 6);
        // A signed manifest of another kind or format is refused.
        let f = Fixture::new();
        for (from, to) in [
            ("tank-release", "tank-other"),
            ("\"format\": 1", "\"format\": 2"),
        ] {
            let text = String::from_utf8(f.manifest(BOARD, &f.key))
                .unwrap()
                .replace(from, to)
                .into_bytes();
            let sig = f.key.sign(&text).to_bytes();
            let e = verify_manifest(&text, &sig, &f.trust(), BOARD).unwrap_err();
            assert!(matches!(e, VerifyError::Manifest(_)), "{e}");
        }
        // The manifest's signer must be the key that verified it.
        let trust = vec![trusted(&f.key, KeyKind::Release)];
        let manifest = f.manifest(BOARD, &f.key);
        let e = verify_manifest(&manifest, &f.key.sign(&manifest).to_bytes(), &trust, BOARD)
            .unwrap_err();
        assert!(matches!(e, VerifyError::SignerMismatch { .. }), "{e}");
    }
}
