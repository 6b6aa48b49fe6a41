//! SMART on ATA and SATA disks, through SCSI `SG_IO` with ATA PASS-THROUGH(16) (SAT, opcode
//! 0x85): the command blocks, the ATA registers in the sense data that comes back (descriptor
//! or fixed format), and the pure parsers of the SMART data, threshold and self-test log
//! sectors. The device calls are at the end ([`read`], [`start_self_test`]).

use std::fs::File;

use tank_passthrough::{sg_io, Data, ScsiStatus};

/// Every ATA command gets this long before the kernel gives up on it.
pub const TIMEOUT_MS: u32 = 10_000;

const ATA_16: u8 = 0x85;
const PROTOCOL_NON_DATA: u8 = 3;
const PROTOCOL_PIO_IN: u8 = 4;
const SMART: u8 = 0xB0;
const CHECK_POWER_MODE: u8 = 0xE5;
const SMART_READ_DATA: u8 = 0xD0;
const SMART_READ_THRESHOLDS: u8 = 0xD1;
const SMART_EXECUTE_OFFLINE: u8 = 0xD4;
const SMART_READ_LOG: u8 = 0xD5;
const SMART_RETURN_STATUS: u8 = 0xDA;
const LOG_SELF_TEST: u8 = 0x06;
/// The LBA mid/high signature every SMART command carries, and RETURN STATUS answers when
/// no threshold is exceeded.
const SMART_MID: u8 = 0x4F;
const SMART_HIGH: u8 = 0xC2;
/// RETURN STATUS's answer when a threshold is exceeded.
const FAILING_MID: u8 = 0xF4;
const FAILING_HIGH: u8 = 0x2C;

/// One ATA command: the registers written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub command: u8,
    pub features: u8,
    pub count: u8,
    pub lba_low: u8,
    pub lba_mid: u8,
    pub lba_high: u8,
}

impl Command {
    fn smart(feature: u8, count: u8, lba_low: u8) -> Command {
        Command {
            command: SMART,
            features: feature,
            count,
            lba_low,
            lba_mid: SMART_MID,
            lba_high: SMART_HIGH,
        }
    }
}

/// The ATA PASS-THROUGH(16) command block for `cmd`: a non-data command that asks for the
/// registers back (CK_COND), or a PIO data-in command reading one 512-byte sector.
pub fn cdb(cmd: &Command, data_in: bool) -> [u8; 16] {
    let (protocol, flags) = if data_in {
        // T_DIR from the device, BYT_BLOK (blocks), T_LENGTH in the sector count field.
        (PROTOCOL_PIO_IN, 0x0E)
    } else {
        // CK_COND: return the registers in the sense data even on success.
        (PROTOCOL_NON_DATA, 0x20)
    };
    [
        ATA_16,
        protocol << 1,
        flags,
        0,
        cmd.features,
        0,
        cmd.count,
        0,
        cmd.lba_low,
        0,
        cmd.lba_mid,
        0,
        cmd.lba_high,
        0,
        cmd.command,
        0,
    ]
}

/// The ATA registers a command left, as the sense data reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    pub error: u8,
    pub count: u8,
    pub lba_low: u8,
    pub lba_mid: u8,
    pub lba_high: u8,
    pub device: u8,
    pub status: u8,
}

/// Sense key, additional sense code and qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenseKey {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

/// The sense key of descriptor (0x72/0x73) or fixed (0x70/0x71) format sense data.
pub fn sense_key(sense: &[u8]) -> Option<SenseKey> {
    match sense.first()? & 0x7F {
        0x72 | 0x73 => Some(SenseKey {
            key: sense.get(1)? & 0x0F,
            asc: *sense.get(2)?,
            ascq: *sense.get(3)?,
        }),
        0x70 | 0x71 => Some(SenseKey {
            key: sense.get(2)? & 0x0F,
            asc: sense.get(12).copied().unwrap_or(0),
            ascq: sense.get(13).copied().unwrap_or(0),
        }),
        _ => None,
    }
}

