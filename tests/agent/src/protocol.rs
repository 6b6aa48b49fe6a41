//! The wire format of the agent's serial protocol: words, quoting, tags and reply lines.
//!
//! Both ends use this module: the agent to split request lines and write replies, the harness
//! (`tank_tests::client`) to write requests and parse replies. It knows nothing about what the
//! commands mean (that is [`crate::command`]).
//!
//! A line is a list of words separated by spaces. A word that is empty or holds a space, a
//! double quote, a backslash or any byte outside printable ASCII is written in double quotes,
//! with `\"`, `\\` and `\xNN` escapes inside them; so every line on the wire is printable
//! ASCII, whatever the file names are (a serial transcript read in chunks never splits a UTF-8
//! character, and a name with spaces stays one word). A reply field is `key=value`, its value
//! quoted the same way (`name="Season 01"`).
//!
//! Hand-written because the format is ten lines of rules and no shell-words crate offers
//! byte-exact `\xNN` escapes for non-UTF-8 names.

use std::fmt::Write as _;

/// A line that does not split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    #[error("a quoted word is not closed: add the closing '\"'")]
    Unterminated,
    #[error("bad escape '\\{0}' in a quoted word: use \\\\, \\\" or \\xNN")]
    BadEscape(String),
    #[error("a '\"' in the middle of a word: quote the whole word")]
    StrayQuote,
}

/// One word of a line: its bytes, and whether it was a `key=value` pair (an `=` before any
/// quote, with a key of lower-case letters, digits and `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub bytes: Vec<u8>,
    /// The byte length of the key, when the word is `key=value`.
    pub key_len: Option<usize>,
}

impl Word {
    /// The key of a `key=value` word.
    pub fn key(&self) -> Option<&str> {
        let len = self.key_len?;
        std::str::from_utf8(&self.bytes[..len]).ok()
    }

    /// The value of a `key=value` word.
    pub fn value(&self) -> Option<&[u8]> {
        self.key_len.map(|len| &self.bytes[len + 1..])
    }

    /// The word as text (lossy for bytes that are not UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// Splits a line into words, undoing the quoting.
pub fn split(line: &[u8]) -> Result<Vec<Word>, WordsError> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i] == b' ' || line[i] == b'\t' {
            i += 1;
            continue;
        }
        let mut bytes = Vec::new();
        let mut key_len = None;
        let mut quoted_yet = false;
        while i < line.len() && line[i] != b' ' && line[i] != b'\t' {
            match line[i] {
                b'"' => {
                    // A quote opens a word or a value (`key="..."`), nothing else.
                    if !bytes.is_empty() && key_len.map(|k| k + 1) != Some(bytes.len()) {
                        return Err(WordsError::StrayQuote);
                    }
                    quoted_yet = true;
                    i += 1;
                    loop {
                        match line.get(i) {
                            None => return Err(WordsError::Unterminated),
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let (byte, used) = unescape(&line[i + 1..])?;
                                bytes.push(byte);
                                i += 1 + used;
                            }
                            Some(&b) => {
                                bytes.push(b);
                                i += 1;
                            }
                        }
                    }
                    // A quoted part ends the word.
                    if i < line.len() && line[i] != b' ' && line[i] != b'\t' {
                        return Err(WordsError::StrayQuote);
                    }
                }
                b'=' if key_len.is_none()
                    && !quoted_yet
                    && !bytes.is_empty()
                    && bytes.iter().all(|&b| is_key_byte(b)) =>
                {
                    key_len = Some(bytes.len());
                    bytes.push(b'=');
                    i += 1;
                }
                b => {
                    bytes.push(b);
                    i += 1;
                }
            }
        }
        words.push(Word { bytes, key_len });
    }
    Ok(words)
}

/// One escape after a backslash: the byte and how many input bytes it used.
fn unescape(rest: &[u8]) -> Result<(u8, usize), WordsError> {
    match rest.first() {
        Some(b'\\') => Ok((b'\\', 1)),
        Some(b'"') => Ok((b'"', 1)),
        Some(b'x') => {
            let hex = rest
                .get(1..3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => Ok((b, 3)),
                None => Err(WordsError::BadEscape(
                    String::from_utf8_lossy(&rest[..rest.len().min(3)]).into_owned(),
                )),
            }
        }
        Some(&b) => Err(WordsError::BadEscape((b as char).to_string())),
        None => Err(WordsError::Unterminated),
    }
}

