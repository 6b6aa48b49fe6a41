//! The machine as the init sees it: early mounts, disks and their health, memory and uptime,
//! the clock and time zone (`clock`),
//! the boot device and boot slot, the image's release facts and trusted keys (`release`), and
//! the final sync/unmount/power-off.

pub mod bootdev;
pub mod clock;
pub mod disks;
pub mod health;
pub mod identity;
pub mod info;
pub mod mounts;
pub mod power;
pub mod release;
pub mod slot;
