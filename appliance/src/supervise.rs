//! Supervised threads: every long-lived thread of the init starts through
//! [`spawn_supervised`] (or [`spawn_job`] for a job whose end must be reported), so a panic in
//! one of them is caught, logged with the thread's name and message, handed to the reporters
//! the init installed at boot ([`add_reporter`]) and counted in a process-wide registry
//! ([`panics`]) that `status` shows.
//!
//! A service ([`Policy::Restart`]) runs again after a growing backoff; a job ([`Policy::Once`])
//! ends, and [`spawn_job`]'s completion callback still runs, with the panic as the job's
//! failure, so whoever waits for the job hears of its end.
//!
//! This module is a leaf: it knows nothing of the engine or its events. What a panic means to
//! the appliance (a freed job slot, a failed assembly, a console notice) is the init's to
//! decide, from the reports.

use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};
use std::thread::{Builder, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What happens when a supervised thread panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// A service: it runs again, first `first` after the panic, then after twice the previous
    /// wait, up to `max`; a run that lasted longer than `max` starts the wait over. Returning
    /// normally ends the thread. The wait is a `park_timeout`: a stopper that unparks the
    /// thread (before joining it) cuts the wait short.
    Restart { first: Duration, max: Duration },
    /// A job: the panic is reported and the thread ends.
    Once,
}

impl Policy {
    /// The services' policy: 1 s, 2 s, 4 s... up to a minute between restarts.
    pub const RESTART: Policy = Policy::Restart {
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
}

/// One panic of a supervised thread, as the reporters receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadPanic {
    /// The thread's name.
    pub name: String,
    /// The panic's message.
    pub message: String,
    /// Whether the thread runs again ([`Policy::Restart`]) or ended ([`Policy::Once`]).
    pub restarted: bool,
    /// When it happened, in seconds since the Unix epoch.
    pub at: u64,
}

/// What the registry knows of one thread name's panics since the process started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicRecord {
    pub name: String,
    /// How many times it panicked.
    pub panics: u32,
    /// How many times it was started again after a panic.
    pub restarts: u32,
    /// The last panic's message and time (seconds since the Unix epoch).
    pub last_message: String,
    pub last_at: u64,
}

type Reporter = Box<dyn Fn(&ThreadPanic) + Send + Sync>;

static REPORTERS: Mutex<Vec<Reporter>> = Mutex::new(Vec::new());
static REGISTRY: Mutex<Vec<PanicRecord>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds `reporter`, called (on the panicking thread, after the panic is logged and counted)
/// with every later panic of a supervised thread. The init installs one at boot that turns a
/// report into an event. A reporter must not block, nor add a reporter itself.
pub fn add_reporter(reporter: impl Fn(&ThreadPanic) + Send + Sync + 'static) {
    lock(&REPORTERS).push(Box::new(reporter));
}

/// Every thread name that panicked since the process started, in the order of its first panic.
pub fn panics() -> Vec<PanicRecord> {
    lock(&REGISTRY).clone()
}

/// The `status` line for `records`: `None` when nothing panicked, otherwise the total and,
/// per thread, the last panic's time (UTC), message and the restarts, e.g.
/// `internal errors: 1 (scrub panicked at 12:03 UTC: index out of bounds)`.
pub fn status_line(records: &[PanicRecord]) -> Option<String> {
    if records.is_empty() {
        return None;
    }
    let total: u64 = records.iter().map(|r| u64::from(r.panics)).sum();
    let each: Vec<String> = records
        .iter()
        .map(|r| {
            let mut line = format!(
                "{} panicked{} at {:02}:{:02} UTC: {}",
                r.name,
                if r.panics > 1 {
                    format!(" {} times, last", r.panics)
                } else {
                    String::new()
                },
                r.last_at / 3600 % 24,
                r.last_at / 60 % 60,
                r.last_message
            );
            if r.restarts > 0 {
                line.push_str(&format!(
                    ", restarted {} time{}",
                    r.restarts,
                    if r.restarts == 1 { "" } else { "s" }
                ));
            }
            line
        })
        .collect();
    Some(format!("internal errors: {total} ({})", each.join("; ")))
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a text message".to_string()
    }
}

