//! Console text → [`Request`]: the language is `noun verb arguments`, with a few short forms
//! (`status`, `disks`, `reboot`, `poweroff`, `log`, `hostname`).
//!
//! Every failure is a [`ParseError`] with a one-line message and a hint; no input panics
//! (a fuzz test feeds it random bytes).

use std::net::Ipv4Addr;

use super::request::{
    AlertRequest, DatasetProps, DatasetRequest, DiskName, FileRequest, HostName, IfaceName,
    MemberRef, NetworkRequest, PoolRequest, Request,
};
use crate::config::{Compression, DatasetName, Gid, Mode, PoolName, ScrubSchedule, Size, Uid};

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
        usage: "system version",
        about: "version and build label, build id, signer, both boot slots and their states (also: version)",
    },
    CommandHelp {
        noun: "system",
        usage: "system hostname [NAME]",
        about: "show or set the host name (also: hostname)",
    },
    CommandHelp {
        noun: "system",
        usage: "system log [LINES]",
        about: "the last lines of this boot's kernel and init log, UTC times (also: log)",
    },
    CommandHelp {
        noun: "system",
        usage: "log boot 0|-N [LINES]",
        about: "the log of an earlier boot kept on the pool (-1 the previous one), or this one",
    },
    CommandHelp {
        noun: "system",
        usage: "log boots",
        about: "the boots the log keeps: first and last time, lines",
    },
    CommandHelp {
        noun: "system",
        usage: "log mark TEXT",
        about: "write a line of your own into the log (e.g. before a change, to find it later)",
    },
    CommandHelp {
        noun: "system",
        usage: "system config export DATASET/PATH [secrets]",
        about: "write the whole configuration to a file (password hashes only with secrets)",
    },
    CommandHelp {
        noun: "system",
        usage: "system config import DATASET/PATH",
        about: "show what an export changes, apply it when confirmed",
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
    CommandHelp { noun: "disk", usage: "disk list", about: "disks with size, model, serial and pool membership (also: disks)" },
    CommandHelp { noun: "disk", usage: "disk readtest DISK [SIZE]", about: "sequential read speed of a disk (default 256M)" },
    CommandHelp { noun: "disk", usage: "disk health [DISK]", about: "SMART or NVMe health of every disk, or everything about one" },
    CommandHelp { noun: "disk", usage: "disk test DISK short|long", about: "start a SMART or NVMe self-test" },
    CommandHelp { noun: "alert", usage: "alert list", about: "active alerts and the latest cleared ones (also: alerts)" },
    CommandHelp { noun: "alert", usage: "log alerts", about: "every alert kept: raised, last seen, cleared" },
    CommandHelp { noun: "alert", usage: "alert show", about: "the delivery channels and each one's last result" },
    CommandHelp { noun: "alert", usage: "alert test", about: "send a test alert through every channel and show each result" },
    CommandHelp {
        noun: "alert",
        usage: "alert mail to ADDRESS server HOST [port N] [from ADDRESS] [user NAME] [tls starttls|implicit|off]",
        about: "mail alerts over SMTP submission (a user's password is asked for)",
    },
    CommandHelp { noun: "alert", usage: "alert webhook URL [format json|ntfy]", about: "POST alerts to a URL (JSON, or ntfy/Gotify style)" },
    CommandHelp { noun: "alert", usage: "alert remove mail|webhook", about: "stop sending alerts through a channel" },
    CommandHelp { noun: "alert", usage: "alert dismiss ID", about: "end an alert you have seen (errors that rose, a failed job)" },
    CommandHelp { noun: "alert", usage: "alert temperature hdd|nvme CELSIUS", about: "the disk temperature that raises an alert (default 50 and 70)" },
    CommandHelp { noun: "pool", usage: "pool status", about: "health, members and their error counters, capacity, scrub" },
    CommandHelp { noun: "pool", usage: "pool create NAME mirror DISK DISK [force]", about: "format two blank disks as a mirrored pool" },
    CommandHelp { noun: "pool", usage: "pool replace missing|DEVID|DISK NEWDISK [force]", about: "replace a member with a blank disk, then re-mirror" },
    CommandHelp { noun: "pool", usage: "pool import NAME|UUID", about: "mount this pool when the disks hold several" },
    CommandHelp { noun: "pool", usage: "pool scrub start|status|cancel", about: "verify every block, repair bad copies" },
    CommandHelp { noun: "pool", usage: "pool scrub schedule monthly DAY HH:MM | off", about: "when scrubs run (local time; default day 1 at 03:00)" },
    CommandHelp { noun: "dataset", usage: "dataset list", about: "datasets with used, referenced, quota, compression, mountpoint" },
    CommandHelp {
        noun: "dataset",
        usage: "dataset create NAME [quota SIZE] [compression zstd|lzo|zlib|none] [owner UID[:GID]] [mode OCTAL]",
        about: "a new dataset, mounted at /mnt/POOL/NAME",
    },
    CommandHelp { noun: "dataset", usage: "dataset set NAME PROPERTY VALUE ...", about: "change quota (SIZE or none), compression, owner, mode" },
    CommandHelp { noun: "dataset", usage: "dataset destroy NAME [force]", about: "delete a dataset and its data (asks to confirm; force does not ask)" },
    CommandHelp { noun: "snapshot", usage: "snapshot list [DATASET]", about: "snapshots with creation time and the space each holds" },
    CommandHelp { noun: "snapshot", usage: "snapshot create DATASET@NAME", about: "a read-only snapshot, now" },
    CommandHelp { noun: "snapshot", usage: "snapshot destroy DATASET@NAME", about: "delete a snapshot" },
    CommandHelp { noun: "snapshot", usage: "snapshot rollback DATASET@NAME", about: "return the dataset to the snapshot (asks to confirm)" },
    CommandHelp { noun: "snapshot", usage: "snapshot clone DATASET@NAME NEWDATASET", about: "a new writable dataset from a snapshot" },
    CommandHelp { noun: "snapshot", usage: "snapshot task list", about: "periodic tasks with their next run and last result" },
    CommandHelp {
        noun: "snapshot",
        usage: "snapshot task add DATASET every 15m|every 2h|daily HH:MM|weekly DAY HH:MM keep N|keep 7d",
        about: "snapshot on a schedule (local time), keeping the newest N or for a time",
    },
    CommandHelp { noun: "snapshot", usage: "snapshot task remove ID", about: "stop a task (its snapshots stay)" },
    CommandHelp { noun: "nfs", usage: "nfs share list", about: "NFS exports, their clients and options (also: nfs list)" },
    CommandHelp {
        noun: "nfs",
        usage: "nfs share add DATASET [clients LIST] [ro] [no_root_squash|maproot USER|mapall USER] [insecure]",
        about: "export /mnt/POOL/DATASET over NFSv4 (root squashed by default)",
    },
    CommandHelp { noun: "nfs", usage: "nfs share set DATASET OPTION...", about: "change an export's options, at once" },
    CommandHelp { noun: "nfs", usage: "nfs share remove DATASET", about: "stop exporting a dataset" },
    CommandHelp { noun: "smb", usage: "smb status", about: "the SMB server's settings and sessions" },
    CommandHelp {
        noun: "smb",
        usage: "smb set workgroup NAME|min_protocol 2.1|3.0|signing auto|mandatory|encryption auto|off|required",
        about: "change the server's settings (restarts SMB)",
    },
    CommandHelp { noun: "smb", usage: "smb share list", about: "SMB shares and their options" },
    CommandHelp {
        noun: "smb",
        usage: "smb share add NAME [dataset DS] [users LIST] [readonly_users LIST] [ro] [guest yes] [hosts_allow LIST] [hosts_deny LIST] [force_user U] [force_group G] [create_mask 0664] [directory_mask 0775] [browseable no] [veto LIST] [comment TEXT]",
        about: "share a dataset (default: the dataset of the same name)",
    },
    CommandHelp { noun: "smb", usage: "smb share set NAME OPTION...", about: "change a share's options, at once" },
    CommandHelp { noun: "smb", usage: "smb share remove NAME", about: "stop sharing" },
    CommandHelp { noun: "user", usage: "user list", about: "users with their ids and groups" },
    CommandHelp { noun: "user", usage: "user add NAME [uid N] [groups G,G]", about: "a new user; asks for the password twice" },
    CommandHelp { noun: "user", usage: "user passwd NAME", about: "change a password" },
    CommandHelp { noun: "user", usage: "user set NAME groups G,G|none", about: "change a user's groups" },
    CommandHelp { noun: "user", usage: "user remove NAME", about: "remove a user (files keep their owner id)" },
    CommandHelp { noun: "group", usage: "group list", about: "groups and their members" },
    CommandHelp { noun: "group", usage: "group add NAME [gid N]", about: "a new group" },
    CommandHelp { noun: "group", usage: "group remove NAME", about: "remove a group" },
    CommandHelp { noun: "file", usage: "file write DATASET/PATH SIZE [seed WORD]", about: "write a test pattern and print its SHA-256" },
    CommandHelp { noun: "file", usage: "file checksum DATASET/PATH", about: "SHA-256 and size of a file" },
    CommandHelp { noun: "file", usage: "file list DATASET[/PATH]", about: "the entries of a directory with size, mode and owner" },
    CommandHelp { noun: "file", usage: "file remove DATASET/PATH", about: "remove a file or an empty directory" },
    CommandHelp {
        noun: "network",
        usage: "network show",
        about: "interfaces, addresses, routes and DHCP leases",
    },
    CommandHelp {
        noun: "network",
        usage: "network perf [SIZE]",
        about: "open a TCP sink (port 5001) and a source of SIZE bytes (5002) for 5 minutes",
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
    CommandHelp { noun: "time", usage: "time", about: "local time, UTC, zone, synchronized or not, the server and last offset (also: date)" },
    CommandHelp { noun: "time", usage: "time zone ZONE", about: "the time zone of schedules and shown times (IANA name, e.g. Europe/Berlin; default UTC)" },
    CommandHelp { noun: "time", usage: "time server HOST[:PORT]... | default", about: "the SNTP servers when DHCP gives none (default pool.ntp.org)" },
];

/// The nouns, in help order.
pub const NOUNS: &[&str] = &[
    "system", "disk", "pool", "dataset", "snapshot", "nfs", "smb", "user", "group", "file",
    "network", "alert", "time",
];

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

pub(super) fn err(message: impl Into<String>, hint: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
        hint: hint.into(),
    }
}

