//! The closed set of requests the console can make, and the typed replies it renders.
//!
//! The engine only ever sees these types: text from a user is parsed into them at the edge
//! ([`super::parse`]) and replies are rendered back to text by [`super::render`].

use std::net::Ipv4Addr;

use zeroize::Zeroizing;

use crate::config::sharing::{Encryption, Signing, SmbProtocol};
use crate::config::{
    ClientSpec, Compression, DatasetName, GroupName, PoolName, Principal, Retention, Schedule,
    ScrubSchedule, ShareName, Size, SnapshotName, UserName,
};
use crate::net::LinkStatus;
use crate::storage::{DatasetInfo, PoolStatus};
use crate::system::disks::Disk;
use crate::system::health::Reading;

/// A host name, valid by [`crate::config::check_hostname`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostName(String);

impl HostName {
    /// Checks the name by the configuration's rules.
    pub fn parse(text: &str) -> Result<Self, String> {
        crate::config::check_hostname(text).map_err(|e| e.to_string())?;
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A network interface name, valid by [`crate::config::check_iface_name`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceName(String);

impl IfaceName {
    /// Checks the name by the configuration's rules.
    pub fn parse(text: &str) -> Result<Self, String> {
        crate::config::check_iface_name(text).map_err(|e| e.to_string())?;
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A kernel disk name such as `sda` or `nvme0n1`: 1 to 32 lowercase letters and digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskName(String);

impl DiskName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 32
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(format!(
                "'{text}' is not a disk name (e.g. sda, nvme0n1); 'disks' lists them"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The member a replace takes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberRef {
    /// The member that is not present.
    Missing,
    Devid(u64),
    Disk(DiskName),
}

/// Pool changes and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolRequest {
    Status,
    /// `confirmations` holds what the operator typed for each disk that needs erasing.
    Create {
        name: PoolName,
        disks: Vec<DiskName>,
        force: bool,
        confirmations: Vec<String>,
    },
    Replace {
        old: MemberRef,
        new: DiskName,
        force: bool,
        confirmations: Vec<String>,
    },
    /// Mount the pool named by name or UUID when several are on the disks.
    Import(String),
    ScrubStart,
    ScrubStatus,
    ScrubCancel,
    ScrubSchedule(ScrubSchedule),
}

/// Dataset properties a command sets; `None` leaves a property as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatasetProps {
    /// `Some(None)` removes the quota.
    pub quota: Option<Option<Size>>,
    pub compression: Option<Compression>,
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
}

impl DatasetProps {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Dataset changes and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetRequest {
    List,
    Create {
        name: DatasetName,
        props: DatasetProps,
    },
    Set {
        name: DatasetName,
        props: DatasetProps,
    },
    Destroy {
        name: DatasetName,
        force: bool,
        confirmed: bool,
    },
}

/// Files inside datasets (the console's smoke-test tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileRequest {
    /// Writes `size` bytes of the test pattern seeded with `seed`.
    Write {
        path: String,
        size: u64,
        seed: String,
    },
    Checksum {
        path: String,
    },
    List {
        path: String,
    },
    Remove {
        path: String,
    },
}

/// Network changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkRequest {
    Show,
    /// Opens the diagnostic TCP sink and source for a while; the source sends `source_bytes`.
    Perf {
        source_bytes: u64,
    },
    Dhcp {
        iface: IfaceName,
    },
    Static {
        iface: IfaceName,
        address: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        dns: Vec<Ipv4Addr>,
    },
}

/// A password typed at the console (never echoed), kept only until the engine hashes it; its
/// memory is wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Zeroizing<String>);

impl Secret {
    pub fn new(password: &str) -> Secret {
        Secret(Zeroizing::new(password.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A user named at the console, or numeric ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRef {
    User(UserName),
    Ids { uid: u32, gid: u32 },
}

/// Who an NFS client's users become, as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SquashSpec {
    RootToNobody,
    None,
    MapRoot(AccountRef),
    MapAll(AccountRef),
}

/// NFS share options a command sets; `None` leaves an option as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NfsOptions {
    pub clients: Option<Vec<ClientSpec>>,
    pub read_only: Option<bool>,
    pub squash: Option<SquashSpec>,
    pub insecure: Option<bool>,
}

/// NFS share changes and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NfsRequest {
    List,
    Add {
        dataset: DatasetName,
        options: NfsOptions,
    },
    Set {
        dataset: DatasetName,
        options: NfsOptions,
    },
    Remove {
        dataset: DatasetName,
    },
}

/// SMB share options a command sets; `None` leaves an option as it is; `Some(None)` clears a
/// forced user or group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmbShareOptions {
    pub dataset: Option<DatasetName>,
    pub comment: Option<String>,
    pub read_only: Option<bool>,
    pub valid_users: Option<Vec<Principal>>,
    pub read_only_users: Option<Vec<Principal>>,
    pub guest_ok: Option<bool>,
    pub hosts_allow: Option<Vec<ClientSpec>>,
    pub hosts_deny: Option<Vec<ClientSpec>>,
    pub force_user: Option<Option<UserName>>,
    pub force_group: Option<Option<GroupName>>,
    pub create_mask: Option<u32>,
    pub directory_mask: Option<u32>,
    pub browseable: Option<bool>,
    pub veto: Option<Vec<String>>,
}

/// The SMB server's settings a command changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmbGlobalOptions {
    pub workgroup: Option<String>,
    pub min_protocol: Option<SmbProtocol>,
    pub signing: Option<Signing>,
    pub encryption: Option<Encryption>,
}

/// SMB server and share changes and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmbRequest {
    Show,
    Set(SmbGlobalOptions),
    ShareList,
    ShareAdd {
        name: ShareName,
        options: Box<SmbShareOptions>,
    },
    ShareSet {
        name: ShareName,
        options: Box<SmbShareOptions>,
    },
    ShareRemove {
        name: ShareName,
    },
}

/// User changes and queries. A request that needs a password is sent without one first; the
/// engine checks it and asks for the password ([`Reply::AskSecret`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRequest {
    List,
    Add {
        name: UserName,
        uid: Option<u32>,
        groups: Vec<GroupName>,
        password: Option<Secret>,
    },
    Passwd {
        name: UserName,
        password: Option<Secret>,
    },
    Set {
        name: UserName,
        groups: Vec<GroupName>,
    },
    Remove {
        name: UserName,
    },
}

/// Group changes and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRequest {
    List,
    Add { name: GroupName, gid: Option<u32> },
    Remove { name: GroupName },
}

