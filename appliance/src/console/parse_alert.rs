//! `alert ...` lines → [`AlertRequest`].

use super::parse::{clip, err, unknown_verb, ParseError};
use super::request::{AlertChannel, AlertRequest};
use crate::config::alerting::{
    check_user, Host, MailAddress, MailChannel, MailTls, WebhookChannel, WebhookFormat, WebhookUrl,
};

const MAIL_USAGE: &str = "e.g. 'alert mail to owner@example.com server smtp.example.com \
                          [port 587] [from tank@example.com] [user NAME] [tls starttls|implicit|off]'";

pub fn parse_alert(rest: &[&str]) -> Result<AlertRequest, ParseError> {
    match rest {
        [] | ["list"] => Ok(AlertRequest::List),
        ["show"] => Ok(AlertRequest::Show),
        ["test"] => Ok(AlertRequest::Test),
        ["history"] => Ok(AlertRequest::History),
        ["mail", args @ ..] => parse_mail(args),
        ["webhook", args @ ..] => parse_webhook(args),
        ["remove", "mail"] => Ok(AlertRequest::Remove(AlertChannel::Mail)),
        ["remove", "webhook"] => Ok(AlertRequest::Remove(AlertChannel::Webhook)),
        ["remove", ..] => Err(err(
            "'alert remove' takes one channel: mail or webhook",
            "e.g. 'alert remove webhook'",
        )),
        ["dismiss", id] => Ok(AlertRequest::Dismiss((*id).to_owned())),
        ["dismiss", ..] => Err(err(
            "'alert dismiss' takes one alert id",
            "'alert list' shows the ids, e.g. 'alert dismiss member.2.errors'",
        )),
        ["temperature", kind @ ("hdd" | "nvme"), limit] => {
            let limit = limit
                .trim_end_matches("°C")
                .trim_end_matches('C')
                .parse::<u8>()
                .ok()
                .filter(|l| (30..=90).contains(l))
                .ok_or_else(|| {
                    err(
                        format!("'{}' is not a temperature limit", clip(limit)),
                        "give degrees Celsius from 30 to 90, e.g. 'alert temperature hdd 50'",
                    )
                })?;
            Ok(AlertRequest::Temperature {
                nvme: *kind == "nvme",
                limit,
            })
        }
        ["temperature", ..] => Err(err(
            "'alert temperature' takes hdd or nvme and a limit in °C",
            "e.g. 'alert temperature hdd 50' (defaults: hdd 50, nvme 70)",
        )),
        [verb, ..] => Err(unknown_verb("alert", verb)),
    }
}

fn value<'a>(args: &[&'a str], i: usize, key: &str, example: &str) -> Result<&'a str, ParseError> {
    args.get(i + 1)
        .copied()
        .ok_or_else(|| err(format!("'{key}' needs a value"), example.to_owned()))
}

fn parse_mail(args: &[&str]) -> Result<AlertRequest, ParseError> {
    let mut to = None;
    let mut server = None;
    let mut port = None;
    let mut from = None;
    let mut user = None;
    let mut tls = None;
    let mut i = 0;
    while i < args.len() {
        let key = args[i];
        let v = value(args, i, key, MAIL_USAGE);
        let bad = |e: crate::config::alerting::AlertSettingError| err(e.to_string(), MAIL_USAGE);
        match key {
            "to" => to = Some(MailAddress::parse(v?).map_err(bad)?),
            "server" => server = Some(Host::parse(v?).map_err(bad)?),
            "from" => from = Some(MailAddress::parse(v?).map_err(bad)?),
            "user" => {
                let u = v?;
                check_user(u).map_err(bad)?;
                user = Some(u.to_owned());
            }
            "tls" => tls = Some(MailTls::parse(v?).map_err(bad)?),
            "port" => {
                let p = v?;
                port = Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    err(
                        format!("'{}' is not a port", clip(p)),
                        "give 1 to 65535: 587 for STARTTLS, 465 for TLS, 25 for a LAN relay",
                    )
                })?);
            }
            other => {
                return Err(err(
                    format!("'alert mail' has no option '{}'", clip(other)),
                    MAIL_USAGE,
                ))
            }
        }
        i += 2;
    }
    let to = to.ok_or_else(|| err("'alert mail' needs 'to ADDRESS'", MAIL_USAGE))?;
    let server = server.ok_or_else(|| err("'alert mail' needs 'server HOST'", MAIL_USAGE))?;
    let tls = tls.unwrap_or(MailTls::StartTls);
    if tls == MailTls::Off && !server.is_lan() {
        return Err(err(
            format!(
                "'tls off' sends mail and any password in the clear: it is only for a relay on the \
                 LAN, and {server} is not a private address or a .lan/.local name"
            ),
            "use 'tls starttls' (port 587) or 'tls implicit' (port 465)",
        ));
    }
    Ok(AlertRequest::Mail {
        channel: MailChannel {
            to,
            server,
            port: port.unwrap_or(tls.default_port()),
            from,
            user,
            tls,
        },
        password: None,
    })
}

