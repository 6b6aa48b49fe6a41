//! Where alerts are sent (mail, webhook) and the limits that raise them. The mail password is
//! not here: it is a secret file beside the configuration store (see the engine's alert
//! delivery), readable by the init alone.

use thiserror::Error;

/// The alert channels and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    pub mail: Option<MailChannel>,
    pub webhook: Option<WebhookChannel>,
    /// A hard disk above this temperature (°C) raises a warning.
    pub hdd_temp_limit: u8,
    /// An NVMe disk above this temperature (°C) raises a warning.
    pub nvme_temp_limit: u8,
}

impl AlertSettings {
    pub const DEFAULT_HDD_TEMP_LIMIT: u8 = 50;
    pub const DEFAULT_NVME_TEMP_LIMIT: u8 = 70;
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            mail: None,
            webhook: None,
            hdd_temp_limit: Self::DEFAULT_HDD_TEMP_LIMIT,
            nvme_temp_limit: Self::DEFAULT_NVME_TEMP_LIMIT,
        }
    }
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTls {
    /// Plain connection upgraded with STARTTLS (submission, port 587); refused without it.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on the LAN.
    Off,
}

impl MailTls {
    pub fn parse(input: &str) -> Result<MailTls, AlertSettingError> {
        match input {
            "starttls" => Ok(MailTls::StartTls),
            "implicit" | "tls" => Ok(MailTls::Implicit),
            "off" => Ok(MailTls::Off),
            _ => Err(AlertSettingError::Tls(input.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MailTls::StartTls => "starttls",
            MailTls::Implicit => "implicit",
            MailTls::Off => "off",
        }
    }

    /// The port a server of this kind listens on when none is given.
    pub fn default_port(self) -> u16 {
        match self {
            MailTls::StartTls => 587,
            MailTls::Implicit => 465,
            MailTls::Off => 25,
        }
    }
}

/// Mail over SMTP submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailChannel {
    pub to: MailAddress,
    pub server: Host,
    pub port: u16,
    /// The sender; `tank@HOSTNAME` when not given.
    pub from: Option<MailAddress>,
    /// The SMTP AUTH user; the password is a secret file.
    pub user: Option<String>,
    pub tls: MailTls,
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// One JSON object per alert.
    Json,
    /// ntfy and Gotify style: title and priority in headers, the text as the body.
    Ntfy,
}

impl WebhookFormat {
    pub fn parse(input: &str) -> Result<WebhookFormat, AlertSettingError> {
        match input {
            "json" => Ok(WebhookFormat::Json),
            "ntfy" => Ok(WebhookFormat::Ntfy),
            _ => Err(AlertSettingError::Format(input.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Ntfy => "ntfy",
        }
    }
}

/// An HTTP(S) POST per alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookChannel {
    pub url: WebhookUrl,
    pub format: WebhookFormat,
}

/// Why an alert setting is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AlertSettingError {
    #[error(
        "mail address {0:?} is not valid: give one address such as owner@example.com \
         (no spaces, one '@', a domain after it)"
    )]
    Address(String),
    #[error(
        "server {0:?} is not a host name or IP address: give one such as smtp.example.com \
         or 192.168.1.5"
    )]
    Host(String),
    #[error("{0:?} is not a TLS mode: use starttls (port 587), implicit (port 465) or off")]
    Tls(String),
    #[error("{0:?} is not a webhook format: use json or ntfy")]
    Format(String),
    #[error(
        "webhook URL {0:?} is not valid: give an http:// or https:// URL with a host, \
         without spaces (for example https://ntfy.sh/my-tank)"
    )]
    Url(String),
    #[error("user name {0:?} is not valid: give 1 to 256 printable characters without spaces")]
    User(String),
    #[error("port 0 is not valid: give a port from 1 to 65535")]
    Port,
    #[error("temperature limit {0} °C is not valid: give 30 to 90")]
    TempLimit(u8),
}

/// A mail address: `local@domain`, checked as far as a sender needs (no spaces or angle
/// brackets that would break a header, one '@', a DNS domain).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MailAddress(String);