/// Writes `bytes` as one word, quoting it when needed.
pub fn quote(bytes: &[u8]) -> String {
    let plain = !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if plain {
        // Printable ASCII is UTF-8.
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// Joins words into a line, quoting each as needed.
pub fn join<I, W>(words: I) -> String
where
    I: IntoIterator<Item = W>,
    W: AsRef<[u8]>,
{
    let mut out = String::new();
    for w in words {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&quote(w.as_ref()));
    }
    out
}

/// Free text made safe for one line: control bytes and non-ASCII become `\xNN`.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (b' '..=b'~').contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The fields of an `ok` reply, in order (a key may repeat, as `name=` does in `ls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, Vec<u8>)>);

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field.
    pub fn put(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.0.push((key.to_string(), value.as_ref().to_vec()));
        self
    }

    /// Adds a number field.
    pub fn num(self, key: &str, value: impl std::fmt::Display) -> Self {
        self.put(key, value.to_string())
    }

    /// Adds a duration in seconds, with millisecond precision.
    pub fn secs(self, key: &str, seconds: f64) -> Self {
        self.put(key, format!("{seconds:.3}"))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `key` as text.
    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The first value of `key` parsed as a number.
    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        std::str::from_utf8(self.get(key)?).ok()?.parse().ok()
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The fields as words (`key=value`, the value quoted).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(&quote(v));
        }
        out
    }
}

/// What the agent answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok(Fields),
    /// `code` is an errno name (`EACCES`), or `usage`, `timeout`, `failed`.
    Err {
        code: String,
        message: String,
    },
}

impl Reply {
    /// The reply line, with its tag when the request had one.
    pub fn render(&self, tag: Option<u64>) -> String {
        let mut line = match tag {
            Some(t) => format!("@{t} "),
            None => String::new(),
        };
        match self {
            Reply::Ok(fields) if fields.0.is_empty() => line.push_str("ok"),
            Reply::Ok(fields) => {
                line.push_str("ok ");
                line.push_str(&fields.render());
            }
            Reply::Err { code, message } => {
                line.push_str("err ");
                line.push_str(&sanitize(code));
                line.push(' ');
                line.push_str(&sanitize(message));
            }
        }
        line
    }
}

/// A reply line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("not a reply line (it should start with '@TAG ok' or '@TAG err'): {0}")]
    NotAReply(String),
    #[error("the reply's fields do not parse: {0}")]
    Words(#[from] WordsError),
    #[error("reply field '{0}' is not key=value")]
    NotAField(String),
}