/// Snapshot changes and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotRequest {
    List {
        dataset: Option<DatasetName>,
    },
    Create {
        dataset: DatasetName,
        name: SnapshotName,
    },
    Destroy {
        dataset: DatasetName,
        name: SnapshotName,
    },
    Rollback {
        dataset: DatasetName,
        name: SnapshotName,
        confirmed: bool,
    },
    Clone {
        dataset: DatasetName,
        name: SnapshotName,
        target: DatasetName,
    },
    TaskList,
    TaskAdd {
        dataset: DatasetName,
        schedule: Schedule,
        retention: Retention,
    },
    TaskRemove {
        id: u32,
    },
}

/// Alert channels, limits and the alert lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertRequest {
    /// Active alerts and the latest cleared ones (`alert list`).
    List,
    /// Every alert kept, newest first (`log alerts`).
    History,
    /// The channels and each one's last delivery (`alert show`).
    Show,
    /// A test alert through every channel, with each result (`alert test`).
    Test,
    /// Sets the mail channel; with a user, the password is asked for without echo.
    Mail {
        channel: crate::config::alerting::MailChannel,
        password: Option<Secret>,
    },
    Webhook(crate::config::alerting::WebhookChannel),
    Remove(AlertChannel),
    /// Ends an alert the operator has seen (`alert dismiss ID`).
    Dismiss(String),
    /// The temperature above which a disk raises an alert.
    Temperature {
        nvme: bool,
        limit: u8,
    },
}

/// A delivery channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertChannel {
    Mail,
    Webhook,
}

/// Configuration backups (`system config export|import`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigRequest {
    /// Writes the whole configuration to `path` (`DATASET/relative/path`); users' NT hashes
    /// and the mail password only with `secrets`.
    Export { path: String, secrets: bool },
    /// Reads an export from `path` and shows what it changes; `seen` is the digest of the file
    /// and the configuration the operator was shown, `confirmed` their answer.
    Import {
        path: String,
        seen: Option<[u8; 32]>,
        confirmed: bool,
    },
}

/// Everything the console can ask of the appliance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Alert(AlertRequest),
    Status,
    /// `system version`.
    Version,
    Disks,
    /// Sequential read speed of a disk (`disk readtest`).
    DiskReadTest {
        disk: DiskName,
        bytes: u64,
    },
    /// The health of every disk, or all of one disk's (`disk health [DISK]`).
    DiskHealth(Option<DiskName>),
    /// Starts a short or long self-test (`disk test DISK short|long`).
    DiskTest {
        disk: DiskName,
        long: bool,
    },
    Log {
        lines: usize,
    },
    /// A line of the user's own in the log (`log mark TEXT`).
    LogMark(String),
    /// The lines of boot `-back` (0 is this one), the last `lines` of them when given
    /// (`log boot -N [LINES]`).
    LogBoot {
        back: u32,
        lines: Option<usize>,
    },
    /// The boots the log keeps (`log boots`).
    LogBoots,
    Pool(PoolRequest),
    Dataset(DatasetRequest),
    File(FileRequest),
    Nfs(NfsRequest),
    Smb(SmbRequest),
    User(UserRequest),
    Group(GroupRequest),
    Snapshot(SnapshotRequest),
    Network(NetworkRequest),
    /// `time`, `time zone`, `time server`.
    Time(super::time::TimeRequest),
    Hostname(Option<HostName>),
    /// `system config export|import`.
    Config(ConfigRequest),
    Reboot,
    PowerOff,
}

