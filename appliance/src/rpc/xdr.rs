//! XDR (RFC 4506) primitives: a reader over a received message and a bounded writer for
//! replies.
//!
//! Only what the rpcbind and MOUNT protocols use lives here: unsigned and signed 32-bit
//! integers, 64-bit hypers, booleans, variable-length opaque data and strings (each read with
//! the protocol's maximum length), and the optional-data lists (`*list`). Program-level
//! structures are encoded next to their programs ([`super::rpcbind`], [`super::mount`]).
//!
//! The reader never trusts a length from the wire: every length is checked against the
//! protocol's maximum and against the bytes that are actually there before anything is
//! sliced, so a hostile message yields an [`XdrError`], never a panic or an allocation it
//! chose. The writer never fails part-way: it stops writing at its size limit and reports the
//! overflow once, in [`XdrWriter::finish`].

/// A decoding error: what was wrong, at which byte offset of the message body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdrError {
    #[error("message ends at byte {at}: {need} more bytes were needed")]
    Truncated { at: usize, need: usize },
    #[error("length {len} at byte {at} is over the protocol's maximum of {max}")]
    TooLong { at: usize, len: u32, max: u32 },
    #[cfg(test)]
    #[error("boolean at byte {at} is {value}, neither 0 nor 1")]
    BadBool { at: usize, value: u32 },
    #[error("string at byte {at} is not valid UTF-8")]
    NotUtf8 { at: usize },
    #[error("a list at byte {at} has more than {max} entries")]
    TooManyEntries { at: usize, max: usize },
}

/// The padding that follows opaque data and strings to a multiple of four bytes.
pub fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Reads XDR items from the front of a byte slice.
#[derive(Debug, Clone)]
pub struct XdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> XdrReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The byte offset of the next item.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Takes `n` bytes, or fails without moving.
    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let rest = self.rest();
        match rest.get(..n) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(XdrError::Truncated {
                at: self.pos,
                need: n - rest.len(),
            }),
        }
    }

    pub fn u32(&mut self) -> Result<u32, XdrError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    // The procedures served read no signed, 64-bit or boolean arguments; the tests use these to
    // check the reader against the RFC's encodings.
    #[cfg(test)]
    pub fn i32(&mut self) -> Result<i32, XdrError> {
        self.u32().map(|v| v as i32)
    }

    #[cfg(test)]
    pub fn u64(&mut self) -> Result<u64, XdrError> {
        let high = u64::from(self.u32()?);
        let low = u64::from(self.u32()?);
        Ok(high << 32 | low)
    }

    #[cfg(test)]
    pub fn bool(&mut self) -> Result<bool, XdrError> {
        let at = self.pos;
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(XdrError::BadBool { at, value }),
        }
    }

    /// Variable-length opaque data of at most `max` bytes (`opaque name<max>`). The padding is
    /// skipped without looking at it, as the reference implementations do.
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        let at = self.pos;
        let len = self.u32()?;
        if len > max {
            self.pos = at;
            return Err(XdrError::TooLong { at, len, max });
        }
        let len = len as usize;
        match self.take(len + padding(len)) {
            Ok(bytes) => Ok(&bytes[..len]),
            Err(e) => {
                self.pos = at;
                Err(e)
            }
        }
    }

    /// A string of at most `max` bytes (`string name<max>`).
    pub fn string(&mut self, max: u32) -> Result<&'a str, XdrError> {
        let at = self.pos;
        let bytes = self.opaque(max)?;
        std::str::from_utf8(bytes).map_err(|_| XdrError::NotUtf8 { at })
    }
}

/// Writes XDR items into a buffer that never grows past `limit` bytes.
#[derive(Debug)]
pub struct XdrWriter {
    buf: Vec<u8>,
    limit: usize,
    overflow: bool,
}

/// A reply that did not fit the writer's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the reply needs more than {limit} bytes")]
pub struct Overflow {
    pub limit: usize,
}

impl XdrWriter {
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::with_capacity(limit.min(512)),
            limit,
            overflow: false,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.overflow || self.buf.len() + bytes.len() > self.limit {
            self.overflow = true;
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The bytes written so far (whole, unless the writer overflowed).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn u32(&mut self, value: u32) {
        self.put(&value.to_be_bytes());
    }

    pub fn i32(&mut self, value: i32) {
        self.put(&value.to_be_bytes());
    }

    pub fn bool(&mut self, value: bool) {
        self.u32(u32::from(value));
    }

    /// Variable-length opaque data: the length, the bytes, the padding. Data longer than
    /// `u32::MAX` cannot be encoded and marks the writer as overflowed.
    pub fn opaque(&mut self, bytes: &[u8]) {
        let Ok(len) = u32::try_from(bytes.len()) else {
            self.overflow = true;
            return;
        };
        self.u32(len);
        self.put(bytes);
        self.put(&[0; 3][..padding(bytes.len())]);
    }

    pub fn string(&mut self, text: &str) {
        self.opaque(text.as_bytes());
    }

    /// Raw bytes, already in XDR form.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.put(bytes);
    }

