//! The sunrpc cache channel's text format (`/proc/net/rpc/<cache>/channel`): requests the
//! kernel writes and the replies the init sends back, as `net/sunrpc/cache.c` defines them.
//!
//! A message is one line of words separated by spaces. In a word, space, tab, newline and
//! backslash are written `\ooo` (three octal digits); a word starting `\x` is binary, in hex.
//! Replies end with `\n`; integers are decimal without leading zeros; expiry times are
//! absolute Unix times. What does not live here: deciding the answers ([`super::exports`]) and
//! reading or writing the channel files ([`super::upcall`]).

use std::fmt::Write as _;
use std::net::IpAddr;

use thiserror::Error;

/// Why a request line was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("the request does not end with a newline")]
    NoNewline,
    #[error("the request has {found} words where {expected} were expected")]
    WordCount { found: usize, expected: usize },
    #[error("bad escape in word {word}")]
    Escape { word: usize },
    #[error("the request is not UTF-8 where text was expected")]
    NotText,
    #[error("class {0:?} is not 'nfsd'")]
    Class(String),
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error("file handle type {0:?} is not a number from 0 to 7")]
    FsidType(String),
    #[error("the fsid has {found} bytes; type {fsid_type} needs {expected}")]
    FsidLength {
        fsid_type: u8,
        found: usize,
        expected: usize,
    },
    #[error("the fsid is not binary (\\x...)")]
    FsidNotBinary,
}

/// Splits a line into its decoded words (bytes).
pub fn words(line: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let body = line.strip_suffix(b"\n").ok_or(WireError::NoNewline)?;
    let mut out = Vec::new();
    for (index, raw) in body
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        out.push(decode_word(raw).ok_or(WireError::Escape { word: index })?);
    }
    Ok(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_word(raw: &[u8]) -> Option<Vec<u8>> {
    if let Some(hex) = raw.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return None;
        }
        return hex
            .chunks(2)
            .map(|p| Some(hex_digit(p[0])? << 4 | hex_digit(p[1])?))
            .collect();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            let digits = raw.get(i + 1..i + 4)?;
            if !(b'0'..=b'3').contains(&digits[0])
                || !digits[1..].iter().all(|d| (b'0'..=b'7').contains(d))
            {
                return None;
            }
            out.push((digits[0] - b'0') << 6 | (digits[1] - b'0') << 3 | (digits[2] - b'0'));
            i += 4;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Appends a text word, escaped, and a separating space.
pub fn push_word(out: &mut String, word: &str) {
    for b in word.bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => {
                let _ = write!(out, "\\{:03o}", b);
            }
            _ => out.push(b as char),
        }
    }
    out.push(' ');
}

/// Appends a binary word (`\x` and hex) and a separating space.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    out.push_str("\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push(' ');
}

/// Ends a reply: the last separator becomes the newline.
pub fn finish(mut out: String) -> String {
    if out.ends_with(' ') {
        out.pop();
    }
    out.push('\n');
    out
}

fn text(word: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(word).map_err(|_| WireError::NotText)
}

fn exactly(words: &[Vec<u8>], expected: usize) -> Result<(), WireError> {
    if words.len() == expected {
        Ok(())
    } else {
        Err(WireError::WordCount {
            found: words.len(),
            expected,
        })
    }
}

/// `auth.unix.ip`: which domain a client address belongs to. Request `nfsd <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRequest {
    pub address: IpAddr,
    /// The address as the kernel wrote it, echoed in the reply.
    pub raw: String,
}

pub fn parse_ip_request(line: &[u8]) -> Result<IpRequest, WireError> {
    let words = words(line)?;
    exactly(&words, 2)?;
    let class = text(&words[0])?;
    if class != "nfsd" {
        return Err(WireError::Class(class.to_owned()));
    }
    let raw = text(&words[1])?.to_owned();
    let address = raw
        .parse::<IpAddr>()
        .map_err(|_| WireError::Address(raw.clone()))?;
    Ok(IpRequest { address, raw })
}

/// `nfsd <address> <expiry> [<domain>]`; no domain is a refusal.
pub fn ip_reply(request: &IpRequest, expiry: u64, domain: Option<&str>) -> String {
    let mut out = String::new();
    push_word(&mut out, "nfsd");
    push_word(&mut out, &request.raw);
    push_word(&mut out, &expiry.to_string());
    if let Some(domain) = domain {
        push_word(&mut out, domain);
    }
    finish(out)
}

