//! Console text → [`Request`]: the language is `noun verb arguments`, with a few short forms
//! (`status`, `disks`, `reboot`, `poweroff`, `log`, `hostname`).
//!
//! Every failure is a [`ParseError`] with a one-line message and a hint; no input panics
//! (a fuzz test feeds it random bytes).

use std::net::Ipv4Addr;

use super::request::{HostName, IfaceName, NetworkRequest, Request};

/// One command of the help table.
pub struct CommandHelp {
    pub noun: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
}

/// The help table: every command the console knows, grouped by noun.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        noun: "help",
        usage: "help [NOUN]",
        about: "list the commands, or those of one noun",
    },
    CommandHelp {
        noun: "system",
        usage: "status",
        about: "version, kernel, uptime, memory, disks, network, services",
    },
    CommandHelp {
        noun: "system",
        usage: "system hostname [NAME]",
        about: "show or set the host name (also: hostname)",
    },
    CommandHelp {
        noun: "system",
        usage: "system log [LINES]",
        about: "the last lines of the kernel and init log (also: log)",
    },
    CommandHelp {
        noun: "system",
        usage: "reboot",
        about: "stop services, unmount, restart (also: system reboot)",
    },
    CommandHelp {
        noun: "system",
        usage: "poweroff",
        about: "stop services, unmount, power off (also: system poweroff)",
    },
    CommandHelp {
        noun: "disk",
        usage: "disk list",
        about: "disks with size, model and serial (also: disks)",
    },
    CommandHelp {
        noun: "network",
        usage: "network show",
        about: "interfaces, addresses, routes and DHCP leases",
    },
    CommandHelp {
        noun: "network",
        usage: "network dhcp IFACE",
        about: "configure IFACE by DHCP (the default)",
    },
    CommandHelp {
        noun: "network",
        usage: "network static IFACE ADDRESS/PREFIX [gateway GW] [dns IP[,IP...]]",
        about: "give IFACE a fixed address",
    },
];

/// The nouns, in help order.
pub const NOUNS: &[&str] = &["system", "disk", "network"];

/// A line that is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub hint: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error: {} ({})", self.message, self.hint)
    }
}

/// What a line asks for: nothing (blank line), help text, or a request for the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Empty,
    Help(Option<String>),
    Request(Request),
}

fn err(message: impl Into<String>, hint: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
        hint: hint.into(),
    }
}

fn usage_hint(noun: &str) -> String {
    format!("type 'help {noun}' for its commands")
}

