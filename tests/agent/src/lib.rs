//! The test agent: the init (PID 1) of the test client guest, a second QEMU guest that mounts
//! the appliance's NFS exports and SMB shares with the Linux kernel's own clients (as Proxmox
//! VE and a Linux media server do) and runs file and TCP commands that a test sends over the
//! serial console.
//!
//! The library holds everything but `main`, so the harness (`tank_tests::client`) shares the
//! wire format ([`protocol`]) and the test pattern ([`pattern`]) with the agent, and the
//! command loop runs on the host too (`tank-agent --stdio`).
//!
//! # Protocol
//!
//! The agent reads request lines on the serial console (`\n` or `\r` ends a line; the line is
//! raw, nothing is echoed) and answers each with exactly one reply line, in order:
//!
//! ```text
//! request:  [@TAG] [timeout SECS] [as UID:GID[:GID,GID...]] VERB ARGS...
//! reply:    [@TAG] ok [KEY=VALUE ...]
//!           [@TAG] err CODE MESSAGE
//! other:    # LEVEL: TEXT            a log line of the agent (never a reply)
//!           # kernel: <N> TEXT       a kernel message of level N <= 4 (warnings and worse)
//!           tank-agent ready KEY=VALUE...   once, when the agent is up
//! ```
//!
//! Words are separated by spaces; a word with spaces, quotes, backslashes or bytes outside
//! printable ASCII is written `"..."` with `\"`, `\\` and `\xNN` escapes (see [`protocol`]);
//! reply values are quoted the same way. The tag, when given, is echoed on the reply. `CODE`
//! is an errno name (`EACCES`, `EROFS`, `EPERM`, `ENOENT`, `EDQUOT`, `ECONNREFUSED`...) when a
//! system call failed, `usage` for a request that does not parse (nothing ran), `timeout`
//! when the command did not finish in time (default 60 s; `timeout SECS` sets it, up to
//! 3600), `failed` otherwise. A command that timed out may still be blocked in the kernel on
//! its own thread; the agent goes on with the next request.
//!
//! `as UID:GID[:G,G...]` runs the command on a thread whose real, effective and saved ids and
//! supplementary groups are those (NFS sends them as AUTH_SYS credentials; local permission
//! checks use them), so root squashing and ownership can be tested.
//!
//! Paths are absolute. Sizes are bytes or `K`, `M`, `G` (powers of 1024). Modes are octal.
//! The agent's umask is 0, so `mode=` is the mode asked of the file system.
//!
//! | request | ok reply fields |
//! |---|---|
//! | `ping` | `agent version hostname ip uptime` |
//! | `mount nfs4\|nfs\|cifs\|smb3\|tmpfs SOURCE TARGET [OPTIONS]` | `target type options seconds` (see [`mounts`] for what is added) |
//! | `umount TARGET [lazy] [force]` | `seconds` |
//! | `mounts` | `count`, then `mount="SOURCE TARGET TYPE OPTIONS"` per mount |
//! | `write PATH SIZE [seed=N] [bs=SIZE] [direct] [nosync] [append] [excl] [mode=OCTAL]` | `sha256 bytes seconds mib_s` |
//! | `read PATH [bs=SIZE] [direct] [cached] [nohash]` | `sha256 bytes seconds mib_s dropped` |
//! | `sha256 PATH` | `bytes sha256` |
//! | `cat PATH` (at most 64 KiB) | `bytes data` |
//! | `put PATH TEXT [mode=OCTAL]` | `bytes` |
//! | `stat PATH` (not following a symlink) | `type mode uid gid size nlink ino mtime ctime [target]` |
//! | `statfs PATH` | `block_size blocks blocks_free blocks_avail bytes_total bytes_avail files files_free` |
//! | `ls DIR` | `count`, then `name=` per entry, sorted |
//! | `mkdir PATH [mode=OCTAL] [parents]`, `rmdir PATH`, `rm PATH`, `rename FROM TO`, `link FROM TO`, `symlink TARGET PATH`, `chmod PATH OCTAL`, `chown PATH UID:GID`, `truncate PATH SIZE` | none |
//! | `copy FROM TO [bs=SIZE] [server]` | `[sha256] bytes seconds mib_s` |
//! | `tcp listen PORT` | `port` |
//! | `tcp accept PORT sink` / `tcp accept PORT source SIZE` | `bytes seconds mib_s [acked] peer` |
//! | `tcp send HOST:PORT SIZE` | `bytes seconds mib_s acked connect_seconds` |
//! | `tcp recv HOST:PORT` | `bytes seconds mib_s connect_seconds` |
//! | `tcp connect HOST:PORT` | `seconds local` |
//! | `tcp close PORT` | none |
//! | `sync` | `seconds` |
//! | `drop-caches`, `sleep SECS` | none |
//! | `poweroff` | `state=powering-off`, then the guest powers off |
//!
//! `write` fills the file with the deterministic [`pattern`] for `seed` (default 0) and
//! fsyncs it unless `nosync` (an error such as `EDQUOT` that only the server sees may then be
//! reported by fsync: that is the default so it is not lost). `read` drops the page cache
//! first unless `cached` (as root only; `dropped=no` says it could not), so the bytes come
//! over the network; `direct` uses O_DIRECT. `seconds` and `mib_s` count the time in the file
//! system calls, not in the pattern or the checksum.
//!
//! The ready line's fields: `version started hostname modules modules_failed modules_seconds
//! iface mtu ip uptime` (`started` is the guest uptime when the kernel ran the agent; `ip=none`
//! when the network could not be configured).
//!
//! # Kernel command line
//!
//! `tank.agent.ip=A.B.C.D/P` (the static address), `tank.agent.iface=NAME` (default: the first
//! ethernet link), `tank.agent.hostname=NAME` (default `client-A-B-C-D`; NFSv4 clients are
//! told apart by it), `tank.agent.console=NAME` (default `ttyS0`).
#![forbid(unsafe_code)]

pub mod agent;
pub mod boot;
pub mod command;
pub mod console;
pub mod mounts;
pub mod net;
pub mod ops;
pub mod pattern;
pub mod protocol;
pub mod system;
pub mod tcp;

/// The agent's version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
