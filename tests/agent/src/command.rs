//! Request lines parsed into typed commands: `[@TAG] [timeout SECS] [as UID:GID[:G,G...]] VERB
//! ARGS...`.
//!
//! Parsing never touches the system; [`crate::ops`], [`crate::mounts`] and [`crate::tcp`] run
//! the commands. Every mistake becomes a [`ParseError`] that names the word at fault and shows
//! the verb's usage.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::{split, Word, WordsError};

/// How long a command may run when the request does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest timeout a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub tag: Option<u64>,
    pub timeout: Duration,
    /// Run as this user instead of root.
    pub creds: Option<Creds>,
    pub command: Command,
}

/// A user, a primary group and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The file system kinds `mount` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// NFS through the kernel's `nfs4` type (every 4.x minor version).
    Nfs4,
    /// The kernel's `nfs` type (version from `vers=`).
    Nfs,
    Cifs,
    Smb3,
    Tmpfs,
}

impl FsKind {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "nfs4" => Self::Nfs4,
            "nfs" => Self::Nfs,
            "cifs" => Self::Cifs,
            "smb3" => Self::Smb3,
            "tmpfs" => Self::Tmpfs,
            _ => return None,
        })
    }

    /// The file system type passed to mount(2).
    pub fn fstype(self) -> &'static str {
        match self {
            Self::Nfs4 => "nfs4",
            Self::Nfs => "nfs",
            Self::Cifs => "cifs",
            Self::Smb3 => "smb3",
            Self::Tmpfs => "tmpfs",
        }
    }
}

/// `mount KIND SOURCE TARGET [OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: FsKind,
    pub source: String,
    pub target: PathBuf,
    /// Comma-separated, as after `mount -o`.
    pub options: String,
}

/// `write PATH SIZE [seed=N] [bs=SIZE] [direct] [nosync] [append] [excl] [mode=OCTAL]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSpec {
    pub path: PathBuf,
    pub size: u64,
    pub seed: u64,
    pub block: usize,
    pub direct: bool,
    /// fsync before close (the default), inside the timing.
    pub fsync: bool,
    pub append: bool,
    /// Fail if the file exists (O_EXCL).
    pub exclusive: bool,
    pub mode: u32,
}

/// `read PATH [bs=SIZE] [direct] [cached] [nohash]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSpec {
    pub path: PathBuf,
    pub block: usize,
    pub direct: bool,
    /// Drop the page cache first (the default), so the bytes come from the server.
    pub drop_caches: bool,
    pub hash: bool,
}

/// What the accepting side of a TCP stream test does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRole {
    /// Receive until the peer closes.
    Sink,
    /// Send this many bytes, then close.
    Source(u64),
}

/// Every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ping,
    Mount(MountSpec),
    Umount {
        target: PathBuf,
        lazy: bool,
        force: bool,
    },
    Mounts,
    Write(WriteSpec),
    Read(ReadSpec),
    Sha256(PathBuf),
    Cat(PathBuf),
    Put {
        path: PathBuf,
        data: Vec<u8>,
        mode: u32,
    },
    Stat(PathBuf),
    Statfs(PathBuf),
    Ls(PathBuf),
    Mkdir {
        path: PathBuf,
        mode: u32,
        parents: bool,
    },
    Rmdir(PathBuf),
    Rm(PathBuf),
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    Copy {
        from: PathBuf,
        to: PathBuf,
        block: usize,
        /// copy_file_range: a server-side copy where the file system offers one.
        server: bool,
    },
    Chmod {
        path: PathBuf,
        mode: u32,
    },
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
    },
    Truncate {
        path: PathBuf,
        size: u64,
    },
    Symlink {
        target: PathBuf,
        path: PathBuf,
    },
    Link {
        from: PathBuf,
        to: PathBuf,
    },
    TcpListen {
        port: u16,
    },
    TcpAccept {
        port: u16,
        role: StreamRole,
    },
    TcpSend {
        addr: SocketAddr,
        size: u64,
    },
    TcpRecv {
        addr: SocketAddr,
    },
    TcpConnect {
        addr: SocketAddr,
    },
    TcpClose {
        port: u16,
    },
    Sync,
    DropCaches,
    Sleep(Duration),
    Poweroff,
}

