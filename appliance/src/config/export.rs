//! Configuration backups: the export file (`system config export`) and what importing one
//! would change (`system config import`).
//!
//! # The export file
//!
//! An export is its own envelope, with its own magic, around a whole configuration record of
//! [`record`](super::record) (the `TANKCFG` envelope, generation 0). It is not a store
//! generation with another name: a file with the store's magic is refused as "a store
//! generation, not an export", and a store never takes an export for one of its generations
//! (the magic differs), so a backup copied into `.tank/config/` by mistake, or a generation
//! copied into a dataset, is never read as the other. The inner record brings its own version
//! and migrations: an export written by an older release is read through the same
//! `decode` (and the same checks of every value) as the store's older generations, and the
//! export envelope only changes when what travels beside the record changes. Integers are
//! little-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  magic "TANKEXP\0"
//!      8     4  export format version (u32): 1 = ExportRecordV1
//!     12     4  payload length n (u32)
//!     16     n  payload: ExportRecordV1, postcard-encoded:
//!                 exported_at (u64, Unix seconds), secrets (bool),
//!                 mail_password (Option<String>), record (bytes: a TANKCFG record)
//!   16+n     4  CRC-32 (IEEE) of bytes 0 .. 16+n
//! ```
//!
//! # Secrets
//!
//! Users' NT hashes and the SMTP password travel only in an export made with `secrets`
//! (`secrets` true). Without, every user's hash in the inner record is 16 zero bytes and
//! `secrets` is false: the record cannot say "no password" (any 16 bytes are a hash), so the
//! flag says it for the whole file, and the importer never takes those bytes for a hash. It
//! keeps the hash of a user the box already has, and gives a user it does not have
//! a hash nobody knows ([`unknown_nt_hash`](super::accounts::unknown_nt_hash)), locked out
//! until `user passwd`. The mail password likewise: kept when the box's mail channel has the
//! same server and user, else the channel is imported without one.
//!
//! # Importing
//!
//! [`plan`] merges an export into the configuration in force and says, per section, what
//! would change. Datasets in the file are created or get the file's properties; datasets the
//! box has and the file lacks are kept (never destroyed by an import); users, groups, NFS and
//! SMB shares, snapshot tasks, SMB settings, network, alerts, time and the scrub schedule
//! become the file's. The pool is the box's own: the file's pool name and UUID are only shown.
//! The merged configuration is checked whole before anything is applied.
//!
//! What does not live here: reading and writing the file in a dataset (`storage::files`),
//! asking for confirmation and applying the plan (the engine).

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use super::accounts::UserName;
use super::model::{Config, ConfigError, DatasetConfig, NetIface, NetMethod};
use super::names::DatasetName;
use super::record::{self, EncodeError, RecordError};
use super::sharing::Squash;

/// The magic bytes at the start of every export file.
pub const MAGIC: [u8; 8] = *b"TANKEXP\0";

/// The export format version [`encode`] writes.
pub const CURRENT_VERSION: u32 = 1;

/// Bytes before the payload: magic, version, payload length.
pub const HEADER_LEN: usize = 16;

/// Bytes after the payload: the CRC-32.
pub const TRAILER_LEN: usize = 4;

/// The largest export file read (a configuration is a few kilobytes).
pub const MAX_LEN: usize = 16 << 20;

/// Version 1 of what an export carries. Frozen once released, like the record types.
#[derive(Serialize, Deserialize)]
struct ExportRecordV1 {
    exported_at: u64,
    secrets: bool,
    mail_password: Option<String>,
    record: Vec<u8>,
}

