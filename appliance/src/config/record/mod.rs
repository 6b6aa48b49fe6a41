//! The persisted form of the configuration: versioned record types and the envelope that
//! carries them. Only this module knows the bytes on disk.
//!
//! # The envelope
//!
//! Every record file is one envelope; integers are little-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  magic "TANKCFG\0"
//!      8     4  format version (u32) of the payload: 1 = ConfigRecordV1, 2 = ConfigRecordV2,
//!                 3 = ConfigRecordV3
//!     12     8  generation (u64), the save counter of the store
//!     20     4  payload length n (u32)
//!     24     n  payload: the record, postcard-encoded
//!   24+n     4  CRC-32 (IEEE) of bytes 0 .. 24+n
//! ```
//!
//! The envelope itself never changes (a different one would get a different magic), so any
//! version of the appliance can tell a torn or bit-flipped file (checksum) from a record written
//! by newer software (unknown version).
//!
//! # Versions and migrations
//!
//! The record types (`*RecordV1` in [`v1`], `*RecordV2` in [`v2`], `*RecordV3` in [`v3`]) are
//! separate from the model
//! in [`model`](super::model) and are frozen once released: postcard encodes fields by position
//! and enum variants by index, so a record type is never reordered, and a field is never added,
//! removed or retyped. A new version reuses the frozen part records that did not change.
//!
//! [`encode`] writes version 3. [`decode`] reads version 1 by migrating `ConfigRecordV1` to
//! `ConfigRecordV2` (a `From` with the new fields' defaults: no users, shares or tasks),
//! version 2 by migrating it to `ConfigRecordV3` (default time zone UTC, no time servers, no
//! alert channels, default temperature limits), and version 3 directly. The golden tests that
//! decode saved bytes of every version must keep passing unchanged. To change the format
//! again, add `v4` the same way.

pub mod v1;
pub mod v2;
pub mod v3;
mod versions;

use thiserror::Error;

use super::model::{Config, ConfigError};
use v1::ConfigRecordV1;
use v2::ConfigRecordV2;
use v3::ConfigRecordV3;

/// The magic bytes at the start of every record file.
pub const MAGIC: [u8; 8] = *b"TANKCFG\0";

pub use versions::{CURRENT_VERSION, OLDEST_VERSION};

/// Bytes before the payload: magic, version, generation, payload length.
pub const HEADER_LEN: usize = 24;

/// Bytes after the payload: the CRC-32.
pub const TRAILER_LEN: usize = 4;

/// Why a record could not be decoded.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error(
        "the record is truncated: it has {len} bytes but needs {needed}; the save was \
         interrupted, use an older generation"
    )]
    Truncated { len: usize, needed: usize },
    #[error(
        "the record does not start with the magic \"TANKCFG\\0\" (found {found:02x?}): it is not a \
         Tank configuration record or its start is damaged"
    )]
    BadMagic { found: Vec<u8> },
    #[error(
        "the record has format version {version}, which this appliance does not know (it reads \
         versions {oldest} to {newest}): if newer software wrote it, update the appliance",
        oldest = OLDEST_VERSION,
        newest = CURRENT_VERSION
    )]
    UnknownVersion { version: u32 },
    #[error(
        "the record's checksum does not match (stored {stored:08x}, computed {computed:08x}): \
         the file is damaged, use an older generation"
    )]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error(
        "the record has {extra} unexpected bytes after its checksum: the file is damaged, use \
         an older generation"
    )]
    TrailingBytes { extra: usize },
    #[error("the version {version} record's content is not valid: {source}")]
    InvalidContent {
        version: u32,
        #[source]
        source: ContentError,
    },
}

