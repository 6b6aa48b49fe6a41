//! The export cache daemon inside the init: one thread reads the kernel's `auth.unix.ip`,
//! `nfsd.export` and `nfsd.fh` channels and answers every request from the current
//! [`ExportTable`], for as long as the system runs (the kernel asks again to refresh entries
//! whose time is half gone). This replaces rpc.mountd's cache side.
//!
//! The channels are polled; a read returns one request line (continued on the next read if the
//! buffer is short). A malformed line is logged and dropped. A configuration change swaps the
//! table and flushes the caches in nfs-utils' order, so the kernel asks again at once. The
//! `_timeout` channels (auth.unix.gid, nfs4.idtoname, nfs4.nametoid) are never opened: opening
//! one without serving it makes the kernel wait for answers that never come.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::exports::{ExportTable, FH_EXPIRY, NEGATIVE_TTL, TTL};
use super::wire;

/// The caches served, in the order their channels are polled.
const CHANNELS: [&str; 3] = ["auth.unix.ip", "nfsd.export", "nfsd.fh"];

/// The caches flushed after a change, in nfs-utils' order (`cache_flush.c`).
const FLUSH_ORDER: [&str; 4] = ["auth.unix.ip", "auth.unix.gid", "nfsd.fh", "nfsd.export"];

/// A request line longer than this is dropped (the kernel's limit is a page).
const MAX_REQUEST: usize = 8192;

/// Counters for `status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub answered: AtomicU64,
    pub refused: AtomicU64,
    pub dropped: AtomicU64,
}

