//! NFS: the kernel's NFSv4 server (knfsd) driven by the init, which answers its export cache
//! upcalls the way rpc.mountd would. The data path is the kernel's; this is the control plane.
//!
//! - [`knfsd`]: starting and stopping the server through `/proc/fs/nfsd`;
//! - [`wire`]: the sunrpc cache channel text format;
//! - [`exports`]: the export table (pseudo filesystem, per-share rules, stable file handle
//!   UUIDs) as pure functions;
//! - [`upcall`]: the thread answering the kernel's `auth.unix.ip`, `nfsd.export` and `nfsd.fh`
//!   requests, and the cache flushes after a change.
//!
//! [`NfsService`] is what the engine holds. rpcbind and the MOUNT protocol (for `showmount`
//! and Proxmox VE's checks) live in [`crate::rpc`]. What does not live here: the share
//! configuration and its validation (`config/`), console commands.

pub mod exports;
pub mod knfsd;
pub mod upcall;
pub mod wire;

use std::path::Path;

use exports::{derive_uuid, ExportTable, ShareRules, ShareSpec};

use crate::config::Config;

/// The NFS server as the engine sees it.
pub struct NfsService {
    upcalls: upcall::Upcalls,
    settings: knfsd::Settings,
    /// Whether a grace period for reclaiming clients was running at the last start.
    pub reclaim_grace: bool,
    started_at: std::time::Instant,
}

fn inode_of(path: &str) -> u64 {
    rustix::fs::stat(path).map_or(0, |s| s.st_ino)
}

/// The export table for `config`: every NFS share of a mounted dataset, at
/// `/mnt/<pool>/<dataset>`. A share whose dataset is not mounted is left out (its clients get
/// errors, never the empty mount point).
pub fn table_for(config: &Config, mounted: &dyn Fn(&str) -> bool) -> ExportTable {
    let Some(pool) = &config.pool else {
        return ExportTable::default();
    };
    let shares: Vec<ShareSpec> = config
        .nfs_shares
        .iter()
        .filter_map(|share| {
            let path =
                crate::storage::dataset_mountpoint(pool.name.as_str(), share.dataset.as_str())
                    .display()
                    .to_string();
            if !mounted(&path) {
                log::warn!("nfs: {path} is not mounted; its share is not served");
                return None;
            }
            // The snapshot view and each snapshot: read-only submounts with their own UUIDs.
            let submounts =
                crate::storage::snapshots::submounts(pool.name.as_str(), share.dataset.as_str())
                    .into_iter()
                    .map(|(sub, ino)| {
                        let sub = sub.display().to_string();
                        let relative = sub.strip_prefix(&path).unwrap_or(&sub).to_owned();
                        let uuid = derive_uuid(&[
                            b"submount",
                            &pool.uuid,
                            share.dataset.as_str().as_bytes(),
                            relative.as_bytes(),
                        ]);
                        (sub, uuid, ino)
                    })
                    .collect();
            Some(ShareSpec {
                uuid: derive_uuid(&[b"dataset", &pool.uuid, share.dataset.as_str().as_bytes()]),
                ino: inode_of(&path),
                rules: ShareRules {
                    clients: share.clients.clone(),
                    read_only: share.read_only,
                    squash: share.squash,
                    insecure: share.insecure,
                },
                submounts,
                path,
            })
        })
        .collect();
    ExportTable::build(&shares, inode_of)
}

impl NfsService {
    /// Starts answering upcalls from `table`, then the server. The recovery directory lives on
    /// the pool, so clients can reclaim their state after a reboot.
    pub fn start(table: ExportTable, recovery_dir: &Path) -> Result<NfsService, String> {
        let upcalls = upcall::Upcalls::start(table)
            .map_err(|e| format!("cannot open the export cache channels: {e}"))?;
        let settings = knfsd::Settings::for_machine(recovery_dir.to_path_buf());
        match knfsd::start(&settings) {
            Ok(reclaim_grace) => {
                log::info!(
                    "nfs: server started: NFSv4.0-4.2 on tcp 2049, {} threads{}",
                    settings.threads,
                    if reclaim_grace {
                        format!(
                            ", {} s grace period for clients to reclaim",
                            settings.grace_secs
                        )
                    } else {
                        String::new()
                    }
                );
                Ok(NfsService {
                    upcalls,
                    settings,
                    reclaim_grace,
                    started_at: std::time::Instant::now(),
                })
            }
            Err(e) => {
                upcalls.stop();
                Err(e.to_string())
            }
        }
    }

    /// Serves `table` from now on; the kernel forgets its cached answers at once.
    pub fn update(&self, table: ExportTable) {
        self.upcalls.set_table(table);
    }

    /// Stops the server (before the pool is unmounted: open files pin it).
    pub fn stop(&self) {
        if let Err(e) = knfsd::stop() {
            log::error!("nfs: {e}");
        }
        upcall::flush_caches();
        self.upcalls.stop();
        log::info!("nfs: server stopped");
    }

    /// One line for `status`.
    pub fn status_line(&self) -> String {
        use std::sync::atomic::Ordering;
        let table = self.upcalls.table();
        let shares = table.mount_list().len();
        let threads = knfsd::threads().unwrap_or(0);
        let grace = if self.reclaim_grace
            && self.started_at.elapsed().as_secs() < u64::from(self.settings.grace_secs)
        {
            ", in grace period"
        } else {
            ""
        };
        let c = &self.upcalls.counters;
        format!(
            "running: {shares} share(s), {threads} threads, {} client(s){grace}; upcalls {} answered, {} refused, {} dropped",
            knfsd::client_count(),
            c.answered.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed)
        )
    }
}
