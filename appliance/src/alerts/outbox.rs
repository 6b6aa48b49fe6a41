//! The outbox: notices waiting to be delivered, one message per channel, kept on the pool so
//! that a notice raised while the network or the server is down is delivered later and a
//! reboot loses nothing. One delivery thread sends them; the engine only enqueues.
//!
//! Each message is a file `NNNNNNNNNNNN-CHANNEL.json` in the outbox directory, written with
//! fsync before it counts as queued and deleted once delivered. Until the pool is mounted the
//! queue lives in memory and is written out when it mounts. Messages of one channel go out in
//! order (a clear never overtakes its raise); a failure retries after 15 s, doubling up to
//! 15 minutes, for as long as it takes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::book::Notice;
use super::deliver::{self, Channels};

/// At most this many messages wait; beyond it the oldest is dropped, with a log line.
pub const MAX_PENDING: usize = 1000;
const FIRST_RETRY: u64 = 15;
const LAST_RETRY: u64 = 15 * 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ChannelKind {
    Mail,
    Webhook,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Mail => "mail",
            ChannelKind::Webhook => "webhook",
        }
    }
}

/// One notice for one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub seq: u64,
    pub channel: ChannelKind,
    pub notice: Notice,
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_try: u64,
    pub last_error: Option<String>,
}

/// The last delivery through a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastResult {
    pub time: u64,
    pub outcome: Result<String, String>,
}

struct State {
    dir: Option<PathBuf>,
    pending: BTreeMap<u64, Message>,
    next_seq: u64,
    channels: Channels,
    last: BTreeMap<ChannelKind, LastResult>,
    stopping: bool,
}

/// Shared between the engine (enqueue, settings) and the delivery thread.
pub struct Outbox {
    state: Mutex<State>,
    wake: Condvar,
}

fn now() -> u64 {
    crate::storage::pool::now()
}