/// The running cache daemon.
pub struct Upcalls {
    table: Arc<RwLock<Arc<ExportTable>>>,
    stop: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn channel_path(cache: &str, file: &str) -> String {
    format!("/proc/net/rpc/{cache}/{file}")
}

/// Invalidates every entry of the export caches so the kernel asks again.
pub fn flush_caches() {
    let stamp = format!("{}\n", now());
    for cache in FLUSH_ORDER {
        let path = channel_path(cache, "flush");
        match OpenOptions::new().write(true).open(&path) {
            Ok(mut f) => {
                if let Err(e) = f.write_all(stamp.as_bytes()) {
                    log::warn!("nfs: cannot flush {path}: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("nfs: cannot flush {path}: {e}"),
        }
    }
}

/// Shows a request safely in a log line.
fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// The reply to one request line of `cache`, or `None` to drop it (logged).
pub fn answer(
    table: &ExportTable,
    cache: &str,
    line: &[u8],
    counters: &Counters,
) -> Option<String> {
    let now = now();
    let refused = || counters.refused.fetch_add(1, Ordering::Relaxed);
    let result = match cache {
        "auth.unix.ip" => wire::parse_ip_request(line).map(|r| {
            let domain = table.domain_for(r.address);
            if domain.is_none() {
                refused();
                crate::peer_log!(
                    log::Level::Info,
                    "nfs: refused clients",
                    "nfs: client {} may mount no share; refused",
                    r.address
                );
            }
            let expiry = now + if domain.is_some() { TTL } else { NEGATIVE_TTL };
            wire::ip_reply(&r, expiry, domain.as_deref())
        }),
        "nfsd.export" => wire::parse_export_request(line).map(|r| {
            let options = table.export(&r.domain, &r.path);
            if options.is_none() {
                refused();
            }
            let expiry = now + if options.is_some() { TTL } else { NEGATIVE_TTL };
            wire::export_reply(&r, expiry, options.as_ref())
        }),
        "nfsd.fh" => wire::parse_fh_request(line).map(|r| {
            let path = table.path_of(&r.domain, r.fsid_type, &r.fsid);
            if path.is_none() {
                refused();
            }
            let expiry = if path.is_some() {
                FH_EXPIRY
            } else {
                now + NEGATIVE_TTL
            };
            wire::fh_reply(&r, expiry, path.as_deref())
        }),
        other => {
            log::warn!("nfs: request on unknown cache {other}");
            return None;
        }
    };
    match result {
        Ok(reply) => {
            counters.answered.fetch_add(1, Ordering::Relaxed);
            Some(reply)
        }
        Err(e) => {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            crate::peer_log!(
                log::Level::Warn,
                "nfs: malformed upcalls",
                "nfs: dropped a malformed {cache} request ({e}): {:?}",
                shown(line)
            );
            None
        }
    }
}

struct Channel {
    cache: &'static str,
    file: File,
    pending: Vec<u8>,
}

impl Upcalls {
    /// Opens the channels and starts answering from `table`.
    pub fn start(table: ExportTable) -> Result<Upcalls, std::io::Error> {
        let mut channels = Vec::new();
        for cache in CHANNELS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(channel_path(cache, "channel"))?;
            channels.push(Channel {
                cache,
                file,
                pending: Vec::new(),
            });
        }
        let upcalls = Upcalls {
            table: Arc::new(RwLock::new(Arc::new(table))),
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(Counters::default()),
        };
        let table = upcalls.table.clone();
        let stop = upcalls.stop.clone();
        let counters = upcalls.counters.clone();
        let mut channels = channels;
        crate::supervise::spawn_supervised(
            "nfs-upcalls",
            crate::supervise::Policy::RESTART,
            move || serve(&mut channels, &table, &stop, &counters),
        )?;
        Ok(upcalls)
    }

    /// Answers from `table` from now on, and makes the kernel forget what it cached.
    pub fn set_table(&self, table: ExportTable) {
        match self.table.write() {
            Ok(mut t) => *t = Arc::new(table),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(table),
        }
        flush_caches();
    }

    /// The table in force.
    pub fn table(&self) -> Arc<ExportTable> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    channels: &mut [Channel],
    table: &RwLock<Arc<ExportTable>>,
    stop: &AtomicBool,
    counters: &Counters,
) {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut buf = vec![0u8; MAX_REQUEST];
    while !stop.load(Ordering::Relaxed) {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = channels
                .iter()
                .map(|c| PollFd::new(&c.file, PollFlags::IN))
                .collect();
            let timeout = rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().intersects(PollFlags::IN))
                    .collect(),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    log::error!("nfs: polling the export cache channels: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        };
        for (channel, ready) in channels.iter_mut().zip(ready) {
            if !ready {
                continue;
            }
            let n = match channel.file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("nfs: reading the {} channel: {e}", channel.cache);
                    continue;
                }
            };
            channel.pending.extend_from_slice(&buf[..n]);
            while let Some(end) = channel.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = channel.pending.drain(..=end).collect();
                let current = match table.read() {
                    Ok(t) => t.clone(),
                    Err(poisoned) => poisoned.into_inner().clone(),
                };
                if let Some(reply) = answer(&current, channel.cache, &line, counters) {
                    if let Err(e) = channel.file.write_all(reply.as_bytes()) {
                        log::warn!(
                            "nfs: the kernel refused the {} answer {:?}: {e}",
                            channel.cache,
                            reply.trim_end()
                        );
                    }
                }
            }
            if channel.pending.len() > MAX_REQUEST {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "nfs: dropped an over-long {} request ({} bytes)",
                    channel.cache,
                    channel.pending.len()
                );
                channel.pending.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sharing::{ClientSpec, Squash};
    use crate::nfs::exports::{ShareRules, ShareSpec};

    fn table() -> ExportTable {
        ExportTable::build(
            &[ShareSpec {
                path: "/mnt/tank/vms".into(),
                uuid: [1; 16],
                ino: 256,
                rules: ShareRules {
                    clients: ClientSpec::parse_list("10.0.3.0/24").unwrap(),
                    read_only: false,
                    squash: Squash::RootToNobody,
                    insecure: false,
                },
                submounts: vec![],
            }],
            |_| 2,
        )
    }

    #[test]
    fn answers() {
        let t = table();
        let c = Counters::default();
        let reply = answer(&t, "auth.unix.ip", b"nfsd 10.0.3.2\n", &c).unwrap();
        assert!(reply.starts_with("nfsd 10.0.3.2 ") && reply.ends_with(" ip:10.0.3.2\n"));
        let refused = answer(&t, "auth.unix.ip", b"nfsd 10.0.4.2\n", &c).unwrap();
        assert_eq!(refused.split(' ').count(), 3, "{refused}");
        let export = answer(&t, "nfsd.export", b"ip:10.0.3.2 /mnt/tank/vms\n", &c).unwrap();
        assert!(export.contains(" 1060 65534 65534 0 uuid "), "{export}");
        let fh = answer(&t, "nfsd.fh", b"ip:10.0.3.2 1 \\x00000000\n", &c).unwrap();
        assert!(fh.ends_with(" 2147483647 /\n"), "{fh}");
        assert_eq!(c.answered.load(Ordering::Relaxed), 4);
        assert_eq!(c.refused.load(Ordering::Relaxed), 1);
        assert!(answer(&t, "nfsd.fh", b"garbage\n", &c).is_none());
        assert_eq!(c.dropped.load(Ordering::Relaxed), 1);
    }

    /// Random and mutated lines never panic; each is answered or dropped.
    #[test]
    fn fuzz() {
        let t = table();
        let c = Counters::default();
        let seeds: [&[u8]; 3] = [
            b"nfsd 10.0.3.2\n",
            b"ip:10.0.3.2 /mnt/tank/vms\n",
            b"ip:10.0.3.2 7 \\x0001000000000000010101010101010101010101010101\n",
        ];
        let mut rng = crate::testing::Rng(0x2545_f491_4f6c_dd1d);
        for round in 0..20_000 {
            let cache = CHANNELS[round % 3];
            let line = if rng.below(10) == 0 {
                let len = rng.below(64);
                rng.bytes(len)
            } else {
                let seed = seeds[rng.below(seeds.len())];
                rng.mutate(seed)
            };
            let _ = answer(&t, cache, &line, &c);
        }
        assert!(c.dropped.load(Ordering::Relaxed) > 0);
        assert!(c.answered.load(Ordering::Relaxed) > 0);
    }
}