/// The ATA registers in sense data: the ATA Status Return descriptor (code 0x09) of
/// descriptor format, or the fixed format's information fields when the additional sense
/// says "ATA pass through information available" (00/1D), as libata writes it.
pub fn registers(sense: &[u8]) -> Option<Registers> {
    match sense.first()? & 0x7F {
        0x72 | 0x73 => {
            let total = usize::from(*sense.get(7)?) + 8;
            let end = total.min(sense.len());
            let mut at = 8;
            while at + 2 <= end {
                let code = sense[at];
                let len = usize::from(sense[at + 1]) + 2;
                if code == 0x09 && len >= 14 && at + 14 <= end {
                    let d = &sense[at..at + 14];
                    return Some(Registers {
                        error: d[3],
                        count: d[5],
                        lba_low: d[7],
                        lba_mid: d[9],
                        lba_high: d[11],
                        device: d[12],
                        status: d[13],
                    });
                }
                at += len;
            }
            None
        }
        0x70 | 0x71 => {
            let key = sense_key(sense)?;
            if key.asc != 0x00 || key.ascq != 0x1D || sense.len() < 12 {
                return None;
            }
            Some(Registers {
                error: sense[3],
                status: sense[4],
                device: sense[5],
                count: sense[6],
                lba_low: sense[9],
                lba_mid: sense[10],
                lba_high: sense[11],
            })
        }
        _ => None,
    }
}

/// What a disk is doing, from CHECK POWER MODE's sector count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerMode {
    Standby,
    Idle,
    Active,
}

pub fn power_mode(count: u8) -> PowerMode {
    match count {
        0x00 | 0x01 => PowerMode::Standby,
        0x80..=0x83 => PowerMode::Idle,
        _ => PowerMode::Active,
    }
}

/// One SMART attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub id: u8,
    pub flags: u16,
    pub current: u8,
    pub worst: u8,
    /// The 48-bit raw value.
    pub raw: u64,
    /// From SMART READ THRESHOLDS, when it was read.
    pub threshold: Option<u8>,
}

impl Attribute {
    /// Bit 0 of the flags: the attribute predicts failure (its threshold means "soon").
    pub fn prefailure(&self) -> bool {
        self.flags & 1 != 0
    }

    /// At or below a nonzero threshold.
    pub fn failing(&self) -> bool {
        matches!(self.threshold, Some(t) if t > 0 && self.current <= t)
    }

    /// The attribute's usual name (vendors agree on these), or "".
    pub fn name(&self) -> &'static str {
        attribute_name(self.id)
    }
}

pub fn attribute_name(id: u8) -> &'static str {
    match id {
        1 => "Raw_Read_Error_Rate",
        3 => "Spin_Up_Time",
        4 => "Start_Stop_Count",
        5 => "Reallocated_Sector_Ct",
        7 => "Seek_Error_Rate",
        9 => "Power_On_Hours",
        10 => "Spin_Retry_Count",
        12 => "Power_Cycle_Count",
        187 => "Reported_Uncorrect",
        188 => "Command_Timeout",
        190 => "Airflow_Temperature_Cel",
        193 => "Load_Cycle_Count",
        194 => "Temperature_Celsius",
        196 => "Reallocated_Event_Count",
        197 => "Current_Pending_Sector",
        198 => "Offline_Uncorrectable",
        199 => "UDMA_CRC_Error_Count",
        _ => "",
    }
}

/// The SMART READ DATA sector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmartData {
    pub attributes: Vec<Attribute>,
    /// Byte 363: high nibble the last or running self-test's status (15 = running), low
    /// nibble the tenths of it remaining.
    pub self_test_status: u8,
    /// Byte 367 bit 4.
    pub self_test_supported: bool,
    pub short_test_minutes: u8,
    pub long_test_minutes: u16,
    /// The sector's bytes sum to zero (modulo 256), as the standard asks.
    pub checksum_ok: bool,
}

/// Why a sector could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("a SMART sector is 512 bytes; the disk returned {0}")]
    Short(usize),
}

fn sector(buf: &[u8]) -> Result<&[u8], ParseError> {
    buf.get(..512).ok_or(ParseError::Short(buf.len()))
}

