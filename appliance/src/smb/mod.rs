//! SMB: the kernel's SMB3 server (ksmbd) driven by the init, which plays the part of
//! ksmbd-tools' `ksmbd.mountd` over generic netlink. The data path is the kernel's; this is
//! the control plane.
//!
//! - [`genl`]: the netlink socket and framing;
//! - [`ipc`]: the ksmbd message layouts;
//! - [`policy`]: logins, share configurations and tree connect decisions, as pure functions
//!   of the configuration;
//! - [`dcerpc`]: the named pipes (srvsvc, wkssvc) that share browsing uses;
//! - this file: [`SmbService`], the daemon thread and the server's start, restart and stop.
//!
//! The server is started with the global settings (STARTING_UP); changing them needs a
//! restart (`kill_server`, which drops every connection). Share and user changes reach a
//! running server without dropping anyone: the policy takes the new configuration and marks
//! changed shares so their next tree connect tells the kernel to ask again (UPDATE).

pub mod dcerpc;
pub mod genl;
pub mod ipc;
// The table lists whole structures; `ipc` uses the members it reads or writes, the image
// build's check reads them all.
#[allow(dead_code)]
pub mod layout;
pub mod policy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use genl::{Genl, Incoming};
use ipc::{event, Request, Startup};
use policy::{Policy, View};

use crate::config::sharing::{Encryption, Signing, SmbProtocol};
use crate::config::Config;

/// Where ksmbd's control files live.
const KILL_SERVER: &str = "/sys/class/ksmbd-control/kill_server";

/// The SMB server as the engine sees it.
pub struct SmbService {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    startup: Startup,
    started_at: Instant,
}

