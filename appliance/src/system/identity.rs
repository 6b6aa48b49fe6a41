//! Which pool is this box's, remembered on the boot device's EFI System Partition in
//! `tank/pool` (one line: the pool's UUID and name), so a disk carried over from another box
//! never takes this one's place at boot.
//!
//! Written when a pool is created, imported or first assembled on this box; read by pool
//! assembly before it chooses among the pools on the disks. A box started without the disk
//! image's boot loader (QEMU's `-kernel`) has no ESP and remembers nothing: there, several pools
//! on the disks always wait for `pool import`.

use std::io::Write;
use std::path::Path;

/// The file on the ESP, relative to its root.
pub const FILE: &str = "tank/pool";

/// A pool, as this box remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolIdentity {
    pub uuid: uuid::Uuid,
    pub name: String,
}

impl PoolIdentity {
    pub fn text(&self) -> String {
        format!("{} {}\n", self.uuid, self.name)
    }

    pub fn parse(text: &str) -> Option<PoolIdentity> {
        let mut words = text.split_whitespace();
        let uuid = uuid::Uuid::parse_str(words.next()?).ok()?;
        let name = words.next()?.to_string();
        words
            .next()
            .is_none()
            .then_some(PoolIdentity { uuid, name })
    }
}

/// This box's pool, if the ESP remembers one (`None` also without an ESP, or when the file is
/// unreadable: then no pool is preferred, and several still wait for `pool import`).
pub fn remembered() -> Option<PoolIdentity> {
    let read = super::slot::with_esp(|root| match std::fs::read_to_string(root.join(FILE)) {
        Ok(text) => Ok(PoolIdentity::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {FILE} on the ESP: {e}")),
    });
    match read {
        Ok(id) => id,
        Err(e) => {
            log::info!("no remembered pool: {e}");
            None
        }
    }
}

/// Remembers `id` as this box's pool (write, fsync, rename over the old file, fsync the
/// folder). Without an ESP there is nowhere to remember: `Err` says so.
pub fn remember(id: &PoolIdentity) -> Result<(), String> {
    super::slot::with_esp(|root| write_in(root, id))
}

fn write_in(root: &Path, id: &PoolIdentity) -> Result<(), String> {
    let file = root.join(FILE);
    let dir = file.parent().unwrap_or(root);
    let tmp = dir.join("pool.new");
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(id.text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &file)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("cannot write {FILE} on the ESP: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let id = PoolIdentity {
            uuid: uuid::Uuid::from_bytes([7; 16]),
            name: "tank".into(),
        };
        assert_eq!(PoolIdentity::parse(&id.text()), Some(id.clone()));
        assert_eq!(PoolIdentity::parse(""), None);
        assert_eq!(PoolIdentity::parse("not-a-uuid tank"), None);
        assert_eq!(
            PoolIdentity::parse(&format!("{} tank extra", id.uuid)),
            None
        );
        let root = std::env::temp_dir().join(format!("tank-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        write_in(&root, &id).unwrap();
        let other = PoolIdentity {
            name: "other".into(),
            ..id
        };
        write_in(&root, &other).unwrap();
        let text = std::fs::read_to_string(root.join(FILE)).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(PoolIdentity::parse(&text), Some(other));
    }
}