impl Command {
    /// The verb, for messages.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Mount(_) => "mount",
            Command::Umount { .. } => "umount",
            Command::Mounts => "mounts",
            Command::Write(_) => "write",
            Command::Read(_) => "read",
            Command::Sha256(_) => "sha256",
            Command::Cat(_) => "cat",
            Command::Put { .. } => "put",
            Command::Stat(_) => "stat",
            Command::Statfs(_) => "statfs",
            Command::Ls(_) => "ls",
            Command::Mkdir { .. } => "mkdir",
            Command::Rmdir(_) => "rmdir",
            Command::Rm(_) => "rm",
            Command::Rename { .. } => "rename",
            Command::Copy { .. } => "copy",
            Command::Chmod { .. } => "chmod",
            Command::Chown { .. } => "chown",
            Command::Truncate { .. } => "truncate",
            Command::Symlink { .. } => "symlink",
            Command::Link { .. } => "link",
            Command::TcpListen { .. } => "tcp listen",
            Command::TcpAccept { .. } => "tcp accept",
            Command::TcpSend { .. } => "tcp send",
            Command::TcpRecv { .. } => "tcp recv",
            Command::TcpConnect { .. } => "tcp connect",
            Command::TcpClose { .. } => "tcp close",
            Command::Sync => "sync",
            Command::DropCaches => "drop-caches",
            Command::Sleep(_) => "sleep",
            Command::Poweroff => "poweroff",
        }
    }
}

/// The usage of every verb, one line each (also the reply to `help`-like mistakes).
pub const USAGE: &[(&str, &str)] = &[
    ("ping", "ping"),
    (
        "mount",
        "mount nfs4|nfs|cifs|smb3|tmpfs SOURCE TARGET [OPTION,OPTION...]",
    ),
    ("umount", "umount TARGET [lazy] [force]"),
    ("mounts", "mounts"),
    (
        "write",
        "write PATH SIZE [seed=N] [bs=SIZE] [direct] [nosync] [append] [excl] [mode=OCTAL]",
    ),
    ("read", "read PATH [bs=SIZE] [direct] [cached] [nohash]"),
    ("sha256", "sha256 PATH"),
    ("cat", "cat PATH"),
    ("put", "put PATH TEXT [mode=OCTAL]"),
    ("stat", "stat PATH"),
    ("statfs", "statfs PATH"),
    ("ls", "ls DIR"),
    ("mkdir", "mkdir PATH [mode=OCTAL] [parents]"),
    ("rmdir", "rmdir PATH"),
    ("rm", "rm PATH"),
    ("rename", "rename FROM TO"),
    ("copy", "copy FROM TO [bs=SIZE] [server]"),
    ("chmod", "chmod PATH OCTAL"),
    ("chown", "chown PATH UID:GID"),
    ("truncate", "truncate PATH SIZE"),
    ("symlink", "symlink TARGET PATH"),
    ("link", "link FROM TO"),
    (
        "tcp",
        "tcp listen PORT | tcp accept PORT sink|source SIZE | tcp send HOST:PORT SIZE | \
         tcp recv HOST:PORT | tcp connect HOST:PORT | tcp close PORT",
    ),
    ("sync", "sync"),
    ("drop-caches", "drop-caches"),
    ("sleep", "sleep SECS"),
    ("poweroff", "poweroff"),
];

fn usage(verb: &str) -> &'static str {
    USAGE
        .iter()
        .find(|(v, _)| *v == verb)
        .map(|(_, u)| *u)
        .unwrap_or("")
}

/// A request line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Words(#[from] WordsError),
    #[error("empty request: send a verb, e.g. 'ping'")]
    Empty,
    #[error("bad tag '{0}': a tag is '@' and a number, e.g. '@7 ping'")]
    Tag(String),
    #[error("unknown verb '{0}'; the verbs are: {1}")]
    UnknownVerb(String, String),
    #[error("{message}; usage: {usage}")]
    Usage {
        message: String,
        usage: &'static str,
    },
}

/// Parses one request line. The tag, when there is one, comes back even if the rest fails, so
/// the error reply can carry it.
pub fn parse(line: &[u8]) -> (Option<u64>, Result<Request, ParseError>) {
    let words = match split(line) {
        Ok(w) => w,
        Err(e) => return (tag_of(line), Err(e.into())),
    };
    let mut rest: &[Word] = &words;
    let mut tag = None;
    if let Some(first) = rest.first() {
        if let Some(t) = first.bytes.strip_prefix(b"@") {
            match std::str::from_utf8(t).ok().and_then(|t| t.parse().ok()) {
                Some(t) => tag = Some(t),
                None => return (None, Err(ParseError::Tag(first.text()))),
            }
            rest = &rest[1..];
        }
    }
    (tag, parse_words(tag, rest))
}