pub(super) fn usage_hint(noun: &str) -> String {
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
        "version" => {
            super::version::parse_version(rest)?;
            Request::Version
        }
        "alert" | "alerts" => Request::Alert(super::parse_alert::parse_alert(rest)?),
        "hostname" => parse_hostname(rest)?,
        "system" => parse_system(rest)?,
        "disk" => parse_disk(rest)?,
        "pool" => Request::Pool(parse_pool(rest)?),
        "dataset" | "ds" => Request::Dataset(parse_dataset(rest)?),
        "file" => Request::File(parse_file(rest)?),
        "nfs" => Request::Nfs(super::parse_sharing::parse_nfs(rest)?),
        "smb" => Request::Smb(super::parse_sharing::parse_smb(rest)?),
        "user" => Request::User(super::parse_sharing::parse_user(rest)?),
        "group" => Request::Group(super::parse_sharing::parse_group(rest)?),
        "snapshot" | "snap" => Request::Snapshot(super::parse_snapshot::parse_snapshot(rest)?),
        "network" | "net" => parse_network(rest)?,
        "time" | "date" => Request::Time(super::time::parse_time(rest)?),
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
pub(super) fn clip(s: &str) -> String {
    if s.chars().count() > 32 {
        format!("{}…", s.chars().take(32).collect::<String>())
    } else {
        s.to_string()
    }
}

pub(super) fn unknown_verb(noun: &str, verb: &str) -> ParseError {
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
        ["version", args @ ..] => super::version::parse_version(args).map(|()| Request::Version),
        ["reboot"] => Ok(Request::Reboot),
        ["poweroff"] => Ok(Request::PowerOff),
        ["hostname", args @ ..] => parse_hostname(args),
        ["log", args @ ..] => parse_log(args),
        ["config", args @ ..] => super::parse_backup::parse_config(args).map(Request::Config),
        [] => Err(err("'system' needs a verb", usage_hint("system"))),
        [verb, ..] => Err(unknown_verb("system", verb)),
    }
}

