//! Host-side image builder for Tank.
//!
//! This library turns a board definition (`board` crate) and an init binary into the files a
//! machine boots: the kernel (`vmlinuz`), a zstd-compressed initramfs holding the init and the
//! kernel modules the board needs, the kernel command line and a manifest, then the flashable
//! UEFI disk image with two boot slots and the release bundle. It never needs root
//! and never changes the host's apt configuration: the Debian kernel package is fetched with a
//! private apt state folder under a cache directory.
//!
//! Code map:
//! - [`kernel`]: resolve, download and extract Debian's kernel package.
//! - [`ksmbd`]: check that the kernel's ksmbd module has the message layouts the init's SMB
//!   daemon is written for (from the module's BTF).
//! - [`modules`]: read every module's `.modinfo`, index it, compute the closure a board needs and
//!   write the depmod-format files the init reads.
//! - [`cpio`]: a deterministic cpio "newc" writer.
//! - [`apt`]: the private apt setup every Debian package is fetched with.
//! - [`bootloader`]: systemd-boot from Debian's `systemd-boot-efi`.
//! - [`esp`]: the EFI System Partition (FAT32): boot loader, A/B slots, boot-counting entries.
//! - [`disk`]: the GPT disk image around the ESP, written sparse.
//! - [`bundle`]: the release tarball with checksums.
//! - [`sign`]: the signing keys, the signed release manifest, build ids and labels.
//! - [`mod@build`]: the top-level [`build::build`] that puts it all together and writes the output
//!   folder and its [`build::Manifest`].
//!
//! Architecture invariant: the same inputs give byte-identical outputs (no timestamps, no host
//! user or inode numbers, single-threaded compression).
#![forbid(unsafe_code)]

pub mod apt;
pub mod bootloader;
pub mod build;
pub mod bundle;
pub mod cpio;
pub mod disk;
pub mod esp;
pub mod kernel;
pub mod ksmbd;
pub mod modules;
pub mod sign;

pub use build::{build, BuildError, BuildRequest, Manifest};
pub use kernel::{fetch, FetchError, KernelPackage};
pub use modules::{Closure, ClosureError, IndexError, ModuleIndex};
