//! Alerts: conditions the appliance raises and clears, and their delivery to the owner.
//!
//! - [`book`]: the alert book (stable ids, severities, first and last seen, cleared, the
//!   history) and which changes become notices (raise, clear, 24 h reminders, no floods).
//! - [`outbox`]: the queue of notices per channel, on the pool, and the delivery loop with
//!   retries and backoff.
//! - [`deliver`]: one notice by mail (SMTP submission) or webhook (JSON or ntfy).
//! - [`uevent`]: kernel uevents, for disks removed or added at run time.
//!
//! Where alerts are raised: the engine's `alert_requests` (pool checks each minute and on
//! uevents, disk health readings, jobs, snapshot tasks, the clock). The engine owns the book;
//! the outbox is shared with the delivery thread. All files live in `alerts/` in the pool's
//! metadata subvolume, a directory only the init can read (0700): `book.json`, `outbox/`,
//! and `mail.secret` (the SMTP password, 0600).

pub mod book;
pub mod deliver;
pub mod outbox;
pub mod uevent;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub use book::{Book, Notice, NoticeState, Raise, Severity};

/// `alerts/` on the pool.
pub fn dir() -> PathBuf {
    crate::storage::meta_dir().join("alerts")
}

pub fn book_path() -> PathBuf {
    dir().join("book.json")
}

pub fn outbox_dir() -> PathBuf {
    dir().join("outbox")
}

fn secret_path() -> PathBuf {
    dir().join("mail.secret")
}

/// Makes `alerts/` (0700) on the mounted pool.
pub fn make_dir() -> Result<(), String> {
    let dir = dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))
}

/// Writes `bytes` to `path` atomically: a 0600 temporary file beside it, fsync, rename, and
/// fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok::<(), std::io::Error>(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// The SMTP password, if one is saved.
pub fn load_mail_password() -> Option<Zeroizing<String>> {
    let bytes = Zeroizing::new(std::fs::read(secret_path()).ok()?);
    std::str::from_utf8(&bytes)
        .ok()
        .map(|s| Zeroizing::new(s.to_owned()))
}

/// Saves (or with `None` removes) the SMTP password.
pub fn save_mail_password(password: Option<&str>) -> Result<(), String> {
    make_dir()?;
    match password {
        Some(p) => write_atomic(&secret_path(), p.as_bytes()),
        None => match std::fs::remove_file(secret_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove the mail password: {e}"))
            }
            _ => Ok(()),
        },
    }
}
