//! NDR 2.0 (C706 chapter 14), little-endian, as far as the srvsvc and wkssvc calls need it:
//! aligned integers, unique pointers with referent ids, and `[string] wchar_t*` strings
//! (conformant varying arrays of UTF-16LE code units ending in a NUL).
//!
//! What lives here: [`Reader`] (bounds-checked decoding of a request's stub) and [`Writer`]
//! (encoding a response's stub). What does not: the order in which a call's parameters and
//! their deferred pointees are laid out, which each interface module writes out explicitly,
//! and the PDUs around the stub ([`super::pdu`]).
//!
//! Alignment is relative to the start of the stub, as NDR requires; the stub itself starts on
//! an 8-byte boundary of the PDU (after a 24- or 40-byte request header), so nothing here needs
//! to know where the stub sits.

use thiserror::Error;

/// Why a request's stub could not be decoded. Every variant becomes the fault
/// `nca_s_fault_ndr` for the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NdrError {
    #[error("the stub ends at byte {len}, but {need} more bytes were needed at byte {at}")]
    Truncated { at: usize, need: usize, len: usize },
    #[error("string at byte {at} has offset {offset}, actual count {actual} and maximum count {max}: the offset must be 0 and the actual count at most the maximum")]
    BadStringBounds {
        at: usize,
        offset: u32,
        actual: u32,
        max: u32,
    },
    #[error("string at byte {at} does not end in a NUL character")]
    UnterminatedString { at: usize },
    #[error("union discriminant {tag} at byte {at} is not one of the union's arms")]
    BadUnionTag { at: usize, tag: u32 },
    #[error(
        "union discriminant {tag} at byte {at} differs from the level {level} that selects it"
    )]
    TagMismatch { at: usize, tag: u32, level: u32 },
    #[error("array at byte {at} has maximum count {max} but the structure says {count} entries")]
    BadArrayCount { at: usize, max: u32, count: u32 },
    #[error("the request carries a level-{level} array, which this server does not decode")]
    UnsupportedArray { level: u32 },
}

/// A bounds-checked cursor over a request's stub.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The offset of the next byte, for error messages.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Skips the padding up to the next multiple of `n` (a power of two). The padding's
    /// content is not checked: NDR leaves it unspecified.
    fn align(&mut self, n: usize) {
        let rem = self.pos % n;
        if rem != 0 {
            self.pos = self.pos.saturating_add(n - rem);
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], NdrError> {
        let truncated = NdrError::Truncated {
            at: self.pos,
            need: N,
            len: self.buf.len(),
        };
        let end = self.pos.checked_add(N).ok_or(truncated.clone())?;
        let bytes = self.buf.get(self.pos..end).ok_or(truncated.clone())?;
        let out: [u8; N] = bytes.try_into().map_err(|_| truncated)?;
        self.pos = end;
        Ok(out)
    }

    pub fn u16(&mut self) -> Result<u16, NdrError> {
        self.align(2);
        Ok(u16::from_le_bytes(self.take()?))
    }

    pub fn u32(&mut self) -> Result<u32, NdrError> {
        self.align(4);
        Ok(u32::from_le_bytes(self.take()?))
    }

    /// A unique (or full) pointer's referent id: `true` when the pointer is not NULL, and its
    /// pointee follows where the caller's layout puts it.
    pub fn pointer(&mut self) -> Result<bool, NdrError> {
        Ok(self.u32()? != 0)
    }

    /// A `[string] wchar_t*` pointee: maximum count, offset, actual count, then the UTF-16LE
    /// code units, the last of which must be NUL. Returns the text before the NUL; unpaired
    /// surrogates become U+FFFD (such a name matches no share).
    pub fn string(&mut self) -> Result<String, NdrError> {
        let at = self.pos;
        let max = self.u32()?;
        let offset = self.u32()?;
        let actual = self.u32()?;
        if offset != 0 || actual > max {
            return Err(NdrError::BadStringBounds {
                at,
                offset,
                actual,
                max,
            });
        }
        // Each code unit is two bytes: refuse a count the stub cannot hold before looping.
        let need = (actual as usize).saturating_mul(2);
        if need > self.remaining() {
            return Err(NdrError::Truncated {
                at: self.pos,
                need,
                len: self.buf.len(),
            });
        }
        let mut units = Vec::with_capacity(actual as usize);
        for _ in 0..actual {
            units.push(u16::from_le_bytes(self.take()?));
        }
        match units.pop() {
            Some(0) => Ok(String::from_utf16_lossy(&units)),
            _ => Err(NdrError::UnterminatedString { at }),
        }
    }
}

