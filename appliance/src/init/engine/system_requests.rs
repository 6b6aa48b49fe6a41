//! The engine's `system version`: the running image's release facts
//! ([`crate::system::release`]) and both boot slots read from the ESP
//! ([`crate::system::slot::esp_slots`]), worded for the console.

use super::Appliance;
use crate::console::version::{SlotLine, VersionReport};
use crate::console::Reply;
use crate::system::release::{Release, TrustedKey};
use crate::system::slot::{self, Slot, SlotEntry, NO_SLOTS};

impl Appliance {
    pub(super) fn version_request(&self) -> Reply {
        let booted = slot::booted_slot();
        let slots = match booted {
            None => Err(NO_SLOTS.to_owned()),
            Some(_) => {
                slot::esp_slots().map_err(|e| format!("cannot read the boot slots on the ESP: {e}"))
            }
        };
        Reply::Version(Box::new(version_report(
            crate::system::release::running(),
            self.board.name,
            crate::system::release::trusted_keys(),
            booted,
            slots,
            crate::system::clock::console_time,
        )))
    }
}

/// The report from the facts; `time` words an install time.
pub fn version_report(
    release: &Release,
    board: &str,
    trusted: Result<Vec<TrustedKey>, String>,
    booted: Option<Slot>,
    slots: Result<Vec<SlotEntry>, String>,
    time: impl Fn(u64) -> String,
) -> VersionReport {
    let board = match &release.board {
        Some(b) if b != board => format!("{board} (the image was built for {b})"),
        _ => board.to_owned(),
    };
    VersionReport {
        version: release.version.clone(),
        build_id: release
            .build_id
            .clone()
            .unwrap_or_else(|| "unknown (the image names none)".into()),
        board,
        signer: release.signer_line(),
        trusts: match trusted {
            Ok(keys) => keys
                .iter()
                .map(|k| format!("{} key {}", k.kind.as_str(), k.fingerprint()))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("nothing: {e} (no upgrade can be verified)"),
        },
        slots: slots.map(|entries| {
            entries
                .iter()
                .map(|e| SlotLine {
                    slot: e.slot.letter(),
                    running: Some(e.slot) == booted,
                    version: e
                        .version
                        .clone()
                        .unwrap_or_else(|| "unknown version".into()),
                    state: e.state.describe(),
                    installed: match e.installed {
                        Some(t) => time(u64::try_from(t).unwrap_or(0)),
                        None => "with the disk image (flashed)".into(),
                    },
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::release::parse_release;
    use crate::system::slot::EntryState;

    #[test]
    fn report_from_facts() {
        let release = parse_release(
            "TANK_VERSION=0.1.0+rc1\nBOARD=qemu-x86_64\nBUILD_ID=0123456789abcdef\nSIGNER=development 00ff\n",
        );
        let slots = vec![
            SlotEntry {
                slot: Slot::A,
                version: Some("0.1.0+rc1".into()),
                state: EntryState::Trying { left: 2, done: 1 },
                generation: 2,
                installed: None,
            },
            SlotEntry {
                slot: Slot::B,
                version: None,
                state: EntryState::Bad { done: 3 },
                generation: 3,
                installed: Some(1_795_766_383),
            },
        ];
        let key = crate::system::release::TrustedKey {
            kind: crate::system::release::KeyKind::Development,
            key: [1; 32],
        };
        let fp = key.fingerprint();
        let r = version_report(
            &release,
            "qemu-x86_64",
            Ok(vec![key]),
            Some(Slot::A),
            Ok(slots),
            |t| format!("at {t}"),
        );
        let text = crate::console::version::render(&r);
        assert!(text.contains("version    0.1.0+rc1\n"), "{text}");
        assert!(text.contains("build id   0123456789abcdef\n"), "{text}");
        assert!(text.contains("signer     development key 00ff"), "{text}");
        assert!(
            text.contains(&format!("trusts     development key {fp}\n")),
            "{text}"
        );
        assert!(
            text.contains(
                "slot A     running, 0.1.0+rc1, trying (2 tries left, 1 used), installed with the disk image (flashed)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "slot B     unknown version, bad (no tries left after 3), installed at 1795766383\n"
            ),
            "{text}"
        );
        // A direct kernel boot: no slots, the rest still shown.
        let r = version_report(
            &release,
            "pc-x86_64",
            Err("cannot read x".into()),
            None,
            Err(NO_SLOTS.into()),
            |_| String::new(),
        );
        let text = crate::console::version::render(&r);
        assert!(text.contains(&format!("slots      {NO_SLOTS}\n")), "{text}");
        assert!(text.contains("board      pc-x86_64 (the image was built for qemu-x86_64)"));
        assert!(text.contains("signer     development key"), "{text}");
        assert!(text.contains("trusts     nothing: cannot read x"), "{text}");
    }
}