/// Why a record whose envelope is intact does not give a valid [`Config`].
#[derive(Debug, Error)]
pub enum ContentError {
    #[error("the payload does not decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("{extra} bytes are left over after the payload")]
    TrailingPayload { extra: usize },
    #[error("{field}: {source}")]
    Field {
        field: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Why a configuration could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    #[error("the configuration is not valid, so it is not saved: {0}")]
    Invalid(#[from] ConfigError),
    #[error("the configuration could not be serialized: {0}")]
    Serialize(#[from] postcard::Error),
    #[error("the configuration record is {len} bytes, more than the format's 4 GiB limit")]
    TooLarge { len: usize },
}

/// Wraps a value's parse error with the field it came from.
fn field<T, E>(name: impl FnOnce() -> String, result: Result<T, E>) -> Result<T, ContentError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    result.map_err(|source| ContentError::Field {
        field: name(),
        source: Box::new(source),
    })
}

/// Encodes `config` as a current-version record of generation `generation`. Refuses an
/// invalid configuration, which [`decode`] would refuse to read back.
pub fn encode(config: &Config, generation: u64) -> Result<Vec<u8>, EncodeError> {
    config.validate()?;
    let payload = postcard::to_allocvec(&ConfigRecordV3::from(config))?;
    let len =
        u32::try_from(payload.len()).map_err(|_| EncodeError::TooLarge { len: payload.len() })?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&CURRENT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&generation.to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&payload);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

/// Reads a little-endian integer of `N` bytes at `at`; the caller has checked the length.
fn le<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(slice) = bytes.get(at..at + N) {
        out.copy_from_slice(slice);
    }
    out
}

/// Decodes a record of any known version into the current model; returns it with its
/// generation.
pub fn decode(bytes: &[u8]) -> Result<(Config, u64), RecordError> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(RecordError::BadMagic {
            found: bytes[..magic_len].to_vec(),
        });
    }
    let minimum = HEADER_LEN + TRAILER_LEN;
    if bytes.len() < minimum {
        return Err(RecordError::Truncated {
            len: bytes.len(),
            needed: minimum,
        });
    }
    let version = u32::from_le_bytes(le(bytes, 8));
    let generation = u64::from_le_bytes(le(bytes, 12));
    let payload_len = u32::from_le_bytes(le(bytes, 20));
    // usize is at least 32 bits on every target the appliance runs on; saturate otherwise.
    let payload_len = usize::try_from(payload_len).unwrap_or(usize::MAX);
    let crc_at = HEADER_LEN.saturating_add(payload_len);
    let needed = crc_at.saturating_add(TRAILER_LEN);
    if bytes.len() < needed {
        return Err(RecordError::Truncated {
            len: bytes.len(),
            needed,
        });
    }
    if bytes.len() > needed {
        return Err(RecordError::TrailingBytes {
            extra: bytes.len() - needed,
        });
    }
    let stored = u32::from_le_bytes(le(bytes, crc_at));
    let computed = crc32fast::hash(&bytes[..crc_at]);
    if stored != computed {
        return Err(RecordError::ChecksumMismatch { stored, computed });
    }
    let payload = &bytes[HEADER_LEN..crc_at];
    let invalid = |source| RecordError::InvalidContent { version, source };
    let config = match version {
        1 => decode_v1(payload).map_err(invalid)?,
        2 => decode_v2(payload).map_err(invalid)?,
        3 => decode_v3(payload).map_err(invalid)?,
        _ => return Err(RecordError::UnknownVersion { version }),
    };
    Ok((config, generation))
}

fn decode_v1(payload: &[u8]) -> Result<Config, ContentError> {
    let (record, rest) = postcard::take_from_bytes::<ConfigRecordV1>(payload)?;
    if !rest.is_empty() {
        return Err(ContentError::TrailingPayload { extra: rest.len() });
    }
    Config::try_from(ConfigRecordV3::from(ConfigRecordV2::from(record)))
}

fn decode_v2(payload: &[u8]) -> Result<Config, ContentError> {
    let (record, rest) = postcard::take_from_bytes::<ConfigRecordV2>(payload)?;
    if !rest.is_empty() {
        return Err(ContentError::TrailingPayload { extra: rest.len() });
    }
    Config::try_from(ConfigRecordV3::from(record))
}

