//! The command loop: one request line in, one reply line out, each command on its own worker
//! thread under a deadline.
//!
//! A file operation on a network file system blocks for as long as the server is away, so the
//! loop never runs a command itself: it starts a thread (with the request's user, when `as`
//! says so: credentials on Linux belong to a thread), waits for the result until the request's
//! timeout and otherwise answers `err timeout`. A thread stuck in the kernel is left behind;
//! its late result is dropped. What does not live here: the commands themselves
//! ([`crate::ops`], [`crate::mounts`], [`crate::tcp`]) and booting ([`crate::boot`]).

use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::{Gid, Uid};

use crate::command::{self, Command, Creds, Request};
use crate::console::{Lines, Output};
use crate::ops::{self, OpError};
use crate::protocol::{Fields, Reply};
use crate::{mounts, system, tcp};

/// The longest request line.
pub const MAX_LINE: usize = 64 << 10;

/// What the commands share.
pub struct State {
    pub listeners: tcp::Listeners,
    /// The agent's own address (NFSv4's `clientaddr=`).
    pub address: Option<Ipv4Addr>,
    /// What `ping` reports besides the uptime.
    pub about: Fields,
}

/// What handling one line asks of the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    PowerOff,
}

/// The command loop over one output.
pub struct Agent {
    state: Arc<State>,
    out: Output,
}

impl Agent {
    pub fn new(state: State, out: Output) -> Self {
        Agent {
            state: Arc::new(state),
            out,
        }
    }

    /// Serves request lines from `input` until it ends or a `poweroff` is answered.
    pub fn serve(&self, input: impl Read) -> Next {
        let mut lines = Lines::new(input, MAX_LINE);
        while let Some((line, cut)) = lines.next_line() {
            if cut {
                let (tag, _) = command::parse(&line);
                let reply = Reply::Err {
                    code: "usage".into(),
                    message: format!(
                        "request longer than {} KiB; nothing was run",
                        MAX_LINE >> 10
                    ),
                };
                self.out.line(&reply.render(tag));
                continue;
            }
            if self.handle(&line) == Next::PowerOff {
                return Next::PowerOff;
            }
        }
        Next::Continue
    }

    /// Handles one request line: runs it and writes the reply.
    pub fn handle(&self, line: &[u8]) -> Next {
        let (tag, parsed) = command::parse(line);
        let (reply, next) = match parsed {
            Err(e) => (
                Reply::Err {
                    code: "usage".into(),
                    message: e.to_string(),
                },
                Next::Continue,
            ),
            Ok(req) if req.command == Command::Poweroff => (
                Reply::Ok(Fields::new().put("state", "powering-off")),
                Next::PowerOff,
            ),
            Ok(req) => (self.run(req), Next::Continue),
        };
        self.out.line(&reply.render(tag));
        next
    }