/// What the daemon thread and the engine share.
struct Shared {
    policy: Mutex<Policy>,
    /// Open tree connections: (session, tree) → share.
    trees: Mutex<HashMap<(u64, u64), String>>,
    dropped: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The NetBIOS name for a host name: its first label in upper case, at most 15 characters.
pub fn netbios_name(hostname: &str) -> String {
    hostname
        .split('.')
        .next()
        .unwrap_or("TANK")
        .chars()
        .take(15)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// The lowest dialect served: encryption needs SMB 3.0, so `encryption required` raises the
/// minimum to it (an SMB 2.1 client would otherwise connect unencrypted).
pub fn effective_min_protocol(smb: &crate::config::sharing::SmbGlobal) -> SmbProtocol {
    match smb.encryption {
        Encryption::Required => SmbProtocol::Smb3_0,
        _ => smb.min_protocol,
    }
}

/// The startup settings for a configuration.
pub fn startup_for(config: &Config, hostname: &str) -> Startup {
    let smb = &config.smb;
    let mut flags = 0;
    match smb.encryption {
        Encryption::Auto => {}
        Encryption::Off => flags |= ipc::global::ENCRYPTION_OFF,
        Encryption::Required => flags |= ipc::global::ENCRYPTION,
    }
    Startup {
        flags,
        signing: match smb.signing {
            Signing::Auto => 2,
            Signing::Mandatory => 3,
        },
        min_protocol: effective_min_protocol(smb).ksmbd_name().into(),
        max_protocol: "SMB3_11".into(),
        netbios_name: netbios_name(hostname),
        workgroup: smb.workgroup.clone(),
        server_string: format!("Tank {}", crate::version()),
        tcp_port: 445,
        ipc_timeout_secs: 10,
        deadtime_mins: 0,
        file_max: 10_000,
        max_write: 0,
        max_read: 0,
        max_trans: 0,
        sub_auth: smb.domain_sid,
        max_credits: 0,
        max_connections: 256,
        max_ip_connections: 64,
    }
}

/// Stops ksmbd's server side: every listener and connection closes, the configuration is
/// forgotten, and it waits for a new STARTING_UP.
fn kill_server() {
    if let Err(e) = std::fs::write(KILL_SERVER, "hard") {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("smb: cannot reset ksmbd through {KILL_SERVER}: {e}");
        }
    }
}

impl SmbService {
    /// Registers with ksmbd and starts answering it.
    pub fn start(config: &Config, hostname: &str) -> Result<SmbService, String> {
        let startup = startup_for(config, hostname);
        kill_server();
        let mut genl = Genl::open().map_err(|e| format!("cannot reach ksmbd: {e}"))?;
        let body = ipc::encode_startup(&startup);
        // A reset started by kill_server may still be running: the kernel then says EINVAL.
        let mut last = None;
        for _ in 0..20 {
            match genl.send_acked(event::STARTING_UP, body.clone()) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        if let Some(e) = last {
            return Err(format!("ksmbd refused to start: {e}"));
        }
        let shared = Arc::new(Shared {
            policy: Mutex::new(Policy::new(View::from_config(config))),
            trees: Mutex::new(HashMap::new()),
            dropped: Mutex::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            let server = dcerpc::ServerInfo {
                name: startup.netbios_name.clone(),
                workgroup: startup.workgroup.clone(),
                comment: startup.server_string.clone(),
                version: (6, 1),
            };
            let mut genl = genl;
            crate::supervise::spawn_supervised(
                "smb-daemon",
                crate::supervise::Policy::RESTART,
                move || {
                    // Pipe state does not survive a restart of the thread: clients reopen.
                    let mut pipes = dcerpc::Pipes::default();
                    serve(&mut genl, &shared, &stop, &mut pipes, &server)
                },
            )
            .map_err(|e| format!("cannot start the SMB daemon thread: {e}"))?
        };
        log::info!(
            "smb: server started as {} in {}: SMB {} to 3.1.1, signing {}, encryption {}",
            startup.netbios_name,
            startup.workgroup,
            startup.min_protocol,
            if startup.signing == 3 {
                "mandatory"
            } else {
                "auto"
            },
            match config.smb.encryption {
                Encryption::Auto => "when asked",
                Encryption::Off => "off",
                Encryption::Required => "required",
            }
        );
        Ok(SmbService {
            shared,
            stop,
            thread: Some(thread),
            startup,
            started_at: Instant::now(),
        })
    }

    /// Whether `config` needs a restart to take effect (global settings changed).
    pub fn needs_restart(&self, config: &Config, hostname: &str) -> bool {
        startup_for(config, hostname) != self.startup
    }

    /// Takes share and user changes into force, without dropping anyone.
    pub fn update(&self, config: &Config) {
        lock(&self.shared.policy).set_view(View::from_config(config));
    }

    /// Stops the daemon and the server: every connection closes (before the pool is unmounted
    /// and when global settings change).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        kill_server();
        if let Some(thread) = self.thread.take() {
            // Cuts short a restart's backoff, so the thread sees the stop flag at once.
            thread.thread().unpark();
            let _ = thread.join();
        }
        log::info!("smb: server stopped");
    }

    /// One line for `status`.
    pub fn status_line(&self) -> String {
        let trees = lock(&self.shared.trees);
        let sessions: std::collections::BTreeSet<u64> = trees.keys().map(|(s, _)| *s).collect();
        let policy = lock(&self.shared.policy);
        format!(
            "running as {} for {}: {} share(s), {} session(s), {} tree connection(s); logins {} ok, {} failed; connects {} ok, {} refused; {} malformed messages dropped; up {} s",
            self.startup.netbios_name,
            self.startup.workgroup,
            policy.view().shares.len(),
            sessions.len(),
            trees.len(),
            policy.logins,
            policy.failed_logins,
            policy.tree_connects,
            policy.refused_connects,
            *lock(&self.shared.dropped),
            self.started_at.elapsed().as_secs()
        )
    }
}

/// The share listing the pipes offer: browseable shares and IPC$.
fn listing(policy: &Policy) -> Vec<dcerpc::ShareListing> {
    let mut shares: Vec<dcerpc::ShareListing> = policy
        .view()
        .shares
        .iter()
        .filter(|s| s.browseable)
        .map(|s| dcerpc::ShareListing {
            name: s.name.to_string(),
            comment: s.comment.clone(),
            kind: dcerpc::ShareKind::Disk,
        })
        .collect();
    shares.push(dcerpc::ShareListing {
        name: "IPC$".into(),
        comment: "IPC Service".into(),
        kind: dcerpc::ShareKind::Ipc,
    });
    shares
}

fn serve(
    genl: &mut Genl,
    shared: &Shared,
    stop: &AtomicBool,
    pipes: &mut dcerpc::Pipes,
    server: &dcerpc::ServerInfo,
) {
    while !stop.load(Ordering::Relaxed) {
        let messages = match genl.recv() {
            Ok(m) => m,
            Err(e) => {
                log::error!("smb: reading from ksmbd: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        for message in messages {
            let m = match message {
                Incoming::Event(m) => m,
                Incoming::Ack { result: Err(e), .. } => {
                    log::warn!("smb: the kernel refused a message: {e}");
                    continue;
                }
                Incoming::Ack { .. } => continue,
                Incoming::Malformed(why) => {
                    *lock(&shared.dropped) += 1;
                    crate::peer_log!(
                        log::Level::Warn,
                        "smb: malformed netlink messages",
                        "smb: dropped a malformed netlink message: {why}"
                    );
                    continue;
                }
            };
            let request = match ipc::decode(m.event, &m.body) {
                Ok(r) => r,
                Err(e) => {
                    *lock(&shared.dropped) += 1;
                    crate::peer_log!(
                        log::Level::Warn,
                        "smb: malformed ksmbd messages",
                        "smb: dropped a malformed ksmbd message: {e}"
                    );
                    continue;
                }
            };
            if let Some((event, body)) = answer(request, shared, pipes, server) {
                if let Err(e) = genl.send(event, body) {
                    log::error!("smb: cannot answer ksmbd (event {event}): {e}");
                }
            }
        }
    }
}

/// The reply to one request, if it needs one.
fn answer(
    request: Request,
    shared: &Shared,
    pipes: &mut dcerpc::Pipes,
    server: &dcerpc::ServerInfo,
) -> Option<(u16, Vec<u8>)> {
    let now = Instant::now();
    match request {
        Request::Heartbeat => None,
        Request::Login {
            handle,
            account,
            ext: false,
        } => {
            let login = lock(&shared.policy).login(handle, &account, now);
            Some((event::LOGIN_RESPONSE, ipc::encode_login(&login)))
        }
        Request::Login {
            handle,
            account,
            ext: true,
        } => {
            let groups = lock(&shared.policy).groups_of(&account);
            Some((
                event::LOGIN_RESPONSE_EXT,
                ipc::encode_login_ext(handle, &groups),
            ))
        }
        Request::ShareConfig { handle, share } => {
            let config = lock(&shared.policy).share_config(handle, &share);
            Some((
                event::SHARE_CONFIG_RESPONSE,
                ipc::encode_share_config(&config),
            ))
        }
        Request::TreeConnect {
            handle,
            account_flags,
            session_id,
            connect_id,
            account,
            share,
            peer,
            ..
        } => {
            let (status, flags) =
                lock(&shared.policy).tree_connect(&account, account_flags, &share, &peer);
            if status == ipc::tree::OK {
                lock(&shared.trees).insert((session_id, connect_id), share);
            }
            Some((
                event::TREE_CONNECT_RESPONSE,
                ipc::encode_tree_connect(handle, status, flags),
            ))
        }
        Request::TreeDisconnect {
            session_id,
            connect_id,
        } => {
            lock(&shared.trees).remove(&(session_id, connect_id));
            None
        }
        Request::Logout {
            account,
            account_flags,
        } => {
            lock(&shared.policy).logout(&account, account_flags, now);
            None
        }
        Request::Rpc {
            handle,
            flags,
            payload,
        } => {
            let shares = listing(&lock(&shared.policy));
            let context = dcerpc::Context {
                server: server.clone(),
                shares,
            };
            let (status, body) = dcerpc::handle_ksmbd(pipes, handle, flags, &payload, &context);
            Some((event::RPC_RESPONSE, ipc::encode_rpc(handle, status, &body)))
        }
        Request::Spnego { handle } => Some((
            event::SPNEGO_AUTHEN_RESPONSE,
            ipc::encode_spnego_refusal(handle),
        )),
    }
}