fn parse_webhook(args: &[&str]) -> Result<AlertRequest, ParseError> {
    const EXAMPLE: &str = "e.g. 'alert webhook https://ntfy.sh/my-tank format ntfy'";
    let (url, format) = match args {
        [url] => (url, WebhookFormat::Json),
        [url, "format", f] => (
            url,
            WebhookFormat::parse(f).map_err(|e| err(e.to_string(), EXAMPLE))?,
        ),
        [] => return Err(err("'alert webhook' needs a URL", EXAMPLE)),
        _ => {
            return Err(err(
                "'alert webhook' takes a URL and optionally 'format json|ntfy'",
                EXAMPLE,
            ))
        }
    };
    Ok(AlertRequest::Webhook(WebhookChannel {
        url: WebhookUrl::parse(url).map_err(|e| err(e.to_string(), EXAMPLE))?,
        format,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<AlertRequest, ParseError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        parse_alert(&words)
    }

    #[test]
    fn mail() {
        let Ok(AlertRequest::Mail { channel, password }) =
            p("mail to owner@example.com server 10.0.2.2 port 2525 user bob tls off")
        else {
            panic!()
        };
        assert_eq!(channel.to.as_str(), "owner@example.com");
        assert_eq!((channel.server.as_str(), channel.port), ("10.0.2.2", 2525));
        assert_eq!(
            (channel.user.as_deref(), channel.tls),
            (Some("bob"), MailTls::Off)
        );
        assert!(password.is_none());
        let Ok(AlertRequest::Mail { channel, .. }) =
            p("mail to a@b.c server smtp.b.c tls implicit")
        else {
            panic!()
        };
        assert_eq!(channel.port, 465);
        for (line, says) in [
            ("mail server smtp.b.c", "needs 'to ADDRESS'"),
            ("mail to a@b.c", "needs 'server HOST'"),
            ("mail to nobody server smtp.b.c", "mail address"),
            ("mail to a@b.c server smtp.b.c port 0", "not a port"),
            ("mail to a@b.c server smtp.b.c tls maybe", "not a TLS mode"),
            (
                "mail to a@b.c server smtp.b.c colour red",
                "no option 'colour'",
            ),
            ("mail to a@b.c server", "'server' needs a value"),
            (
                "mail to a@b.c server smtp.gmail.com tls off",
                "only for a relay on the LAN",
            ),
        ] {
            let e = p(line).unwrap_err();
            assert!(e.message.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn webhook_and_others() {
        let Ok(AlertRequest::Webhook(w)) = p("webhook http://10.0.2.2:8080/h format ntfy") else {
            panic!()
        };
        assert_eq!(w.format, WebhookFormat::Ntfy);
        assert!(p("webhook ftp://x")
            .unwrap_err()
            .message
            .contains("http://"));
        assert!(p("webhook http://x format xml")
            .unwrap_err()
            .message
            .contains("json or ntfy"));
        assert_eq!(p("").unwrap(), AlertRequest::List);
        assert_eq!(
            p("remove mail").unwrap(),
            AlertRequest::Remove(AlertChannel::Mail)
        );
        assert!(p("remove all").is_err());
        assert_eq!(
            p("temperature nvme 75").unwrap(),
            AlertRequest::Temperature {
                nvme: true,
                limit: 75
            }
        );
        assert!(p("temperature hdd 200").is_err());
        assert!(p("frobnicate").is_err());
    }
}