    fn run(&self, req: Request) -> Reply {
        let verb = req.command.verb();
        let deadline = Instant::now() + req.timeout;
        let (tx, rx) = mpsc::channel();
        let state = self.state.clone();
        let Request { creds, command, .. } = req;
        let spawned = std::thread::Builder::new()
            .name(verb.replace(' ', "-"))
            .spawn(move || {
                let result = match &creds {
                    Some(c) => become_user(c).and_then(|()| execute(&command, &state, deadline)),
                    None => execute(&command, &state, deadline),
                };
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Reply::Err {
                code: "failed".into(),
                message: format!("cannot start a thread for {verb}: {e}"),
            };
        }
        match rx.recv_timeout(req.timeout) {
            Ok(Ok(fields)) => Reply::Ok(fields),
            Ok(Err(e)) => Reply::Err {
                code: e.code(),
                message: e.to_string(),
            },
            Err(RecvTimeoutError::Timeout) => Reply::Err {
                code: "timeout".into(),
                message: format!(
                    "{verb} did not finish within {:.1} s; it may still be blocked (a file \
                     server that went away holds file operations)",
                    req.timeout.as_secs_f64()
                ),
            },
            Err(RecvTimeoutError::Disconnected) => Reply::Err {
                code: "failed".into(),
                message: format!("{verb} crashed: a bug in the agent (see the '# error' line)"),
            },
        }
    }
}

/// Switches the calling thread to `c`: supplementary groups, then the group, then the user
/// (real, effective and saved, so the file system user follows and root's capabilities go).
pub fn become_user(c: &Creds) -> Result<(), OpError> {
    if c.uid == u32::MAX || c.gid == u32::MAX || c.groups.contains(&u32::MAX) {
        return Err(OpError::Failed(
            "id 4294967295 means 'no id' to the kernel".into(),
        ));
    }
    let groups: Vec<Gid> = c.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    let sys = |what: &str| {
        let what = what.to_string();
        move |e: rustix::io::Errno| OpError::io(what)(e.into())
    };
    rustix::thread::set_thread_groups(&groups).map_err(sys("setgroups"))?;
    let gid = Gid::from_raw(c.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(sys("setresgid"))?;
    let uid = Uid::from_raw(c.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(sys("setresuid"))?;
    Ok(())
}

/// Runs one command on the calling thread.
pub fn execute(cmd: &Command, state: &State, deadline: Instant) -> Result<Fields, OpError> {
    match cmd {
        Command::Ping => Ok(state.about.clone().secs("uptime", system::uptime())),
        Command::Mount(spec) => mounts::mount(spec, state.address),
        Command::Umount {
            target,
            lazy,
            force,
        } => mounts::umount(target, *lazy, *force),
        Command::Mounts => mounts::list(),
        Command::Write(spec) => ops::write(spec, deadline),
        Command::Read(spec) => ops::read(spec, deadline),
        Command::Sha256(p) => ops::sha256(p, deadline),
        Command::Cat(p) => ops::cat(p),
        Command::Put { path, data, mode } => ops::put(path, data, *mode),
        Command::Stat(p) => ops::stat(p),
        Command::Statfs(p) => ops::statfs(p),
        Command::Ls(p) => ops::ls(p, deadline),
        Command::Mkdir {
            path,
            mode,
            parents,
        } => ops::mkdir(path, *mode, *parents),
        Command::Rmdir(p) => ops::rmdir(p),
        Command::Rm(p) => ops::rm(p),
        Command::Rename { from, to } => ops::rename(from, to),
        Command::Link { from, to } => ops::link(from, to),
        Command::Symlink { target, path } => ops::symlink(target, path),
        Command::Copy {
            from,
            to,
            block,
            server,
        } => ops::copy(from, to, *block, *server, deadline),
        Command::Chmod { path, mode } => ops::chmod(path, *mode),
        Command::Chown { path, uid, gid } => ops::chown(path, *uid, *gid),
        Command::Truncate { path, size } => ops::truncate(path, *size),
        Command::TcpListen { port } => state.listeners.listen(*port),
        Command::TcpAccept { port, role } => state.listeners.accept(*port, *role, deadline),
        Command::TcpClose { port } => state.listeners.close(*port),
        Command::TcpSend { addr, size } => tcp::send(*addr, *size, deadline),
        Command::TcpRecv { addr } => tcp::recv(*addr, deadline),
        Command::TcpConnect { addr } => tcp::probe(*addr, deadline),
        Command::Sync => {
            let t = Instant::now();
            rustix::fs::sync();
            Ok(Fields::new().secs("seconds", t.elapsed().as_secs_f64()))
        }
        Command::DropCaches => {
            system::drop_caches().map_err(OpError::io("write /proc/sys/vm/drop_caches"))?;
            Ok(Fields::new())
        }
        Command::Sleep(d) => {
            let end = Instant::now() + *d;
            while Instant::now() < end {
                ops::check(deadline, "sleep")?;
                std::thread::sleep(
                    end.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100)),
                );
            }
            Ok(Fields::new())
        }
        // Handled by the loop, which answers before powering off.
        Command::Poweroff => Ok(Fields::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    /// An output the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn agent() -> (Agent, Captured) {
        let cap = Captured::default();
        let state = State {
            listeners: tcp::Listeners::default(),
            address: None,
            about: Fields::new().put("agent", "tank-agent"),
        };
        (Agent::new(state, Output::new(cap.clone())), cap)
    }

    fn replies(cap: &Captured) -> Vec<String> {
        String::from_utf8(cap.0.lock().unwrap().clone())
            .unwrap()
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn lines_in_replies_out_with_timeouts() {
        let dir = std::env::temp_dir().join(format!("tank-agent-loop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let (agent, cap) = agent();
        let input = format!(
            "@1 ping\r@2 write {d}/f 100K seed=9\r\n@3 stat {d}/f\n@4 frobnicate\n\
             @5 timeout 0.3 sleep 5\n@6 rm {d}/missing\n@7 timeout 5 sleep 0.1\n@8 ls {d}\n\
             @9 poweroff\n@10 ping\n"
        );
        let started = Instant::now();
        assert_eq!(agent.serve(input.as_bytes()), Next::PowerOff);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the timeout did not cut sleep 5"
        );
        let r = replies(&cap);
        assert_eq!(r.len(), 9, "{r:?}");
        assert!(r[0].starts_with("@1 ok agent=tank-agent uptime="), "{r:?}");
        assert_eq!(
            r[1].split(' ').nth(2).unwrap(),
            format!("sha256={}", crate::pattern::sha256_hex(9, 100 << 10))
        );
        assert!(r[2].starts_with("@3 ok type=file mode=0644"), "{}", r[2]);
        assert!(
            r[3].starts_with("@4 err usage unknown verb 'frobnicate'"),
            "{}",
            r[3]
        );
        assert!(
            r[4].starts_with("@5 err timeout sleep did not finish within 0.3 s"),
            "{}",
            r[4]
        );
        assert!(r[5].starts_with("@6 err ENOENT rm "), "{}", r[5]);
        assert_eq!(r[6], "@7 ok");
        assert_eq!(r[7], "@8 ok count=1 name=f");
        assert_eq!(r[8], "@9 ok state=powering-off");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_lines_and_garbage_get_errors() {
        let (agent, cap) = agent();
        let mut input = b"@1 stat /".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend_from_slice(b"\n@2 \"unterminated\n\xff\xfe\x00\n@3 ping\n");
        agent.serve(&input[..]);
        let r = replies(&cap);
        assert_eq!(r.len(), 4, "{r:?}");
        assert!(r[0].starts_with("@1 err usage request longer"), "{}", r[0]);
        assert!(r[1].starts_with("@2 err usage a quoted word"), "{}", r[1]);
        assert!(r[2].starts_with("err usage unknown verb"), "{}", r[2]);
        assert!(r[3].starts_with("@3 ok"), "{}", r[3]);
    }
}