/// The tag of a line whose words do not split, if it starts with one.
fn tag_of(line: &[u8]) -> Option<u64> {
    let first = line.split(|&b| b == b' ').find(|w| !w.is_empty())?;
    std::str::from_utf8(first.strip_prefix(b"@")?)
        .ok()?
        .parse()
        .ok()
}

fn parse_words(tag: Option<u64>, mut rest: &[Word]) -> Result<Request, ParseError> {
    let mut timeout = DEFAULT_TIMEOUT;
    let mut creds = None;
    loop {
        match rest.first().map(|w| w.bytes.as_slice()) {
            Some(b"timeout") => {
                let secs = rest.get(1).ok_or_else(|| ParseError::Usage {
                    message: "'timeout' needs a number of seconds".into(),
                    usage: "timeout SECS VERB ...",
                })?;
                timeout = parse_secs(secs)
                    .filter(|t| *t <= MAX_TIMEOUT)
                    .ok_or_else(|| ParseError::Usage {
                        message: format!(
                            "'{}' is not a timeout: give seconds, at most {}",
                            secs.text(),
                            MAX_TIMEOUT.as_secs()
                        ),
                        usage: "timeout SECS VERB ...",
                    })?;
                rest = &rest[2..];
            }
            Some(b"as") => {
                let who = rest.get(1).ok_or_else(|| ParseError::Usage {
                    message: "'as' needs UID:GID".into(),
                    usage: "as UID:GID[:GID,GID...] VERB ...",
                })?;
                creds = Some(parse_creds(who)?);
                rest = &rest[2..];
            }
            _ => break,
        }
    }
    let command = parse_command(rest)?;
    Ok(Request {
        tag,
        timeout,
        creds,
        command,
    })
}

fn parse_secs(word: &Word) -> Option<Duration> {
    let text = std::str::from_utf8(&word.bytes).ok()?;
    let secs: f64 = text.parse().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

fn parse_creds(word: &Word) -> Result<Creds, ParseError> {
    let bad = || ParseError::Usage {
        message: format!(
            "'{}' is not UID:GID: give numbers, e.g. 1000:1000 or 1000:1000:27,100",
            word.text()
        ),
        usage: "as UID:GID[:GID,GID...] VERB ...",
    };
    let text = std::str::from_utf8(&word.bytes).map_err(|_| bad())?;
    let mut parts = text.split(':');
    let uid = parts.next().and_then(|u| u.parse().ok()).ok_or_else(bad)?;
    let gid = parts.next().and_then(|g| g.parse().ok()).ok_or_else(bad)?;
    let groups = match parts.next() {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|g| g.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Creds { uid, gid, groups })
}

/// The words of one verb: positional arguments, then options.
struct Args<'a> {
    verb: &'static str,
    words: &'a [Word],
    next: usize,
    /// How many words are positional.
    positional: usize,
    /// Options not yet taken, by index into `words`.
    options: Vec<usize>,
}

impl<'a> Args<'a> {
    /// `positional` words are taken by position; the rest are options.
    fn new(verb: &'static str, words: &'a [Word], positional: usize) -> Self {
        let positional = positional.min(words.len());
        Args {
            verb,
            words,
            next: 0,
            positional,
            options: (positional..words.len()).collect(),
        }
    }

    fn error(&self, message: String) -> ParseError {
        ParseError::Usage {
            message,
            usage: usage(self.verb),
        }
    }