/// Splits a line into words; double quotes group words, a backslash escapes the next character.
pub fn tokenize(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => {
                    cur.push(n);
                    in_word = true;
                }
                None => {
                    return Err(err(
                        "the line ends with a lone '\\'",
                        "remove it or escape it as '\\\\'",
                    ))
                }
            },
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c if c.is_control() => {
                return Err(err(
                    format!("the line holds a control character (U+{:04X})", c as u32),
                    "type the command again",
                ))
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err(err("a quote is not closed", "close it with '\"'"));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Parses one console line.
pub fn parse(line: &str) -> Result<Parsed, ParseError> {
    let words = tokenize(line)?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let Some((&first, rest)) = words.split_first() else {
        return Ok(Parsed::Empty);
    };
    let req = match first {
        "help" | "?" => {
            return match rest {
                [] => Ok(Parsed::Help(None)),
                [noun] if *noun == "help" || NOUNS.contains(noun) => {
                    Ok(Parsed::Help(Some(noun.to_string())))
                }
                [noun] => Err(err(
                    format!("no help for '{noun}'"),
                    format!("the nouns are: {}", NOUNS.join(", ")),
                )),
                _ => Err(err("help takes at most one word", "e.g. 'help network'")),
            };
        }
        "status" => {
            no_more("status", rest)?;
            Request::Status
        }
        "disks" => {
            no_more("disks", rest)?;
            Request::Disks
        }
        "reboot" => {
            no_more("reboot", rest)?;
            Request::Reboot
        }
        "poweroff" => {
            no_more("poweroff", rest)?;
            Request::PowerOff
        }
        "log" => parse_log(rest)?,
        "hostname" => parse_hostname(rest)?,
        "system" => parse_system(rest)?,
        "disk" => match rest {
            ["list"] => Request::Disks,
            [] => return Err(err("'disk' needs a verb", usage_hint("disk"))),
            [verb, ..] => return Err(unknown_verb("disk", verb)),
        },
        "network" | "net" => parse_network(rest)?,
        other => {
            return Err(err(
                format!("unknown command '{}'", clip(other)),
                "type 'help' to list the commands",
            ))
        }
    };
    Ok(Parsed::Request(req))
}

/// Keeps echoed user input short in error messages.
fn clip(s: &str) -> String {
    if s.chars().count() > 32 {
        format!("{}…", s.chars().take(32).collect::<String>())
    } else {
        s.to_string()
    }
}

fn unknown_verb(noun: &str, verb: &str) -> ParseError {
    err(
        format!("'{noun}' has no verb '{}'", clip(verb)),
        usage_hint(noun),
    )
}

fn no_more(cmd: &str, rest: &[&str]) -> Result<(), ParseError> {
    match rest.first() {
        None => Ok(()),
        Some(extra) => Err(err(
            format!("'{cmd}' takes no arguments, got '{}'", clip(extra)),
            format!("type just '{cmd}'"),
        )),
    }
}

fn parse_system(rest: &[&str]) -> Result<Request, ParseError> {
    match rest {
        ["status"] => Ok(Request::Status),
        ["reboot"] => Ok(Request::Reboot),
        ["poweroff"] => Ok(Request::PowerOff),
        ["hostname", args @ ..] => parse_hostname(args),
        ["log", args @ ..] => parse_log(args),
        [] => Err(err("'system' needs a verb", usage_hint("system"))),
        [verb, ..] => Err(unknown_verb("system", verb)),
    }
}

fn parse_log(rest: &[&str]) -> Result<Request, ParseError> {
    match rest {
        [] => Ok(Request::Log { lines: 40 }),
        [n] => match n.parse::<usize>() {
            Ok(lines) if (1..=1000).contains(&lines) => Ok(Request::Log { lines }),
            _ => Err(err(
                format!("'{}' is not a line count", clip(n)),
                "give a number from 1 to 1000",
            )),
        },
        _ => Err(err("'log' takes at most one number", "e.g. 'log 100'")),
    }
}

fn parse_hostname(rest: &[&str]) -> Result<Request, ParseError> {
    match rest {
        [] => Ok(Request::Hostname(None)),
        [name] => HostName::parse(name)
            .map(|n| Request::Hostname(Some(n)))
            .map_err(|m| err(m, "e.g. 'hostname tank'")),
        _ => Err(err("a host name is one word", "e.g. 'hostname tank'")),
    }
}

fn parse_ipv4(text: &str, what: &str) -> Result<Ipv4Addr, ParseError> {
    text.parse().map_err(|_| {
        err(
            format!("'{}' is not an IPv4 {what}", clip(text)),
            "write it as four numbers, e.g. 192.168.1.10",
        )
    })
}

fn parse_network(rest: &[&str]) -> Result<Request, ParseError> {
    let iface = |name: &str| {
        IfaceName::parse(name).map_err(|m| err(m, "'network show' lists the interfaces"))
    };
    match rest {
        ["show"] | ["list"] => Ok(Request::Network(NetworkRequest::Show)),
        ["dhcp", name] => Ok(Request::Network(NetworkRequest::Dhcp {
            iface: iface(name)?,
        })),
        ["static", name, cidr, opts @ ..] => {
            let iface = iface(name)?;
            let (addr, prefix) = cidr.split_once('/').ok_or_else(|| {
                err(
                    format!("'{}' has no prefix length", clip(cidr)),
                    "write ADDRESS/PREFIX, e.g. 192.168.1.10/24",
                )
            })?;
            let address = parse_ipv4(addr, "address")?;
            let prefix = match prefix.parse::<u8>() {
                Ok(p) if (1..=32).contains(&p) => p,
                _ => {
                    return Err(err(
                        format!("'{}' is not a prefix length", clip(prefix)),
                        "give a number from 1 to 32, e.g. /24",
                    ))
                }
            };
            let mut gateway = None;
            let mut dns = Vec::new();
            let mut i = 0;
            while i < opts.len() {
                let value = opts.get(i + 1).ok_or_else(|| {
                    err(
                        format!("'{}' needs a value", clip(opts[i])),
                        usage_hint("network"),
                    )
                })?;
                match opts[i] {
                    "gateway" | "gw" => gateway = Some(parse_ipv4(value, "gateway")?),
                    "dns" => {
                        for part in value.split(',') {
                            dns.push(parse_ipv4(part, "DNS server")?);
                        }
                        if dns.len() > 3 {
                            return Err(err("at most 3 DNS servers", "drop the extra ones"));
                        }
                    }
                    other => {
                        return Err(err(
                            format!("unknown option '{}'", clip(other)),
                            "the options are 'gateway' and 'dns'",
                        ))
                    }
                }
                i += 2;
            }
            Ok(Request::Network(NetworkRequest::Static {
                iface,
                address,
                prefix,
                gateway,
                dns,
            }))
        }
        ["static", ..] => Err(err(
            "'network static' needs an interface and ADDRESS/PREFIX",
            "e.g. 'network static eth0 192.168.1.10/24 gateway 192.168.1.1'",
        )),
        ["dhcp"] => Err(err(
            "'network dhcp' needs an interface",
            "e.g. 'network dhcp eth0'",
        )),
        [] => Err(err("'network' needs a verb", usage_hint("network"))),
        [verb, ..] => Err(unknown_verb("network", verb)),
    }
}

/// The help text for everything, or for one noun.
pub fn help(noun: Option<&str>) -> String {
    let mut out = String::new();
    match noun {
        None | Some("help") => {
            out.push_str("Commands are 'noun verb [arguments]'; 'help NOUN' shows one noun.\n");
            for noun in NOUNS {
                out.push_str(&format!("{noun}:\n"));
                for c in COMMANDS.iter().filter(|c| c.noun == *noun) {
                    out.push_str(&format!("  {:<44} {}\n", c.usage, c.about));
                }
            }
            out.push_str("Keys: backspace, ctrl-u clears the line, ctrl-c cancels it, up/down recall history.\n");
        }
        Some(noun) => {
            for c in COMMANDS.iter().filter(|c| c.noun == noun) {
                out.push_str(&format!("  {:<44} {}\n", c.usage, c.about));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Request {
        match parse(line) {
            Ok(Parsed::Request(r)) => r,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        match parse(line) {
            Err(e) => e.to_string(),
            other => panic!("{line:?} should fail, gave {other:?}"),
        }
    }

    #[test]
    fn commands() {
        assert_eq!(parse("").unwrap(), Parsed::Empty);
        assert_eq!(parse("   ").unwrap(), Parsed::Empty);
        assert_eq!(parse("help").unwrap(), Parsed::Help(None));
        assert_eq!(
            parse("help network").unwrap(),
            Parsed::Help(Some("network".into()))
        );
        assert_eq!(req("status"), Request::Status);
        assert_eq!(req("  system   status "), Request::Status);
        assert_eq!(req("disks"), Request::Disks);
        assert_eq!(req("disk list"), Request::Disks);
        assert_eq!(req("reboot"), Request::Reboot);
        assert_eq!(req("system poweroff"), Request::PowerOff);
        assert_eq!(req("log"), Request::Log { lines: 40 });
        assert_eq!(req("system log 5"), Request::Log { lines: 5 });
        assert_eq!(req("hostname"), Request::Hostname(None));
        assert_eq!(
            req("hostname nas-1"),
            Request::Hostname(Some(HostName::parse("nas-1").unwrap()))
        );
        assert_eq!(req("network show"), Request::Network(NetworkRequest::Show));
        assert_eq!(
            req("network dhcp eth0"),
            Request::Network(NetworkRequest::Dhcp {
                iface: IfaceName::parse("eth0").unwrap()
            })
        );
        assert_eq!(
            req("network static eth0 192.168.1.10/24 gateway 192.168.1.1 dns 1.1.1.1,9.9.9.9"),
            Request::Network(NetworkRequest::Static {
                iface: IfaceName::parse("eth0").unwrap(),
                address: Ipv4Addr::new(192, 168, 1, 10),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
                dns: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(9, 9, 9, 9)],
            })
        );
    }

    #[test]
    fn errors_name_the_problem_and_give_a_hint() {
        let e = error("frobnicate");
        assert!(
            e.contains("unknown command 'frobnicate'") && e.contains("help"),
            "{e}"
        );
        let e = error("status now");
        assert!(e.contains("takes no arguments"), "{e}");
        let e = error("network static eth0 10.0.0.1");
        assert!(e.contains("no prefix length"), "{e}");
        let e = error("network static eth0 10.0.0.300/24");
        assert!(e.contains("not an IPv4 address"), "{e}");
        let e = error("network static eth0 10.0.0.3/33");
        assert!(e.contains("prefix length"), "{e}");
        let e = error("network static eth0 10.0.0.3/24 gateway");
        assert!(e.contains("needs a value"), "{e}");
        let e = error("hostname -bad-");
        assert!(e.contains("not a valid host name"), "{e}");
        let e = error("hostname \"two words\"");
        assert!(e.contains("not a valid host name"), "{e}");
        let e = error("log 0");
        assert!(e.contains("line count"), "{e}");
        let e = error("disk format sda");
        assert!(e.contains("no verb 'format'"), "{e}");
        let e = error("say \"hello");
        assert!(e.contains("quote"), "{e}");
        let e = error("help pool-of-nonsense");
        assert!(e.contains("no help"), "{e}");
        let long = "x".repeat(500);
        assert!(error(&long).len() < 200);
    }

    #[test]
    fn tokens() {
        assert_eq!(
            tokenize(r#"a "b c" d\ e"#).unwrap(),
            vec!["a", "b c", "d e"]
        );
        assert_eq!(tokenize(r#""""#).unwrap(), vec![""]);
        assert!(tokenize("a\\").is_err());
        assert!(tokenize("a\u{1b}b").is_err());
    }

    #[test]
    fn help_lists_every_noun() {
        let text = help(None);
        for noun in NOUNS {
            assert!(text.contains(&format!("{noun}:")), "{noun}");
            assert!(!help(Some(noun)).is_empty());
        }
    }

    /// Random bytes and random word salads never panic and always give a request, help, or an
    /// error with a message.
    #[test]
    fn fuzz() {
        let words = [
            "help",
            "status",
            "disks",
            "disk",
            "list",
            "network",
            "static",
            "dhcp",
            "eth0",
            "show",
            "system",
            "log",
            "hostname",
            "reboot",
            "poweroff",
            "gateway",
            "dns",
            "10.0.0.1/24",
            "1.2.3.4",
            "\"",
            "\\",
            "999999999999999999999",
            "/",
            "-",
            "é",
            "日本",
            "",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 8) as usize;
            let line: Vec<&str> = (0..len)
                .map(|_| words[(next() % words.len() as u64) as usize])
                .collect();
            if let Err(e) = parse(&line.join(" ")) {
                assert!(!e.message.is_empty() && !e.hint.is_empty());
            }
            let bytes: Vec<u8> = (0..(next() % 64)).map(|_| next() as u8).collect();
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
