//! Sending one notice: e-mail over SMTP submission (lettre, rustls with the webpki roots) and
//! webhooks over HTTP(S) (ureq, the same rustls). Both block with a timeout, so they run on the
//! delivery thread (or the `alert test` thread), never on the engine's.

use std::time::Duration;

use zeroize::Zeroizing;

use super::book::{Notice, NoticeState, Severity};
use super::outbox::ChannelKind;
use crate::config::alerting::{MailChannel, MailTls, WebhookChannel, WebhookFormat};

/// Connect, read and write timeout of one delivery attempt.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The configured channels with what they need besides the configuration.
#[derive(Clone, Default)]
pub struct Channels {
    pub mail: Option<MailChannel>,
    pub webhook: Option<WebhookChannel>,
    /// The SMTP AUTH password (a secret file on the pool).
    pub mail_password: Option<Zeroizing<String>>,
    /// The host name messages name.
    pub hostname: String,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("mail", &self.mail)
            .field("webhook", &self.webhook)
            .field(
                "mail_password",
                &self.mail_password.as_ref().map(|_| "(set)"),
            )
            .field("hostname", &self.hostname)
            .finish()
    }
}

impl Channels {
    pub fn has(&self, kind: ChannelKind) -> bool {
        match kind {
            ChannelKind::Mail => self.mail.is_some(),
            ChannelKind::Webhook => self.webhook.is_some(),
        }
    }

    pub fn kinds(&self) -> Vec<ChannelKind> {
        [ChannelKind::Mail, ChannelKind::Webhook]
            .into_iter()
            .filter(|k| self.has(*k))
            .collect()
    }
}

/// `2026-12-04T20:31:02Z`.
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = crate::config::calendar::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// `[tank] CRITICAL: pool tank is degraded`; a clear says CLEARED, a reminder "still active".
pub fn subject(hostname: &str, n: &Notice) -> String {
    match n.state {
        NoticeState::Raised | NoticeState::Test => {
            format!("[{hostname}] {}: {}", n.severity.upper(), n.title)
        }
        NoticeState::Cleared => format!("[{hostname}] CLEARED: {}", n.title),
        NoticeState::Reminder => {
            format!(
                "[{hostname}] {}: {} (still active)",
                n.severity.upper(),
                n.title
            )
        }
    }
}

/// The text of a mail or an ntfy push.
pub fn body(hostname: &str, n: &Notice) -> String {
    let what = match n.state {
        NoticeState::Raised => "raised",
        NoticeState::Cleared => "cleared",
        NoticeState::Reminder => "still active",
        NoticeState::Test => "test",
    };
    format!(
        "{}\n\nHost: {hostname}\nAlert: {}\nSeverity: {}\nState: {what}\nTime: {}\n\n\
         'alert list' at the console shows every active alert.\n",
        n.message,
        n.id,
        n.severity.as_str(),
        rfc3339(n.time)
    )
}

/// The webhook's JSON object.
pub fn json(hostname: &str, n: &Notice) -> String {
    serde_json::json!({
        "id": n.id,
        "host": hostname,
        "severity": n.severity.as_str(),
        "state": match n.state {
            NoticeState::Cleared => "cleared",
            _ => "raised",
        },
        "title": n.title,
        "message": n.message,
        "time": rfc3339(n.time),
    })
    .to_string()
}

/// ntfy's priority header: 5 urgent for critical, 4 high for warning, 3 default otherwise.
pub fn ntfy_priority(n: &Notice) -> &'static str {
    match (n.state, n.severity) {
        (NoticeState::Cleared, _) | (_, Severity::Info) => "3",
        (_, Severity::Warning) => "4",
        (_, Severity::Critical) => "5",
    }
}

/// Sends `n` as mail; returns the server's answer.
pub fn send_mail(channels: &Channels, n: &Notice) -> Result<String, String> {
    use lettre::message::{header::ContentType, Mailbox};
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::transport::smtp::extension::ClientId;
    use lettre::{Message, SmtpTransport, Transport};

    let mail = channels
        .mail
        .as_ref()
        .ok_or("no mail channel is configured")?;
    let host = if channels.hostname.is_empty() {
        "tank"
    } else {
        &channels.hostname
    };
    let from = match (&mail.from, &mail.user) {
        (Some(from), _) => from.as_str().to_owned(),
        // Submission servers usually want the authenticated user as the sender.
        (None, Some(user)) if user.contains('@') => user.clone(),
        (None, _) => format!("tank@{host}"),
    };
    let parse = |what: &str, a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| format!("the {what} address {a:?} is not valid: {e}"))
    };
    let message = Message::builder()
        .from(parse("from", &from)?)
        .to(parse("to", mail.to.as_str())?)
        .subject(subject(host, n))
        .header(ContentType::TEXT_PLAIN)
        .body(body(host, n))
        .map_err(|e| format!("cannot build the message: {e}"))?;
    let server = mail.server.as_str();
    let tls = |server: &str| {
        TlsParameters::new(server.to_owned()).map_err(|e| format!("TLS setup for {server}: {e}"))
    };
    let tls = match mail.tls {
        MailTls::StartTls => Tls::Required(tls(server)?),
        MailTls::Implicit => Tls::Wrapper(tls(server)?),
        MailTls::Off => Tls::None,
    };
    let mut builder = SmtpTransport::builder_dangerous(server)
        .port(mail.port)
        .tls(tls)
        .timeout(Some(TIMEOUT))
        .hello_name(ClientId::Domain(host.to_owned()));
    if let Some(user) = &mail.user {
        let password = channels
            .mail_password
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .ok_or("the mail user has no password: set the mail channel again")?;
        builder = builder
            .credentials(Credentials::new(user.clone(), password))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    let transport = builder.build();
    match transport.send(&message) {
        Ok(response) => Ok(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        )
        .trim()
        .to_owned()),
        Err(e) => Err(mail_error(server, mail.port, &e)),
    }
}

