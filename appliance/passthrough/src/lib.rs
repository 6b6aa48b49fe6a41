//! Safe wrappers for the pass-through ioctls the init uses to read disk health: SCSI `SG_IO`
//! (which carries ATA PASS-THROUGH commands to SATA disks) and NVMe `NVME_IOCTL_ADMIN_CMD`.
//!
//! Both ioctls take a structure holding raw pointers to the caller's buffers (command, data,
//! sense), which no safe interface of `rustix` or another maintained crate covers, so the
//! `unsafe` lives here, in one small crate, and the init keeps `#![forbid(unsafe_code)]`. The
//! API takes slices: the kernel writes at most the slice's length, and the slices outlive the
//! call, which is the whole invariant the `unsafe` blocks rely on.
//!
//! Nothing here interprets the commands: building CDBs and parsing what comes back is the
//! init's business (`system/health/`).
//!
//! [`clock`] holds the clock calls `rustix` lacks (`adjtimex`, the RTC's `RTC_SET_TIME`), for
//! the same reason.

pub mod clock;

use std::io;
use std::os::fd::AsFd;

use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};

/// `SG_IO` from `<scsi/sg.h>` (not an `_IOC`-encoded number).
const SG_IO: Opcode = 0x2285;
/// `sg_io_hdr.interface_id`: `'S'`.
const SG_INTERFACE_ID: i32 = b'S' as i32;
const SG_DXFER_NONE: i32 = -1;
const SG_DXFER_TO_DEV: i32 = -2;
const SG_DXFER_FROM_DEV: i32 = -3;

/// The longest sense buffer the wrapper asks for (SPC allows 252 bytes; descriptor sense with
/// an ATA status return descriptor needs 22).
pub const SENSE_LEN: usize = 64;

/// `struct sg_io_hdr` from `<scsi/sg.h>`.
#[repr(C)]
struct SgIoHdr {
    interface_id: i32,
    dxfer_direction: i32,
    cmd_len: u8,
    mx_sb_len: u8,
    iovec_count: u16,
    dxfer_len: u32,
    dxferp: *mut core::ffi::c_void,
    cmdp: *const u8,
    sbp: *mut u8,
    timeout: u32,
    flags: u32,
    pack_id: i32,
    usr_ptr: *mut core::ffi::c_void,
    status: u8,
    masked_status: u8,
    msg_status: u8,
    sb_len_wr: u8,
    host_status: u16,
    driver_status: u16,
    resid: i32,
    duration: u32,
    info: u32,
}

/// `struct nvme_passthru_cmd` (`nvme_admin_cmd`) from `<linux/nvme_ioctl.h>`.
#[repr(C)]
struct NvmePassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

/// `NVME_IOCTL_ADMIN_CMD`: `_IOWR('N', 0x41, struct nvme_admin_cmd)`.
const NVME_IOCTL_ADMIN_CMD: Opcode =
    rustix::ioctl::opcode::read_write::<NvmePassthruCmd>(b'N', 0x41);

/// An ioctl whose argument is a pointer to `T` the kernel reads and updates, and whose return
/// value is kept (the NVMe ioctl returns the command's status there).
struct Update<'a, T> {
    opcode: Opcode,
    value: &'a mut T,
}

// SAFETY: `as_ptr` points at a live, exclusively borrowed `T` of the layout the opcode expects
// (`SgIoHdr` for `SG_IO`, `NvmePassthruCmd` for `NVME_IOCTL_ADMIN_CMD`, `clock::RtcTime` for
// `RTC_SET_TIME`, the only three built in this crate), and the buffers that structure points at are live slices of the lengths it
// names (see `sg_io` and `nvme_admin`).
unsafe impl<T> Ioctl for Update<'_, T> {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        self.opcode
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        (self.value as *mut T).cast()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut core::ffi::c_void,
    ) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// Where a SCSI command's data goes.
#[derive(Debug)]
pub enum Data<'a> {
    None,
    /// The device fills the buffer (up to its length).
    FromDevice(&'a mut [u8]),
    /// The device reads the buffer.
    ToDevice(&'a [u8]),
}

/// What a SCSI command returned besides its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiStatus {
    /// The SCSI status byte (0 good, 2 CHECK CONDITION).
    pub status: u8,
    /// The transport's status (0 when the command reached the device).
    pub host_status: u16,
    /// The driver's status (0, or 0x08 `DRIVER_SENSE` when sense data came back).
    pub driver_status: u16,
    /// The sense data the device returned (empty when none).
    pub sense: Vec<u8>,
    /// Bytes of the data buffer not transferred.
    pub resid: i32,
}

