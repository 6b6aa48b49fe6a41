//! What this image is: its version (with the build label), board, build id and signer from
//! `/etc/tank-release`, and the public keys it accepts releases from, `/etc/tank/trusted-keys`.
//! The image builder writes both into the initramfs (`image/src/build.rs`, `image/src/sign.rs`);
//! the init binary itself carries no key, so one init serves images signed by any key.
//!
//! What does not live here: checking a bundle against those keys (`crate::upgrade::verify`).

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// Where the initramfs keeps the release facts.
pub const RELEASE_PATH: &str = "/etc/tank-release";
/// Where the initramfs keeps the trusted public keys.
pub const TRUSTED_KEYS_PATH: &str = "/etc/tank/trusted-keys";

/// Whether a key signs releases or is a build tree's development key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Release,
    Development,
}

impl KeyKind {
    fn parse(word: &str) -> Option<KeyKind> {
        match word {
            "release" => Some(KeyKind::Release),
            "development" => Some(KeyKind::Development),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Release => "release",
            KeyKind::Development => "development",
        }
    }
}

/// A public key an image accepts releases from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    pub kind: KeyKind,
    pub key: [u8; 32],
}

impl TrustedKey {
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }
}

/// A public key's fingerprint: the first 16 bytes of its SHA-256 in hex, as `image::sign`
/// computes it.
pub fn fingerprint(key: &[u8; 32]) -> String {
    hex(&Sha256::digest(key)[..16])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The running image's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// `0.1.0` or `0.1.0+LABEL`.
    pub version: String,
    pub board: Option<String>,
    pub build_id: Option<String>,
    /// The key the image's release manifest was signed with.
    pub signer: Option<(KeyKind, String)>,
}

impl Release {
    /// `development key (fingerprint …)`, `release key …`.
    pub fn signer_line(&self) -> String {
        match &self.signer {
            Some((KeyKind::Development, fp)) => {
                format!("development key {fp} (a build tree's own key, not a release key)")
            }
            Some((KeyKind::Release, fp)) => format!("release key {fp}"),
            None => "unknown (the image names no signer)".into(),
        }
    }
}

/// Reads `/etc/tank-release`'s `KEY=value` lines; the version falls back to the init's own.
pub fn parse_release(text: &str) -> Release {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let signer = field("SIGNER").and_then(|s| {
        let (kind, fp) = s.split_once(' ')?;
        Some((KeyKind::parse(kind)?, fp.trim().to_owned()))
    });
    Release {
        version: field("TANK_VERSION").unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        board: field("BOARD"),
        build_id: field("BUILD_ID"),
        signer,
    }
}

/// Parses `/etc/tank/trusted-keys`: `KIND HEX` lines, `#` comments.
pub fn parse_trusted_keys(text: &str) -> Result<Vec<TrustedKey>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            format!(
                "line {} of the trusted keys is not `KIND HEX`: {line:?}",
                n + 1
            )
        };
        let (kind, hex_key) = line.split_once(' ').ok_or_else(bad)?;
        let kind = KeyKind::parse(kind).ok_or_else(bad)?;
        let hex_key = hex_key.trim();
        if hex_key.len() != 64 || !hex_key.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex_key[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        keys.push(TrustedKey { kind, key });
    }
    Ok(keys)
}

/// This image's facts, read once.
pub fn running() -> &'static Release {
    static RELEASE: OnceLock<Release> = OnceLock::new();
    RELEASE
        .get_or_init(|| parse_release(&std::fs::read_to_string(RELEASE_PATH).unwrap_or_default()))
}

/// The keys this image accepts releases from.
pub fn trusted_keys() -> Result<Vec<TrustedKey>, String> {
    let text = std::fs::read_to_string(TRUSTED_KEYS_PATH)
        .map_err(|e| format!("cannot read {TRUSTED_KEYS_PATH}: {e}"))?;
    let keys = parse_trusted_keys(&text)?;
    if keys.is_empty() {
        return Err(format!("{TRUSTED_KEYS_PATH} names no key"));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_file() {
        let r = parse_release(
            "TANK_VERSION=0.1.0+rc1\nBOARD=qemu-x86_64\nKERNEL_RELEASE=6.12\nBUILD_ID=0123456789abcdef\nSIGNER=development 00112233445566778899aabbccddeeff\n",
        );
        assert_eq!(r.version, "0.1.0+rc1");
        assert_eq!(r.board.as_deref(), Some("qemu-x86_64"));
        assert_eq!(r.build_id.as_deref(), Some("0123456789abcdef"));
        assert_eq!(
            r.signer,
            Some((
                KeyKind::Development,
                "00112233445566778899aabbccddeeff".into()
            ))
        );
        assert!(r.signer_line().starts_with("development key 0011"));
        // An image from before signing: the init's version, no signer.
        let old = parse_release("TANK_VERSION=\nBOARD=b\n");
        assert_eq!(old.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(old.signer_line(), "unknown (the image names no signer)");
        let release = parse_release("SIGNER=release ab\n");
        assert_eq!(release.signer_line(), "release key ab");
    }

    #[test]
    fn trusted_key_lines() {
        let text = format!(
            "# comment\nrelease {}\n\ndevelopment {}\n",
            "01".repeat(32),
            "ff".repeat(32)
        );
        let keys = parse_trusted_keys(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kind, KeyKind::Release);
        assert_eq!(keys[1].key, [0xff; 32]);
        // The same fingerprint as the image builder's (image/src/sign.rs).
        assert_eq!(keys[0].fingerprint().len(), 32);
        for bad in [
            "release".to_string(),
            format!("other {}", "01".repeat(32)),
            format!("release {}", "01".repeat(31)),
            format!("release {}", "zz".repeat(32)),
            format!("release {}é", "0".repeat(62)),
        ] {
            assert!(parse_trusted_keys(&bad).is_err(), "{bad}");
        }
    }
}
