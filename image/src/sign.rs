//! Release signing: the ed25519 keys, the signed release manifest (`release.json` and its
//! signature `release.sig`), the build id, the build label and the keys an image trusts.
//!
//! Keys are PKCS#8 / SPKI PEM files (`-----BEGIN PRIVATE KEY-----`, `-----BEGIN PUBLIC
//! KEY-----`), the format OpenSSL and most signing services read and write, so a release key
//! can be inspected or used outside this tool (`openssl pkey -in release.key -pubout`).
//! Ed25519 signatures are deterministic: the same manifest and key give the same signature, so
//! signing keeps builds reproducible.
//!
//! `release.json` lists the release's version, board, build id, the configuration record
//! versions it reads and every part with its size and SHA-256; `release.sig` is the 64-byte
//! ed25519 signature over the exact bytes of `release.json`. The appliance
//! (`appliance/src/upgrade/verify.rs`) checks the signature against the public keys built into
//! its initramfs (`/etc/tank/trusted-keys`) before it reads anything else. The format is
//! documented in `docs/disk-layout.md`.
//!
//! What does not live here: generating keys (`xtask keygen`, which needs the host's random
//! source), writing the bundle ([`crate::bundle`]).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[allow(dead_code)]
#[path = "../../appliance/src/config/record/versions.rs"]
mod config_versions;

/// The configuration record versions the appliance of this tree reads: oldest, current.
pub const CONFIG_VERSIONS: (u32, u32) = (
    config_versions::OLDEST_VERSION,
    config_versions::CURRENT_VERSION,
);

/// The environment variable naming the signing key file when `--signing-key` is not given.
pub const SIGNING_KEY_ENV: &str = "TANK_SIGNING_KEY";
/// The signed manifest's file name (in the output folder and the bundle).
pub const RELEASE_MANIFEST: &str = "release.json";
/// The signature's file name: 64 raw bytes.
pub const RELEASE_SIGNATURE: &str = "release.sig";
/// Where the initramfs carries the public keys the image trusts.
pub const TRUSTED_KEYS_PATH: &str = "etc/tank/trusted-keys";
/// `release.json`'s `kind`: what was signed, so a signature over something else never passes.
pub const RELEASE_KIND: &str = "tank-release";
/// Bumped when `release.json`'s shape changes.
pub const RELEASE_FORMAT: u32 = 1;
/// The longest build label.
pub const MAX_LABEL: usize = 40;

/// The development key of a build tree: `target/tank-keys/dev.key`.
pub fn dev_key_path(target_dir: &Path) -> PathBuf {
    target_dir.join("tank-keys").join("dev.key")
}

/// The key a build signs with: `explicit` (`--signing-key`), else the file named by
/// [`SIGNING_KEY_ENV`], else the build tree's development key ([`dev_key_path`], which must
/// exist: `xtask` makes it). A key file that is the development key counts as one.
pub fn resolve_signer(explicit: Option<&Path>, target_dir: &Path) -> Result<Signer, KeyError> {
    let dev = dev_key_path(target_dir);
    let chosen = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(SIGNING_KEY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let path = chosen.unwrap_or_else(|| dev.clone());
    let is_dev = match (fs::canonicalize(&path), fs::canonicalize(&dev)) {
        (Ok(a), Ok(b)) => a == b,
        _ => path == dev,
    };
    Signer::load(
        &path,
        if is_dev {
            KeyKind::Development
        } else {
            KeyKind::Release
        },
    )
}

/// Whether a key signs releases or is a build tree's own development key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Release,
    Development,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Release => "release",
            KeyKind::Development => "development",
        }
    }
}

/// A failure to read or use a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the signing key `{path}`: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "`{path}` is not an ed25519 private key in PKCS#8 PEM: {reason}; make one with \
         `cargo xtask keygen DIR`"
    )]
    Format { path: PathBuf, reason: String },
    #[error("cannot encode the key: {0}")]
    Encode(String),
}

/// The key a build signs with.
pub struct Signer {
    key: SigningKey,
    pub kind: KeyKind,
    /// The file it came from.
    pub path: PathBuf,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Signer {
    /// Reads a PKCS#8 PEM private key.
    pub fn load(path: &Path, kind: KeyKind) -> Result<Signer, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Signer {
            key,
            kind,
            path: path.to_owned(),
        })
    }

    /// A signer from a key's 32 secret bytes (tests, key generation).
    pub fn from_secret(secret: [u8; 32], kind: KeyKind) -> Signer {
        Signer {
            key: SigningKey::from_bytes(&secret),
            kind,
            path: PathBuf::new(),
        }
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key's fingerprint (see [`fingerprint`]).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_key())
    }

    /// The 64-byte signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The private key as PKCS#8 PEM and the public key as SPKI PEM.
    pub fn to_pem(&self) -> Result<(String, String), KeyError> {
        let private = self
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        let public = self
            .key
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        Ok((private.to_string(), public))
    }
}

/// A public key's fingerprint: the first 16 bytes of its SHA-256, in hex (32 characters).
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    crate::build::hex(&Sha256::digest(public_key)[..16])
}