    fn word(&mut self, what: &str) -> Result<&'a Word, ParseError> {
        let w = self
            .words
            .get(self.next)
            .filter(|_| !self.options.contains(&self.next))
            .ok_or_else(|| self.error(format!("'{}' needs {what}", self.verb)))?;
        self.next += 1;
        Ok(w)
    }

    fn path(&mut self, what: &str) -> Result<PathBuf, ParseError> {
        let w = self.word(what)?;
        if !w.bytes.starts_with(b"/") {
            return Err(self.error(format!(
                "'{}' is not an absolute path: paths start with '/'",
                w.text()
            )));
        }
        Ok(PathBuf::from(OsString::from_vec(w.bytes.clone())))
    }

    fn text(&mut self, what: &str) -> Result<String, ParseError> {
        let w = self.word(what)?;
        String::from_utf8(w.bytes.clone())
            .map_err(|_| self.error(format!("{what} must be UTF-8 text")))
    }

    fn size(&mut self, what: &str) -> Result<u64, ParseError> {
        let w = self.word(what)?;
        parse_size(&w.text())
            .ok_or_else(|| self.error(format!("'{}' is not a size (e.g. 4096, 64K, 1M)", w.text())))
    }

    fn port(&mut self) -> Result<u16, ParseError> {
        let w = self.word("a port")?;
        w.text()
            .parse()
            .map_err(|_| self.error(format!("'{}' is not a port number", w.text())))
    }

    fn addr(&mut self) -> Result<SocketAddr, ParseError> {
        let w = self.word("HOST:PORT")?;
        w.text().parse().map_err(|_| {
            self.error(format!(
                "'{}' is not an address and port such as 10.0.3.1:5001",
                w.text()
            ))
        })
    }

    /// Takes the bare option `name`.
    fn flag(&mut self, name: &str) -> bool {
        let found = self.options.iter().position(|&i| {
            self.words[i].key_len.is_none() && self.words[i].bytes == name.as_bytes()
        });
        match found {
            Some(p) => {
                self.options.remove(p);
                true
            }
            None => false,
        }
    }

    /// Takes the option `name=VALUE`.
    fn value(&mut self, name: &str) -> Option<String> {
        let p = self
            .options
            .iter()
            .position(|&i| self.words[i].key() == Some(name))?;
        let i = self.options.remove(p);
        Some(String::from_utf8_lossy(self.words[i].value().unwrap_or_default()).into_owned())
    }

    fn size_option(&mut self, name: &str, default: u64) -> Result<u64, ParseError> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => parse_size(&v)
                .ok_or_else(|| self.error(format!("{name}={v}: not a size (e.g. 64K, 1M)"))),
        }
    }

    fn block_option(&mut self) -> Result<usize, ParseError> {
        let bs = self.size_option("bs", 1 << 20)?;
        if bs == 0 || bs > 64 << 20 {
            return Err(self.error(format!("bs={bs}: give a block size from 1 to 64M")));
        }
        Ok(bs as usize)
    }

    fn mode_option(&mut self, default: u32) -> Result<u32, ParseError> {
        match self.value("mode") {
            None => Ok(default),
            Some(v) => parse_mode(&v)
                .ok_or_else(|| self.error(format!("mode={v}: give an octal mode such as 0644"))),
        }
    }

    /// Fails on any word left over.
    fn finish(self) -> Result<(), ParseError> {
        let left = (self.next < self.positional)
            .then_some(self.next)
            .or_else(|| self.options.first().copied());
        if let Some(i) = left {
            return Err(self.error(format!(
                "unexpected '{}' for '{}'",
                self.words[i].text(),
                self.verb
            )));
        }
        Ok(())
    }
}

/// Sizes like `4096`, `64K`, `1M`, `2G` (powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let (num, mult) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

