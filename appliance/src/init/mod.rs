//! PID 1: the boot sequence, the event loop and the shutdown sequence.
//!
//! Boot is a list of named steps ([`boot`]); afterwards the main thread consumes a closed
//! [`Event`] enum (console requests, signals, the power button, background results) and owns
//! all mutable state, so requests are applied one at a time. PID 1 never exits: every failure
//! becomes a log line, an alert in `status`, or an error reply at the console.

mod boot;
mod engine;

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::Sender;
use std::time::Duration;

use crate::console::{Reply, Request};
use crate::kmod::LoadReport;

/// Everything the main loop reacts to.
pub enum Event {
    /// A console line, parsed.
    Command {
        request: Request,
        reply: Sender<Result<Reply, String>>,
    },
    /// A signal delivered to PID 1.
    Signal(i32),
    /// The ACPI power button was pressed.
    PowerButton,
    /// The boot modules (and coldplugged drivers) are in.
    ModulesLoaded(LoadReport),
    /// Pool assembly finished: the pool mounted (maybe degraded), no pool, or an error.
    PoolAssembled(Result<Option<crate::storage::pool::Assembled>, String>),
    /// A long storage job (scrub, replace) ended.
    JobDone(JobOutcome),
    /// A minute passed: time to look at schedules.
    Tick,
    /// A whole disk was added or removed (a kernel uevent): `action` is `add` or `remove`,
    /// `disk` the kernel's name.
    DiskChanged { action: String, disk: String },
    /// One poll of the SNTP client ([`crate::net::sntp`]): the clock was set, or why not.
    Clock(crate::net::sntp::Report),
    /// A supervised thread panicked (see [`crate::supervise`]): it runs again when
    /// `restarted`, otherwise it ended (a job's own end event follows from its guard).
    ThreadPanicked {
        name: String,
        message: String,
        restarted: bool,
    },
}

/// The end of a long storage job.
pub enum JobOutcome {
    /// The scrub's summary and how long it took in seconds.
    Scrub(Result<(crate::storage::ScrubSummary, f64), String>),
    Replace(Result<(), String>),
}

/// The init's entry point. Never returns.
pub fn run() -> ! {
    let mut appliance = boot::boot();
    loop {
        let event = match appliance.events.recv() {
            Ok(event) => event,
            Err(_) => {
                // Every sender is gone (cannot happen while the engine holds one); keep PID 1
                // alive regardless.
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if std::panic::catch_unwind(AssertUnwindSafe(|| appliance.handle(event))).is_err() {
            log::error!("internal error (panic) while handling an event; the appliance goes on");
        }
    }
}