pub fn parse_smart_data(buf: &[u8]) -> Result<SmartData, ParseError> {
    let s = sector(buf)?;
    let attributes = s[2..362]
        .chunks_exact(12)
        .filter(|e| e[0] != 0)
        .map(|e| Attribute {
            id: e[0],
            flags: u16::from_le_bytes([e[1], e[2]]),
            current: e[3],
            worst: e[4],
            raw: e[5..11]
                .iter()
                .rev()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
            threshold: None,
        })
        .collect();
    let long = match s[373] {
        0xFF => u16::from_le_bytes([s[375], s[376]]),
        m => u16::from(m),
    };
    Ok(SmartData {
        attributes,
        self_test_status: s[363],
        self_test_supported: s[367] & 0x10 != 0,
        short_test_minutes: s[372],
        long_test_minutes: long,
        checksum_ok: s.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0,
    })
}

/// (attribute id, threshold) from the SMART READ THRESHOLDS sector.
pub fn parse_thresholds(buf: &[u8]) -> Result<Vec<(u8, u8)>, ParseError> {
    let s = sector(buf)?;
    Ok(s[2..362]
        .chunks_exact(12)
        .filter(|e| e[0] != 0)
        .map(|e| (e[0], e[1]))
        .collect())
}

/// Puts each attribute's threshold next to it.
pub fn apply_thresholds(data: &mut SmartData, thresholds: &[(u8, u8)]) {
    for a in &mut data.attributes {
        a.threshold = thresholds.iter().find(|(id, _)| *id == a.id).map(|t| t.1);
    }
}

/// One entry of the SMART self-test log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTest {
    /// The LBA-low value that started it: 1 short, 2 extended, 3 conveyance, +0x80 captive.
    pub kind: u8,
    /// High nibble of the execution status: 0 completed, 1 aborted, ..., 15 running.
    pub status: u8,
    pub remaining_percent: u8,
    pub power_on_hours: u16,
    /// The first failing LBA, for a failed read test.
    pub failing_lba: Option<u32>,
}

impl SelfTest {
    pub fn kind_name(&self) -> &'static str {
        match self.kind & 0x7F {
            0 => "offline",
            1 => "short",
            2 => "extended",
            3 => "conveyance",
            4 => "selective",
            _ => "vendor",
        }
    }

    pub fn status_text(&self) -> &'static str {
        self_test_status_text(self.status)
    }
}

pub fn self_test_status_text(status: u8) -> &'static str {
    match status {
        0 => "completed without error",
        1 => "aborted by the host",
        2 => "interrupted by a reset",
        3 => "fatal error",
        4 => "failed (unknown element)",
        5 => "failed (electrical element)",
        6 => "failed (servo or seek element)",
        7 => "failed (read element)",
        8 => "failed (handling damage)",
        15 => "in progress",
        _ => "reserved status",
    }
}

/// The self-test log sector (log 0x06), newest entry first.
pub fn parse_self_test_log(buf: &[u8]) -> Result<Vec<SelfTest>, ParseError> {
    let s = sector(buf)?;
    let entries: Vec<&[u8]> = s[2..2 + 21 * 24].chunks_exact(24).collect();
    // Byte 508: the index (1-based) of the newest entry; 0 when the log is empty.
    let newest = usize::from(s[508]);
    if newest == 0 || newest > entries.len() {
        return Ok(Vec::new());
    }
    let mut tests = Vec::new();
    for back in 0..entries.len() {
        let i = (newest - 1 + entries.len() - back) % entries.len();
        let e = entries[i];
        if e.iter().all(|b| *b == 0) {
            continue;
        }
        let status = e[1] >> 4;
        let lba = u32::from_le_bytes([e[5], e[6], e[7], e[8]]);
        tests.push(SelfTest {
            kind: e[0],
            status,
            remaining_percent: (e[1] & 0x0F) * 10,
            power_on_hours: u16::from_le_bytes([e[2], e[3]]),
            failing_lba: (status != 0 && status != 15 && lba != u32::MAX && lba != 0)
                .then_some(lba),
        });
    }
    Ok(tests)
}

/// What a SMART read found, for [`super::Reading`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Smart {
    pub data: Option<SmartData>,
    pub self_tests: Vec<SelfTest>,
    /// Reads that failed after RETURN STATUS answered (each names what and why).
    pub notes: Vec<String>,
}