fn parse_command(words: &[Word]) -> Result<Command, ParseError> {
    let Some(first) = words.first() else {
        return Err(ParseError::Empty);
    };
    let rest = &words[1..];
    let verb = first.text();
    let cmd = match verb.as_str() {
        "ping" => simple(rest, "ping", Command::Ping)?,
        "mounts" => simple(rest, "mounts", Command::Mounts)?,
        "sync" => simple(rest, "sync", Command::Sync)?,
        "drop-caches" => simple(rest, "drop-caches", Command::DropCaches)?,
        "poweroff" => simple(rest, "poweroff", Command::Poweroff)?,
        "mount" => {
            let mut a = Args::new("mount", rest, 4);
            let kind_word = a.text("a file system kind")?;
            let kind = FsKind::parse(&kind_word).ok_or_else(|| {
                a.error(format!(
                    "unknown file system kind '{kind_word}': use nfs4, nfs, cifs, smb3 or tmpfs"
                ))
            })?;
            let source = a.text("a source")?;
            let target = a.path("a target directory")?;
            let options = if rest.len() >= 4 {
                a.text("options")?
            } else {
                String::new()
            };
            a.finish()?;
            Command::Mount(MountSpec {
                kind,
                source,
                target,
                options,
            })
        }
        "umount" => {
            let mut a = Args::new("umount", rest, 1);
            let target = a.path("a target directory")?;
            let lazy = a.flag("lazy");
            let force = a.flag("force");
            a.finish()?;
            Command::Umount {
                target,
                lazy,
                force,
            }
        }
        "write" => {
            let mut a = Args::new("write", rest, 2);
            let path = a.path("a path")?;
            let size = a.size("a size")?;
            let seed = match a.value("seed") {
                None => 0,
                Some(s) => s
                    .parse()
                    .map_err(|_| a.error(format!("seed={s}: give a number")))?,
            };
            let block = a.block_option()?;
            let direct = a.flag("direct");
            let fsync = !a.flag("nosync");
            let append = a.flag("append");
            let exclusive = a.flag("excl");
            let mode = a.mode_option(0o644)?;
            a.finish()?;
            Command::Write(WriteSpec {
                path,
                size,
                seed,
                block,
                direct,
                fsync,
                append,
                exclusive,
                mode,
            })
        }
        "read" => {
            let mut a = Args::new("read", rest, 1);
            let path = a.path("a path")?;
            let block = a.block_option()?;
            let direct = a.flag("direct");
            let drop_caches = !a.flag("cached");
            let hash = !a.flag("nohash");
            a.finish()?;
            Command::Read(ReadSpec {
                path,
                block,
                direct,
                drop_caches,
                hash,
            })
        }
        "sha256" => one_path(rest, "sha256", Command::Sha256)?,
        "cat" => one_path(rest, "cat", Command::Cat)?,
        "stat" => one_path(rest, "stat", Command::Stat)?,
        "statfs" => one_path(rest, "statfs", Command::Statfs)?,
        "ls" => one_path(rest, "ls", Command::Ls)?,
        "rmdir" => one_path(rest, "rmdir", Command::Rmdir)?,
        "rm" => one_path(rest, "rm", Command::Rm)?,
        "put" => {
            let mut a = Args::new("put", rest, 2);
            let path = a.path("a path")?;
            let data = a.word("the text")?.bytes.clone();
            let mode = a.mode_option(0o644)?;
            a.finish()?;
            Command::Put { path, data, mode }
        }
        "mkdir" => {
            let mut a = Args::new("mkdir", rest, 1);
            let path = a.path("a path")?;
            let mode = a.mode_option(0o755)?;
            let parents = a.flag("parents");
            a.finish()?;
            Command::Mkdir {
                path,
                mode,
                parents,
            }
        }
        "rename" | "link" => {
            let verb = if verb == "rename" { "rename" } else { "link" };
            let mut a = Args::new(verb, rest, 2);
            let from = a.path("FROM")?;
            let to = a.path("TO")?;
            a.finish()?;
            if verb == "rename" {
                Command::Rename { from, to }
            } else {
                Command::Link { from, to }
            }
        }
        "symlink" => {
            let mut a = Args::new("symlink", rest, 2);
            // The link's target is stored as it is: it may be relative.
            let target = PathBuf::from(OsString::from_vec(a.word("a target")?.bytes.clone()));
            let path = a.path("the link's path")?;
            a.finish()?;
            Command::Symlink { target, path }
        }
        "copy" => {
            let mut a = Args::new("copy", rest, 2);
            let from = a.path("FROM")?;
            let to = a.path("TO")?;
            let block = a.block_option()?;
            let server = a.flag("server");
            a.finish()?;
            Command::Copy {
                from,
                to,
                block,
                server,
            }
        }
        "chmod" => {
            let mut a = Args::new("chmod", rest, 2);
            let path = a.path("a path")?;
            let m = a.text("a mode")?;
            let mode = parse_mode(&m)
                .ok_or_else(|| a.error(format!("'{m}' is not an octal mode such as 0644")))?;
            a.finish()?;
            Command::Chmod { path, mode }
        }
        "chown" => {
            let mut a = Args::new("chown", rest, 2);
            let path = a.path("a path")?;
            let owner = a.text("UID:GID")?;
            let (uid, gid) = owner
                .split_once(':')
                .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)))
                .ok_or_else(|| a.error(format!("'{owner}' is not UID:GID such as 1000:1000")))?;
            a.finish()?;
            Command::Chown { path, uid, gid }
        }
        "truncate" => {
            let mut a = Args::new("truncate", rest, 2);
            let path = a.path("a path")?;
            let size = a.size("a size")?;
            a.finish()?;
            Command::Truncate { path, size }
        }
        "sleep" => {
            let a = Args::new("sleep", rest, 1);
            let secs = rest
                .first()
                .and_then(parse_secs)
                .ok_or_else(|| a.error("'sleep' needs a number of seconds".into()))?;
            a.finish_after(1)?;
            Command::Sleep(secs)
        }
        "tcp" => parse_tcp(rest)?,
        _ => {
            let verbs: Vec<&str> = USAGE.iter().map(|(v, _)| *v).collect();
            return Err(ParseError::UnknownVerb(
                crate::protocol::sanitize(&verb),
                verbs.join(", "),
            ));
        }
    };
    Ok(cmd)
}