/// The server's own words when it answered, else what went wrong on the way.
fn mail_error(server: &str, port: u16, e: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    if let Some(code) = e.status() {
        format!("{server}:{port} answered {code}: {text}")
    } else {
        format!("{server}:{port}: {text}")
    }
}

/// Posts `n` to the webhook; returns the HTTP status line.
pub fn send_webhook(channels: &Channels, n: &Notice) -> Result<String, String> {
    let hook = channels
        .webhook
        .as_ref()
        .ok_or("no webhook is configured")?;
    let host = if channels.hostname.is_empty() {
        "tank"
    } else {
        &channels.hostname
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .user_agent(format!("tank/{}", crate::version()))
        .build()
        .into();
    let request = agent.post(hook.url.as_str());
    let result = match hook.format {
        WebhookFormat::Json => request
            .header("Content-Type", "application/json")
            .send(json(host, n).as_bytes()),
        WebhookFormat::Ntfy => request
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Title", ascii_header(&subject(host, n)))
            .header("Priority", ntfy_priority(n))
            .header(
                "Tags",
                match (n.state, n.severity) {
                    (NoticeState::Cleared, _) => "white_check_mark",
                    (_, Severity::Critical) => "rotating_light",
                    (_, Severity::Warning) => "warning",
                    (_, Severity::Info) => "information_source",
                },
            )
            .send(body(host, n).as_bytes()),
    };
    let mut response = result.map_err(|e| format!("{}: {e}", hook.url))?;
    let status = response.status();
    if status.is_success() {
        Ok(format!("HTTP {status}"))
    } else {
        let text = response
            .body_mut()
            .with_config()
            .limit(512)
            .read_to_string()
            .unwrap_or_default();
        Err(format!(
            "{} answered HTTP {status}{}{}",
            hook.url,
            if text.trim().is_empty() { "" } else { ": " },
            text.trim()
        ))
    }
}

/// Header values must be visible ASCII: other characters become '?'.
fn ascii_header(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(state: NoticeState) -> Notice {
        Notice {
            id: "pool.degraded".into(),
            severity: Severity::Critical,
            state,
            title: "pool tank is degraded".into(),
            message: "member devid 2 (sdb) was removed".into(),
            time: 1_764_880_262,
        }
    }

    #[test]
    fn texts() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_880_262), "2025-12-04T20:31:02Z");
        assert_eq!(
            subject("nas", &n(NoticeState::Raised)),
            "[nas] CRITICAL: pool tank is degraded"
        );
        assert_eq!(
            subject("nas", &n(NoticeState::Cleared)),
            "[nas] CLEARED: pool tank is degraded"
        );
        let v: serde_json::Value =
            serde_json::from_str(&json("nas", &n(NoticeState::Cleared))).unwrap();
        assert_eq!(v["state"], "cleared");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["host"], "nas");
        assert_eq!(v["time"], "2025-12-04T20:31:02Z");
        for key in ["id", "title", "message"] {
            assert!(v[key].is_string(), "{key}");
        }
        assert_eq!(ntfy_priority(&n(NoticeState::Raised)), "5");
        assert_eq!(ascii_header("a °C b"), "a ?C b");
    }

    #[test]
    fn refused_connections_say_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let channels = Channels {
            webhook: Some(WebhookChannel {
                url: crate::config::alerting::WebhookUrl::parse(&format!(
                    "http://127.0.0.1:{port}/hook"
                ))
                .unwrap(),
                format: WebhookFormat::Json,
            }),
            mail: Some(MailChannel {
                to: crate::config::alerting::MailAddress::parse("o@example.com").unwrap(),
                server: crate::config::alerting::Host::parse("127.0.0.1").unwrap(),
                port,
                from: None,
                user: None,
                tls: MailTls::Off,
            }),
            mail_password: None,
            hostname: "nas".into(),
        };
        let e = send_webhook(&channels, &n(NoticeState::Raised)).unwrap_err();
        assert!(e.contains("127.0.0.1"), "{e}");
        let e = send_mail(&channels, &n(NoticeState::Raised)).unwrap_err();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