    /// An optional-data list (`*list`): for each item TRUE and the item, then FALSE.
    pub fn list<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) {
        for item in items {
            self.bool(true);
            each(self, item);
        }
        self.bool(false);
    }

    /// The encoded bytes, or the limit that was hit.
    pub fn finish(self) -> Result<Vec<u8>, Overflow> {
        if self.overflow {
            Err(Overflow { limit: self.limit })
        } else {
            Ok(self.buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut w = XdrWriter::new(64);
        w.u32(0x0102_0304);
        w.i32(-2);
        w.bool(true);
        w.bool(false);
        let bytes = w.finish().unwrap();
        assert_eq!(
            bytes,
            [1, 2, 3, 4, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        let mut r = XdrReader::new(&bytes);
        assert_eq!(r.u32(), Ok(0x0102_0304));
        assert_eq!(r.i32(), Ok(-2));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.bool(), Ok(false));
        assert_eq!(r.u32(), Err(XdrError::Truncated { at: 16, need: 4 }));
    }

    #[test]
    fn hyper_is_high_word_first() {
        let bytes = [0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(XdrReader::new(&bytes).u64(), Ok(0x1_0000_0002));
    }

    #[test]
    fn strings_are_padded_to_four_bytes() {
        let mut w = XdrWriter::new(64);
        w.string("tcp");
        w.string("");
        w.string("abcd");
        w.opaque(&[9]);
        let bytes = w.finish().unwrap();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 3, b't', b'c', b'p', 0, // "tcp" and one byte of padding
                0, 0, 0, 0, // ""
                0, 0, 0, 4, b'a', b'b', b'c', b'd', // no padding
                0, 0, 0, 1, 9, 0, 0, 0, // three bytes of padding
            ]
        );
        let mut r = XdrReader::new(&bytes);
        assert_eq!(r.string(3), Ok("tcp"));
        assert_eq!(r.string(0), Ok(""));
        assert_eq!(r.string(255), Ok("abcd"));
        assert_eq!(r.opaque(1), Ok(&[9][..]));
        assert!(r.rest().is_empty());
    }

    #[test]
    fn lengths_are_never_trusted() {
        // A length over the maximum.
        let bytes = [0, 0, 1, 0, b'a'];
        let mut r = XdrReader::new(&bytes);
        assert_eq!(
            r.string(255),
            Err(XdrError::TooLong {
                at: 0,
                len: 256,
                max: 255
            })
        );
        assert_eq!(r.position(), 0);
        // A length past the end of the message, and one that leaves no room for padding.
        let bytes = [0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            XdrReader::new(&bytes).opaque(u32::MAX),
            Err(XdrError::Truncated { .. })
        ));
        let bytes = [0, 0, 0, 1, 7];
        assert_eq!(
            XdrReader::new(&bytes).opaque(4),
            Err(XdrError::Truncated { at: 4, need: 3 })
        );
        // Booleans other than 0 and 1, and strings that are not UTF-8.
        assert_eq!(
            XdrReader::new(&[0, 0, 0, 2]).bool(),
            Err(XdrError::BadBool { at: 0, value: 2 })
        );
        assert_eq!(
            XdrReader::new(&[0, 0, 0, 1, 0xff, 0, 0, 0]).string(8),
            Err(XdrError::NotUtf8 { at: 0 })
        );
    }

    #[test]
    fn lists_end_with_false() {
        let mut w = XdrWriter::new(64);
        w.list([7u32, 8], |w, v| w.u32(v));
        w.list(Vec::<u32>::new(), |w, v| w.u32(v));
        assert_eq!(
            w.finish().unwrap(),
            [0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn the_writer_stops_at_its_limit() {
        let mut w = XdrWriter::new(6);
        w.u32(1);
        w.u32(2);
        assert_eq!(w.len(), 4);
        w.u32(3);
        assert_eq!(w.finish(), Err(Overflow { limit: 6 }));
    }
}