/// `nfsd.export`: the export options of a path for a domain. Request `<domain> <path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub domain: String,
    pub path: String,
}

pub fn parse_export_request(line: &[u8]) -> Result<ExportRequest, WireError> {
    let words = words(line)?;
    exactly(&words, 2)?;
    Ok(ExportRequest {
        domain: text(&words[0])?.to_owned(),
        path: text(&words[1])?.to_owned(),
    })
}

/// The options of a positive export answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    pub flags: u32,
    pub anon_uid: u32,
    pub anon_gid: u32,
    pub fsid: u32,
    pub uuid: Option<[u8; 16]>,
    /// `secinfo` flavors (AUTH_UNIX is 1), each sent with the export's flags.
    pub flavors: Vec<u32>,
}

/// The export flags the kernel knows (`include/uapi/linux/nfsd/export.h`).
pub mod flags {
    pub const READONLY: u32 = 0x1;
    pub const INSECURE_PORT: u32 = 0x2;
    pub const ROOTSQUASH: u32 = 0x4;
    pub const ALLSQUASH: u32 = 0x8;
    pub const GATHERED_WRITES: u32 = 0x20;
    pub const NOSUBTREECHECK: u32 = 0x400;
    pub const FSID: u32 = 0x2000;
    pub const V4ROOT: u32 = 0x10000;
}

/// `<domain> <path> <expiry> [<flags> <anonuid> <anongid> <fsid> [uuid \x..] [secinfo ..]]`;
/// no options is a refusal.
pub fn export_reply(
    request: &ExportRequest,
    expiry: u64,
    options: Option<&ExportOptions>,
) -> String {
    let mut out = String::new();
    push_word(&mut out, &request.domain);
    push_word(&mut out, &request.path);
    push_word(&mut out, &expiry.to_string());
    if let Some(o) = options {
        for n in [o.flags, o.anon_uid, o.anon_gid, o.fsid] {
            push_word(&mut out, &n.to_string());
        }
        if let Some(uuid) = &o.uuid {
            push_word(&mut out, "uuid");
            push_hex(&mut out, uuid);
        }
        if !o.flavors.is_empty() {
            push_word(&mut out, "secinfo");
            push_word(&mut out, &o.flavors.len().to_string());
            // A flavor's flags may differ from the export's only in the SECINFO_FLAGS bits
            // (`secinfo_parse`): send the export's own.
            for flavor in &o.flavors {
                push_word(&mut out, &flavor.to_string());
                push_word(&mut out, &o.flags.to_string());
            }
        }
    }
    finish(out)
}

/// `nfsd.fh`: which path a file handle's fsid names. Request `<domain> <type> \x<fsid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhRequest {
    pub domain: String,
    pub fsid_type: u8,
    pub fsid: Vec<u8>,
}

/// The fsid length of each file handle type (`key_len` in `fs/nfsd/nfsfh.h`).
pub fn fsid_len(fsid_type: u8) -> Option<usize> {
    match fsid_type {
        0 => Some(8),
        1 => Some(4),
        2 => Some(12),
        3..=5 => Some(8),
        6 => Some(16),
        7 => Some(24),
        _ => None,
    }
}

pub fn parse_fh_request(line: &[u8]) -> Result<FhRequest, WireError> {
    let body = line.strip_suffix(b"\n").ok_or(WireError::NoNewline)?;
    let raw: Vec<&[u8]> = body
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    if raw.len() != 3 {
        return Err(WireError::WordCount {
            found: raw.len(),
            expected: 3,
        });
    }
    if !raw[2].starts_with(b"\\x") {
        return Err(WireError::FsidNotBinary);
    }
    let words = words(line)?;
    let domain = text(&words[0])?.to_owned();
    let type_text = text(&words[1])?;
    let fsid_type = type_text
        .parse::<u8>()
        .ok()
        .filter(|t| fsid_len(*t).is_some())
        .ok_or_else(|| WireError::FsidType(type_text.to_owned()))?;
    let expected = fsid_len(fsid_type).unwrap_or(0);
    let fsid = words[2].clone();
    if fsid.len() != expected {
        return Err(WireError::FsidLength {
            fsid_type,
            found: fsid.len(),
            expected,
        });
    }
    Ok(FhRequest {
        domain,
        fsid_type,
        fsid,
    })
}