/// Parses one reply line (with or without its tag) into the tag and the reply.
pub fn parse_reply(line: &str) -> Result<(Option<u64>, Reply), ReplyError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (tag, rest) = match line.strip_prefix('@') {
        Some(r) => {
            let (t, rest) = r.split_once(' ').unwrap_or((r, ""));
            let tag = t
                .parse()
                .map_err(|_| ReplyError::NotAReply(line.to_string()))?;
            (Some(tag), rest)
        }
        None => (None, line),
    };
    if rest == "ok" {
        return Ok((tag, Reply::Ok(Fields::new())));
    }
    if let Some(fields) = rest.strip_prefix("ok ") {
        let mut out = Fields::new();
        for w in split(fields.as_bytes())? {
            match (w.key(), w.value()) {
                (Some(k), Some(v)) => out.0.push((k.to_string(), v.to_vec())),
                _ => return Err(ReplyError::NotAField(w.text())),
            }
        }
        return Ok((tag, Reply::Ok(out)));
    }
    if let Some(e) = rest.strip_prefix("err ") {
        let (code, message) = e.split_once(' ').unwrap_or((e, ""));
        return Ok((
            tag,
            Reply::Err {
                code: code.to_string(),
                message: message.to_string(),
            },
        ));
    }
    Err(ReplyError::NotAReply(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(words: &[Word]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.bytes.clone()).collect()
    }

    #[test]
    fn quoting_golden() {
        assert_eq!(quote(b"plain/path.txt"), "plain/path.txt");
        assert_eq!(quote(b""), "\"\"");
        assert_eq!(quote(b"Season 01"), "\"Season 01\"");
        assert_eq!(quote("é".as_bytes()), "\"\\xc3\\xa9\"");
        assert_eq!(quote(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote(b"tab\there"), "\"tab\\x09here\"");
        assert_eq!(
            join([&b"write"[..], b"/mnt/a b", b"1M"]),
            "write \"/mnt/a b\" 1M"
        );
    }

    #[test]
    fn splitting() {
        let w = split(br#"  write "/mnt/a b"  1M seed=7 name="x y" "k=v" "#).unwrap();
        assert_eq!(
            bytes(&w),
            vec![
                b"write".to_vec(),
                b"/mnt/a b".to_vec(),
                b"1M".to_vec(),
                b"seed=7".to_vec(),
                b"name=x y".to_vec(),
                b"k=v".to_vec()
            ]
        );
        assert_eq!(w[3].key(), Some("seed"));
        assert_eq!(w[3].value(), Some(&b"7"[..]));
        assert_eq!(w[4].key(), Some("name"));
        assert_eq!(w[4].value(), Some(&b"x y"[..]));
        // A quoted word with '=' is positional, and so is a path with '='.
        assert_eq!(w[5].key(), None);
        assert_eq!(split(b"/a=b").unwrap()[0].key(), None);
        assert_eq!(split(b"Key=b").unwrap()[0].key(), None);
        assert_eq!(split(br#""\xc3\xa9""#).unwrap()[0].bytes, "é".as_bytes());
        assert_eq!(split(br#""""#).unwrap()[0].bytes, b"");
        assert_eq!(split(br#""abc"#), Err(WordsError::Unterminated));
        assert_eq!(split(br#"ab"c""#), Err(WordsError::StrayQuote));
        assert_eq!(split(br#""a"b"#), Err(WordsError::StrayQuote));
        assert!(matches!(split(br#""\q""#), Err(WordsError::BadEscape(_))));
        assert!(matches!(split(br#""\xZZ""#), Err(WordsError::BadEscape(_))));
        assert!(split(b"").unwrap().is_empty());
    }

    #[test]
    fn replies_round_trip() {
        let ok = Reply::Ok(
            Fields::new()
                .num("bytes", 1048576)
                .put("name", "a b")
                .put("name", "é")
                .put("empty", ""),
        );
        let line = ok.render(Some(12));
        assert_eq!(
            line,
            "@12 ok bytes=1048576 name=\"a b\" name=\"\\xc3\\xa9\" empty=\"\""
        );
        let (tag, back) = parse_reply(&line).unwrap();
        assert_eq!(tag, Some(12));
        assert_eq!(back, ok);
        if let Reply::Ok(f) = &back {
            assert_eq!(f.parse::<u64>("bytes"), Some(1048576));
            assert_eq!(f.all("name").count(), 2);
        }
        let err = Reply::Err {
            code: "EACCES".into(),
            message: "open /mnt/x: Permission denied (os error 13)".into(),
        };
        let line = err.render(None);
        assert_eq!(
            line,
            "err EACCES open /mnt/x: Permission denied (os error 13)"
        );
        assert_eq!(parse_reply(&line).unwrap(), (None, err));
        assert_eq!(
            parse_reply("@3 ok\r\n").unwrap(),
            (Some(3), Reply::Ok(Fields::new()))
        );
        assert!(parse_reply("# kernel: hello").is_err());
        assert!(parse_reply("@x ok").is_err());
        assert!(parse_reply("@1 ok notafield").is_err());
    }

    /// Random bytes never panic the splitter, and quoting any bytes splits back to them.
    #[test]
    fn fuzz_split_and_quote() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let alphabet = b"ab =\"\\x0f\xc3 \t";
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let _ = split(&raw);
            let _ = parse_reply(&String::from_utf8_lossy(&raw));
            let q = quote(&raw);
            assert!(q.bytes().all(|b| (b' '..=b'~').contains(&b)), "{q}");
            let back = split(q.as_bytes()).unwrap();
            assert_eq!(back.len(), 1, "{q}");
            assert_eq!(back[0].bytes, raw, "{q}");
        }
    }
}