fn parse_log(rest: &[&str]) -> Result<Request, ParseError> {
    match rest {
        [] => Ok(Request::Log { lines: 40 }),
        ["mark"] => Err(err(
            "'log mark' needs the text to write",
            "e.g. 'log mark before the upgrade'",
        )),
        ["mark", words @ ..] => {
            let text = words.join(" ");
            if text.len() > 200 || text.chars().any(char::is_control) {
                return Err(err(
                    "a log mark is one line of at most 200 characters",
                    "e.g. 'log mark before the upgrade'",
                ));
            }
            Ok(Request::LogMark(text))
        }
        ["boots"] => Ok(Request::LogBoots),
        ["boot", args @ ..] => parse_log_boot(args),
        ["alerts"] => Ok(Request::Alert(AlertRequest::History)),
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

fn parse_log_boot(rest: &[&str]) -> Result<Request, ParseError> {
    const HINT: &str =
        "e.g. 'log boot -1' (the previous boot) or 'log boot -2 100' (its last 100 lines)";
    let (which, lines) = match rest {
        [which] => (*which, None),
        [which, n] => (*which, Some(*n)),
        _ => {
            return Err(err(
                "'log boot' takes a boot (0, -1, -2...) and at most a line count",
                HINT,
            ))
        }
    };
    let back = match which.strip_prefix('-') {
        Some(n) => n.parse::<u32>().ok().filter(|n| *n >= 1),
        None => (which == "0").then_some(0),
    };
    let Some(back) = back else {
        return Err(err(
            format!(
                "'{}' is not a boot: 0 is this one, -1 the previous one",
                clip(which)
            ),
            HINT,
        ));
    };
    let lines = match lines {
        None => None,
        Some(n) => match n.parse::<usize>() {
            Ok(lines) if (1..=100_000).contains(&lines) => Some(lines),
            _ => {
                return Err(err(
                    format!("'{}' is not a line count", clip(n)),
                    "give a number from 1 to 100000",
                ))
            }
        },
    };
    Ok(Request::LogBoot { back, lines })
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
        ["perf"] => Ok(Request::Network(NetworkRequest::Perf {
            source_bytes: 64 << 20,
        })),
        ["perf", amount] => Ok(Request::Network(NetworkRequest::Perf {
            source_bytes: size(amount)?.bytes(),
        })),
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

fn disk_name(text: &str) -> Result<DiskName, ParseError> {
    DiskName::parse(text).map_err(|m| err(m, "type 'disks' to list them"))
}

fn size(text: &str) -> Result<Size, ParseError> {
    Size::parse(text).map_err(|e| err(e.to_string(), "see 'help'"))
}

fn parse_disk(rest: &[&str]) -> Result<Request, ParseError> {
    match rest {
        ["list"] => Ok(Request::Disks),
        ["readtest", disk] => Ok(Request::DiskReadTest {
            disk: disk_name(disk)?,
            bytes: 256 << 20,
        }),
        ["readtest", disk, amount] => Ok(Request::DiskReadTest {
            disk: disk_name(disk)?,
            bytes: size(amount)?.bytes(),
        }),
        ["health"] => Ok(Request::DiskHealth(None)),
        ["health", disk] => Ok(Request::DiskHealth(Some(disk_name(disk)?))),
        ["test", disk, kind] => Ok(Request::DiskTest {
            disk: disk_name(disk)?,
            long: match *kind {
                "short" => false,
                "long" => true,
                other => {
                    return Err(err(
                        format!("'{other}' is not a self-test"),
                        "e.g. 'disk test sda short' or 'disk test sda long'",
                    ))
                }
            },
        }),
        ["test", ..] => Err(err(
            "'disk test' needs a disk and short or long",
            "e.g. 'disk test sda short'",
        )),
        [] => Err(err("'disk' needs a verb", usage_hint("disk"))),
        [verb, ..] => Err(unknown_verb("disk", verb)),
    }
}

fn pool_name(text: &str) -> Result<PoolName, ParseError> {
    PoolName::parse(text).map_err(|e| err(e.to_string(), "see 'help pool'"))
}

/// An optional trailing `force`.
fn parse_force(tail: &[&str]) -> Result<bool, ParseError> {
    match tail {
        [] => Ok(false),
        ["force"] => Ok(true),
        [other, ..] => Err(err(
            format!("unexpected '{}'", clip(other)),
            "the only option is 'force'",
        )),
    }
}

fn parse_pool(rest: &[&str]) -> Result<PoolRequest, ParseError> {
    match rest {
        ["status"] => Ok(PoolRequest::Status),
        ["create", name, "mirror", a, b, tail @ ..] => {
            let force = parse_force(tail)?;
            let (a, b) = (disk_name(a)?, disk_name(b)?);
            if a == b {
                return Err(err(
                    format!("{} is named twice", a.as_str()),
                    "a mirror needs two different disks",
                ));
            }
            Ok(PoolRequest::Create {
                name: pool_name(name)?,
                disks: vec![a, b],
                force,
                confirmations: Vec::new(),
            })
        }
        ["create", _, layout, ..] if *layout != "mirror" => Err(err(
            format!("'{}' is not a layout Tank builds", clip(layout)),
            "use 'pool create NAME mirror DISK DISK'",
        )),
        ["create", ..] => Err(err(
            "'pool create' needs a name, 'mirror' and two disks",
            "e.g. 'pool create tank mirror sda sdb'",
        )),
        ["replace", old, new, tail @ ..] => {
            let force = parse_force(tail)?;
            let old = match *old {
                "missing" => MemberRef::Missing,
                n if n.bytes().all(|b| b.is_ascii_digit()) => {
                    MemberRef::Devid(n.parse().map_err(|_| {
                        err(
                            format!("'{}' is not a device id", clip(n)),
                            "'pool status' lists them",
                        )
                    })?)
                }
                n => MemberRef::Disk(disk_name(n)?),
            };
            Ok(PoolRequest::Replace {
                old,
                new: disk_name(new)?,
                force,
                confirmations: Vec::new(),
            })
        }
        ["replace", ..] => Err(err(
            "'pool replace' needs the old member and the new disk",
            "e.g. 'pool replace missing sdc'",
        )),
        ["import", pool] => Ok(PoolRequest::Import((*pool).to_string())),
        ["import", ..] => Err(err(
            "'pool import' needs the pool's name or uuid",
            "e.g. 'pool import tank'; 'status' lists the pools on the disks",
        )),
        ["scrub", "start"] => Ok(PoolRequest::ScrubStart),
        ["scrub", "status"] | ["scrub"] => Ok(PoolRequest::ScrubStatus),
        ["scrub", "cancel"] | ["scrub", "stop"] => Ok(PoolRequest::ScrubCancel),
        ["scrub", "schedule", "off"] => Ok(PoolRequest::ScrubSchedule(ScrubSchedule::Off)),
        ["scrub", "schedule", "monthly", day, time] => {
            let day = match day.parse::<u8>() {
                Ok(d) if (1..=28).contains(&d) => d,
                _ => {
                    return Err(err(
                        format!(
                            "'{}' is not a day of the month Tank schedules on",
                            clip(day)
                        ),
                        "use 1 to 28, so every month has it",
                    ))
                }
            };
            let (hour, minute) = parse_time(time)?;
            Ok(PoolRequest::ScrubSchedule(ScrubSchedule::Monthly {
                day,
                hour,
                minute,
            }))
        }
        ["scrub", "schedule", ..] => Err(err(
            "bad scrub schedule",
            "e.g. 'pool scrub schedule monthly 1 03:00' or 'pool scrub schedule off'",
        )),
        ["scrub", verb, ..] => Err(err(
            format!("'pool scrub' has no verb '{}'", clip(verb)),
            "use start, status, cancel or schedule",
        )),
        [] => Err(err("'pool' needs a verb", usage_hint("pool"))),
        [verb, ..] => Err(unknown_verb("pool", verb)),
    }
}

/// `HH:MM` in 24-hour time.
pub(super) fn parse_time(text: &str) -> Result<(u8, u8), ParseError> {
    let bad = || {
        err(
            format!("'{}' is not a time", clip(text)),
            "write HH:MM in 24-hour local time, e.g. 03:00",
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let hour: u8 = h.parse().map_err(|_| bad())?;
    let minute: u8 = m.parse().map_err(|_| bad())?;
    if hour > 23 || minute > 59 || m.len() != 2 {
        return Err(bad());
    }
    Ok((hour, minute))
}

pub(super) fn dataset_name(text: &str) -> Result<DatasetName, ParseError> {
    DatasetName::parse(text).map_err(|e| err(e.to_string(), "see 'help dataset'"))
}

/// `quota 10G compression zstd owner 1000:1000 mode 0750` → properties.
fn parse_props(words: &[&str]) -> Result<DatasetProps, ParseError> {
    let mut props = DatasetProps::default();
    let mut i = 0;
    while i < words.len() {
        let key = words[i];
        let value = words.get(i + 1).ok_or_else(|| {
            err(
                format!("'{}' needs a value", clip(key)),
                "properties are quota, compression, owner, mode",
            )
        })?;
        match key {
            "quota" => {
                props.quota = Some(
                    Size::parse_quota(value)
                        .map_err(|e| err(e.to_string(), "see 'help dataset'"))?,
                )
            }
            "compression" | "compress" => {
                props.compression = Some(
                    Compression::parse(value)
                        .map_err(|e| err(e.to_string(), "see 'help dataset'"))?,
                )
            }
            "owner" => {
                let hint = "write UID or UID:GID as numbers, e.g. 1000:1000";
                let (u, g) = value.split_once(':').unwrap_or((value, value));
                let uid = Uid::parse(u).map_err(|e| err(e.to_string(), hint))?;
                let gid = Gid::parse(g).map_err(|e| err(e.to_string(), hint))?;
                props.owner = Some((uid.get(), gid.get()));
            }
            "mode" => {
                let mode = Mode::parse(value)
                    .map_err(|e| err(e.to_string(), "write it in octal, e.g. 0755"))?;
                props.mode = Some(mode.bits());
            }
            other => {
                return Err(err(
                    format!("unknown property '{}'", clip(other)),
                    "properties are quota, compression, owner, mode",
                ))
            }
        }
        i += 2;
    }
    Ok(props)
}

fn parse_dataset(rest: &[&str]) -> Result<DatasetRequest, ParseError> {
    match rest {
        ["list"] => Ok(DatasetRequest::List),
        ["create", name, props @ ..] => Ok(DatasetRequest::Create {
            name: dataset_name(name)?,
            props: parse_props(props)?,
        }),
        ["set", name, props @ ..] => {
            let props = parse_props(props)?;
            if props.is_empty() {
                return Err(err(
                    "'dataset set' needs a property and a value",
                    "e.g. 'dataset set media quota 100G'",
                ));
            }
            Ok(DatasetRequest::Set {
                name: dataset_name(name)?,
                props,
            })
        }
        ["destroy", name] => Ok(DatasetRequest::Destroy {
            name: dataset_name(name)?,
            force: false,
            confirmed: false,
        }),
        ["destroy", name, "force"] => Ok(DatasetRequest::Destroy {
            name: dataset_name(name)?,
            force: true,
            confirmed: false,
        }),
        ["create"] | ["set"] | ["destroy"] => {
            Err(err("a dataset name is needed", usage_hint("dataset")))
        }
        ["destroy", _, other, ..] => Err(err(
            format!("unexpected '{}'", clip(other)),
            "the only option is 'force'",
        )),
        [] => Err(err("'dataset' needs a verb", usage_hint("dataset"))),
        [verb, ..] => Err(unknown_verb("dataset", verb)),
    }
}

fn parse_file(rest: &[&str]) -> Result<FileRequest, ParseError> {
    let path = |p: &str| -> Result<String, ParseError> {
        crate::storage::files::split(p).map_err(|e| err(e.to_string(), "e.g. media/test.bin"))?;
        Ok(p.to_string())
    };
    match rest {
        ["write", p, amount, tail @ ..] => {
            let seed = match tail {
                [] => "tank".to_string(),
                ["seed", word]
                    if !word.is_empty()
                        && word.len() <= 20
                        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
                {
                    word.to_string()
                }
                ["seed", word] => {
                    return Err(err(
                        format!("'{}' is not a seed", clip(word)),
                        "use 1 to 20 letters, digits or '-'",
                    ))
                }
                [other, ..] => {
                    return Err(err(
                        format!("unexpected '{}'", clip(other)),
                        "the only option is 'seed WORD'",
                    ))
                }
            };
            Ok(FileRequest::Write {
                path: path(p)?,
                size: size(amount)?.bytes(),
                seed,
            })
        }
        ["checksum", p] => Ok(FileRequest::Checksum { path: path(p)? }),
        ["list", p] => Ok(FileRequest::List { path: path(p)? }),
        ["remove", p] => Ok(FileRequest::Remove { path: path(p)? }),
        [] => Err(err("'file' needs a verb", usage_hint("file"))),
        [verb, ..] if ["write", "checksum", "list", "remove"].contains(verb) => Err(err(
            format!("'file {verb}' needs a path"),
            usage_hint("file"),
        )),
        [verb, ..] => Err(unknown_verb("file", verb)),
    }
}

/// One command's help: usage and description on one line, or on two when the usage is long.
fn help_line(out: &mut String, c: &CommandHelp) {
    if c.usage.len() <= 44 {
        out.push_str(&format!("  {:<44} {}\n", c.usage, c.about));
    } else {
        out.push_str(&format!("  {}\n  {:<44} {}\n", c.usage, "", c.about));
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
                    help_line(&mut out, c);
                }
            }
            out.push_str("Keys: backspace, ctrl-u clears the line, ctrl-c cancels it, up/down recall history.\n");
        }
        Some(noun) => {
            for c in COMMANDS.iter().filter(|c| c.noun == noun) {
                help_line(&mut out, c);
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
        assert_eq!(
            req("log mark before  the change"),
            Request::LogMark("before the change".into())
        );
        assert!(error("log mark").contains("needs the text"));
        assert_eq!(req("system log 5"), Request::Log { lines: 5 });
        assert_eq!(
            req("log boot -1"),
            Request::LogBoot {
                back: 1,
                lines: None
            }
        );
        assert_eq!(
            req("system log boot -12 50"),
            Request::LogBoot {
                back: 12,
                lines: Some(50)
            }
        );
        assert_eq!(
            req("log boot 0"),
            Request::LogBoot {
                back: 0,
                lines: None
            }
        );
        assert_eq!(req("log boots"), Request::LogBoots);
        for bad in [
            "log boot",
            "log boot 1",
            "log boot -0",
            "log boot -x",
            "log boot -1 0",
        ] {
            let e = error(bad);
            assert!(
                e.contains("log boot") || e.contains("line count"),
                "{bad}: {e}"
            );
        }
        assert_eq!(req("log alerts"), Request::Alert(AlertRequest::History));
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
        assert!(e.contains("host name \"-bad-\" is not valid"), "{e}");
        let e = error("hostname \"two words\"");
        assert!(e.contains("host name \"two words\" is not valid"), "{e}");
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
    fn storage_commands() {
        let name = |n: &str| DatasetName::parse(n).unwrap();
        let disk = |n: &str| DiskName::parse(n).unwrap();
        assert_eq!(
            req("pool create tank mirror sda sdb"),
            Request::Pool(PoolRequest::Create {
                name: PoolName::parse("tank").unwrap(),
                disks: vec![disk("sda"), disk("sdb")],
                force: false,
                confirmations: vec![],
            })
        );
        assert!(matches!(
            req("pool create tank mirror sda sdb force"),
            Request::Pool(PoolRequest::Create { force: true, .. })
        ));
        assert_eq!(
            req("pool replace missing sdc"),
            Request::Pool(PoolRequest::Replace {
                old: MemberRef::Missing,
                new: disk("sdc"),
                force: false,
                confirmations: vec![]
            })
        );
        assert!(matches!(
            req("pool replace 2 sdc"),
            Request::Pool(PoolRequest::Replace {
                old: MemberRef::Devid(2),
                ..
            })
        ));
        assert_eq!(
            req("pool import tank"),
            Request::Pool(PoolRequest::Import("tank".into()))
        );
        assert_eq!(
            req("pool scrub start"),
            Request::Pool(PoolRequest::ScrubStart)
        );
        assert_eq!(
            req("pool scrub schedule monthly 15 02:30"),
            Request::Pool(PoolRequest::ScrubSchedule(ScrubSchedule::Monthly {
                day: 15,
                hour: 2,
                minute: 30
            }))
        );
        assert_eq!(
            req("pool scrub schedule off"),
            Request::Pool(PoolRequest::ScrubSchedule(ScrubSchedule::Off))
        );
        let Request::Dataset(DatasetRequest::Create { name: n, props }) =
            req("dataset create media quota 10G compression zstd owner 1000:100 mode 0750")
        else {
            panic!("not a create");
        };
        assert_eq!(n, name("media"));
        assert_eq!(props.quota, Some(Some(Size::parse("10G").unwrap())));
        assert_eq!(props.compression, Some(Compression::Zstd));
        assert_eq!(props.owner, Some((1000, 100)));
        assert_eq!(props.mode, Some(0o750));
        assert!(matches!(
            req("dataset set media quota none"),
            Request::Dataset(DatasetRequest::Set {
                props: DatasetProps {
                    quota: Some(None),
                    ..
                },
                ..
            })
        ));
        assert!(matches!(
            req("dataset destroy media"),
            Request::Dataset(DatasetRequest::Destroy {
                confirmed: false,
                ..
            })
        ));
        assert!(matches!(
            req("file write media/a.bin 4M seed x"),
            Request::File(FileRequest::Write { size: 4194304, .. })
        ));
        assert!(matches!(
            req("disk readtest sda"),
            Request::DiskReadTest { .. }
        ));
        assert_eq!(req("disk health"), Request::DiskHealth(None));
        assert_eq!(
            req("disk health nvme0n1"),
            Request::DiskHealth(Some(DiskName::parse("nvme0n1").unwrap()))
        );
        assert_eq!(
            req("disk test sda long"),
            Request::DiskTest {
                disk: DiskName::parse("sda").unwrap(),
                long: true
            }
        );
        assert!(error("disk test sda medium").contains("medium"));
        assert!(error("disk test sda").contains("short or long"));
        assert!(error("disk health /dev/sda").contains("not a disk name"));

        for (line, needle) in [
            ("pool create tank mirror sda sda", "twice"),
            ("pool create tank raid5 sda sdb", "layout"),
            ("pool create Tank! mirror sda sdb", "Tank!"),
            ("pool create tank mirror sda /dev/sdb", "not a disk name"),
            ("pool scrub schedule monthly 31 03:00", "day"),
            ("pool scrub schedule monthly 1 25:00", "time"),
            ("dataset create ..", ".."),
            ("dataset create a/b", "/"),
            ("dataset create media quota -1G", "-1G"),
            ("dataset create media quota 0", "0"),
            ("dataset create media owner me", "user id"),
            ("dataset create media mode 999", "mode"),
            ("dataset create media colour blue", "unknown property"),
            ("dataset set media", "needs a property"),
            ("file write ../etc 1M", "not a path inside a dataset"),
            ("file write media/x 1M seed a_b", "seed"),
        ] {
            let e = error(line);
            assert!(e.contains(needle), "{line}: {e}");
        }
        let confirmed = req("dataset destroy media").with_confirmation("media".into());
        assert!(matches!(
            confirmed,
            Request::Dataset(DatasetRequest::Destroy {
                confirmed: true,
                ..
            })
        ));
        let confirmed =
            req("pool create tank mirror sda sdb force").with_confirmation("sdb".into());
        assert!(
            matches!(confirmed, Request::Pool(PoolRequest::Create { confirmations, .. }) if confirmations == vec!["sdb".to_string()])
        );
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
            "boot",
            "-1",
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
