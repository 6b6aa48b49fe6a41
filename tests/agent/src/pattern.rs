//! The deterministic test pattern: the bytes a `write` command puts in a file, from a seed.
//!
//! Byte `i` of the pattern for seed `s` is byte `i % 8` (little-endian) of
//! `splitmix64(s + (i / 8 + 1) * 0x9e3779b97f4a7c15)`, so any range can be made without the
//! bytes before it, and the harness can compute the sha256 a file of `n` bytes must have
//! ([`sha256_hex`]) without the guest. What does not live here: writing files (that is
//! [`crate::ops`]).

use sha2::{Digest, Sha256};

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern's 8-byte word number `k`.
fn word(seed: u64, k: u64) -> [u8; 8] {
    mix(seed.wrapping_add(k.wrapping_add(1).wrapping_mul(GAMMA))).to_le_bytes()
}

/// Fills `buf` with the pattern for `seed` from byte `offset` on.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    // Up to the next word boundary.
    while i < buf.len() && !pos.is_multiple_of(8) {
        buf[i] = word(seed, pos / 8)[(pos % 8) as usize];
        i += 1;
        pos += 1;
    }
    let mut chunks = buf[i..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(seed, pos / 8));
        pos += 8;
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let w = word(seed, pos / 8);
        rest.copy_from_slice(&w[..rest.len()]);
    }
}

/// The first `len` bytes of the pattern for `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(seed, 0, &mut v);
    v
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 (lower-case hex) of the first `len` bytes of the pattern for `seed`.
pub fn sha256_hex(seed: u64, len: u64) -> String {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        fill(seed, done, &mut buf[..n]);
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden() {
        // splitmix64 from state 0 gives 0xe220a8397b1dcdaf first (the reference sequence).
        assert_eq!(bytes(0, 8), 0xe220_a839_7b1d_cdafu64.to_le_bytes());
        assert_eq!(hex(&bytes(1, 4)), hex(&bytes(1, 16)[..4]));
        assert_ne!(bytes(1, 16), bytes(2, 16));
        assert_eq!(
            sha256_hex(0, 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn any_range_matches_the_whole() {
        let whole = bytes(42, 100);
        for start in 0..40u64 {
            for len in [0usize, 1, 7, 8, 9, 33] {
                let mut part = vec![0; len];
                fill(42, start, &mut part);
                assert_eq!(part, whole[start as usize..start as usize + len]);
            }
        }
        let big = bytes(7, (1 << 20) + 5);
        assert_eq!(sha256_hex(7, big.len() as u64), hex(&Sha256::digest(&big)));
    }
}
