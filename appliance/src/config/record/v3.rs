//! Version 3 of the configuration record: version 2's fields, then the time settings (zone,
//! SNTP servers) and the alert settings (mail and webhook channels, temperature limits).
//! Frozen once released, like versions 1 and 2 (see the parent module).

use serde::{Deserialize, Serialize};

use super::v2::ConfigRecordV2;
use super::{field, ContentError};
use crate::config::alerting::{
    AlertSettings, Host, MailAddress, MailChannel, MailTls, WebhookChannel, WebhookFormat,
    WebhookUrl,
};
use crate::config::model::Config;
use crate::config::time::{TimeServer, TimeSettings};

/// Version 3 of the configuration record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecordV3 {
    pub base: ConfigRecordV2,
    pub time: TimeRecordV3,
    pub alerts: AlertsRecordV3,
}

/// Version 3 of the time settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRecordV3 {
    pub zone: String,
    /// `host` or `host:port`, as [`TimeServer`] prints them.
    pub servers: Vec<String>,
}

/// Version 3 of the alert settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertsRecordV3 {
    pub mail: Option<MailRecordV3>,
    pub webhook: Option<WebhookRecordV3>,
    pub hdd_temp_limit: u8,
    pub nvme_temp_limit: u8,
}

/// Version 3 of the mail channel. `tls`: 0 STARTTLS, 1 implicit TLS, 2 off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRecordV3 {
    pub to: String,
    pub server: String,
    pub port: u16,
    pub from: Option<String>,
    pub user: Option<String>,
    pub tls: u8,
}

/// Version 3 of the webhook channel. `format`: 0 JSON, 1 ntfy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecordV3 {
    pub url: String,
    pub format: u8,
}

impl Default for TimeRecordV3 {
    fn default() -> Self {
        TimeRecordV3::from(&TimeSettings::default())
    }
}

impl Default for AlertsRecordV3 {
    fn default() -> Self {
        AlertsRecordV3::from(&AlertSettings::default())
    }
}

impl From<&TimeSettings> for TimeRecordV3 {
    fn from(time: &TimeSettings) -> Self {
        TimeRecordV3 {
            zone: time.zone.clone(),
            servers: time.servers.iter().map(ToString::to_string).collect(),
        }
    }
}

impl From<&AlertSettings> for AlertsRecordV3 {
    fn from(alerts: &AlertSettings) -> Self {
        AlertsRecordV3 {
            mail: alerts.mail.as_ref().map(|m| MailRecordV3 {
                to: m.to.as_str().to_owned(),
                server: m.server.as_str().to_owned(),
                port: m.port,
                from: m.from.as_ref().map(|f| f.as_str().to_owned()),
                user: m.user.clone(),
                tls: match m.tls {
                    MailTls::StartTls => 0,
                    MailTls::Implicit => 1,
                    MailTls::Off => 2,
                },
            }),
            webhook: alerts.webhook.as_ref().map(|w| WebhookRecordV3 {
                url: w.url.as_str().to_owned(),
                format: match w.format {
                    WebhookFormat::Json => 0,
                    WebhookFormat::Ntfy => 1,
                },
            }),
            hdd_temp_limit: alerts.hdd_temp_limit,
            nvme_temp_limit: alerts.nvme_temp_limit,
        }
    }
}

/// A stored enum index that is out of range.
#[derive(Debug, thiserror::Error)]
#[error("{value} is not one of the stored values 0 to {max}")]
struct OutOfRange {
    value: u8,
    max: usize,
}

fn pick<T: Copy>(value: u8, options: &[T]) -> Result<T, OutOfRange> {
    options.get(usize::from(value)).copied().ok_or(OutOfRange {
        value,
        max: options.len() - 1,
    })
}

impl From<&Config> for ConfigRecordV3 {
    fn from(config: &Config) -> Self {
        ConfigRecordV3 {
            base: ConfigRecordV2::from(config),
            time: TimeRecordV3::from(&config.time),
            alerts: AlertsRecordV3::from(&config.alerts),
        }
    }
}

/// A version 2 record becomes version 3 with the default time and alert settings.
impl From<ConfigRecordV2> for ConfigRecordV3 {
    fn from(base: ConfigRecordV2) -> Self {
        ConfigRecordV3 {
            base,
            time: TimeRecordV3::default(),
            alerts: AlertsRecordV3::default(),
        }
    }
}

/// Checks every value and the whole configuration: a record is trusted no more than input.
impl TryFrom<ConfigRecordV3> for Config {
    type Error = ContentError;

    fn try_from(record: ConfigRecordV3) -> Result<Config, ContentError> {
        let mut config = Config::try_from(record.base)?;
        let servers = record
            .time
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| field(|| format!("time.servers[{i}]"), TimeServer::parse(s)))
            .collect::<Result<Vec<_>, _>>()?;
        config.time = TimeSettings {
            zone: record.time.zone,
            servers,
        };
        let a = record.alerts;
        let mail = match a.mail {
            None => None,
            Some(m) => Some(MailChannel {
                to: field(|| "alerts.mail.to".into(), MailAddress::parse(&m.to))?,
                server: field(|| "alerts.mail.server".into(), Host::parse(&m.server))?,
                port: m.port,
                from: m
                    .from
                    .map(|f| field(|| "alerts.mail.from".into(), MailAddress::parse(&f)))
                    .transpose()?,
                user: m.user,
                tls: field(
                    || "alerts.mail.tls".into(),
                    pick(m.tls, &[MailTls::StartTls, MailTls::Implicit, MailTls::Off]),
                )?,
            }),
        };
        let webhook = match a.webhook {
            None => None,
            Some(w) => Some(WebhookChannel {
                url: field(|| "alerts.webhook.url".into(), WebhookUrl::parse(&w.url))?,
                format: field(
                    || "alerts.webhook.format".into(),
                    pick(w.format, &[WebhookFormat::Json, WebhookFormat::Ntfy]),
                )?,
            }),
        };
        config.alerts = AlertSettings {
            mail,
            webhook,
            hdd_temp_limit: a.hdd_temp_limit,
            nvme_temp_limit: a.nvme_temp_limit,
        };
        config.validate()?;
        Ok(config)
    }
}