impl Args<'_> {
    /// Like [`Args::finish`] when the first `n` words were read by hand.
    fn finish_after(mut self, n: usize) -> Result<(), ParseError> {
        self.next = n;
        self.finish()
    }
}

fn simple(rest: &[Word], verb: &'static str, cmd: Command) -> Result<Command, ParseError> {
    Args::new(verb, rest, 0).finish()?;
    Ok(cmd)
}

fn one_path(
    rest: &[Word],
    verb: &'static str,
    make: fn(PathBuf) -> Command,
) -> Result<Command, ParseError> {
    let mut a = Args::new(verb, rest, 1);
    let path = a.path("a path")?;
    a.finish()?;
    Ok(make(path))
}

fn parse_tcp(rest: &[Word]) -> Result<Command, ParseError> {
    let sub = rest.first().map(|w| w.text()).unwrap_or_default();
    let rest = rest.get(1..).unwrap_or_default();
    let cmd = match sub.as_str() {
        "listen" | "close" => {
            let mut a = Args::new("tcp", rest, 1);
            let port = a.port()?;
            a.finish()?;
            if sub == "listen" {
                Command::TcpListen { port }
            } else {
                Command::TcpClose { port }
            }
        }
        "accept" => {
            let mut a = Args::new("tcp", rest, rest.len().min(3));
            let port = a.port()?;
            let role = match a.text("sink or source")?.as_str() {
                "sink" => StreamRole::Sink,
                "source" => StreamRole::Source(a.size("a size")?),
                other => return Err(a.error(format!("'{other}': say sink or source SIZE"))),
            };
            a.finish()?;
            Command::TcpAccept { port, role }
        }
        "send" => {
            let mut a = Args::new("tcp", rest, 2);
            let addr = a.addr()?;
            let size = a.size("a size")?;
            a.finish()?;
            Command::TcpSend { addr, size }
        }
        "recv" | "connect" => {
            let mut a = Args::new("tcp", rest, 1);
            let addr = a.addr()?;
            a.finish()?;
            if sub == "recv" {
                Command::TcpRecv { addr }
            } else {
                Command::TcpConnect { addr }
            }
        }
        _ => {
            return Err(ParseError::Usage {
                message: format!("unknown tcp verb '{}'", crate::protocol::sanitize(&sub)),
                usage: usage("tcp"),
            })
        }
    };
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Request {
        match parse(line.as_bytes()) {
            (_, Ok(r)) => r,
            (_, Err(e)) => panic!("{line}: {e}"),
        }
    }

    fn err(line: &str) -> String {
        match parse(line.as_bytes()) {
            (_, Ok(r)) => panic!("{line} parsed: {r:?}"),
            (_, Err(e)) => e.to_string(),
        }
    }

    #[test]
    fn prefixes() {
        let r = req("@7 timeout 2.5 as 1000:100:27,44 write /mnt/x 1M seed=3 nosync");
        assert_eq!(r.tag, Some(7));
        assert_eq!(r.timeout, Duration::from_millis(2500));
        assert_eq!(
            r.creds,
            Some(Creds {
                uid: 1000,
                gid: 100,
                groups: vec![27, 44]
            })
        );
        assert_eq!(
            r.command,
            Command::Write(WriteSpec {
                path: "/mnt/x".into(),
                size: 1 << 20,
                seed: 3,
                block: 1 << 20,
                direct: false,
                fsync: false,
                append: false,
                exclusive: false,
                mode: 0o644,
            })
        );
        let r = req("ping");
        assert_eq!((r.tag, r.timeout, r.creds), (None, DEFAULT_TIMEOUT, None));
        assert_eq!(parse(b"@9 frobnicate").0, Some(9));
        assert_eq!(parse(b"@9 write \"/unterminated").0, Some(9));
    }

    #[test]
    fn commands() {
        assert_eq!(
            req("mount nfs4 10.0.3.1:/mnt/tank/vms /mnt/vms vers=4.2,hard").command,
            Command::Mount(MountSpec {
                kind: FsKind::Nfs4,
                source: "10.0.3.1:/mnt/tank/vms".into(),
                target: "/mnt/vms".into(),
                options: "vers=4.2,hard".into(),
            })
        );
        assert_eq!(
            req("mount tmpfs scratch /mnt/t").command,
            Command::Mount(MountSpec {
                kind: FsKind::Tmpfs,
                source: "scratch".into(),
                target: "/mnt/t".into(),
                options: String::new(),
            })
        );
        assert_eq!(
            req("read \"/mnt/a b\" direct bs=64K nohash").command,
            Command::Read(ReadSpec {
                path: "/mnt/a b".into(),
                block: 64 << 10,
                direct: true,
                drop_caches: true,
                hash: false,
            })
        );
        assert_eq!(
            req("umount /mnt/x lazy force").command,
            Command::Umount {
                target: "/mnt/x".into(),
                lazy: true,
                force: true
            }
        );
        assert_eq!(
            req("tcp accept 5001 source 64M").command,
            Command::TcpAccept {
                port: 5001,
                role: StreamRole::Source(64 << 20)
            }
        );
        assert_eq!(
            req("tcp send 10.0.3.2:5001 1G").command,
            Command::TcpSend {
                addr: "10.0.3.2:5001".parse().unwrap(),
                size: 1 << 30
            }
        );
        assert_eq!(
            req("chown /x 1000:1000").command,
            Command::Chown {
                path: "/x".into(),
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            req("put /x \"hello world\" mode=0600").command,
            Command::Put {
                path: "/x".into(),
                data: b"hello world".to_vec(),
                mode: 0o600
            }
        );
        assert_eq!(
            req("sleep 0.5").command,
            Command::Sleep(Duration::from_millis(500))
        );
        // A path that looks like an option is still the path.
        assert_eq!(req("stat /a=b").command, Command::Stat("/a=b".into()));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(err("").contains("empty request"));
        assert!(err("frobnicate").contains("unknown verb 'frobnicate'"));
        assert!(err("write relative 1M").contains("not an absolute path"));
        assert!(err("write /x lots").contains("'lots' is not a size"));
        assert!(err("write /x 1M colour=red").contains("unexpected 'colour=red'"));
        assert!(err("write /x").contains("'write' needs a size"));
        assert!(err("mount zfs a /b").contains("unknown file system kind 'zfs'"));
        assert!(err("as root ping").contains("is not UID:GID"));
        assert!(err("timeout forever ping").contains("is not a timeout"));
        assert!(err("timeout 99999 ping").contains("is not a timeout"));
        assert!(err("@x ping").contains("bad tag"));
        assert!(err("tcp send nowhere 1M").contains("not an address"));
        assert!(err("tcp frob").contains("unknown tcp verb"));
        assert!(err("chmod /x 999").contains("not an octal mode"));
        assert!(err("ping now").contains("unexpected 'now'"));
        assert!(err("read /x bs=0").contains("block size"));
        assert!(err("mkdir /x mode=rwx").contains("octal mode"));
        assert!(err("tcp accept 5001 sink 1M").contains("unexpected '1M'"));
    }

    /// Random lines never panic the parser.
    #[test]
    fn fuzz() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let words: &[&str] = &[
            "@1",
            "timeout",
            "as",
            "1000:1000",
            "write",
            "read",
            "mount",
            "nfs4",
            "tcp",
            "send",
            "accept",
            "/mnt/x",
            "1M",
            "seed=",
            "bs=",
            "\"",
            "=",
            "source",
            "sink",
            "10.0.3.1:1",
            "mode=",
            "0644",
            "lazy",
            "x",
            "\\x",
            "\u{ff}",
        ];
        for _ in 0..50_000 {
            let n = next() % 8;
            let mut line = Vec::new();
            for _ in 0..n {
                if next() % 5 == 0 {
                    line.push(next() as u8);
                } else {
                    line.extend_from_slice(
                        words[(next() % words.len() as u64) as usize].as_bytes(),
                    );
                }
                if next() % 4 != 0 {
                    line.push(b' ');
                }
            }
            let _ = parse(&line);
        }
    }
}