/// Starts `f` on a thread named `name` under `policy`. The returned handle joins the whole
/// supervised life (every restart), which ends when `f` returns normally, or at a panic under
/// [`Policy::Once`].
pub fn spawn_supervised<F>(
    name: impl Into<String>,
    policy: Policy,
    f: F,
) -> io::Result<JoinHandle<()>>
where
    F: FnMut() + Send + 'static,
{
    spawn_supervised_on(Builder::new(), name.into(), policy, f)
}

/// [`spawn_supervised`] with a stack of `stack_size` bytes.
pub fn spawn_supervised_with_stack<F>(
    name: impl Into<String>,
    stack_size: usize,
    policy: Policy,
    f: F,
) -> io::Result<JoinHandle<()>>
where
    F: FnMut() + Send + 'static,
{
    spawn_supervised_on(
        Builder::new().stack_size(stack_size),
        name.into(),
        policy,
        f,
    )
}

fn spawn_supervised_on<F>(
    builder: Builder,
    name: String,
    policy: Policy,
    mut f: F,
) -> io::Result<JoinHandle<()>>
where
    F: FnMut() + Send + 'static,
{
    builder.name(name.clone()).spawn(move || {
        let Policy::Restart { first, max } = policy else {
            let _ = run_once(&name, f);
            return;
        };
        let mut wait = first;
        loop {
            let started = Instant::now();
            let Err(payload) = catch_unwind(AssertUnwindSafe(&mut f)) else {
                return;
            };
            if started.elapsed() > max {
                wait = first;
            }
            let message = panic_message(&*payload);
            log::error!(
                "internal error: thread {name} panicked: {message}; restarting it in {:.1} s",
                wait.as_secs_f64()
            );
            report(&name, message, true);
            std::thread::park_timeout(wait);
            wait = wait.saturating_mul(2).min(max);
        }
    })
}

/// Runs `work` once on a thread named `name`, then calls `finish` exactly once with its end:
/// `Ok` with what `work` returned, or `Err` with the panic's message when it panicked (the
/// panic is logged, reported and counted like any other). This is the completion guard of a
/// job: the waiting side hears of the end whatever happens. If the thread cannot be started,
/// the error is returned and `finish` is not called.
pub fn spawn_job<T, W, D>(name: impl Into<String>, work: W, finish: D) -> io::Result<JoinHandle<()>>
where
    T: 'static,
    W: FnOnce() -> T + Send + 'static,
    D: FnOnce(Result<T, String>) + Send + 'static,
{
    let name = name.into();
    Builder::new().name(name.clone()).spawn(move || {
        let result = run_once(&name, work);
        let _ = run_once(&name, move || finish(result));
    })
}

/// Runs `f`, turning a panic into a logged, reported and counted error carrying its message.
fn run_once<T>(name: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = panic_message(&*payload);
        log::error!("internal error: thread {name} panicked: {message}; it ends");
        report(name, message.clone(), false);
        message
    })
}