/// The first referent id a response uses; Windows and Samba start there too and count up by 4.
const FIRST_REFERENT: u32 = 0x0002_0000;

/// Builds a response's stub.
pub struct Writer {
    buf: Vec<u8>,
    next_referent: u32,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            buf: Vec::new(),
            next_referent: FIRST_REFERENT,
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A non-NULL unique pointer: a fresh referent id. The caller writes the pointee where the
    /// layout defers it to.
    pub fn pointer(&mut self) {
        let id = self.next_referent;
        self.next_referent = self.next_referent.wrapping_add(4).max(FIRST_REFERENT);
        self.u32(id);
    }

    /// A NULL unique pointer.
    pub fn null(&mut self) {
        self.u32(0);
    }

    /// A `[string] wchar_t*` pointee: the text as UTF-16LE with a terminating NUL.
    pub fn string(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
        // A string longer than u32::MAX code units cannot come from a share list; saturating
        // keeps the arithmetic total anyway.
        let count = u32::try_from(units.len()).unwrap_or(u32::MAX);
        self.u32(count);
        self.u32(0);
        self.u32(count);
        for u in units {
            self.buf.extend_from_slice(&u.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_layout_and_padding() {
        let mut w = Writer::new();
        w.string("IPC$");
        w.u32(7);
        let bytes = w.into_bytes();
        let mut expected = vec![5, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0];
        for c in "IPC$\0".encode_utf16() {
            expected.extend_from_slice(&c.to_le_bytes());
        }
        // Ten bytes of characters leave the next u32 two bytes of padding away.
        expected.extend_from_slice(&[0, 0, 7, 0, 0, 0]);
        assert_eq!(bytes, expected);

        let mut r = Reader::new(&bytes);
        assert_eq!(r.string().unwrap(), "IPC$");
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn referents_count_up_from_0x20000() {
        let mut w = Writer::new();
        w.pointer();
        w.null();
        w.pointer();
        assert_eq!(
            w.into_bytes(),
            [0, 0, 2, 0, 0, 0, 0, 0, 4, 0, 2, 0].to_vec()
        );
    }

    #[test]
    fn bad_strings_are_errors() {
        // Offset not zero.
        let bytes = [2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0];
        assert!(matches!(
            Reader::new(&bytes).string(),
            Err(NdrError::BadStringBounds { .. })
        ));
        // Actual count larger than the maximum count.
        let bytes = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0x41, 0, 0, 0];
        assert!(matches!(
            Reader::new(&bytes).string(),
            Err(NdrError::BadStringBounds { .. })
        ));
        // No terminating NUL.
        let bytes = [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x41, 0];
        assert!(matches!(
            Reader::new(&bytes).string(),
            Err(NdrError::UnterminatedString { .. })
        ));
        // An empty array is not a string either.
        let bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            Reader::new(&bytes).string(),
            Err(NdrError::UnterminatedString { .. })
        ));
        // A huge count with no characters behind it fails before allocating.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Reader::new(&bytes).string(),
            Err(NdrError::Truncated { .. })
        ));
    }

    #[test]
    fn reads_past_the_end_are_errors() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(matches!(r.u32(), Err(NdrError::Truncated { at: 0, .. })));
        let mut r = Reader::new(&[1, 2, 3, 4, 5]);
        assert_eq!(r.u16().unwrap(), 0x0201);
        // Alignment to 4 skips two bytes; only one is left after that.
        assert!(r.u32().is_err());
    }
}