/// An export file, decoded and checked.
pub struct Export {
    /// The configuration, every value checked as the store's decode checks it. Without
    /// secrets, users' hashes are zeros and mean nothing.
    pub config: Config,
    /// When it was exported, Unix seconds.
    pub exported_at: u64,
    /// Whether users' NT hashes and the mail password are in it.
    pub secrets: bool,
    /// The SMTP password (with `secrets`, when the box had one).
    pub mail_password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("exported_at", &self.exported_at)
            .field("secrets", &self.secrets)
            .field("mail_password", &self.mail_password.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}

/// Why a file is not an export this appliance can import. Nothing is changed for any of them.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error(
        "it is not a Tank configuration export (it starts with {found:02x?}, not \"TANKEXP\"): \
         give a file written by 'system config export'"
    )]
    Foreign { found: Vec<u8> },
    #[error(
        "it is a configuration store generation, not an export: give a file written by \
         'system config export'"
    )]
    StoreGeneration,
    #[error(
        "the file is truncated: it has {len} bytes but needs {needed}; the copy is incomplete, \
         copy it again"
    )]
    Truncated { len: usize, needed: usize },
    #[error(
        "the file has {extra} unexpected bytes after its checksum: it is damaged, copy it again"
    )]
    TrailingBytes { extra: usize },
    #[error(
        "the file's checksum does not match (stored {stored:08x}, computed {computed:08x}): it \
         is damaged, copy it again"
    )]
    Checksum { stored: u32, computed: u32 },
    #[error(
        "the export has format version {version}, which this appliance does not know (it reads \
         version 1 to {newest}): newer software wrote it; update the appliance first",
        newest = CURRENT_VERSION
    )]
    NewerExport { version: u32 },
    #[error(
        "the configuration in it has record version {version}, which this appliance does not \
         know: newer software wrote it; update the appliance first"
    )]
    NewerRecord { version: u32 },
    #[error("the file's content does not decode ({0}): it is damaged or not an export")]
    Payload(#[from] postcard::Error),
    #[error("the configuration in it is not valid: {0}")]
    Record(RecordError),
    #[error("the file is {len} bytes, more than an export can be ({max}): it is not an export", max = MAX_LEN)]
    TooLarge { len: usize },
}

/// Writes `config` as an export made at `now`. With `secrets`, users' NT hashes and
/// `mail_password` are in it; without, the hashes are zeros and the password is left out.
pub fn encode(
    config: &Config,
    secrets: bool,
    mail_password: Option<&str>,
    now: u64,
) -> Result<Zeroizing<Vec<u8>>, EncodeError> {
    let mut config = config.clone();
    if !secrets {
        for user in &mut config.users {
            user.nt_hash = [0; 16];
        }
    }
    let inner = Zeroizing::new(record::encode(&config, 0)?);
    let payload = Zeroizing::new(postcard::to_allocvec(&ExportRecordV1 {
        exported_at: now,
        secrets,
        mail_password: if secrets {
            mail_password.map(str::to_owned)
        } else {
            None
        },
        record: inner.to_vec(),
    })?);
    let len =
        u32::try_from(payload.len()).map_err(|_| EncodeError::TooLarge { len: payload.len() })?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN));
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&CURRENT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&payload);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut out = [0; 4];
    if let Some(slice) = bytes.get(at..at + 4) {
        out.copy_from_slice(slice);
    }
    u32::from_le_bytes(out)
}

/// Reads an export: the envelope, then the configuration record inside with every value
/// checked.
pub fn decode(bytes: &[u8]) -> Result<Export, ExportError> {
    if bytes.len() > MAX_LEN {
        return Err(ExportError::TooLarge { len: bytes.len() });
    }
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        if bytes.starts_with(&record::MAGIC) {
            return Err(ExportError::StoreGeneration);
        }
        return Err(ExportError::Foreign {
            found: bytes[..magic_len].to_vec(),
        });
    }
    let minimum = HEADER_LEN + TRAILER_LEN;
    if bytes.len() < minimum {
        return Err(ExportError::Truncated {
            len: bytes.len(),
            needed: minimum,
        });
    }
    let version = le_u32(bytes, 8);
    let payload_len = usize::try_from(le_u32(bytes, 12)).unwrap_or(usize::MAX);
    let crc_at = HEADER_LEN.saturating_add(payload_len);
    let needed = crc_at.saturating_add(TRAILER_LEN);
    if bytes.len() < needed {
        return Err(ExportError::Truncated {
            len: bytes.len(),
            needed,
        });
    }
    if bytes.len() > needed {
        return Err(ExportError::TrailingBytes {
            extra: bytes.len() - needed,
        });
    }
    let stored = le_u32(bytes, crc_at);
    let computed = crc32fast::hash(&bytes[..crc_at]);
    if stored != computed {
        return Err(ExportError::Checksum { stored, computed });
    }
    if version != 1 {
        return Err(ExportError::NewerExport { version });
    }
    let (payload, rest) = postcard::take_from_bytes::<ExportRecordV1>(&bytes[HEADER_LEN..crc_at])?;
    if !rest.is_empty() {
        return Err(ExportError::TrailingBytes { extra: rest.len() });
    }
    let record = Zeroizing::new(payload.record);
    let mail_password = payload.mail_password.map(Zeroizing::new);
    let (config, _) = record::decode(&record).map_err(|e| match e {
        RecordError::UnknownVersion { version } => ExportError::NewerRecord { version },
        other => ExportError::Record(other),
    })?;
    Ok(Export {
        config,
        exported_at: payload.exported_at,
        secrets: payload.secrets,
        mail_password: if payload.secrets { mail_password } else { None },
    })
}

