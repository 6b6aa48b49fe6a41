//! Test helpers shared by the unit tests: a small seeded random generator for the fuzz tests
//! of every decoder (upcall lines, netlink messages, RPC packets, DCE/RPC PDUs).

/// xorshift64: small, seeded, reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// `seed` with a few random edits: bytes changed, inserted or removed, or the tail cut.
    pub fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..=self.below(5) {
            let at = self.below(out.len());
            match self.below(4) {
                0 if !out.is_empty() => out[at] = self.next() as u8,
                1 => out.insert(at, self.next() as u8),
                2 if !out.is_empty() => {
                    out.remove(at);
                }
                _ => out.truncate(at),
            }
        }
        out
    }
}