impl MailAddress {
    pub fn parse(input: &str) -> Result<MailAddress, AlertSettingError> {
        let bad = || AlertSettingError::Address(input.to_owned());
        let (local, domain) = input.rsplit_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:@\"".contains(&b));
        if !local_ok || Host::parse(domain).is_err() || domain.parse::<std::net::IpAddr>().is_ok() {
            return Err(bad());
        }
        Ok(MailAddress(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A server: a DNS name or an IP address literal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Host(String);

impl Host {
    pub fn parse(input: &str) -> Result<Host, AlertSettingError> {
        if input.parse::<std::net::IpAddr>().is_ok() {
            return Ok(Host(input.to_owned()));
        }
        let name = input.strip_suffix('.').unwrap_or(input);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(AlertSettingError::Host(input.to_owned()));
        }
        Ok(Host(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// On the local network: a private, link-local or loopback address, or a name without a
    /// dot or under `.lan`, `.local`, `.home.arpa` or `.internal`.
    pub fn is_lan(&self) -> bool {
        match self.0.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => a.is_private() || a.is_link_local() || a.is_loopback(),
            Ok(std::net::IpAddr::V6(a)) => {
                a.is_loopback()
                    || (a.segments()[0] & 0xfe00) == 0xfc00
                    || (a.segments()[0] & 0xffc0) == 0xfe80
            }
            Err(_) => {
                let name = self.0.to_ascii_lowercase();
                !name.contains('.')
                    || [".lan", ".local", ".home.arpa", ".internal"]
                        .iter()
                        .any(|s| name.ends_with(s))
            }
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(input: &str) -> Result<WebhookUrl, AlertSettingError> {
        let bad = || AlertSettingError::Url(input.to_owned());
        let rest = input
            .strip_prefix("https://")
            .or_else(|| input.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit('@').next().unwrap_or("");
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host_port.split(':').next().unwrap_or(""),
        };
        if host.is_empty()
            || input.len() > 2048
            || !input.bytes().all(|b| b.is_ascii_graphic())
            || (Host::parse(host).is_err() && host.parse::<std::net::Ipv6Addr>().is_err())
        {
            return Err(bad());
        }
        Ok(WebhookUrl(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an SMTP AUTH user name.
pub fn check_user(user: &str) -> Result<(), AlertSettingError> {
    if user.is_empty() || user.len() > 256 || !user.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AlertSettingError::User(user.to_owned()));
    }
    Ok(())
}

impl AlertSettings {
    /// Checks what the types do not: ports and limits.
    pub fn validate(&self) -> Result<(), AlertSettingError> {
        if let Some(mail) = &self.mail {
            if mail.port == 0 {
                return Err(AlertSettingError::Port);
            }
            if let Some(user) = &mail.user {
                check_user(user)?;
            }
        }
        for limit in [self.hdd_temp_limit, self.nvme_temp_limit] {
            if !(30..=90).contains(&limit) {
                return Err(AlertSettingError::TempLimit(limit));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for good in [
            "owner@example.com",
            "a.b+tank@mail.example.org",
            "x@localhost",
        ] {
            assert_eq!(MailAddress::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "owner",
            "@example.com",
            "owner@",
            "own er@example.com",
            "<owner@example.com>",
            "owner@exa_mple.com",
            "owner@1.2.3.4",
            "owner@example.com\r\nBcc: x@y",
        ] {
            assert!(MailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        for good in ["smtp.example.com", "10.0.2.2", "::1", "relay"] {
            assert!(Host::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "smtp example", "-a.com", "a..b", "a_b.com"] {
            assert!(Host::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lan_hosts() {
        for lan in [
            "10.0.2.2",
            "192.168.1.5",
            "fd00::1",
            "fe80::1",
            "relay",
            "mail.home.arpa",
            "nas.lan",
        ] {
            assert!(Host::parse(lan).unwrap().is_lan(), "{lan}");
        }
        for far in ["8.8.8.8", "smtp.gmail.com", "2001:db8::1"] {
            assert!(!Host::parse(far).unwrap().is_lan(), "{far}");
        }
    }

    #[test]
    fn urls() {
        for good in [
            "https://ntfy.sh/tank",
            "http://10.0.2.2:8080/hook",
            "http://[fd00::1]:80/x",
            "https://user:pw@hooks.example.com/a?b=c",
        ] {
            assert!(WebhookUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ftp://x/y",
            "https://",
            "https:///path",
            "http://a b/",
            "http://ex ample.com",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits() {
        let mut s = AlertSettings::default();
        assert!(s.validate().is_ok());
        s.hdd_temp_limit = 5;
        assert!(s.validate().unwrap_err().to_string().contains("30 to 90"));
    }
}
