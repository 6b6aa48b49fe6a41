//! Upgrading in place: release bundles and the checks they pass before any byte of them is
//! written ([`verify`]).
//!
//! Architecture invariant: nothing from a bundle is written (to a slot, the ESP or anywhere)
//! before [`verify::verify_bundle`] has returned it: signature with a key built into this
//! image, board, and every part's size and SHA-256.
//!
//! What does not live here: the keys this image trusts and its own release facts
//! ([`crate::system::release`]), the boot slots ([`crate::system::slot`]).

// The checks are complete and tested; the console command that streams a bundle into the
// other slot is the next consumer.
#[allow(dead_code)]
pub mod verify;