impl Smart {
    pub fn attribute(&self, id: u8) -> Option<&Attribute> {
        self.data.as_ref()?.attributes.iter().find(|a| a.id == id)
    }

    /// Attribute 194, else 190: the lowest byte of the raw value.
    pub fn temperature_c(&self) -> Option<i64> {
        self.attribute(194)
            .or_else(|| self.attribute(190))
            .map(|a| i64::from((a.raw & 0xFF) as u8))
    }

    pub fn power_on_hours(&self) -> Option<u64> {
        self.attribute(9).map(|a| a.raw & 0xFFFF_FFFF)
    }

    pub fn raw(&self, id: u8) -> Option<u64> {
        self.attribute(id).map(|a| a.raw)
    }
}

/// Why a disk gave no ATA answer: it becomes the "not available" reason.
#[derive(Debug, thiserror::Error)]
pub enum AtaError {
    #[error("the driver has no SCSI pass-through ({0})")]
    NoPassThrough(std::io::Error),
    #[error(
        "the disk does not accept ATA pass-through (sense key {key:#x}, {asc:02x}/{ascq:02x})"
    )]
    Refused { key: u8, asc: u8, ascq: u8 },
    #[error("the transport failed the command (host status {0:#x})")]
    Transport(u16),
    #[error("the disk returned no ATA registers (a USB bridge without ATA pass-through?)")]
    NoRegisters,
    #[error("the disk aborted {what} (ATA status {status:#04x}, error {error:#04x}); SMART may be disabled or missing")]
    Aborted {
        what: &'static str,
        status: u8,
        error: u8,
    },
    #[error("the disk returned SCSI status {0:#x} for {1}")]
    Status(u8, &'static str),
    #[error("SMART RETURN STATUS gave unexpected registers {mid:#04x}/{high:#04x}")]
    Signature { mid: u8, high: u8 },
}

/// Turns what `SG_IO` reported into the registers (when asked for) or the reason there are
/// none.
pub fn interpret(
    what: &'static str,
    result: std::io::Result<ScsiStatus>,
    want_registers: bool,
) -> Result<Option<Registers>, AtaError> {
    let st = result.map_err(AtaError::NoPassThrough)?;
    if st.host_status != 0 {
        return Err(AtaError::Transport(st.host_status));
    }
    let regs = registers(&st.sense);
    if let Some(r) = regs {
        if r.status & 0x01 != 0 {
            return Err(AtaError::Aborted {
                what,
                status: r.status,
                error: r.error,
            });
        }
    }
    if let Some(k) = sense_key(&st.sense) {
        // NO SENSE and RECOVERED ERROR (the CK_COND answer) carry the registers; anything
        // else is a refusal.
        if k.key != 0x00 && k.key != 0x01 {
            return Err(AtaError::Refused {
                key: k.key,
                asc: k.asc,
                ascq: k.ascq,
            });
        }
    } else if st.status != 0 {
        return Err(AtaError::Status(st.status, what));
    }
    match regs {
        None if want_registers => Err(AtaError::NoRegisters),
        r => Ok(r),
    }
}

fn non_data(file: &File, what: &'static str, cmd: &Command) -> Result<Registers, AtaError> {
    let result = sg_io(file, &cdb(cmd, false), Data::None, TIMEOUT_MS);
    interpret(what, result, true)?.ok_or(AtaError::NoRegisters)
}

fn read_sector(file: &File, what: &'static str, cmd: &Command) -> Result<Vec<u8>, AtaError> {
    let mut buf = vec![0u8; 512];
    let result = sg_io(
        file,
        &cdb(cmd, true),
        Data::FromDevice(&mut buf),
        TIMEOUT_MS,
    );
    interpret(what, result, false)?;
    Ok(buf)
}

/// CHECK POWER MODE: never wakes the disk.
pub fn check_power_mode(file: &File) -> Result<PowerMode, AtaError> {
    let cmd = Command {
        command: CHECK_POWER_MODE,
        ..Command::default()
    };
    Ok(power_mode(non_data(file, "CHECK POWER MODE", &cmd)?.count))
}