impl Outbox {
    pub fn new() -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State {
                dir: None,
                pending: BTreeMap::new(),
                next_seq: 1,
                channels: Channels::default(),
                last: BTreeMap::new(),
                stopping: false,
            }),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the channels (and the host name and mail password they use). Messages for a
    /// channel that is no longer configured are dropped.
    pub fn set_channels(&self, channels: Channels) {
        let mut st = self.lock();
        let dropped: Vec<u64> = st
            .pending
            .values()
            .filter(|m| !channels.has(m.channel))
            .map(|m| m.seq)
            .collect();
        for seq in dropped {
            if let Some(m) = st.pending.remove(&seq) {
                log::info!(
                    "alert message {} dropped: the {} channel was removed",
                    m.seq,
                    m.channel.as_str()
                );
                remove_file(st.dir.as_deref(), &m);
            }
        }
        st.last.retain(|k, _| channels.has(*k));
        st.channels = channels;
        self.wake.notify_all();
    }

    pub fn channels(&self) -> Channels {
        self.lock().channels.clone()
    }

    /// Queues `notice` for every configured channel.
    pub fn enqueue(&self, notice: &Notice) {
        let mut st = self.lock();
        let kinds = st.channels.kinds();
        for channel in kinds {
            let seq = st.next_seq;
            st.next_seq += 1;
            let message = Message {
                seq,
                channel,
                notice: notice.clone(),
                attempts: 0,
                next_try: 0,
                last_error: None,
            };
            if let Err(e) = write_file(st.dir.as_deref(), &message) {
                log::warn!("alert message {seq} kept in memory only: {e}");
            }
            st.pending.insert(seq, message);
        }
        while st.pending.len() > MAX_PENDING {
            if let Some((_, m)) = st.pending.pop_first() {
                log::error!(
                    "alert outbox full ({MAX_PENDING} messages): dropped the oldest ({} {} for {})",
                    m.notice.state.as_str(),
                    m.notice.id,
                    m.channel.as_str()
                );
                remove_file(st.dir.as_deref(), &m);
            }
        }
        self.wake.notify_all();
    }

    /// The pool is mounted: messages saved there by earlier boots are loaded, and the ones
    /// queued in memory are written there.
    pub fn attach(&self, dir: &Path) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            log::error!(
                "alert outbox {}: {e}; messages stay in memory",
                dir.display()
            );
            return;
        }
        let mut st = self.lock();
        let (saved, problems) = load_dir(dir);
        for p in problems {
            log::warn!("alert outbox: {p}");
        }
        // Messages of earlier boots go first, renumbered after the highest saved number.
        let base = saved.keys().max().copied().unwrap_or(0);
        let memory = std::mem::take(&mut st.pending);
        st.pending = saved;
        for (_, mut m) in memory {
            m.seq += base;
            st.pending.insert(m.seq, m);
        }
        st.next_seq = st
            .pending
            .keys()
            .max()
            .map_or(1, |s| s + 1)
            .max(st.next_seq + base);
        st.dir = Some(dir.to_path_buf());
        for m in st.pending.values() {
            let path = file_path(dir, m);
            if !path.exists() {
                if let Err(e) = write_file(Some(dir), m) {
                    log::warn!("alert message {}: {e}", m.seq);
                }
            }
        }
        if !st.pending.is_empty() {
            log::info!("alert outbox: {} message(s) waiting", st.pending.len());
        }
        self.wake.notify_all();
    }

    /// The pool is going away: keep what is left in memory (it is on disk already).
    pub fn detach(&self) {
        self.lock().dir = None;
    }

    pub fn pending(&self) -> Vec<Message> {
        self.lock().pending.values().cloned().collect()
    }

    pub fn last_results(&self) -> BTreeMap<ChannelKind, LastResult> {
        self.lock().last.clone()
    }

    /// Records a delivery made outside the queue (`alert test`).
    pub fn record(&self, channel: ChannelKind, outcome: Result<String, String>) {
        self.lock().last.insert(
            channel,
            LastResult {
                time: now(),
                outcome,
            },
        );
    }

    /// Ends [`Outbox::run`] (tests).
    #[cfg(test)]
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }

    /// The next message to try: the oldest of each channel, if its time has come. Returns
    /// how long to wait otherwise.
    fn next_due(st: &State, now: u64) -> Result<Message, Duration> {
        let mut wait = 60;
        let mut heads: BTreeMap<ChannelKind, &Message> = BTreeMap::new();
        for m in st.pending.values() {
            heads.entry(m.channel).or_insert(m);
        }
        let mut due: Option<&Message> = None;
        for m in heads.values() {
            if m.next_try <= now {
                if due.is_none_or(|d| m.seq < d.seq) {
                    due = Some(m);
                }
            } else {
                wait = wait.min(m.next_try - now);
            }
        }
        due.cloned().ok_or(Duration::from_secs(wait.max(1)))
    }

    /// The delivery loop (its own supervised thread): sends each due message with `send`
    /// and retries failures with backoff. Returns only after [`Outbox::stop`].
    pub fn run(&self, send: &dyn Fn(&Channels, &Message) -> Result<String, String>) {
        loop {
            let (message, channels) = {
                let mut st = self.lock();
                loop {
                    if st.stopping {
                        return;
                    }
                    match Self::next_due(&st, now()) {
                        Ok(m) => break (m, st.channels.clone()),
                        Err(wait) => {
                            st = self
                                .wake
                                .wait_timeout(st, wait)
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                        }
                    }
                }
            };
            let outcome = send(&channels, &message);
            let mut st = self.lock();
            let time = now();
            st.last.insert(
                message.channel,
                LastResult {
                    time,
                    outcome: outcome.clone(),
                },
            );
            let dir = st.dir.clone();
            let Some(m) = st.pending.get_mut(&message.seq) else {
                continue;
            };
            match outcome {
                Ok(said) => {
                    log::info!(
                        "alert {} ({}) delivered by {}: {said}",
                        m.notice.id,
                        m.notice.state.as_str(),
                        m.channel.as_str()
                    );
                    let m = m.clone();
                    st.pending.remove(&m.seq);
                    remove_file(dir.as_deref(), &m);
                }
                Err(e) => {
                    m.attempts += 1;
                    let delay = FIRST_RETRY
                        .saturating_mul(1 << (m.attempts - 1).min(10))
                        .min(LAST_RETRY);
                    m.next_try = time + delay;
                    log::warn!(
                        "alert {} ({}) not delivered by {} (attempt {}): {e}; retrying in {delay} s",
                        m.notice.id,
                        m.notice.state.as_str(),
                        m.channel.as_str(),
                        m.attempts
                    );
                    m.last_error = Some(e);
                    let m = m.clone();
                    if let Err(e) = write_file(dir.as_deref(), &m) {
                        log::warn!("alert message {}: {e}", m.seq);
                    }
                }
            }
        }
    }
}

/// The real delivery: mail or webhook.
pub fn send(channels: &Channels, message: &Message) -> Result<String, String> {
    match message.channel {
        ChannelKind::Mail => deliver::send_mail(channels, &message.notice),
        ChannelKind::Webhook => deliver::send_webhook(channels, &message.notice),
    }
}

fn file_path(dir: &Path, m: &Message) -> PathBuf {
    dir.join(format!("{:012}-{}.json", m.seq, m.channel.as_str()))
}