/// What happens to the SMTP password when a plan is applied.
#[derive(PartialEq, Eq)]
pub enum MailPassword {
    /// Nothing to do: no mail channel with a user, or the box's password stays.
    Keep,
    /// The file's password is saved.
    Set(Zeroizing<String>),
    /// The channel has a user but neither the file nor the box has its password: the password
    /// file is removed and the operator is told to set it.
    Missing,
}

/// What importing an export does to the configuration in force.
pub struct Plan {
    /// The configuration once imported (already checked whole).
    pub config: Config,
    /// Datasets to create, with their properties.
    pub create: Vec<DatasetConfig>,
    /// Datasets whose properties change: the new entries.
    pub change: Vec<DatasetConfig>,
    /// Users the file brings without a password the box knows.
    pub without_password: Vec<UserName>,
    pub mail_password: MailPassword,
    /// What changes, one section after another, for the operator to read before confirming.
    pub lines: Vec<String>,
}

impl Plan {
    /// Whether applying the plan changes nothing.
    pub fn is_noop(&self, current: &Config) -> bool {
        self.config == *current && self.mail_password == MailPassword::Keep
    }
}

/// Merges `export` into `current` (see the module's documentation). `unknown_hash` gives the
/// hash of a user the file brings without one; `now` is when a task new to the box is taken
/// to have last run. Refuses a merge that is not a valid configuration.
pub fn plan(
    current: &Config,
    export: Export,
    has_mail_password: bool,
    now: u64,
    mut unknown_hash: impl FnMut() -> [u8; 16],
) -> Result<Plan, ConfigError> {
    let file = export.config;
    let mut new = current.clone();

    // Datasets: the file's are created or changed; the box's others stay.
    let mut create = Vec::new();
    let mut change = Vec::new();
    for ds in &file.datasets {
        match new.datasets.iter_mut().find(|d| d.name == ds.name) {
            Some(slot) if slot == ds => {}
            Some(slot) => {
                *slot = ds.clone();
                change.push(ds.clone());
            }
            None => {
                new.datasets.push(ds.clone());
                create.push(ds.clone());
            }
        }
    }

    // Users: the file's, with the box's hash for those it knows when the file has none.
    let mut without_password = Vec::new();
    new.users = file.users.clone();
    if !export.secrets {
        for user in &mut new.users {
            match current.user(&user.name) {
                Some(known) => user.nt_hash = known.nt_hash,
                None => {
                    user.nt_hash = unknown_hash();
                    without_password.push(user.name.clone());
                }
            }
        }
    }
    new.groups = file.groups.clone();
    new.nfs_shares = file.nfs_shares.clone();
    new.smb = file.smb.clone();
    new.smb_shares = file.smb_shares.clone();
    // Tasks: a task the box runs already keeps its last run; a new one starts now.
    new.snapshot_tasks = file
        .snapshot_tasks
        .iter()
        .map(|t| {
            let mut task = t.clone();
            task.last_run = current
                .snapshot_tasks
                .iter()
                .find(|c| {
                    c.id == t.id
                        && c.dataset == t.dataset
                        && c.schedule == t.schedule
                        && c.retention == t.retention
                })
                .map_or(now, |c| c.last_run);
            task
        })
        .collect();
    new.next_task_id = current.next_task_id.max(file.next_task_id);
    new.hostname = file.hostname.clone();
    new.network = file.network.clone();
    new.time = file.time.clone();
    new.alerts = file.alerts.clone();
    new.scrub = file.scrub;
    new.validate()?;

    let mail_password = match &new.alerts.mail {
        Some(m) if m.user.is_some() => match export.mail_password {
            Some(p) => MailPassword::Set(p),
            None => {
                let same = current
                    .alerts
                    .mail
                    .as_ref()
                    .is_some_and(|c| c.server == m.server && c.user == m.user);
                if same && has_mail_password {
                    MailPassword::Keep
                } else {
                    MailPassword::Missing
                }
            }
        },
        _ => MailPassword::Keep,
    };

    let lines = diff(current, &new, &file, &without_password, &mail_password);
    Ok(Plan {
        config: new,
        create,
        change,
        without_password,
        mail_password,
        lines,
    })
}