/// The initramfs's `etc/tank/trusted-keys`: one key per line, `KIND HEX`.
pub fn trusted_keys_text(keys: &[(KeyKind, [u8; 32])]) -> String {
    let mut text = String::from(
        "# The ed25519 public keys this image accepts releases from: kind, key (hex).\n",
    );
    for (kind, key) in keys {
        text.push_str(&format!("{} {}\n", kind.as_str(), crate::build::hex(key)));
    }
    text
}

/// A build label's problem.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the build label `{0}` is not valid: use 1 to {MAX_LABEL} letters, digits, '.' and '-' \
     (it becomes the version's build metadata, 0.1.0+LABEL)"
)]
pub struct LabelError(pub String);

/// `0.1.0` with label `rc1` → `0.1.0+rc1` (semver build metadata).
pub fn labelled_version(version: &str, label: Option<&str>) -> Result<String, LabelError> {
    let Some(label) = label else {
        return Ok(version.to_owned());
    };
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !label.starts_with('.')
        && !label.ends_with('.')
        && !label.contains("..");
    if !ok {
        return Err(LabelError(label.to_owned()));
    }
    Ok(format!("{version}+{label}"))
}

/// Who signed a release, as `release.json` names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSigner {
    pub kind: KeyKind,
    pub fingerprint: String,
}

/// The configuration record versions a release reads (`oldest` by migration) and writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersions {
    pub oldest: u32,
    pub current: u32,
}

/// One part of a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePart {
    pub name: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// `release.json`: what the signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub kind: String,
    pub format: u32,
    pub tank_version: String,
    pub board: String,
    pub build_id: String,
    pub config_versions: ConfigVersions,
    pub signer: ReleaseSigner,
    pub parts: Vec<ReleasePart>,
}

impl ReleaseManifest {
    /// The bytes written as `release.json` (and signed): pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }
}

/// What identifies a build before its initramfs exists: the first 16 hex digits of SHA-256
/// over the version (with its label), the board, its command line, the kernel package, the
/// kernel and init bytes and the trusted keys. The same inputs give the same id; another
/// label, init, kernel or key gives another.
pub fn build_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(b"tank build id v1\0");
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    crate::build::hex(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_secret([7; 32], KeyKind::Development)
    }

    #[test]
    fn pem_round_trip_and_deterministic_signatures() {
        let s = signer();
        let (private, public) = s.to_pem().unwrap();
        assert!(
            private.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{private}"
        );
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{public}"
        );
        let dir = std::env::temp_dir().join(format!("tank-sign-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.key");
        fs::write(&path, &private).unwrap();
        let loaded = Signer::load(&path, KeyKind::Release).unwrap();
        assert_eq!(loaded.public_key(), s.public_key());
        assert_eq!(loaded.sign(b"abc"), s.sign(b"abc"));
        assert_eq!(s.fingerprint().len(), 32);
        fs::write(&path, "not a key").unwrap();
        let e = Signer::load(&path, KeyKind::Release)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an ed25519 private key"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
        // Verified with the public key alone.
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&s.public_key()).unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(&s.sign(b"abc"));
        assert!(vk.verify_strict(b"abc", &sig).is_ok());
        assert!(vk.verify_strict(b"abd", &sig).is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(labelled_version("0.1.0", None).unwrap(), "0.1.0");
        assert_eq!(
            labelled_version("0.1.0", Some("rc1.b-2")).unwrap(),
            "0.1.0+rc1.b-2"
        );
        for bad in ["", "a b", "a+b", "a/b", ".a", "a.", "a..b", &"x".repeat(41)] {
            assert!(labelled_version("0.1.0", Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn trusted_keys_and_build_ids() {
        let text = trusted_keys_text(&[(KeyKind::Release, [1; 32])]);
        assert!(
            text.ends_with(&format!("\nrelease {}\n", "01".repeat(32))),
            "{text}"
        );
        let a = build_id(&[b"0.1.0", b"qemu"]);
        assert_eq!(a.len(), 16);
        assert_eq!(a, build_id(&[b"0.1.0", b"qemu"]));
        assert_ne!(a, build_id(&[b"0.1.0+x", b"qemu"]));
        assert_ne!(build_id(&[b"ab", b"c"]), build_id(&[b"a", b"bc"]));
        assert_eq!(CONFIG_VERSIONS, (1, 3));
    }

    /// The bytes the appliance's verifier is tested against (`appliance/src/upgrade/verify.rs`
    /// holds the same text): field names and order are the format.
    #[test]
    fn release_manifest_golden() {
        let m = ReleaseManifest {
            kind: RELEASE_KIND.into(),
            format: RELEASE_FORMAT,
            tank_version: "0.1.0+rc1".into(),
            board: "qemu-x86_64".into(),
            build_id: "0123456789abcdef".into(),
            config_versions: ConfigVersions {
                oldest: 1,
                current: 3,
            },
            signer: ReleaseSigner {
                kind: KeyKind::Release,
                fingerprint: "00112233445566778899aabbccddeeff".into(),
            },
            parts: vec![ReleasePart {
                name: "vmlinuz".into(),
                size: 6,
                sha256: "ab".into(),
            }],
        };
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
        assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), golden);
    }
}