fn write_file(dir: Option<&Path>, m: &Message) -> Result<(), String> {
    let Some(dir) = dir else { return Ok(()) };
    let bytes = serde_json::to_vec(m).map_err(|e| e.to_string())?;
    super::write_atomic(&file_path(dir, m), &bytes)
}

fn remove_file(dir: Option<&Path>, m: &Message) {
    if let Some(dir) = dir {
        let path = file_path(dir, m);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Reads every message file of `dir`; a damaged one is reported and moved aside.
fn load_dir(dir: &Path) -> (BTreeMap<u64, Message>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (out, problems);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Message>(&b).map_err(|e| e.to_string()))
        {
            Ok(m) if file_path(dir, &m) == path => {
                out.insert(m.seq, m);
            }
            Ok(_) => problems.push(format!("{} is misnamed; ignored", path.display())),
            Err(e) => {
                problems.push(format!("{} is damaged ({e}); moved aside", path.display()));
                let _ = std::fs::rename(&path, path.with_extension("damaged"));
            }
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::book::{NoticeState, Severity};
    use crate::config::alerting::{WebhookChannel, WebhookFormat, WebhookUrl};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn notice(id: &str, state: NoticeState) -> Notice {
        Notice {
            id: id.into(),
            severity: Severity::Critical,
            state,
            title: "t".into(),
            message: "m".into(),
            time: 1,
        }
    }

    fn webhook() -> Channels {
        Channels {
            webhook: Some(WebhookChannel {
                url: WebhookUrl::parse("http://10.0.2.2:1/x").unwrap(),
                format: WebhookFormat::Json,
            }),
            ..Channels::default()
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tank-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn nothing_queued_without_channels() {
        let o = Outbox::new();
        o.enqueue(&notice("a", NoticeState::Raised));
        assert!(o.pending().is_empty());
    }

    #[test]
    fn survives_reboot_and_keeps_order() {
        let dir = temp_dir("reboot");
        let o = Outbox::new();
        o.set_channels(webhook());
        // Queued before the pool mounts: in memory, then written out.
        o.enqueue(&notice("a", NoticeState::Raised));
        o.attach(&dir);
        o.enqueue(&notice("a", NoticeState::Cleared));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        // Next boot: the same two, in order, before anything new.
        let o2 = Outbox::new();
        o2.set_channels(webhook());
        o2.enqueue(&notice("b", NoticeState::Raised));
        o2.attach(&dir);
        let ids: Vec<_> = o2
            .pending()
            .iter()
            .map(|m| format!("{}:{}", m.notice.id, m.notice.state.as_str()))
            .collect();
        assert_eq!(ids, ["a:raised", "a:cleared", "b:raised"]);
        // A torn file is moved aside, not fatal.
        std::fs::write(dir.join("000000000099-mail.json"), b"{\"seq\":").unwrap();
        let o3 = Outbox::new();
        o3.attach(&dir);
        assert_eq!(o3.pending().len(), 3);
        assert!(dir.join("000000000099-mail.damaged").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retries_until_delivered_in_order() {
        let dir = temp_dir("retry");
        let o = Outbox::new();
        o.set_channels(webhook());
        o.attach(&dir);
        o.enqueue(&notice("a", NoticeState::Raised));
        o.enqueue(&notice("a", NoticeState::Cleared));
        let calls = AtomicUsize::new(0);
        let order = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| {
                o.run(&|_, m| {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    if n == 0 {
                        // The first attempt fails: make it due again at once.
                        return Err("connection refused".into());
                    }
                    order.lock().unwrap().push(m.notice.state);
                    Ok("200 OK".into())
                })
            });
            // After the failure the head waits FIRST_RETRY seconds; pull it forward.
            while calls.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(50));
            {
                let mut st = o.lock();
                let head = st.pending.values_mut().next().unwrap();
                assert_eq!(head.attempts, 1);
                assert_eq!(head.last_error.as_deref(), Some("connection refused"));
                // The clear did not overtake the failed raise.
                assert_eq!(st.pending.len(), 2);
                st.pending.values_mut().next().unwrap().next_try = 0;
            }
            o.wake.notify_all();
            while !o.pending().is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
            o.stop();
        });
        assert_eq!(
            *order.lock().unwrap(),
            [NoticeState::Raised, NoticeState::Cleared]
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let last = o.last_results();
        assert_eq!(
            last[&ChannelKind::Webhook].outcome,
            Ok("200 OK".to_string())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn removed_channel_drops_its_messages() {
        let o = Outbox::new();
        o.set_channels(webhook());
        o.enqueue(&notice("a", NoticeState::Raised));
        o.set_channels(Channels::default());
        assert!(o.pending().is_empty());
    }
}