/// Counts the panic, then hands it to every reporter (a panicking reporter is ignored).
fn report(name: &str, message: String, restarted: bool) {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    {
        let mut registry = lock(&REGISTRY);
        match registry.iter_mut().find(|r| r.name == name) {
            Some(r) => {
                r.panics = r.panics.saturating_add(1);
                r.restarts = r.restarts.saturating_add(u32::from(restarted));
                r.last_message.clone_from(&message);
                r.last_at = at;
            }
            None => registry.push(PanicRecord {
                name: name.to_string(),
                panics: 1,
                restarts: u32::from(restarted),
                last_message: message.clone(),
                last_at: at,
            }),
        }
    }
    let panic = ThreadPanic {
        name: name.to_string(),
        message,
        restarted,
        at,
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        for reporter in lock(&REPORTERS).iter() {
            reporter(&panic);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{mpsc, Arc};

    /// The reports of the threads whose names start with `prefix` (the registry and the
    /// reporters are process-wide; each test uses its own names).
    fn reports(prefix: &'static str) -> mpsc::Receiver<ThreadPanic> {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        add_reporter(move |p| {
            if p.name.starts_with(prefix) {
                let _ = lock(&tx).send(p.clone());
            }
        });
        rx
    }

    fn record(name: &str) -> Option<PanicRecord> {
        panics().into_iter().find(|r| r.name == name)
    }

    const FAST: Policy = Policy::Restart {
        first: Duration::from_millis(1),
        max: Duration::from_millis(20),
    };

    #[test]
    fn a_panicking_service_runs_again_and_is_reported_with_its_message() {
        let rx = reports("test-restart");
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let handle = spawn_supervised("test-restart", FAST, move || {
            let run = counted.fetch_add(1, Ordering::SeqCst) + 1;
            if run < 3 {
                panic!("service bug {run}");
            }
        })
        .unwrap();
        handle.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let got: Vec<(String, String, bool)> = rx
            .try_iter()
            .map(|p| (p.name, p.message, p.restarted))
            .collect();
        assert_eq!(
            got,
            [
                ("test-restart".into(), "service bug 1".into(), true),
                ("test-restart".into(), "service bug 2".into(), true)
            ]
        );
        let r = record("test-restart").unwrap();
        assert_eq!((r.panics, r.restarts), (2, 2));
        assert_eq!(r.last_message, "service bug 2");
    }

    #[test]
    fn a_panicking_once_thread_is_reported_and_not_run_again() {
        let rx = reports("test-once-plain");
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        spawn_supervised("test-once-plain", Policy::Once, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("plain job bug");
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let got: Vec<ThreadPanic> = rx.try_iter().collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message, "plain job bug");
        assert!(!got[0].restarted);
        let r = record("test-once-plain").unwrap();
        assert_eq!((r.panics, r.restarts), (1, 0));
    }

    #[test]
    fn a_panicking_job_reports_its_failure_through_the_guard_exactly_once() {
        let rx = reports("test-job-panics");
        let ends = Arc::new(Mutex::new(Vec::new()));
        let seen = ends.clone();
        spawn_job(
            "test-job-panics",
            || -> u32 { panic!("job bug in {}", "scrub") },
            move |end| lock(&seen).push(end),
        )
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(*lock(&ends), [Err("job bug in scrub".to_string())]);
        assert_eq!(rx.try_iter().count(), 1);
        let r = record("test-job-panics").unwrap();
        assert_eq!((r.panics, r.restarts), (1, 0));
    }

    #[test]
    fn a_job_that_ends_well_hands_over_its_result_and_counts_nothing() {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let seen = ends.clone();
        spawn_job("test-job-ok", || 7, move |end| lock(&seen).push(end))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(*lock(&ends), [Ok(7)]);
        assert_eq!(record("test-job-ok"), None);
    }

    #[test]
    fn a_service_that_returns_is_not_restarted() {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        spawn_supervised("test-returns", FAST, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(record("test-returns"), None);
    }

    #[test]
    fn the_message_comes_from_str_and_string_payloads() {
        let text: Box<dyn Any + Send> = Box::new("literal");
        let owned: Box<dyn Any + Send> = Box::new(String::from("formatted 3"));
        let other: Box<dyn Any + Send> = Box::new(3_u8);
        assert_eq!(panic_message(&*text), "literal");
        assert_eq!(panic_message(&*owned), "formatted 3");
        assert_eq!(panic_message(&*other), "a panic without a text message");
    }

    #[test]
    fn the_status_line_names_each_thread_or_is_absent() {
        assert_eq!(status_line(&[]), None);
        let at = 19_000 * 86_400 + 12 * 3600 + 3 * 60 + 7;
        let records = [
            PanicRecord {
                name: "scrub".into(),
                panics: 1,
                restarts: 0,
                last_message: "index out of bounds".into(),
                last_at: at,
            },
            PanicRecord {
                name: "net-eth0".into(),
                panics: 3,
                restarts: 3,
                last_message: "bad lease".into(),
                last_at: at + 120,
            },
        ];
        assert_eq!(
            status_line(&records).unwrap(),
            "internal errors: 4 (scrub panicked at 12:03 UTC: index out of bounds; \
             net-eth0 panicked 3 times, last at 12:05 UTC: bad lease, restarted 3 times)"
        );
    }
}