/// SMART RETURN STATUS: `Ok(true)` when no threshold is exceeded.
pub fn return_status(file: &File) -> Result<bool, AtaError> {
    let r = non_data(
        file,
        "SMART RETURN STATUS",
        &Command::smart(SMART_RETURN_STATUS, 0, 0),
    )?;
    match (r.lba_mid, r.lba_high) {
        (SMART_MID, SMART_HIGH) => Ok(true),
        (FAILING_MID, FAILING_HIGH) => Ok(false),
        (mid, high) => Err(AtaError::Signature { mid, high }),
    }
}

/// SMART READ DATA with the thresholds, and the self-test log, on an awake disk.
pub fn read_smart(file: &File) -> Smart {
    let mut notes = Vec::new();
    let data = match read_sector(
        file,
        "SMART READ DATA",
        &Command::smart(SMART_READ_DATA, 1, 0),
    ) {
        Ok(buf) => match parse_smart_data(&buf) {
            Ok(mut d) => {
                match read_sector(
                    file,
                    "SMART READ THRESHOLDS",
                    &Command::smart(SMART_READ_THRESHOLDS, 1, 0),
                )
                .map(|b| parse_thresholds(&b))
                {
                    Ok(Ok(t)) => apply_thresholds(&mut d, &t),
                    Ok(Err(e)) => notes.push(format!("thresholds: {e}")),
                    Err(e) => notes.push(format!("thresholds: {e}")),
                }
                if !d.checksum_ok {
                    notes.push("SMART data: checksum mismatch".into());
                }
                Some(d)
            }
            Err(e) => {
                notes.push(format!("SMART data: {e}"));
                None
            }
        },
        Err(e) => {
            notes.push(format!("SMART data: {e}"));
            None
        }
    };
    let self_tests = match read_sector(
        file,
        "SMART READ LOG",
        &Command::smart(SMART_READ_LOG, 1, LOG_SELF_TEST),
    )
    .map(|b| parse_self_test_log(&b))
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            notes.push(format!("self-test log: {e}"));
            Vec::new()
        }
        Err(e) => {
            notes.push(format!("self-test log: {e}"));
            Vec::new()
        }
    };
    Smart {
        data,
        self_tests,
        notes,
    }
}