/// `<domain> <type> \x<fsid> <expiry> [<path>]`; no path is a refusal (the client sees a stale
/// file handle).
pub fn fh_reply(request: &FhRequest, expiry: u64, path: Option<&str>) -> String {
    let mut out = String::new();
    push_word(&mut out, &request.domain);
    push_word(&mut out, &request.fsid_type.to_string());
    push_hex(&mut out, &request.fsid);
    push_word(&mut out, &expiry.to_string());
    if let Some(path) = path {
        push_word(&mut out, path);
    }
    finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let mut out = String::new();
        push_word(&mut out, "/mnt/tank/my data\\x");
        push_hex(&mut out, &[0, 0xab, 0x10]);
        let line = finish(out);
        assert_eq!(line, "/mnt/tank/my\\040data\\134x \\x00ab10\n");
        let words = words(line.as_bytes()).unwrap();
        assert_eq!(words[0], b"/mnt/tank/my data\\x");
        assert_eq!(words[1], vec![0, 0xab, 0x10]);
    }

    #[test]
    fn ip_requests_and_replies() {
        let request = parse_ip_request(b"nfsd 10.0.3.2\n").unwrap();
        assert_eq!(request.address, "10.0.3.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            ip_reply(&request, 1_800_000_000, Some("ip:10.0.3.2")),
            "nfsd 10.0.3.2 1800000000 ip:10.0.3.2\n"
        );
        assert_eq!(ip_reply(&request, 5, None), "nfsd 10.0.3.2 5\n");
        let v6 = parse_ip_request(b"nfsd 0000:0000:0000:0000:0000:ffff:0a00:0302\n").unwrap();
        assert_eq!(v6.address.to_string(), "::ffff:10.0.3.2");
        for bad in [
            &b"nfsd 10.0.3.2"[..],
            b"rpc 10.0.3.2\n",
            b"nfsd nonsense\n",
            b"nfsd 1.2.3.4 extra\n",
            b"\n",
            b"nfsd \\9\n",
        ] {
            assert!(parse_ip_request(bad).is_err(), "{bad:?}");
        }
    }

    /// The reply nfs-utils' mountd sends for a `rw,insecure,no_subtree_check` export, in our
    /// word order (flags 0x426 = 1062 with wdelay; see kernel-control-plane.md A.3).
    #[test]
    fn export_replies() {
        let request = parse_export_request(b"ip:10.0.3.2 /mnt/tank/vms\n").unwrap();
        assert_eq!(request.path, "/mnt/tank/vms");
        let options = ExportOptions {
            flags: flags::INSECURE_PORT
                | flags::ROOTSQUASH
                | flags::GATHERED_WRITES
                | flags::NOSUBTREECHECK,
            anon_uid: 65534,
            anon_gid: 65534,
            fsid: 0,
            uuid: Some([0x11; 16]),
            flavors: vec![1],
        };
        assert_eq!(
            export_reply(&request, 1_800_000_000, Some(&options)),
            "ip:10.0.3.2 /mnt/tank/vms 1800000000 1062 65534 65534 0 uuid \
             \\x11111111111111111111111111111111 secinfo 1 1 1062\n"
        );
        assert_eq!(
            export_reply(&request, 7, None),
            "ip:10.0.3.2 /mnt/tank/vms 7\n"
        );
        let spaced = parse_export_request(b"d /mnt/tank/a\\040b\n").unwrap();
        assert_eq!(spaced.path, "/mnt/tank/a b");
        assert!(export_reply(&spaced, 1, None).contains("/mnt/tank/a\\040b"));
    }

    #[test]
    fn fh_requests_and_replies() {
        let root = parse_fh_request(b"ip:10.0.3.2 1 \\x00000000\n").unwrap();
        assert_eq!((root.fsid_type, root.fsid.clone()), (1, vec![0; 4]));
        assert_eq!(
            fh_reply(&root, 2_147_483_647, Some("/")),
            "ip:10.0.3.2 1 \\x00000000 2147483647 /\n"
        );
        let line = format!("d 7 \\x{}{}\n", "0001000000000000", "22".repeat(16));
        let uuid = parse_fh_request(line.as_bytes()).unwrap();
        assert_eq!(uuid.fsid.len(), 24);
        let hex = format!("{}{}", "0001000000000000", "22".repeat(16));
        assert_eq!(fh_reply(&uuid, 9, None), format!("d 7 \\x{hex} 9\n"));
        for bad in [
            &b"d 9 \\x00\n"[..],
            b"d 1 \\x0000\n",
            b"d 1 00000000\n",
            b"d x \\x00000000\n",
            b"d 1\n",
        ] {
            assert!(parse_fh_request(bad).is_err(), "{bad:?}");
        }
    }
}
