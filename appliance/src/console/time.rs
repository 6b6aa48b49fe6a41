//! The `time` noun (also `date`): its requests, their parsing, the report `time` prints and its
//! rendering.
//!
//! `time` shows the local time, UTC, the zone, whether the clock is synchronized, the server
//! used and the last offset with when it was measured; `time zone ZONE` sets the zone (checked
//! against the time zone database by the engine); `time server HOST[:PORT]...` replaces the
//! configured SNTP servers and `time server default` clears them.

use super::parse::{clip, err, unknown_verb, usage_hint, ParseError};
use crate::config::time::{check_zone_name, TimeServer, TimeSettings};

/// What a `time` command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeRequest {
    Show,
    /// A zone name whose form is valid; whether the database has it is for the engine.
    Zone(String),
    /// The configured servers; empty for `time server default`.
    Servers(Vec<TimeServer>),
}

pub fn parse_time(rest: &[&str]) -> Result<TimeRequest, ParseError> {
    match rest {
        [] | ["show"] => Ok(TimeRequest::Show),
        ["zone"] => Err(err(
            "'time zone' needs a zone name",
            "e.g. 'time zone Europe/Berlin' or 'time zone UTC'",
        )),
        ["zone", zone] => {
            check_zone_name(zone).map_err(|e| err(e.to_string(), "e.g. 'time zone Europe/Berlin'"))?;
            Ok(TimeRequest::Zone((*zone).to_owned()))
        }
        ["zone", _, extra, ..] => Err(err(
            format!("'time zone' takes one zone name, got also '{}'", clip(extra)),
            "e.g. 'time zone Europe/Berlin'",
        )),
        ["server"] => Err(err(
            "'time server' needs one or more servers, or 'default'",
            "e.g. 'time server pool.ntp.org', 'time server 192.168.1.1 10.0.0.1:123' or 'time server default'",
        )),
        ["server", "default"] => Ok(TimeRequest::Servers(Vec::new())),
        ["server", hosts @ ..] => {
            let servers = hosts
                .iter()
                .map(|h| {
                    TimeServer::parse(h).map_err(|e| err(e.to_string(), usage_hint("time")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let settings = TimeSettings {
                zone: TimeSettings::DEFAULT_ZONE.to_owned(),
                servers,
            };
            settings
                .validate()
                .map_err(|e| err(e.to_string(), usage_hint("time")))?;
            Ok(TimeRequest::Servers(settings.servers))
        }
        [verb, ..] => Err(unknown_verb("time", verb)),
    }
}

/// What `time` shows, each line already worded by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeReport {
    /// `2026-12-04 21:05:42 CET (+01:00)`.
    pub local: String,
    /// `2026-12-04 20:05:42 UTC`.
    pub utc: String,
    /// The zone in force, and a note when the configured one is unknown.
    pub zone: String,
    pub synchronized: bool,
    /// The server of the last good poll (name, address, where it came from, stratum).
    pub server: Option<String>,
    /// The last good poll's offset, step or slew, and when it was measured.
    pub last_offset: Option<String>,
    /// The servers asked now and where they come from.
    pub servers: String,
    /// The last failed poll, when it came after the last good one.
    pub last_error: Option<String>,
}

pub fn render(r: &TimeReport) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| out.push_str(&format!("{key:<14}{value}\n"));
    line("local time:", &r.local);
    line("UTC:", &r.utc);
    line("zone:", &r.zone);
    line("synchronized:", if r.synchronized { "yes" } else { "no" });
    line("server:", r.server.as_deref().unwrap_or("none yet"));
    line(
        "last offset:",
        r.last_offset.as_deref().unwrap_or("not measured yet"),
    );
    line("servers:", &r.servers);
    if let Some(e) = &r.last_error {
        line("last error:", e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse_time(&[]).unwrap(), TimeRequest::Show);
        assert_eq!(
            parse_time(&["zone", "Europe/Berlin"]).unwrap(),
            TimeRequest::Zone("Europe/Berlin".into())
        );
        assert_eq!(
            parse_time(&["server", "default"]).unwrap(),
            TimeRequest::Servers(Vec::new())
        );
        let TimeRequest::Servers(servers) =
            parse_time(&["server", "10.0.2.2:1123", "pool.ntp.org"]).unwrap()
        else {
            panic!("not servers");
        };
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].port, 1123);
        for (bad, says) in [
            (&["zone"][..], "needs a zone name"),
            (&["zone", "../x"][..], "IANA name"),
            (&["zone", "a", "b"][..], "one zone name"),
            (&["server"][..], "needs one or more"),
            (&["server", "a b"][..], "not valid"),
            (&["server", "x:0"][..], "not valid"),
            (&["server", "a", "a"][..], "listed twice"),
            (&["frob"][..], "no verb 'frob'"),
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.message.contains(says), "{bad:?}: {}", e.message);
            assert!(!e.hint.is_empty());
        }
    }

    #[test]
    fn rendering() {
        let report = TimeReport {
            local: "2026-12-04 21:05:42 CET (+01:00)".into(),
            utc: "2026-12-04 20:05:42 UTC (+00:00)".into(),
            zone: "Europe/Berlin".into(),
            synchronized: true,
            server: Some("10.0.2.2:1123 (configured, stratum 2)".into()),
            last_offset: Some("+3600.000 s (stepped), measured 2026-12-04 21:05 CET".into()),
            servers: "10.0.2.2:1123 (configured)".into(),
            last_error: None,
        };
        assert_eq!(
            render(&report),
            "local time:   2026-12-04 21:05:42 CET (+01:00)\n\
             UTC:          2026-12-04 20:05:42 UTC (+00:00)\n\
             zone:         Europe/Berlin\n\
             synchronized: yes\n\
             server:       10.0.2.2:1123 (configured, stratum 2)\n\
             last offset:  +3600.000 s (stepped), measured 2026-12-04 21:05 CET\n\
             servers:      10.0.2.2:1123 (configured)\n"
        );
    }
}
