//! The two clock calls `rustix` does not offer: `adjtimex` (slewing the system clock and the
//! kernel's "synchronized" flag) and the RTC driver's `RTC_SET_TIME` ioctl.
//!
//! Both take a pointer to a plain structure of integers that lives on the caller's stack for
//! the duration of the call, which is the whole invariant the `unsafe` blocks rely on. Nothing
//! here decides when to slew or what time to write: that is the init's (`system/clock.rs`).

use std::io;
use std::os::fd::AsFd;

use rustix::ioctl::Opcode;

use super::Update;

/// `ADJ_OFFSET_SINGLESHOT` from `<sys/timex.h>`: the old `adjtime()`, slewing by `offset` µs
/// at the kernel's fixed rate (0.5 ms per second).
const ADJ_OFFSET_SINGLESHOT: u32 = 0x8001;
const ADJ_MAXERROR: u32 = 0x0004;
const ADJ_ESTERROR: u32 = 0x0008;
const ADJ_STATUS: u32 = 0x0010;
/// `STA_UNSYNC`: the clock is not synchronized (the kernel then leaves the RTC alone).
pub const STA_UNSYNC: i32 = 0x0040;

/// What `adjtimex` reported after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockStatus {
    /// The clock state the call returned (`TIME_OK` 0 … `TIME_ERROR` 5).
    pub state: i32,
    /// The kernel's `time_status` bits (`STA_*`).
    pub status: i32,
    /// Microseconds of a single-shot slew still to go.
    pub remaining_us: i64,
}

fn adjtimex(modes: u32, fill: impl FnOnce(&mut libc::timex)) -> io::Result<ClockStatus> {
    // SAFETY: `timex` is a plain C structure of integers (and padding); all zeroes is a valid
    // value of it.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = modes;
    fill(&mut tx);
    // SAFETY: `tx` is a live, exclusively borrowed `struct timex`, the type the call expects;
    // the kernel reads and writes only inside it, during this synchronous call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ClockStatus {
        state,
        status: tx.status,
        remaining_us: tx.offset,
    })
}

/// Slews the system clock by `offset_us` microseconds (positive: forward) at the kernel's
/// fixed rate, replacing a slew still in progress.
pub fn slew(offset_us: i64) -> io::Result<ClockStatus> {
    adjtimex(ADJ_OFFSET_SINGLESHOT, |tx| {
        tx.offset = offset_us as libc::c_long
    })
}

/// Sets the kernel's synchronization status: `synchronized` clears `STA_UNSYNC` (the kernel
/// then writes the system time to the RTC every 11 minutes, `CONFIG_RTC_SYSTOHC`) and sets the
/// error estimates, which the kernel grows by 0.5 ms per second until an update comes (past
/// 16 s it marks the clock unsynchronized again by itself).
pub fn set_synchronized(
    synchronized: bool,
    maxerror_us: i64,
    esterror_us: i64,
) -> io::Result<ClockStatus> {
    adjtimex(ADJ_STATUS | ADJ_MAXERROR | ADJ_ESTERROR, |tx| {
        tx.status = if synchronized { 0 } else { STA_UNSYNC };
        tx.maxerror = maxerror_us as libc::c_long;
        tx.esterror = esterror_us as libc::c_long;
    })
}

/// Reads the kernel's clock status without changing anything.
pub fn status() -> io::Result<ClockStatus> {
    adjtimex(0, |_| {})
}

/// `struct rtc_time` from `<linux/rtc.h>`: the fields of `struct tm`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcTime {
    pub tm_sec: i32,
    pub tm_min: i32,
    pub tm_hour: i32,
    /// Day of the month, 1 to 31.
    pub tm_mday: i32,
    /// Month, 0 (January) to 11.
    pub tm_mon: i32,
    /// Years since 1900.
    pub tm_year: i32,
    pub tm_wday: i32,
    pub tm_yday: i32,
    pub tm_isdst: i32,
}

/// `RTC_SET_TIME`: `_IOW('p', 0x0a, struct rtc_time)`.
const RTC_SET_TIME: Opcode = rustix::ioctl::opcode::write::<RtcTime>(b'p', 0x0a);

/// Sets the hardware clock open as `fd` (`/dev/rtc0`) to `time`.
pub fn rtc_set_time<F: AsFd>(fd: F, time: &RtcTime) -> io::Result<()> {
    let mut value = *time;
    let call = Update {
        opcode: RTC_SET_TIME,
        value: &mut value,
    };
    // SAFETY: `value` is a live `RtcTime`, the `struct rtc_time` layout the opcode names; the
    // kernel only reads it during this synchronous call.
    unsafe { rustix::ioctl::ioctl(fd, call) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtc_time_has_the_kernel_layout() {
        assert_eq!(core::mem::size_of::<RtcTime>(), 36);
        assert_eq!(RTC_SET_TIME as u64, 0x4024_700a);
    }

    #[test]
    fn reading_the_status_changes_nothing_and_a_file_is_no_rtc() {
        let status = status().expect("adjtimex with no modes is allowed to anyone");
        assert!((0..=5).contains(&status.state), "{status:?}");
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(rtc_set_time(&file, &RtcTime::default()).is_err());
    }
}