fn decode_v3(payload: &[u8]) -> Result<Config, ContentError> {
    let (record, rest) = postcard::take_from_bytes::<ConfigRecordV3>(payload)?;
    if !rest.is_empty() {
        return Err(ContentError::TrailingPayload { extra: rest.len() });
    }
    Config::try_from(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::accounts::{GroupConfig, GroupName, UserConfig, UserName};
    use crate::config::model::{
        DatasetConfig, NetIface, NetMethod, PoolConfig, ScrubSchedule, ScrubSummary,
    };
    use crate::config::names::{Compression, DatasetName, PoolName, Size};
    use crate::config::sharing::{
        ClientSpec, Encryption, NfsShare, Principal, ShareName, Signing, SmbProtocol, SmbShare,
        Squash,
    };
    use crate::config::snapshots::{Retention, Schedule, SnapshotTask};
    use std::net::Ipv4Addr;

    /// A configuration that uses every field and variant of version 1.
    fn sample() -> Config {
        let dataset = |name: &str| DatasetConfig::new(DatasetName::parse(name).unwrap());
        Config {
            hostname: "nas".to_owned(),
            network: vec![
                NetIface {
                    name: "eth0".to_owned(),
                    method: NetMethod::Static {
                        address: Ipv4Addr::new(192, 168, 1, 10),
                        prefix: 24,
                        gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
                        dns: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(9, 9, 9, 9)],
                    },
                },
                NetIface {
                    name: "eth1".to_owned(),
                    method: NetMethod::Dhcp,
                },
            ],
            pool: Some(PoolConfig {
                name: PoolName::parse("tank").unwrap(),
                uuid: *b"0123456789abcdef",
            }),
            datasets: vec![
                DatasetConfig {
                    quota: Some(Size::from_bytes(10 << 30)),
                    compression: Compression::Zlib,
                    uid: 1000,
                    gid: 100,
                    mode: 0o2775,
                    ..dataset("media")
                },
                DatasetConfig {
                    compression: Compression::None,
                    ..dataset("backup")
                },
                DatasetConfig {
                    compression: Compression::Lzo,
                    ..dataset("scratch")
                },
            ],
            scrub: ScrubSchedule::Monthly {
                day: 15,
                hour: 2,
                minute: 30,
            },
            last_scrub: Some(ScrubSummary {
                started: 1_700_000_000,
                finished: 1_700_003_600,
                bytes_scrubbed: 5 << 40,
                corrected: 2,
                uncorrectable: 0,
                cancelled: false,
            }),
            ..Config::default()
        }
    }

    /// A configuration that uses every field and variant version 2 added.
    fn sample_v2() -> Config {
        let mut config = sample();
        let user = |name: &str, uid, groups: &[&str]| UserConfig {
            name: UserName::parse(name).unwrap(),
            uid,
            gid: uid,
            groups: groups
                .iter()
                .map(|g| GroupName::parse(g).unwrap())
                .collect(),
            nt_hash: crate::config::accounts::nt_hash(name),
        };
        config.groups = vec![GroupConfig {
            name: GroupName::parse("media").unwrap(),
            gid: 1002,
        }];
        config.users = vec![user("alice", 1000, &["media"]), user("sonarr", 1001, &[])];
        let ds = |n: &str| DatasetName::parse(n).unwrap();
        let clients = |s: &str| ClientSpec::parse_list(s).unwrap();
        config.nfs_shares = vec![
            NfsShare {
                clients: clients("10.0.3.0/24,fd00::/64,192.168.1.7"),
                read_only: true,
                insecure: true,
                ..NfsShare::new(ds("media"))
            },
            NfsShare {
                squash: Squash::MapRoot {
                    uid: 1000,
                    gid: 1000,
                },
                ..NfsShare::new(ds("backup"))
            },
            NfsShare {
                clients: clients("*"),
                squash: Squash::MapAll {
                    uid: 1001,
                    gid: 1002,
                },
                ..NfsShare::new(ds("scratch"))
            },
        ];
        config.smb.workgroup = "HOME".into();
        config.smb.min_protocol = SmbProtocol::Smb3_0;
        config.smb.signing = Signing::Mandatory;
        config.smb.encryption = Encryption::Required;
        config.smb.domain_sid = [1, 2, 3];
        config.smb_shares = vec![
            SmbShare {
                comment: "films and series".into(),
                read_only: true,
                valid_users: vec![
                    Principal::User(UserName::parse("alice").unwrap()),
                    Principal::Group(GroupName::parse("media").unwrap()),
                ],
                read_only_users: vec![Principal::User(UserName::parse("sonarr").unwrap())],
                guest_ok: true,
                hosts_allow: clients("10.0.3.0/24"),
                hosts_deny: clients("10.0.3.9"),
                force_user: Some(UserName::parse("sonarr").unwrap()),
                force_group: Some(GroupName::parse("media").unwrap()),
                create_mask: 0o664,
                directory_mask: 0o775,
                browseable: false,
                veto: vec!["*.tmp".into(), ".DS_Store".into()],
                ..SmbShare::new(ShareName::parse("Media").unwrap(), ds("media"))
            },
            SmbShare::new(ShareName::parse("backup").unwrap(), ds("backup")),
        ];
        config.smb.encryption = Encryption::Off;
        config.snapshot_tasks = vec![
            SnapshotTask {
                id: 1,
                dataset: ds("media"),
                schedule: Schedule::Minutes(15),
                retention: Retention::Last(4),
                last_run: 1_700_000_000,
            },
            SnapshotTask {
                id: 3,
                dataset: ds("media"),
                schedule: Schedule::Hours(6),
                retention: Retention::For(7 * 86_400),
                last_run: 1_700_000_060,
            },
            SnapshotTask {
                id: 4,
                dataset: ds("backup"),
                schedule: Schedule::Daily { hour: 3, minute: 0 },
                retention: Retention::Last(30),
                last_run: 0,
            },
            SnapshotTask {
                id: 5,
                dataset: ds("backup"),
                schedule: Schedule::Weekly {
                    weekday: 6,
                    hour: 4,
                    minute: 30,
                },
                retention: Retention::For(90 * 86_400),
                last_run: 0,
            },
        ];
        config.next_task_id = 6;
        config
    }

    /// The version 1 encoding of [`sample`] at generation 42, as saved by the first release of
    /// the format. Never regenerate this: it is what appliances in the field have on disk.
    /// Lines: the header (magic, version, generation, payload length); the payload (hostname;
    /// two interfaces, static and DHCP; the pool; three datasets; the scrub schedule; the last
    /// scrub; strings and vectors are length-prefixed, integers are varints); the CRC-32.
    const GOLDEN_V1: &str = "
        54414e4b43464700 01000000 2a00000000000000 81000000
        036e6173
        02
            0465746830 01 c0a8010a 18 01c0a80101 02 01010101 09090909
            0465746831 00
        01 0474616e6b 30313233343536373839616263646566
        03
            056d65646961 018080808028 03 e807 64 fd0b
            066261636b7570 00 00 00 00 ed03
            0773637261746368 00 02 00 00 ed03
        01 0f 02 1e
        01 80e2cfaa06 90fecfaa06 8080808080a001 02 00 00
        7048b717";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn golden_v1_decodes() {
        let (config, generation) = decode(&unhex(GOLDEN_V1)).unwrap();
        assert_eq!(generation, 42);
        assert_eq!(config, sample());
    }

    /// The version 2 encoding of [`sample_v2`] at generation 42, as the first release of
    /// version 2 saves it. Never regenerate this once released: appliances have it on disk.
    const GOLDEN_V2: &str = "
        54414e4b43464700020000002a00000000000000e8010000036e617302046574683001c0a8010a18
        01c0a80101020101010109090909046574683100010474616e6b3031323334353637383961626364
        656603056d6564696101808080802803e80764fd0b066261636b757000000000ed03077363726174
        636800020000ed03010f021e0180e2cfaa0690fecfaa068080808080a0010200000205616c696365
        e807e80701056d656469614039730e1bf6e10dd01eaac983db4d7c06736f6e617272e907e90700cd
        9d5738d8900411818d091bb38739d901056d65646961ea0703056d6564696103010a0003001802fd
        0000000000000000000000000000004001c0a8010720010001066261636b7570000002e807e80700
        077363726174636801000003e907ea070004484f4d4501010101020302054d65646961056d656469
        611066696c6d7320616e642073657269657301020005616c69636501056d65646961010006736f6e
        6172720101010a0003001801010a000309200106736f6e61727201056d65646961b403fd03000205
        2a2e746d70092e44535f53746f7265066261636b7570066261636b7570000000000000000000e403
        ed0301000401056d65646961000f000480e2cfaa0603056d6564696101060180f524bce2cfaa0604
        066261636b7570020300001e0005066261636b75700306041e0180ceda030006614002f1";

    #[test]
    fn golden_v2_decodes() {
        let (config, generation) = decode(&unhex(GOLDEN_V2)).unwrap();
        assert_eq!(generation, 42);
        assert_eq!(config, sample_v2());
    }

    /// A configuration that uses every field and variant version 3 added.
    fn sample_v3() -> Config {
        use crate::config::alerting::{
            AlertSettings, Host, MailAddress, MailChannel, MailTls, WebhookChannel, WebhookFormat,
            WebhookUrl,
        };
        use crate::config::time::{TimeServer, TimeSettings};
        let mut config = sample_v2();
        config.time = TimeSettings {
            zone: "Europe/Berlin".into(),
            servers: vec![
                TimeServer::parse("ntp.example.org").unwrap(),
                TimeServer::parse("10.0.2.2:1123").unwrap(),
            ],
        };
        config.alerts = AlertSettings {
            mail: Some(MailChannel {
                to: MailAddress::parse("owner@example.com").unwrap(),
                server: Host::parse("smtp.example.com").unwrap(),
                port: 587,
                from: Some(MailAddress::parse("tank@example.com").unwrap()),
                user: Some("owner".into()),
                tls: MailTls::StartTls,
            }),
            webhook: Some(WebhookChannel {
                url: WebhookUrl::parse("https://ntfy.sh/tank").unwrap(),
                format: WebhookFormat::Ntfy,
            }),
            hdd_temp_limit: 45,
            nvme_temp_limit: 75,
        };
        config
    }

    /// The version 3 encoding of [`sample_v3`] at generation 42, as the first release of
    /// version 3 saves it. Never regenerate this once released: appliances have it on disk.
    const GOLDEN_V3: &str = "
        54414e4b43464700030000002a000000000000006e020000036e617302046574683001c0a8010a18
        01c0a80101020101010109090909046574683100010474616e6b3031323334353637383961626364
        656603056d6564696101808080802803e80764fd0b066261636b757000000000ed03077363726174
        636800020000ed03010f021e0180e2cfaa0690fecfaa068080808080a0010200000205616c696365
        e807e80701056d656469614039730e1bf6e10dd01eaac983db4d7c06736f6e617272e907e90700cd
        9d5738d8900411818d091bb38739d901056d65646961ea0703056d6564696103010a0003001802fd
        0000000000000000000000000000004001c0a8010720010001066261636b7570000002e807e80700
        077363726174636801000003e907ea070004484f4d4501010101020302054d65646961056d656469
        611066696c6d7320616e642073657269657301020005616c69636501056d65646961010006736f6e
        6172720101010a0003001801010a000309200106736f6e61727201056d65646961b403fd03000205
        2a2e746d70092e44535f53746f7265066261636b7570066261636b7570000000000000000000e403
        ed0301000401056d65646961000f000480e2cfaa0603056d6564696101060180f524bce2cfaa0604
        066261636b7570020300001e0005066261636b75700306041e0180ceda0300060d4575726f70652f
        4265726c696e020f6e74702e6578616d706c652e6f72670d31302e302e322e323a3131323301116f
        776e6572406578616d706c652e636f6d10736d74702e6578616d706c652e636f6dcb04011074616e
        6b406578616d706c652e636f6d01056f776e657200011468747470733a2f2f6e7466792e73682f74
        616e6b012d4be22bd49d";

    #[test]
    fn golden_v3_decodes() {
        let (config, generation) = decode(&unhex(GOLDEN_V3)).unwrap();
        assert_eq!(generation, 42);
        assert_eq!(config, sample_v3());
    }

    /// Only while version 3 is current: the encoder still writes exactly the saved bytes.
    #[test]
    fn golden_v3_encodes() {
        assert_eq!(CURRENT_VERSION, 3);
        assert_eq!(
            hex(&encode(&sample_v3(), 42).unwrap()),
            hex(&unhex(GOLDEN_V3))
        );
    }

    /// A version 2 record migrates to UTC, no time servers, no alert channels, default limits.
    #[test]
    fn version_2_migrates() {
        let (config, _) = decode(&unhex(GOLDEN_V2)).unwrap();
        assert_eq!(config.time, crate::config::time::TimeSettings::default());
        assert_eq!(
            config.alerts,
            crate::config::alerting::AlertSettings::default()
        );
    }

    /// Intact version 3 envelopes around time and alert settings that break the rules.
    #[test]
    fn invalid_v3_content_is_reported() {
        let check = |record: v3::ConfigRecordV3, says: &str| {
            let payload = postcard::to_allocvec(&record).unwrap();
            let mut bytes = with_payload(&payload);
            bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
            let message = decode(&reseal(bytes)).unwrap_err().to_string();
            assert!(message.contains(says), "{says}: {message}");
        };
        let mut record = v3::ConfigRecordV3::from(&sample_v3());
        record.time.servers[0] = "a b".into();
        check(record, "time.servers[0]");
        let mut record = v3::ConfigRecordV3::from(&sample_v3());
        record.alerts.mail.as_mut().unwrap().tls = 9;
        check(record, "alerts.mail.tls");
        let mut record = v3::ConfigRecordV3::from(&sample_v3());
        record.alerts.webhook.as_mut().unwrap().url = "ftp://x".into();
        check(record, "alerts.webhook.url");
        let mut record = v3::ConfigRecordV3::from(&sample_v3());
        record.alerts.hdd_temp_limit = 200;
        check(record, "30 to 90");
        let mut record = v3::ConfigRecordV3::from(&sample_v3());
        record.time.zone = "../etc".into();
        check(record, "time zone");
    }

    /// Intact version 2 envelopes around payloads that break the configuration's rules.
    #[test]
    fn invalid_v2_content_is_reported() {
        let check = |record: ConfigRecordV2, says: &str| {
            let bytes = with_payload(&postcard::to_allocvec(&record).unwrap());
            let message = decode(&bytes).unwrap_err().to_string();
            assert!(message.contains(says), "{says}: {message}");
        };
        let mut record = ConfigRecordV2::from(&sample_v2());
        record.smb.signing = 7;
        check(record, "smb.signing");
        let mut record = ConfigRecordV2::from(&sample_v2());
        record.users.retain(|u| u.name != "sonarr");
        check(record, "refers to user \"sonarr\"");
        let mut record = ConfigRecordV2::from(&sample_v2());
        record.nfs_shares[0].dataset = "gone".into();
        check(record, "dataset \"gone\"");
        let mut record = ConfigRecordV2::from(&sample_v2());
        record.snapshot_tasks[0].retention = v2::RetentionRecordV2::Last(0);
        check(record, "keep 0");
        let mut record = ConfigRecordV2::from(&sample_v2());
        record.users[1].uid = 1000;
        check(record, "id 1000 is used by both");
        let mut record = ConfigRecordV2::from(&sample_v2());
        record.smb_shares[0].hosts_allow = vec![v2::ClientRecordV2::V4 {
            address: [10, 0, 3, 7],
            prefix: 24,
        }];
        check(record, "host bits");
    }

    /// A version 1 record migrates to a configuration with no users, shares or tasks.
    #[test]
    fn version_1_migrates() {
        let (config, _) = decode(&unhex(GOLDEN_V1)).unwrap();
        assert!(config.users.is_empty() && config.nfs_shares.is_empty());
        assert!(config.smb_shares.is_empty() && config.snapshot_tasks.is_empty());
        assert_eq!(config.next_task_id, 1);
        assert_eq!(config.smb, crate::config::sharing::SmbGlobal::default());
    }

    #[test]
    fn round_trip() {
        for config in [Config::default(), sample(), sample_v2(), sample_v3()] {
            for generation in [0, 1, u64::MAX] {
                let bytes = encode(&config, generation).unwrap();
                assert_eq!(decode(&bytes).unwrap(), (config.clone(), generation));
            }
        }
    }

    #[test]
    fn refuses_to_encode_invalid() {
        let mut config = sample();
        config.datasets.push(config.datasets[0].clone());
        let message = encode(&config, 1).unwrap_err().to_string();
        assert!(message.contains("\"media\""), "{message}");
    }

    #[test]
    fn damage_is_classified() {
        let good = encode(&sample(), 7).unwrap();

        assert!(matches!(
            decode(&[]),
            Err(RecordError::Truncated { len: 0, .. })
        ));
        assert!(matches!(
            decode(&good[..5]),
            Err(RecordError::Truncated { len: 5, .. })
        ));
        assert!(matches!(
            decode(&good[..HEADER_LEN + 3]),
            Err(RecordError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(RecordError::Truncated { .. })
        ));
        let message = decode(b"hello, world, this is no record")
            .unwrap_err()
            .to_string();
        assert!(message.contains("magic"), "{message}");

        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer),
            Err(RecordError::TrailingBytes { extra: 1 })
        ));

        // Every single-bit flip after the magic is caught, by the checksum or the length.
        for at in MAGIC.len()..good.len() {
            for bit in 0..8 {
                let mut flipped = good.clone();
                flipped[at] ^= 1 << bit;
                match decode(&flipped) {
                    Err(RecordError::ChecksumMismatch { .. })
                    | Err(RecordError::Truncated { .. })
                    | Err(RecordError::TrailingBytes { .. }) => {}
                    other => panic!("flip at byte {at} bit {bit}: {other:?}"),
                }
            }
        }
    }

    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let crc_at = bytes.len() - TRAILER_LEN;
        let crc = crc32fast::hash(&bytes[..crc_at]);
        bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn newer_version_is_reported() {
        let mut bytes = encode(&sample(), 7).unwrap();
        let newer = CURRENT_VERSION + 1;
        bytes[8..12].copy_from_slice(&newer.to_le_bytes());
        let error = decode(&reseal(bytes)).unwrap_err();
        assert!(matches!(error, RecordError::UnknownVersion { version } if version == newer));
        assert!(
            error.to_string().contains(&format!("version {newer}")),
            "{error}"
        );
    }

    fn with_payload(payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(&[0; 4]);
        reseal(bytes)
    }

    #[test]
    fn invalid_content_is_reported() {
        // Intact envelopes around payloads that are not valid configurations.
        let mut record = ConfigRecordV2::from(&sample());
        record.datasets[1].name = "../etc".to_owned();
        let bytes = with_payload(&postcard::to_allocvec(&record).unwrap());
        let message = decode(&bytes).unwrap_err().to_string();
        assert!(
            message.contains("datasets[1].name") && message.contains("\"../etc\""),
            "{message}"
        );

        let mut record = ConfigRecordV2::from(&sample());
        record.datasets[0].mode = 0o777777;
        let bytes = with_payload(&postcard::to_allocvec(&record).unwrap());
        let message = decode(&bytes).unwrap_err().to_string();
        assert!(message.contains("\"media\" has mode 777777"), "{message}");

        let mut record = ConfigRecordV2::from(&sample());
        record.scrub = v1::ScrubRecordV1::Monthly {
            day: 31,
            hour: 0,
            minute: 0,
        };
        let bytes = with_payload(&postcard::to_allocvec(&record).unwrap());
        assert!(decode(&bytes)
            .unwrap_err()
            .to_string()
            .contains("scrub day 31"));

        let mut payload = postcard::to_allocvec(&ConfigRecordV2::from(&sample())).unwrap();
        payload.push(0);
        assert!(matches!(
            decode(&with_payload(&payload)),
            Err(RecordError::InvalidContent {
                source: ContentError::TrailingPayload { extra: 1 },
                ..
            })
        ));
        assert!(matches!(
            decode(&with_payload(&[0xff; 3])),
            Err(RecordError::InvalidContent {
                source: ContentError::Decode(_),
                ..
            })
        ));
    }
}