/// One section of the diff: `title:` then its lines, or `title: unchanged`.
fn section(out: &mut Vec<String>, title: &str, lines: Vec<String>) {
    if lines.is_empty() {
        out.push(format!("{title}: unchanged"));
    } else {
        out.push(format!("{title}:"));
        out.extend(lines.into_iter().map(|l| format!("  {l}")));
    }
}

/// Lines for a list keyed by name: `+` added, `-` removed, `~` changed (with the new value).
fn keyed<T: PartialEq>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    show: impl Fn(&T) -> String,
) -> Vec<String> {
    let mut lines = Vec::new();
    for n in new {
        match old.iter().find(|o| key(o) == key(n)) {
            None => lines.push(format!("+ {} ({})", key(n), show(n))),
            Some(o) if o != n => {
                let (was, now) = (show(o), show(n));
                if was == now {
                    lines.push(format!("~ {} ({now})", key(n)));
                } else {
                    lines.push(format!("~ {}: {was} → {now}", key(n)));
                }
            }
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|n| key(n) == key(o)) {
            lines.push(format!("- {} ({})", key(o), show(o)));
        }
    }
    lines
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn dataset_text(d: &DatasetConfig) -> String {
    format!(
        "quota {}, compression {}, owner {}:{}, mode {:04o}",
        d.quota.map_or_else(|| "none".to_owned(), |q| q.to_string()),
        d.compression,
        d.uid,
        d.gid,
        d.mode
    )
}

fn iface_text(i: &NetIface) -> String {
    match &i.method {
        NetMethod::Dhcp => "dhcp".into(),
        NetMethod::Static {
            address,
            prefix,
            gateway,
            dns,
        } => format!(
            "static {address}/{prefix}{}{}",
            gateway.map(|g| format!(" gateway {g}")).unwrap_or_default(),
            if dns.is_empty() {
                String::new()
            } else {
                format!(" dns {}", list(dns))
            }
        ),
    }
}

/// The diff the operator confirms: every section, in a fixed order.
fn diff(
    current: &Config,
    new: &Config,
    file: &Config,
    without_password: &[UserName],
    mail_password: &MailPassword,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(pool) = &file.pool {
        let uuid: String = pool.uuid.iter().map(|b| format!("{b:02x}")).collect();
        out.push(format!(
            "pool: stays {} (the file comes from pool {} {uuid}; the pool is not imported)",
            current.pool.as_ref().map_or("-", |p| p.name.as_str()),
            pool.name
        ));
    }
    let mut lines = keyed(
        &current.datasets,
        &new.datasets,
        |d| d.name.to_string(),
        dataset_text,
    );
    for d in &current.datasets {
        if !file.datasets.iter().any(|f| f.name == d.name) {
            lines.push(format!("= {} (kept, not in the file)", d.name));
        }
    }
    section(&mut out, "datasets", lines);
    let mut lines = keyed(
        &current.nfs_shares,
        &new.nfs_shares,
        |s| format!("nfs {}", s.dataset),
        |s| {
            format!(
                "clients {}, {}, squash {}{}",
                if s.clients.is_empty() {
                    "*".into()
                } else {
                    list(&s.clients)
                },
                if s.read_only { "ro" } else { "rw" },
                match s.squash {
                    Squash::RootToNobody => "root→nobody".to_owned(),
                    Squash::None => "none".to_owned(),
                    Squash::MapRoot { uid, gid } => format!("root→{uid}:{gid}"),
                    Squash::MapAll { uid, gid } => format!("all→{uid}:{gid}"),
                },
                if s.insecure { ", insecure" } else { "" }
            )
        },
    );
    lines.extend(keyed(
        &current.smb_shares,
        &new.smb_shares,
        |s| format!("smb {}", s.name),
        |s| {
            format!(
                "dataset {}, users {}, read-only users {}, {}{}",
                s.dataset,
                list(&s.valid_users),
                list(&s.read_only_users),
                if s.read_only { "ro" } else { "rw" },
                if s.guest_ok { ", guest" } else { "" }
            )
        },
    ));
    if current.smb != new.smb {
        let smb = |s: &crate::config::sharing::SmbGlobal| {
            format!(
                "workgroup {}, min protocol {:?}, signing {:?}, encryption {:?}",
                s.workgroup, s.min_protocol, s.signing, s.encryption
            )
        };
        let (was, now) = (smb(&current.smb), smb(&new.smb));
        if was == now {
            lines.push("~ smb settings (the server's domain SID)".into());
        } else {
            lines.push(format!("~ smb settings: {was} → {now}"));
        }
    }
    section(&mut out, "shares", lines);
    let mut lines = keyed(
        &current.users,
        &new.users,
        |u| u.name.to_string(),
        |u| format!("uid {}, gid {}, groups {}", u.uid, u.gid, list(&u.groups)),
    );
    for name in without_password {
        lines.push(format!(
            "! {name} has no password on this box: set one with 'user passwd {name}'"
        ));
    }
    section(&mut out, "users", lines);
    section(
        &mut out,
        "groups",
        keyed(
            &current.groups,
            &new.groups,
            |g| g.name.to_string(),
            |g| format!("gid {}", g.gid),
        ),
    );
    let task_key = |t: &crate::config::snapshots::SnapshotTask| {
        let mut t = t.clone();
        t.last_run = 0;
        t
    };
    let old_tasks: Vec<_> = current.snapshot_tasks.iter().map(task_key).collect();
    let new_tasks: Vec<_> = new.snapshot_tasks.iter().map(task_key).collect();
    section(
        &mut out,
        "snapshot tasks",
        keyed(
            &old_tasks,
            &new_tasks,
            |t| format!("task {}", t.id),
            |t| {
                format!(
                    "{} {}, {}",
                    t.dataset,
                    t.schedule.in_zone(&new.time.zone),
                    t.retention
                )
            },
        ),
    );
    let mut lines = Vec::new();
    if current.hostname != new.hostname {
        lines.push(format!(
            "~ host name: {} → {}",
            current.hostname, new.hostname
        ));
    }
    lines.extend(keyed(
        &current.network,
        &new.network,
        |i| i.name.clone(),
        iface_text,
    ));
    section(&mut out, "network", lines);
    let mut lines = Vec::new();
    let mail = |m: &Option<crate::config::alerting::MailChannel>| {
        m.as_ref().map_or_else(
            || "none".to_owned(),
            |m| {
                format!(
                    "to {} via {}:{} tls {}{}",
                    m.to,
                    m.server,
                    m.port,
                    m.tls.as_str(),
                    m.user
                        .as_ref()
                        .map(|u| format!(" user {u}"))
                        .unwrap_or_default()
                )
            },
        )
    };
    if current.alerts.mail != new.alerts.mail {
        lines.push(format!(
            "~ mail: {} → {}",
            mail(&current.alerts.mail),
            mail(&new.alerts.mail)
        ));
    }
    match mail_password {
        MailPassword::Set(_) => lines.push("~ mail password: the file's".into()),
        MailPassword::Missing => lines.push(
            "! the mail password is not in the file: set it again with 'alert mail ... user USER'"
                .into(),
        ),
        MailPassword::Keep => {}
    }
    let hook = |w: &Option<crate::config::alerting::WebhookChannel>| {
        w.as_ref().map_or_else(
            || "none".to_owned(),
            |w| format!("{} ({})", w.url, w.format.as_str()),
        )
    };
    if current.alerts.webhook != new.alerts.webhook {
        lines.push(format!(
            "~ webhook: {} → {}",
            hook(&current.alerts.webhook),
            hook(&new.alerts.webhook)
        ));
    }
    for (what, was, now) in [
        (
            "SATA/SAS temperature limit",
            current.alerts.hdd_temp_limit,
            new.alerts.hdd_temp_limit,
        ),
        (
            "NVMe temperature limit",
            current.alerts.nvme_temp_limit,
            new.alerts.nvme_temp_limit,
        ),
    ] {
        if was != now {
            lines.push(format!("~ {what}: {was} °C → {now} °C"));
        }
    }
    section(&mut out, "alerts", lines);
    let mut lines = Vec::new();
    if current.time.zone != new.time.zone {
        lines.push(format!("~ zone: {} → {}", current.time.zone, new.time.zone));
    }
    if current.time.servers != new.time.servers {
        let servers = |s: &[crate::config::time::TimeServer]| {
            if s.is_empty() {
                "default".to_owned()
            } else {
                list(s)
            }
        };
        lines.push(format!(
            "~ servers: {} → {}",
            servers(&current.time.servers),
            servers(&new.time.servers)
        ));
    }
    if current.scrub != new.scrub {
        lines.push(format!(
            "~ scrub: {} → {}",
            current.scrub.in_zone(&new.time.zone),
            new.scrub.in_zone(&new.time.zone)
        ));
    }
    section(&mut out, "time", lines);
    out
}

/// The datasets of `config` that the export names, for a message.
pub fn names(datasets: &[DatasetConfig]) -> String {
    let names: Vec<&DatasetName> = datasets.iter().map(|d| &d.name).collect();
    list(&names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::accounts::{nt_hash, GroupConfig, GroupName, UserConfig};
    use crate::config::model::PoolConfig;
    use crate::config::names::{Compression, PoolName, Size};
    use crate::config::sharing::{NfsShare, ShareName, SmbShare};
    use crate::config::snapshots::{Retention, Schedule, SnapshotTask};

    fn ds(name: &str) -> DatasetName {
        DatasetName::parse(name).unwrap()
    }

    fn user(name: &str, uid: u32) -> UserConfig {
        UserConfig {
            name: UserName::parse(name).unwrap(),
            uid,
            gid: uid,
            groups: vec![GroupName::parse("media").unwrap()],
            nt_hash: nt_hash(name),
        }
    }

    /// A box with a pool, datasets, shares, users, a group and a task.
    fn source() -> Config {
        Config {
            pool: Some(PoolConfig {
                name: PoolName::parse("tank").unwrap(),
                uuid: [7; 16],
            }),
            datasets: vec![
                DatasetConfig {
                    quota: Some(Size::from_bytes(1 << 30)),
                    compression: Compression::Zstd,
                    gid: 1000,
                    mode: 0o2775,
                    ..DatasetConfig::new(ds("media"))
                },
                DatasetConfig::new(ds("vms")),
            ],
            groups: vec![GroupConfig {
                name: GroupName::parse("media").unwrap(),
                gid: 1000,
            }],
            users: vec![user("alice", 1001), user("bob", 1002)],
            nfs_shares: vec![NfsShare::new(ds("vms"))],
            smb_shares: vec![SmbShare::new(
                ShareName::parse("media").unwrap(),
                ds("media"),
            )],
            snapshot_tasks: vec![SnapshotTask {
                id: 1,
                dataset: ds("media"),
                schedule: Schedule::Hours(1),
                retention: Retention::Last(48),
                last_run: 1_700_000_000,
            }],
            next_task_id: 2,
            ..Config::default()
        }
    }

    /// A fresh box: another pool, one dataset of the same name and the user alice.
    fn fresh() -> Config {
        let mut alice = user("alice", 1000);
        alice.groups.clear();
        alice.nt_hash = nt_hash("new-box");
        Config {
            pool: Some(PoolConfig {
                name: PoolName::parse("tank").unwrap(),
                uuid: [9; 16],
            }),
            datasets: vec![
                DatasetConfig::new(ds("media")),
                DatasetConfig::new(ds("inbox")),
            ],
            users: vec![alice],
            ..Config::default()
        }
    }

    #[test]
    fn round_trip_with_and_without_secrets() {
        let config = source();
        let bytes = encode(&config, true, Some("smtp-pw"), 42).unwrap();
        assert!(bytes.starts_with(b"TANKEXP\0"));
        let export = decode(&bytes).unwrap();
        assert_eq!(export.config, config);
        assert!(export.secrets);
        assert_eq!(export.exported_at, 42);
        assert_eq!(
            export.mail_password.as_deref().map(String::as_str),
            Some("smtp-pw")
        );

        let bytes = encode(&config, false, Some("smtp-pw"), 42).unwrap();
        let export = decode(&bytes).unwrap();
        assert!(!export.secrets && export.mail_password.is_none());
        assert!(export.config.users.iter().all(|u| u.nt_hash == [0; 16]));
        let mut without = config.clone();
        for u in &mut without.users {
            u.nt_hash = [0; 16];
        }
        assert_eq!(export.config, without);
        // Neither a hash nor the password is anywhere in the bytes.
        for secret in [&nt_hash("alice")[..], b"smtp-pw"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret));
        }
    }

    #[test]
    fn damage_is_classified() {
        let good = encode(&source(), false, None, 1).unwrap();
        assert!(matches!(
            decode(&good[..10]),
            Err(ExportError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(ExportError::Truncated { .. })
        ));
        let mut longer = good.to_vec();
        longer.push(0);
        assert!(matches!(
            decode(&longer),
            Err(ExportError::TrailingBytes { extra: 1 })
        ));
        for at in MAGIC.len()..good.len() {
            let mut flipped = good.to_vec();
            flipped[at] ^= 0x10;
            match decode(&flipped) {
                Err(ExportError::Checksum { .. })
                | Err(ExportError::Truncated { .. })
                | Err(ExportError::TrailingBytes { .. }) => {}
                other => panic!("flip at byte {at}: {other:?}"),
            }
        }
        let message = decode(&[]).unwrap_err().to_string();
        assert!(message.contains("truncated: it has 0 bytes"), "{message}");
    }

    #[test]
    fn foreign_newer_and_store_files_are_refused() {
        let message = decode(b"PK\x03\x04 a zip file, not an export")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("not a Tank configuration export"),
            "{message}"
        );
        let generation = record::encode(&source(), 5).unwrap();
        let message = decode(&generation).unwrap_err().to_string();
        assert!(message.contains("store generation"), "{message}");

        let reseal = |mut bytes: Vec<u8>| {
            let at = bytes.len() - TRAILER_LEN;
            let crc = crc32fast::hash(&bytes[..at]);
            bytes[at..].copy_from_slice(&crc.to_le_bytes());
            bytes
        };
        let mut newer = encode(&source(), false, None, 1).unwrap().to_vec();
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        let message = decode(&reseal(newer)).unwrap_err().to_string();
        assert!(
            message.contains("format version 2") && message.contains("update"),
            "{message}"
        );

        // An intact envelope around a record of a version this appliance does not know.
        let mut inner = record::encode(&source(), 0).unwrap();
        inner[8..12].copy_from_slice(&(record::CURRENT_VERSION + 1).to_le_bytes());
        let inner = reseal(inner);
        let wrap = |record: Vec<u8>| {
            let payload = postcard::to_allocvec(&ExportRecordV1 {
                exported_at: 1,
                secrets: false,
                mail_password: None,
                record,
            })
            .unwrap();
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&payload);
            bytes.extend_from_slice(&[0; 4]);
            reseal(bytes)
        };
        assert!(matches!(
            decode(&wrap(inner)),
            Err(ExportError::NewerRecord { .. })
        ));

        // Content that fails validation: a share on a dataset the file does not have.
        let mut record = record::v3::ConfigRecordV3::from(&source());
        record.base.nfs_shares[0].dataset = "gone".into();
        let payload = postcard::to_allocvec(&record).unwrap();
        let mut inner = record::MAGIC.to_vec();
        inner.extend_from_slice(&3u32.to_le_bytes());
        inner.extend_from_slice(&0u64.to_le_bytes());
        inner.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        inner.extend_from_slice(&payload);
        inner.extend_from_slice(&[0; 4]);
        let message = decode(&wrap(reseal(inner))).unwrap_err().to_string();
        assert!(
            message.contains("not valid") && message.contains("\"gone\""),
            "{message}"
        );
    }

    #[test]
    fn plan_onto_a_fresh_box() {
        let bytes = encode(&source(), false, None, 1).unwrap();
        let current = fresh();
        let plan = plan(&current, decode(&bytes).unwrap(), false, 500, || [0xab; 16]).unwrap();
        let new = &plan.config;
        // The pool stays the box's; its dataset not in the file stays too.
        assert_eq!(new.pool, current.pool);
        let names: Vec<&str> = new.datasets.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["media", "inbox", "vms"]);
        assert_eq!(new.dataset(&ds("media")), source().dataset(&ds("media")));
        assert_eq!(names_of(&plan.create), ["vms"]);
        assert_eq!(names_of(&plan.change), ["media"]);
        // alice keeps this box's password; bob has none anyone knows.
        assert_eq!(
            new.user(&UserName::parse("alice").unwrap())
                .unwrap()
                .nt_hash,
            nt_hash("new-box")
        );
        assert_eq!(
            new.user(&UserName::parse("bob").unwrap()).unwrap().nt_hash,
            [0xab; 16]
        );
        assert_eq!(plan.without_password, [UserName::parse("bob").unwrap()]);
        assert_eq!(new.groups, source().groups);
        assert_eq!(new.nfs_shares, source().nfs_shares);
        assert_eq!(new.smb_shares, source().smb_shares);
        assert_eq!(new.snapshot_tasks[0].last_run, 500);
        assert_eq!(new.next_task_id, 2);

        let text = plan.lines.join("\n");
        for says in [
            "pool: stays tank (the file comes from pool tank 0707",
            "datasets:\n  ~ media: quota none, compression zstd, owner 0:0, mode 0755 → quota 1.0 GiB",
            "  + vms (quota none",
            "  = inbox (kept, not in the file)",
            "shares:\n  + nfs vms (clients *, rw, squash root→nobody)",
            "  + smb media (dataset media",
            "users:\n  ~ alice: uid 1000, gid 1000, groups - → uid 1001, gid 1001, groups media",
            "  + bob (uid 1002",
            "  ! bob has no password on this box: set one with 'user passwd bob'",
            "groups:\n  + media (gid 1000)",
            "snapshot tasks:\n  + task 1 (media every hour, keep 48)",
            "network: unchanged",
            "alerts: unchanged",
            "time: unchanged",
        ] {
            assert!(text.contains(says), "{says:?} not in:\n{text}");
        }
        assert!(!plan.is_noop(&current));
    }

    fn names_of(list: &[DatasetConfig]) -> Vec<&str> {
        list.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn importing_the_same_configuration_changes_nothing() {
        let config = source();
        let bytes = encode(&config, true, None, 1).unwrap();
        let plan = plan(
            &config,
            decode(&bytes).unwrap(),
            false,
            9,
            || unreachable!(),
        )
        .unwrap();
        assert!(plan.is_noop(&config), "{:#?}", plan.lines);
        assert!(plan.create.is_empty() && plan.change.is_empty());
        assert!(plan
            .lines
            .iter()
            .all(|l| l.ends_with("unchanged") || l.starts_with("pool:")));
        // Without secrets, every user the box has keeps its own hash: still nothing to do.
        let bytes = encode(&config, false, None, 1).unwrap();
        let plan = super::plan(
            &config,
            decode(&bytes).unwrap(),
            false,
            9,
            || unreachable!(),
        )
        .unwrap();
        assert!(plan.is_noop(&config));
    }

    #[test]
    fn the_mail_password_travels_only_with_secrets() {
        use crate::config::alerting::{Host, MailAddress, MailChannel, MailTls};
        let mut config = source();
        config.alerts.mail = Some(MailChannel {
            to: MailAddress::parse("o@example.com").unwrap(),
            server: Host::parse("smtp.example.com").unwrap(),
            port: 587,
            from: None,
            user: Some("o".into()),
            tls: MailTls::StartTls,
        });
        let with = encode(&config, true, Some("pw"), 1).unwrap();
        let p = plan(&fresh(), decode(&with).unwrap(), false, 1, || [1; 16]).unwrap();
        assert!(matches!(&p.mail_password, MailPassword::Set(pw) if pw.as_str() == "pw"));
        let without = encode(&config, false, Some("pw"), 1).unwrap();
        let p = plan(&fresh(), decode(&without).unwrap(), false, 1, || [1; 16]).unwrap();
        assert!(p.mail_password == MailPassword::Missing);
        assert!(p
            .lines
            .join("\n")
            .contains("the mail password is not in the file"));
        // The same channel on the box with its password: kept.
        let p = plan(&config, decode(&without).unwrap(), true, 1, || [1; 16]).unwrap();
        assert!(p.mail_password == MailPassword::Keep);
    }

    #[test]
    fn a_merge_that_breaks_the_rules_is_refused() {
        // The box has a group with the gid the file gives a user.
        let mut file = source();
        file.groups.clear();
        for u in &mut file.users {
            u.groups.clear();
        }
        let mut current = fresh();
        current.datasets.push(DatasetConfig::new(ds("x")));
        current.snapshot_tasks = vec![SnapshotTask {
            id: 7,
            dataset: ds("x"),
            schedule: Schedule::Hours(1),
            retention: Retention::Last(1),
            last_run: 0,
        }];
        // Tasks are replaced by the file's, so this merge is fine ...
        let bytes = encode(&file, false, None, 1).unwrap();
        assert!(plan(&current, decode(&bytes).unwrap(), false, 1, || [1; 16]).is_ok());
        // ... but a box without a pool cannot take datasets.
        current.pool = None;
        current.datasets.clear();
        current.snapshot_tasks.clear();
        let e = plan(&current, decode(&bytes).unwrap(), false, 1, || [1; 16])
            .err()
            .unwrap();
        assert!(e.to_string().contains("no pool"), "{e}");
    }
}
