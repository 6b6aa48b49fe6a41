//! Kernel uevents (the kobject uevent netlink socket), for disks that come and go at run time.
//!
//! A kernel uevent is one datagram: `ACTION@DEVPATH\0` followed by `KEY=VALUE\0` pairs
//! (`ACTION`, `DEVPATH`, `SUBSYSTEM`, `DEVNAME`, `DEVTYPE`, `SEQNUM`, ...). Messages that udev
//! re-broadcasts start with `libudev\0` and are ignored (there is no udev here anyway).
//! A malformed datagram is logged and dropped.

use std::collections::BTreeMap;

/// One parsed uevent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub vars: BTreeMap<String, String>,
}

impl Uevent {
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The kernel name of a whole disk this event is about (`sdb`, `nvme0n1`), if it is one.
    pub fn disk(&self) -> Option<&str> {
        (self.var("SUBSYSTEM") == Some("block") && self.var("DEVTYPE") == Some("disk"))
            .then(|| self.var("DEVNAME"))
            .flatten()
            .map(|n| n.strip_prefix("/dev/").unwrap_or(n))
    }
}

/// Parses one datagram. `None` for udev's own messages and for anything malformed.
pub fn parse(datagram: &[u8]) -> Option<Uevent> {
    if datagram.starts_with(b"libudev\0") {
        return None;
    }
    let mut fields = datagram.split(|&b| b == 0).filter(|f| !f.is_empty());
    let header = std::str::from_utf8(fields.next()?).ok()?;
    let (action, devpath) = header.split_once('@')?;
    if action.is_empty() || !devpath.starts_with('/') {
        return None;
    }
    let mut vars = BTreeMap::new();
    for field in fields {
        let text = std::str::from_utf8(field).ok()?;
        let (key, value) = text.split_once('=')?;
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return None;
        }
        vars.insert(key.to_owned(), value.to_owned());
    }
    // The header and the variables must agree, or the message is not the kernel's.
    if vars.get("ACTION").is_some_and(|a| a != action)
        || vars.get("DEVPATH").is_some_and(|p| p != devpath)
    {
        return None;
    }
    Some(Uevent {
        action: action.to_owned(),
        devpath: devpath.to_owned(),
        vars,
    })
}

/// Listens for kernel uevents and calls `on_disk(action, kernel name)` for whole disks added
/// or removed. Blocks: run it on its own supervised thread. Returns only if the socket
/// cannot be opened or fails.
pub fn listen(on_disk: &dyn Fn(&str, &str)) -> Result<(), String> {
    use netlink_sys::{protocols::NETLINK_KOBJECT_UEVENT, Socket, SocketAddr};
    let mut socket = Socket::new(NETLINK_KOBJECT_UEVENT)
        .map_err(|e| format!("cannot open the uevent socket: {e}"))?;
    // Group 1: the kernel's own broadcasts.
    socket
        .bind(&SocketAddr::new(0, 1))
        .map_err(|e| format!("cannot bind the uevent socket: {e}"))?;
    let _ = socket.set_rx_buf_sz(1 << 20);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            // ENOBUFS: events were lost in a burst; the minute check catches up.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                log::warn!("uevents lost (receive buffer full); the next pool check catches up");
                continue;
            }
            Err(e) => return Err(format!("uevent socket: {e}")),
        };
        let datagram = &buf[..n.min(buf.len())];
        if datagram.starts_with(b"libudev\0") {
            continue;
        }
        match parse(datagram) {
            Some(event) => {
                if let Some(disk) = event.disk() {
                    if matches!(event.action.as_str(), "add" | "remove") {
                        on_disk(&event.action, disk);
                    }
                }
            }
            None => crate::peer_log!(
                log::Level::Warn,
                "uevent",
                "malformed uevent ({} bytes) dropped",
                datagram.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMOVE: &[u8] = b"remove@/devices/pci0000:00/0000:00:03.0/virtio1/host0/target0:0:1/0:0:1:0/block/sdb\0ACTION=remove\0DEVPATH=/devices/pci0000:00/0000:00:03.0/virtio1/host0/target0:0:1/0:0:1:0/block/sdb\0SUBSYSTEM=block\0MAJOR=8\0MINOR=16\0DEVNAME=sdb\0DEVTYPE=disk\0DISKSEQ=3\0SEQNUM=2301\0";

    #[test]
    fn disk_removal() {
        let e = parse(REMOVE).unwrap();
        assert_eq!(e.action, "remove");
        assert_eq!(e.disk(), Some("sdb"));
        assert_eq!(e.var("SEQNUM"), Some("2301"));
    }

    #[test]
    fn partitions_and_others_are_not_disks() {
        let part = b"add@/devices/x/block/sdb/sdb1\0ACTION=add\0DEVPATH=/devices/x/block/sdb/sdb1\0SUBSYSTEM=block\0DEVNAME=sdb1\0DEVTYPE=partition\0";
        assert_eq!(parse(part).unwrap().disk(), None);
        let net = b"add@/devices/virtual/net/lo\0ACTION=add\0DEVPATH=/devices/virtual/net/lo\0SUBSYSTEM=net\0INTERFACE=lo\0";
        assert_eq!(parse(net).unwrap().disk(), None);
    }

    #[test]
    fn malformed_is_refused() {
        for bad in [
            &b""[..],
            b"\0\0",
            b"remove\0ACTION=remove\0",
            b"remove@devices\0",
            b"@/devices/x\0",
            b"remove@/devices/x\0noequals\0",
            b"remove@/devices/x\0lower=case\0",
            b"remove@/devices/x\0ACTION=add\0",
            b"remove@/devices/x\0DEVPATH=/elsewhere\0",
            b"remove@/devices/\xff\0",
            b"libudev\0feedcafe",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    /// Random bytes, and every truncation and single-byte change of a real message, never
    /// panic the parser.
    #[test]
    fn noise_never_panics() {
        let mut state = 0x5eed_0e7e_u64;
        for i in 0..4000 {
            let _ = parse(&tank_probe::samples::noise(&mut state, i % 600));
        }
        // Noise after a valid header, so the variable parsing is reached.
        for i in 0..2000 {
            let mut m = b"remove@/devices/x\0".to_vec();
            m.extend(tank_probe::samples::noise(&mut state, i % 300));
            let _ = parse(&m);
        }
        for cut in 0..REMOVE.len() {
            let _ = parse(&REMOVE[..cut]);
        }
        for at in 0..REMOVE.len() {
            for byte in [0u8, b'=', b'@', 0xff] {
                let mut m = REMOVE.to_vec();
                m[at] = byte;
                let _ = parse(&m);
            }
        }
    }
}
