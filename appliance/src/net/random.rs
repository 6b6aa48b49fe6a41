//! Transaction ids for DHCP that never wait for the kernel's entropy pool.
//!
//! Early boot under emulation may have no entropy at all, and a blocking `getrandom(2)` would
//! stall DHCP. We ask `getrandom` with `GRND_INSECURE` (Linux 5.6+, never blocks), then with
//! `GRND_NONBLOCK`, then read `/dev/urandom` (never blocks), and last fall back to a time-based
//! mix. DHCP xids only have to differ between clients and transactions; they are not secrets.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustix::rand::{getrandom, GetRandomFlags};

/// A counter mixed into the fallback so two calls in the same nanosecond still differ.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A random `u32`, without ever blocking on entropy.
pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    for flags in [GetRandomFlags::INSECURE, GetRandomFlags::NONBLOCK] {
        if let Ok(4) = getrandom(&mut bytes[..], flags) {
            return u32::from_ne_bytes(bytes);
        }
    }
    let from_urandom = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    match from_urandom {
        Ok(()) => u32::from_ne_bytes(bytes),
        Err(_) => fallback(),
    }
}

/// The time-based fallback: wall clock, monotonic clock, process id and a counter, mixed.
fn fallback() -> u32 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mono = {
        // The address of a stack value changes with ASLR; the elapsed time of a fresh Instant
        // carries the scheduling jitter of this call.
        let start = Instant::now();
        let here = &start as *const Instant as u64;
        here ^ (start.elapsed().as_nanos() as u64)
    };
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = wall ^ mono.rotate_left(17) ^ (u64::from(std::process::id()) << 32) ^ count;
    (splitmix64(seed) >> 32) as u32
}

/// One step of the SplitMix64 generator, used here as a bit mixer.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ() {
        let ids: std::collections::BTreeSet<u32> = (0..64).map(|_| random_u32()).collect();
        assert!(ids.len() > 60, "{} distinct of 64", ids.len());
        let ids: std::collections::BTreeSet<u32> = (0..64).map(|_| fallback()).collect();
        assert!(
            ids.len() > 60,
            "{} distinct of 64 from the fallback",
            ids.len()
        );
    }
}