impl Request {
    /// The request again, with the operator's answer to a confirmation question added.
    pub fn with_confirmation(self, answer: String) -> Request {
        match self {
            Request::Pool(PoolRequest::Create {
                name,
                disks,
                force,
                mut confirmations,
            }) => {
                confirmations.push(answer);
                Request::Pool(PoolRequest::Create {
                    name,
                    disks,
                    force,
                    confirmations,
                })
            }
            Request::Pool(PoolRequest::Replace {
                old,
                new,
                force,
                mut confirmations,
            }) => {
                confirmations.push(answer);
                Request::Pool(PoolRequest::Replace {
                    old,
                    new,
                    force,
                    confirmations,
                })
            }
            Request::Dataset(DatasetRequest::Destroy { name, force, .. }) => {
                Request::Dataset(DatasetRequest::Destroy {
                    name,
                    force,
                    confirmed: true,
                })
            }
            Request::Config(ConfigRequest::Import { path, seen, .. }) => {
                Request::Config(ConfigRequest::Import {
                    path,
                    seen,
                    confirmed: true,
                })
            }
            Request::Snapshot(SnapshotRequest::Rollback { dataset, name, .. }) => {
                Request::Snapshot(SnapshotRequest::Rollback {
                    dataset,
                    name,
                    confirmed: true,
                })
            }
            other => other,
        }
    }

    /// The request again, with the password the operator typed (twice) filled in.
    pub fn with_secret(self, secret: Secret) -> Request {
        match self {
            Request::User(UserRequest::Add {
                name, uid, groups, ..
            }) => Request::User(UserRequest::Add {
                name,
                uid,
                groups,
                password: Some(secret),
            }),
            Request::User(UserRequest::Passwd { name, .. }) => Request::User(UserRequest::Passwd {
                name,
                password: Some(secret),
            }),
            Request::Alert(AlertRequest::Mail { channel, .. }) => {
                Request::Alert(AlertRequest::Mail {
                    channel,
                    password: Some(secret),
                })
            }
            other => other,
        }
    }
}

/// Rows of text under column headers, for lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// Shown instead of the table when there are no rows.
    pub empty: String,
    /// Lines after the table (warnings, notes).
    pub notes: Vec<String>,
}

/// One line of the services table.
#[derive(Clone, Debug)]
pub struct ServiceLine {
    pub name: &'static str,
    pub state: String,
}

/// Everything `status` shows.
#[derive(Clone, Debug)]
pub struct StatusReport {
    pub version: &'static str,
    pub board: &'static str,
    pub kernel: String,
    pub hostname: String,
    pub uptime_secs: f64,
    /// Guest uptime when the init started and when the prompt first appeared.
    pub init_started_at: f64,
    pub prompt_at: Option<f64>,
    pub mem_total_kib: u64,
    pub mem_available_kib: u64,
    pub init_rss_kib: u64,
    pub entropy_ready: bool,
    pub disks: Vec<Disk>,
    /// Which pool each disk belongs to, by disk name.
    pub disk_roles: Vec<(String, String)>,
    pub pool: Option<PoolStatus>,
    pub links: Vec<LinkStatus>,
    /// The panics of supervised threads since boot, as one line; `None` when there were none.
    pub internal_errors: Option<String>,
    pub services: Vec<ServiceLine>,
    pub alerts: Vec<String>,
}

/// What the appliance answers.
#[derive(Debug)]
pub enum Reply {
    /// A one-line confirmation.
    Done(String),
    Status(Box<StatusReport>),
    Disks(Vec<Disk>, Vec<(String, String)>),
    Network(Vec<LinkStatus>),
    Pool(Box<PoolStatus>),
    Datasets(Vec<DatasetInfo>),
    /// The request needs the operator to type one of `answers`; the console asks `question`
    /// and sends `request` again with the answer filled in.
    Confirm {
        question: String,
        answers: Vec<String>,
        request: Box<Request>,
    },
    Log(Vec<String>),
    Table(Table),
    /// `disk health`: one line per disk.
    DiskHealth(Vec<Reading>),
    /// `disk health DISK`: everything about one disk.
    DiskHealthDetail(Box<Reading>),
    /// The request needs a password: the console asks for it twice without echo and sends
    /// `request` again with it ([`Request::with_secret`]).
    AskSecret {
        prompt: String,
        request: Box<Request>,
    },
    /// `time`.
    Time(Box<super::time::TimeReport>),
    /// `system version`.
    Version(Box<super::version::VersionReport>),
}