/// Starts a short or extended self-test (SMART EXECUTE OFF-LINE IMMEDIATE, off-line mode);
/// returns the minutes it should take.
pub fn start_self_test(file: &File, long: bool) -> Result<u16, String> {
    let buf = read_sector(
        file,
        "SMART READ DATA",
        &Command::smart(SMART_READ_DATA, 1, 0),
    )
    .map_err(|e| e.to_string())?;
    let data = parse_smart_data(&buf).map_err(|e| e.to_string())?;
    if !data.self_test_supported {
        return Err("the disk does not support SMART self-tests".into());
    }
    if data.self_test_status >> 4 == 15 {
        return Err(format!(
            "a self-test is already running ({}% left)",
            (data.self_test_status & 0x0F) * 10
        ));
    }
    non_data(
        file,
        "SMART EXECUTE OFF-LINE IMMEDIATE",
        &Command::smart(SMART_EXECUTE_OFFLINE, 0, if long { 2 } else { 1 }),
    )
    .map_err(|e| e.to_string())?;
    Ok(if long {
        data.long_test_minutes
    } else {
        u16::from(data.short_test_minutes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SMART READ DATA sector with attributes 5, 9, 194 and 197 and a valid checksum.
    pub fn smart_sector() -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[0] = 0x10;
        let attrs: [(u8, u16, u8, u8, u64); 4] = [
            (5, 0x0033, 100, 100, 3),
            (9, 0x0032, 98, 98, 0x0000_0000_1234),
            (194, 0x0022, 64, 40, 0x0028_0012_0024),
            (197, 0x0012, 100, 100, 0x0102_0304_0506),
        ];
        for (i, (id, flags, cur, worst, raw)) in attrs.iter().enumerate() {
            let e = &mut s[2 + i * 12..14 + i * 12];
            e[0] = *id;
            e[1..3].copy_from_slice(&flags.to_le_bytes());
            e[3] = *cur;
            e[4] = *worst;
            e[5..11].copy_from_slice(&raw.to_le_bytes()[..6]);
        }
        s[363] = 0xF3;
        s[367] = 0x5B;
        s[372] = 2;
        s[373] = 0xFF;
        s[375..377].copy_from_slice(&300u16.to_le_bytes());
        let sum = s[..511].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        s[511] = 0u8.wrapping_sub(sum);
        s
    }

    #[test]
    fn command_blocks_follow_sat() {
        let status = cdb(&Command::smart(SMART_RETURN_STATUS, 0, 0), false);
        assert_eq!(
            status,
            [0x85, 0x06, 0x20, 0, 0xDA, 0, 0, 0, 0, 0, 0x4F, 0, 0xC2, 0, 0xB0, 0]
        );
        let log = cdb(&Command::smart(SMART_READ_LOG, 1, LOG_SELF_TEST), true);
        assert_eq!(
            log,
            [0x85, 0x08, 0x0E, 0, 0xD5, 0, 1, 0, 0x06, 0, 0x4F, 0, 0xC2, 0, 0xB0, 0]
        );
    }

    #[test]
    fn descriptor_sense_gives_the_registers() {
        // RECOVERED ERROR, 00/1D, ATA Status Return descriptor: RETURN STATUS threshold
        // exceeded (F4/2C), status 0x50.
        let sense = [
            0x72, 0x01, 0x00, 0x1D, 0, 0, 0, 14, 0x09, 0x0C, 0x00, 0x00, 0, 0x00, 0, 0x00, 0, 0xF4,
            0, 0x2C, 0xA0, 0x50,
        ];
        let r = registers(&sense).unwrap();
        assert_eq!((r.lba_mid, r.lba_high, r.status), (0xF4, 0x2C, 0x50));
        assert_eq!(r.device, 0xA0);
        let key = sense_key(&sense).unwrap();
        assert_eq!((key.key, key.asc, key.ascq), (1, 0, 0x1D));
    }

    #[test]
    fn fixed_sense_gives_the_registers() {
        // libata's fixed format: information = error, status, device, count; command
        // specific = flags, lba low, mid, high.
        let mut sense = [0u8; 18];
        sense[0] = 0x70;
        sense[2] = 0x01;
        sense[3..7].copy_from_slice(&[0x00, 0x50, 0x40, 0xFF]);
        sense[7] = 10;
        sense[8..12].copy_from_slice(&[0, 0, 0x4F, 0xC2]);
        sense[12] = 0x00;
        sense[13] = 0x1D;
        let r = registers(&sense).unwrap();
        assert_eq!(
            r,
            Registers {
                error: 0,
                count: 0xFF,
                lba_low: 0,
                lba_mid: 0x4F,
                lba_high: 0xC2,
                device: 0x40,
                status: 0x50
            }
        );
        assert_eq!(power_mode(r.count), PowerMode::Active);
        // Without 00/1D the information fields are not registers.
        sense[13] = 0;
        assert_eq!(registers(&sense), None);
    }

    #[test]
    fn refusals_become_reasons_never_registers() {
        // QEMU's scsi-hd: ILLEGAL REQUEST, invalid command operation code.
        let mut sense = vec![0u8; 18];
        sense[0] = 0x70;
        sense[2] = 0x05;
        sense[7] = 10;
        sense[12] = 0x20;
        let st = ScsiStatus {
            status: 2,
            host_status: 0,
            driver_status: 8,
            sense,
            resid: 0,
        };
        let e = interpret("CHECK POWER MODE", Ok(st.clone()), true).unwrap_err();
        assert!(
            e.to_string().contains("does not accept ATA pass-through"),
            "{e}"
        );
        // GOOD with no sense when registers were asked for: a bridge that ignores CK_COND.
        let good = ScsiStatus {
            status: 0,
            sense: Vec::new(),
            ..st
        };
        assert!(matches!(
            interpret("CHECK POWER MODE", Ok(good.clone()), true),
            Err(AtaError::NoRegisters)
        ));
        assert_eq!(interpret("SMART READ DATA", Ok(good), false).unwrap(), None);
        // An aborted command (ERR in the status register).
        let mut sense = vec![0x72, 0x01, 0x00, 0x1D, 0, 0, 0, 14, 0x09, 0x0C];
        sense.extend([0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0xA0, 0x51]);
        let aborted = ScsiStatus {
            status: 2,
            host_status: 0,
            driver_status: 8,
            sense,
            resid: 0,
        };
        assert!(matches!(
            interpret("SMART RETURN STATUS", Ok(aborted), true),
            Err(AtaError::Aborted { error: 0x04, .. })
        ));
        let err = std::io::Error::from_raw_os_error(25);
        assert!(matches!(
            interpret("x", Err(err), true),
            Err(AtaError::NoPassThrough(_))
        ));
    }

    #[test]
    fn smart_data_parses_attributes_and_capabilities() {
        let mut d = parse_smart_data(&smart_sector()).unwrap();
        assert!(d.checksum_ok);
        assert_eq!(d.attributes.len(), 4);
        let a = &d.attributes[3];
        assert_eq!(
            (a.id, a.name(), a.raw),
            (197, "Current_Pending_Sector", 0x0102_0304_0506)
        );
        assert!(d.attributes[0].prefailure());
        assert!(d.self_test_supported);
        assert_eq!((d.short_test_minutes, d.long_test_minutes), (2, 300));
        assert_eq!(d.self_test_status >> 4, 15);
        let mut t = vec![0u8; 512];
        t[2] = 5;
        t[3] = 100;
        t[14] = 194;
        t[15] = 0;
        apply_thresholds(&mut d, &parse_thresholds(&t).unwrap());
        assert_eq!(d.attributes[0].threshold, Some(100));
        assert!(d.attributes[0].failing());
        assert_eq!(d.attributes[2].threshold, Some(0));
        assert!(!d.attributes[2].failing());
        assert_eq!(d.attributes[1].threshold, None);
        let smart = Smart {
            data: Some(d),
            self_tests: Vec::new(),
            notes: Vec::new(),
        };
        assert_eq!(smart.temperature_c(), Some(0x24));
        assert_eq!(smart.power_on_hours(), Some(0x1234));
        assert_eq!(smart.raw(5), Some(3));
        let mut bad = smart_sector();
        bad[100] ^= 1;
        assert!(!parse_smart_data(&bad).unwrap().checksum_ok);
    }

    #[test]
    fn self_test_log_lists_newest_first() {
        let mut s = vec![0u8; 512];
        let entry = |s: &mut Vec<u8>, i: usize, kind: u8, status: u8, hours: u16, lba: u32| {
            let e = &mut s[2 + i * 24..26 + i * 24];
            e[0] = kind;
            e[1] = status;
            e[2..4].copy_from_slice(&hours.to_le_bytes());
            e[5..9].copy_from_slice(&lba.to_le_bytes());
        };
        entry(&mut s, 0, 1, 0x00, 10, 0);
        entry(&mut s, 1, 2, 0x73, 20, 123_456);
        s[508] = 2;
        let log = parse_self_test_log(&s).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].kind_name(), "extended");
        assert_eq!(log[0].status_text(), "failed (read element)");
        assert_eq!(log[0].remaining_percent, 30);
        assert_eq!(log[0].failing_lba, Some(123_456));
        assert_eq!((log[1].kind_name(), log[1].power_on_hours), ("short", 10));
        assert_eq!(log[1].failing_lba, None);
        s[508] = 0;
        assert!(parse_self_test_log(&s).unwrap().is_empty());
    }

    #[test]
    fn random_and_truncated_input_never_panics() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let golden = smart_sector();
        for round in 0..2000 {
            let len = (next() % 600) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 3 == 0 {
                buf = golden[..len.min(512)].to_vec();
            }
            if let Some(b) = buf.first_mut() {
                *b = [0x70, 0x72, 0x73, 0x71, *b][round % 5];
            }
            let _ = registers(&buf);
            let _ = sense_key(&buf);
            let _ = parse_smart_data(&buf);
            let _ = parse_thresholds(&buf);
            let _ = parse_self_test_log(&buf);
            assert_eq!(parse_smart_data(&buf).is_ok(), buf.len() >= 512);
        }
    }
}