/// Sends one SCSI command (`cdb`, 6 to 16 bytes) to the device open as `fd` with `SG_IO`,
/// waiting at most `timeout_ms`. An `Err` means the ioctl itself failed (the device is not a
/// SCSI-class device, or the command was rejected before reaching it); a command the device
/// refused comes back as `Ok` with its status and sense data.
pub fn sg_io<F: AsFd>(
    fd: F,
    cdb: &[u8],
    data: Data<'_>,
    timeout_ms: u32,
) -> io::Result<ScsiStatus> {
    if cdb.is_empty() || cdb.len() > 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a SCSI command is 1 to 16 bytes, not {}", cdb.len()),
        ));
    }
    let (direction, pointer, len) = match data {
        Data::None => (SG_DXFER_NONE, core::ptr::null_mut(), 0),
        Data::FromDevice(buf) => (SG_DXFER_FROM_DEV, buf.as_mut_ptr().cast(), buf.len()),
        Data::ToDevice(buf) => (SG_DXFER_TO_DEV, buf.as_ptr().cast_mut().cast(), buf.len()),
    };
    let len = u32::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the data buffer is too large"))?;
    let mut sense = [0u8; SENSE_LEN];
    let mut hdr = SgIoHdr {
        interface_id: SG_INTERFACE_ID,
        dxfer_direction: direction,
        cmd_len: cdb.len() as u8,
        mx_sb_len: SENSE_LEN as u8,
        iovec_count: 0,
        dxfer_len: len,
        dxferp: pointer,
        cmdp: cdb.as_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: core::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    let call = Update {
        opcode: SG_IO,
        value: &mut hdr,
    };
    // SAFETY: `hdr` points at `cdb` (`cmd_len` bytes), `sense` (`mx_sb_len` bytes) and the data
    // slice (`dxfer_len` bytes, written only for `FromDevice`, which borrows it mutably); all
    // of them outlive this synchronous call.
    unsafe { rustix::ioctl::ioctl(fd, call) }?;
    let written = usize::from(hdr.sb_len_wr).min(SENSE_LEN);
    Ok(ScsiStatus {
        status: hdr.status,
        host_status: hdr.host_status,
        driver_status: hdr.driver_status,
        sense: sense[..written].to_vec(),
        resid: hdr.resid,
    })
}

/// One NVMe admin command: the opcode, namespace and command dwords 10 to 15.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminCommand {
    pub opcode: u8,
    pub nsid: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
}

/// What an NVMe admin command returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminResult {
    /// The NVMe status field (0 success; e.g. 0x1 invalid opcode, 0x2 invalid field).
    pub status: u32,
    /// Dword 0 of the completion.
    pub result: u32,
}

/// Sends an NVMe admin command to the controller (or namespace) open as `fd`, with `data` as
/// its data buffer (read or written by the device, as the opcode says), waiting at most
/// `timeout_ms`.
pub fn nvme_admin<F: AsFd>(
    fd: F,
    command: &AdminCommand,
    data: &mut [u8],
    timeout_ms: u32,
) -> io::Result<AdminResult> {
    let len = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the data buffer is too large"))?;
    let mut cmd = NvmePassthruCmd {
        opcode: command.opcode,
        flags: 0,
        rsvd1: 0,
        nsid: command.nsid,
        cdw2: 0,
        cdw3: 0,
        metadata: 0,
        addr: if data.is_empty() {
            0
        } else {
            data.as_mut_ptr() as u64
        },
        metadata_len: 0,
        data_len: len,
        cdw10: command.cdw10,
        cdw11: command.cdw11,
        cdw12: command.cdw12,
        cdw13: command.cdw13,
        cdw14: command.cdw14,
        cdw15: command.cdw15,
        timeout_ms,
        result: 0,
    };
    let call = Update {
        opcode: NVME_IOCTL_ADMIN_CMD,
        value: &mut cmd,
    };
    // SAFETY: `cmd.addr` is the mutably borrowed `data` (`data_len` bytes, or null with length
    // 0) and no metadata buffer is named; `data` outlives this synchronous call.
    let status = unsafe { rustix::ioctl::ioctl(fd, call) }?;
    Ok(AdminResult {
        status: status as u32,
        result: cmd.result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_have_the_kernel_layout() {
        // <scsi/sg.h> and <linux/nvme_ioctl.h> on 64-bit Linux.
        assert_eq!(core::mem::size_of::<SgIoHdr>(), 88);
        assert_eq!(core::mem::offset_of!(SgIoHdr, dxferp), 16);
        assert_eq!(core::mem::offset_of!(SgIoHdr, timeout), 40);
        assert_eq!(core::mem::offset_of!(SgIoHdr, status), 64);
        assert_eq!(core::mem::offset_of!(SgIoHdr, resid), 72);
        assert_eq!(core::mem::size_of::<NvmePassthruCmd>(), 72);
        assert_eq!(core::mem::offset_of!(NvmePassthruCmd, cdw10), 40);
        assert_eq!(core::mem::offset_of!(NvmePassthruCmd, result), 68);
        assert_eq!(NVME_IOCTL_ADMIN_CMD as u64, 0xC048_4E41);
    }

    #[test]
    fn a_file_that_is_no_device_is_an_error_not_a_crash() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let mut buf = [0u8; 512];
        let cdb = [
            0x85, 8, 0x0e, 0, 0xd0, 0, 1, 0, 0, 0, 0x4f, 0, 0xc2, 0, 0xb0, 0,
        ];
        assert!(sg_io(&file, &cdb, Data::FromDevice(&mut buf), 1000).is_err());
        let get_log = AdminCommand {
            opcode: 0x02,
            nsid: u32::MAX,
            cdw10: 0x02 | (127 << 16),
            ..AdminCommand::default()
        };
        assert!(nvme_admin(&file, &get_log, &mut buf, 1000).is_err());
        assert!(sg_io(&file, &[], Data::None, 1000).is_err());
        assert!(sg_io(&file, &[0; 17], Data::None, 1000).is_err());
    }
}
