//! The configuration record versions this appliance reads and writes. Depends on nothing: the
//! image builder includes this file to write them into the signed release manifest
//! (`image/src/sign.rs`), so a release says which configurations it can read.

/// The format version [`encode`](super::encode) writes.
pub const CURRENT_VERSION: u32 = 3;

/// The oldest format version [`decode`](super::decode) reads (by migration).
pub const OLDEST_VERSION: u32 = 1;
