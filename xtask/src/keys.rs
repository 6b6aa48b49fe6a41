//! `cargo xtask keygen DIR` and the build tree's development key.
//!
//! A key pair is two files: `DIR/release.key`, the ed25519 private key in PKCS#8 PEM, created
//! with mode 0600 (and never over an existing file), and `DIR/release.pub`, the public key in
//! SPKI PEM. The development key (`target/tank-keys/dev.key`) is made the same way the first
//! time `cargo xtask image` runs without `--signing-key` or `TANK_SIGNING_KEY`, and reused
//! after, so builds stay reproducible. The secret comes from the kernel's `getrandom`.
//!
//! What does not live here: loading keys and signing (`image::sign`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::sign::{KeyKind, Signer};

/// The name `keygen` gives a key pair: `release.key` and `release.pub`.
pub const RELEASE_STEM: &str = "release";

/// Makes a key pair in `dir` as `<stem>.key` and `<stem>.pub`; refuses to overwrite either.
/// Returns the signer and the two paths.
pub fn generate(dir: &Path, stem: &str, kind: KeyKind) -> Result<(Signer, PathBuf, PathBuf)> {
    let private = dir.join(format!("{stem}.key"));
    let public = dir.join(format!("{stem}.pub"));
    for path in [&private, &public] {
        if path.symlink_metadata().is_ok() {
            bail!(
                "{} exists: keygen never overwrites a key (a lost release key cannot sign \
                 upgrades for the boxes that trust it); move it away or choose another folder",
                path.display()
            );
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut secret = [0u8; 32];
    rustix::rand::getrandom(&mut secret, rustix::rand::GetRandomFlags::empty())
        .context("cannot read the kernel's random source (getrandom)")?;
    let signer = Signer::from_secret(secret, kind);
    secret.fill(0);
    let (private_pem, public_pem) = signer.to_pem().map_err(anyhow::Error::msg)?;
    write_new(&private, private_pem.as_bytes(), 0o600)?;
    write_new(&public, public_pem.as_bytes(), 0o644)?;
    let signer = Signer::load(&private, kind).map_err(anyhow::Error::msg)?;
    Ok((signer, private, public))
}

/// Creates `path` (it must not exist) with `mode` and writes `data`, synced.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // The umask may have taken bits away, never added them; set the mode exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `cargo xtask keygen DIR`.
pub fn keygen(dir: &Path) -> Result<()> {
    let (signer, private, public) = generate(dir, RELEASE_STEM, KeyKind::Release)?;
    eprintln!(
        "xtask: made an ed25519 key pair, fingerprint {}:\n  {} (private, mode 0600: keep it \
         offline and backed up)\n  {} (public)\nxtask: sign images with `cargo xtask image \
         --signing-key {}` or {}={}",
        signer.fingerprint(),
        private.display(),
        public.display(),
        private.display(),
        image::sign::SIGNING_KEY_ENV,
        private.display()
    );
    Ok(())
}

/// The key this build signs with: `explicit`, `TANK_SIGNING_KEY`, or the development key under
/// `target_dir` (made the first time).
pub fn signer(explicit: Option<&Path>, target_dir: &Path) -> Result<Signer> {
    let from_env = std::env::var_os(image::sign::SIGNING_KEY_ENV).is_some_and(|v| !v.is_empty());
    let dev = image::sign::dev_key_path(target_dir);
    if explicit.is_none() && !from_env && !dev.exists() {
        let dir = dev.parent().unwrap_or(target_dir);
        let (signer, _, _) = generate(dir, "dev", KeyKind::Development)?;
        eprintln!(
            "xtask: made the development signing key {} (fingerprint {}); images signed with \
             it say \"development key\"",
            dev.display(),
            signer.fingerprint()
        );
    }
    image::sign::resolve_signer(explicit, target_dir).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tank-keys-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn keygen_makes_a_private_file_and_refuses_to_overwrite() {
        let d = dir("gen");
        keygen(&d).unwrap();
        let private = d.join(format!("{RELEASE_STEM}.key"));
        let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let public = fs::read_to_string(d.join(format!("{RELEASE_STEM}.pub"))).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
        let before = fs::read(&private).unwrap();
        let e = keygen(&d).unwrap_err().to_string();
        assert!(
            e.contains("exists") && e.contains("never overwrites"),
            "{e}"
        );
        assert_eq!(fs::read(&private).unwrap(), before, "the key was changed");
        // Only the public file left: still refused, the private one is not replaced either.
        fs::remove_file(&private).unwrap();
        assert!(keygen(&d).is_err());
        assert!(!private.exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn two_keys_differ_and_sign_verifiably() {
        let d = dir("two");
        let (a, _, _) = generate(&d, "a", KeyKind::Release).unwrap();
        let (b, _, _) = generate(&d, "b", KeyKind::Release).unwrap();
        assert_ne!(a.public_key(), b.public_key());
        let sig = a.sign(b"release.json bytes");
        assert_eq!(
            sig,
            a.sign(b"release.json bytes"),
            "ed25519 is deterministic"
        );
        assert_ne!(sig, b.sign(b"release.json bytes"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn development_key_is_made_once_and_reused() {
        let target = dir("dev");
        // An explicit key is a release key; without one the development key is made.
        let (release, private, _) =
            generate(&target.join("rel"), "release", KeyKind::Release).unwrap();
        let explicit = signer(Some(&private), &target).unwrap();
        assert_eq!(explicit.kind, KeyKind::Release);
        assert_eq!(explicit.public_key(), release.public_key());
        if std::env::var_os(image::sign::SIGNING_KEY_ENV).is_none() {
            let first = signer(None, &target).unwrap();
            assert_eq!(first.kind, KeyKind::Development);
            let mode = fs::metadata(image::sign::dev_key_path(&target))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let again = signer(None, &target).unwrap();
            assert_eq!(first.public_key(), again.public_key());
            // Named explicitly, the development key is still one.
            let named = signer(Some(&image::sign::dev_key_path(&target)), &target).unwrap();
            assert_eq!(named.kind, KeyKind::Development);
        }
        fs::remove_dir_all(&target).unwrap();
    }
}
