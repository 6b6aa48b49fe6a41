//! Time keeping settings: the time zone the schedules and the console follow, and the SNTP
//! servers used when DHCP names none.

use thiserror::Error;

use super::alerting::Host;

/// The time zone and time servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSettings {
    /// An IANA time zone name (`Europe/Berlin`, `UTC`).
    pub zone: String,
    /// Servers to ask when DHCP gives none; empty means [`TimeSettings::DEFAULT_SERVER`].
    pub servers: Vec<TimeServer>,
}

impl TimeSettings {
    pub const DEFAULT_ZONE: &'static str = "UTC";
    pub const DEFAULT_SERVER: &'static str = "pool.ntp.org";
    /// At most this many configured servers.
    pub const MAX_SERVERS: usize = 8;

    pub fn validate(&self) -> Result<(), TimeSettingError> {
        check_zone_name(&self.zone)?;
        if self.servers.len() > Self::MAX_SERVERS {
            return Err(TimeSettingError::TooManyServers(self.servers.len()));
        }
        for (i, server) in self.servers.iter().enumerate() {
            if self.servers[..i].contains(server) {
                return Err(TimeSettingError::DuplicateServer(server.to_string()));
            }
        }
        Ok(())
    }
}

impl Default for TimeSettings {
    fn default() -> Self {
        TimeSettings {
            zone: Self::DEFAULT_ZONE.to_owned(),
            servers: Vec::new(),
        }
    }
}

/// An SNTP server: a host and a UDP port (123 unless given as `HOST:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeServer {
    pub host: Host,
    pub port: u16,
}

impl TimeServer {
    pub const PORT: u16 = 123;

    /// `pool.ntp.org`, `10.0.2.2:1123`, `[fd00::1]:123` or `fd00::1`.
    pub fn parse(input: &str) -> Result<TimeServer, TimeSettingError> {
        let bad = || TimeSettingError::Server(input.to_owned());
        let (host, port) = if let Some(rest) = input.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(bad()),
            }
        } else if input.matches(':').count() == 1 {
            let (host, port) = input.split_once(':').ok_or_else(bad)?;
            (host, Some(port))
        } else {
            (input, None)
        };
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad()),
                Ok(p) => p,
            },
            None => Self::PORT,
        };
        let host = Host::parse(host).map_err(|_| bad())?;
        Ok(TimeServer { host, port })
    }
}

impl std::fmt::Display for TimeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = self.host.as_str();
        match (self.port, host.contains(':')) {
            (Self::PORT, _) => f.write_str(host),
            (port, true) => write!(f, "[{host}]:{port}"),
            (port, false) => write!(f, "{host}:{port}"),
        }
    }
}

/// Why a time setting is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeSettingError {
    #[error(
        "time zone {0:?} is not valid: give an IANA name such as Europe/Berlin, \
         America/New_York or UTC"
    )]
    Zone(String),
    #[error(
        "time server {0:?} is not valid: give a host name or address, optionally with a port \
         (pool.ntp.org, 192.168.1.1, 10.0.2.2:1123)"
    )]
    Server(String),
    #[error("time server {0} is listed twice: list it once")]
    DuplicateServer(String),
    #[error("{0} time servers are too many: give at most 8")]
    TooManyServers(usize),
}

/// Checks the form of a zone name (the zone database decides whether it exists).
pub fn check_zone_name(zone: &str) -> Result<(), TimeSettingError> {
    let ok = !zone.is_empty()
        && zone.len() <= 64
        && !zone.starts_with('/')
        && !zone.contains("..")
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TimeSettingError::Zone(zone.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers() {
        let s = |t: &str| TimeServer::parse(t).map(|s| (s.host.as_str().to_owned(), s.port));
        assert_eq!(s("pool.ntp.org").unwrap(), ("pool.ntp.org".into(), 123));
        assert_eq!(s("10.0.2.2:1123").unwrap(), ("10.0.2.2".into(), 1123));
        assert_eq!(s("[fd00::1]:124").unwrap(), ("fd00::1".into(), 124));
        assert_eq!(s("fd00::1").unwrap(), ("fd00::1".into(), 123));
        for bad in ["", "a b", "host:0", "host:x", "[fd00::1", "[::1]x", "h:1:2"] {
            assert!(s(bad).is_err(), "{bad:?}");
        }
        for text in ["pool.ntp.org", "10.0.2.2:1123", "[fd00::1]:124", "fd00::1"] {
            assert_eq!(TimeServer::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn zones() {
        for good in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(check_zone_name(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "Europe/../x", "Europe/Ber lin"] {
            assert!(check_zone_name(bad).is_err(), "{bad:?}");
        }
    }
}
