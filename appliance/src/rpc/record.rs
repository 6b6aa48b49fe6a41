//! Record marking for RPC over TCP (RFC 5531 section 11): a record is one or more fragments,
//! each preceded by a four-byte header holding the fragment's length in its low 31 bits and
//! the last-fragment flag in its top bit.
//!
//! [`read_record`] reassembles a record from any byte stream with a bound on the record's
//! total size and on its number of fragments, so a peer cannot make the service allocate or
//! spin without limit; [`frame`] wraps a reply as one last fragment. UDP carries one message
//! per datagram and needs no framing. Timeouts belong to the stream (see `server.rs`).

use std::io::{self, Read};

/// The top bit of a fragment header: this fragment ends the record.
pub const LAST_FRAGMENT: u32 = 0x8000_0000;

/// The most fragments one record may have; real clients send one.
pub const MAX_FRAGMENTS: usize = 256;

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the record is over the maximum of {max} bytes (a fragment claims {claimed} more)")]
    TooLarge { max: usize, claimed: u32 },
    #[error("the record has more than {MAX_FRAGMENTS} fragments")]
    TooManyFragments,
    #[error("the connection closed in the middle of a record")]
    Truncated,
    #[error("reading the connection failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads one record of at most `max` bytes. `Ok(None)` is a clean end of stream between
/// records.
pub fn read_record<R: Read>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, RecordError> {
    let mut record = Vec::new();
    for fragment in 0..MAX_FRAGMENTS {
        let mut header = [0u8; 4];
        if !read_exact_or_eof(r, &mut header)? {
            return if fragment == 0 {
                Ok(None)
            } else {
                Err(RecordError::Truncated)
            };
        }
        let header = u32::from_be_bytes(header);
        let len = header & !LAST_FRAGMENT;
        if len as usize > max.saturating_sub(record.len()) {
            return Err(RecordError::TooLarge { max, claimed: len });
        }
        let start = record.len();
        record.resize(start + len as usize, 0);
        if !read_exact_or_eof(r, &mut record[start..])? {
            return Err(RecordError::Truncated);
        }
        if header & LAST_FRAGMENT != 0 {
            return Ok(Some(record));
        }
    }
    Err(RecordError::TooManyFragments)
}

/// Fills `buf`; `Ok(false)` if the stream ended before the first byte, an error if it ended
/// after it.
fn read_exact_or_eof<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<bool, RecordError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(RecordError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RecordError::Io(e)),
        }
    }
    Ok(true)
}

/// A message as one record of one fragment. Messages are bounded far below 2 GiB by the
/// writers' limits; a longer one would not be representable and is refused.
pub fn frame(message: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(message.len())
        .ok()
        .filter(|l| l & LAST_FRAGMENT == 0)?;
    let mut out = Vec::with_capacity(message.len() + 4);
    out.extend_from_slice(&(len | LAST_FRAGMENT).to_be_bytes());
    out.extend_from_slice(message);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fragment_golden() {
        let framed = frame(&[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(framed, [0x80, 0, 0, 5, 1, 2, 3, 4, 5]);
        let mut stream = &framed[..];
        assert_eq!(
            read_record(&mut stream, 100).unwrap(),
            Some(vec![1, 2, 3, 4, 5])
        );
        assert!(read_record(&mut stream, 100).unwrap().is_none());
    }

    #[test]
    fn fragments_are_joined() {
        // Two fragments (3 bytes, then 2 bytes with the last-fragment bit), an empty middle
        // fragment, then a second record.
        let bytes = [
            0x00, 0, 0, 3, b'a', b'b', b'c', //
            0x00, 0, 0, 0, //
            0x80, 0, 0, 2, b'd', b'e', //
            0x80, 0, 0, 1, b'f',
        ];
        let mut stream = &bytes[..];
        assert_eq!(
            read_record(&mut stream, 5).unwrap(),
            Some(b"abcde".to_vec())
        );
        assert_eq!(read_record(&mut stream, 5).unwrap(), Some(b"f".to_vec()));
        assert!(read_record(&mut stream, 5).unwrap().is_none());
    }

    #[test]
    fn limits_hold() {
        // The whole record, not each fragment, is bounded.
        let bytes = [0x00, 0, 0, 3, 1, 2, 3, 0x80, 0, 0, 3, 4, 5, 6];
        assert!(matches!(
            read_record(&mut &bytes[..], 5),
            Err(RecordError::TooLarge { max: 5, claimed: 3 })
        ));
        // A 2 GiB claim is refused before anything is allocated.
        let bytes = [0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_record(&mut &bytes[..], 1 << 16),
            Err(RecordError::TooLarge { .. })
        ));
        // Endless empty fragments end.
        let bytes = [0u8; 4 * (MAX_FRAGMENTS + 1)];
        assert!(matches!(
            read_record(&mut &bytes[..], 100),
            Err(RecordError::TooManyFragments)
        ));
        // A stream that stops inside a header, inside a fragment or between fragments.
        for bytes in [
            &[0x80, 0][..],
            &[0x80, 0, 0, 4, 1][..],
            &[0, 0, 0, 1, 1][..],
        ] {
            assert!(matches!(
                read_record(&mut &bytes[..], 100),
                Err(RecordError::Truncated)
            ));
        }
    }
}
