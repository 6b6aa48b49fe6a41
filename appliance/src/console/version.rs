//! `system version` (also `version`): the running image's version with its build label, build
//! id, board and signer, and both boot slots with their versions, states and install times.
//! The engine words each line; this module parses the command and lays the report out.

use super::parse::{clip, err, ParseError};

/// One boot slot's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLine {
    /// `A` or `B`.
    pub slot: char,
    pub running: bool,
    /// The version its entry names, `unknown` when it names none.
    pub version: String,
    /// `good`, `trying (2 tries left, 1 used)`, `bad (no tries left after 3)`.
    pub state: String,
    /// `2026-12-04 21:05 CET` or `with the disk image (flashed)`.
    pub installed: String,
}

/// What `system version` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionReport {
    pub version: String,
    pub build_id: String,
    pub board: String,
    pub signer: String,
    /// The keys upgrades must be signed with.
    pub trusts: String,
    /// Both slots, or why there are none to show.
    pub slots: Result<Vec<SlotLine>, String>,
}

/// `version` and `system version` take no arguments.
pub fn parse_version(rest: &[&str]) -> Result<(), ParseError> {
    match rest.first() {
        None => Ok(()),
        Some(extra) => Err(err(
            format!("'version' takes no arguments, got '{}'", clip(extra)),
            "type just 'version' or 'system version'",
        )),
    }
}

pub fn render(r: &VersionReport) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| out.push_str(&format!("{key:<11}{value}\n"));
    line("version", &r.version);
    line("build id", &r.build_id);
    line("board", &r.board);
    line("signer", &r.signer);
    line("trusts", &r.trusts);
    match &r.slots {
        Err(why) => line("slots", why),
        Ok(slots) => {
            for s in slots {
                let running = if s.running { "running, " } else { "" };
                line(
                    &format!("slot {}", s.slot),
                    &format!(
                        "{running}{}, {}, installed {}",
                        s.version, s.state, s.installed
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::parse::{parse, Parsed};
    use crate::console::request::Request;

    #[test]
    fn parsing() {
        for line in ["version", "system version", "  system   version  "] {
            assert_eq!(
                parse(line).unwrap(),
                Parsed::Request(Request::Version),
                "{line}"
            );
        }
        for bad in ["version x", "system version now"] {
            let e = parse(bad).unwrap_err();
            assert!(e.message.contains("takes no arguments"), "{bad}: {e}");
        }
        let help = crate::console::parse::help(Some("system"));
        assert!(help.contains("system version"), "{help}");
    }

    #[test]
    fn rendering() {
        let mut report = VersionReport {
            version: "0.1.0+rc1".into(),
            build_id: "0123456789abcdef".into(),
            board: "qemu-x86_64".into(),
            signer: "development key 00112233445566778899aabbccddeeff".into(),
            trusts: "development key 00112233445566778899aabbccddeeff".into(),
            slots: Ok(vec![
                SlotLine {
                    slot: 'A',
                    running: true,
                    version: "0.1.0+rc1".into(),
                    state: "good".into(),
                    installed: "with the disk image (flashed)".into(),
                },
                SlotLine {
                    slot: 'B',
                    running: false,
                    version: "0.1.0".into(),
                    state: "trying (3 tries left, none used)".into(),
                    installed: "2026-12-04 21:05 CET".into(),
                },
            ]),
        };
        assert_eq!(
            render(&report),
            "version    0.1.0+rc1\n\
             build id   0123456789abcdef\n\
             board      qemu-x86_64\n\
             signer     development key 00112233445566778899aabbccddeeff\n\
             trusts     development key 00112233445566778899aabbccddeeff\n\
             slot A     running, 0.1.0+rc1, good, installed with the disk image (flashed)\n\
             slot B     0.1.0, trying (3 tries left, none used), installed 2026-12-04 21:05 CET\n"
        );
        report.slots =
            Err("no boot slots (the kernel was not started by the image's boot loader)".into());
        assert!(render(&report).ends_with(
            "slots      no boot slots (the kernel was not started by the image's boot loader)\n"
        ));
    }
}
