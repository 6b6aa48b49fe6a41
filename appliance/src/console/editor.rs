//! A small line editor for a serial terminal in raw mode: printable input with echo,
//! backspace, ctrl-u (erase line), ctrl-c (cancel line), up/down history, enter; and a secret
//! mode for passwords: nothing is echoed, nothing enters the history.
//!
//! It is a pure state machine: bytes in, bytes to echo and an outcome out, so it is tested
//! (and fuzzed) without a terminal. A secret line is typed into a buffer of its own, allocated
//! once and wiped when the line is taken, erased or cancelled, and handed out as a
//! [`Secret`], which wipes its copy when dropped.

use zeroize::{Zeroize, Zeroizing};

use super::request::Secret;

/// Longest line accepted; further input rings the bell.
pub const MAX_LINE: usize = 512;
const HISTORY: usize = 50;

/// What a byte completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Enter: the line to run.
    Line(String),
    /// Enter in secret mode: the password typed.
    Secret(Secret),
    /// Ctrl-c: the line was dropped.
    Cancelled,
}

/// The line typed in secret mode: [`MAX_LINE`] bytes allocated once, so typing never
/// reallocates (which would leave copies of the password in freed memory), and zeroed
/// whenever the line is taken, erased or cancelled, and when dropped.
#[derive(Default)]
struct SecretLine {
    bytes: Zeroizing<Vec<u8>>,
    len: usize,
}

impl std::fmt::Debug for SecretLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretLine(..)")
    }
}

impl SecretLine {
    /// Appends `c`; false if the line is full.
    fn push(&mut self, c: char) -> bool {
        if self.bytes.len() < MAX_LINE {
            self.bytes.resize(MAX_LINE, 0);
        }
        let end = self.len + c.len_utf8();
        match self.bytes.get_mut(self.len..end) {
            Some(room) => {
                c.encode_utf8(room);
                self.len = end;
                true
            }
            None => false,
        }
    }

    /// Removes the last character; false if the line is empty.
    fn pop(&mut self) -> bool {
        let Some(typed) = self.bytes.get(..self.len) else {
            return false;
        };
        // The last character starts at the last byte that is not a UTF-8 continuation byte.
        let Some(start) = typed.iter().rposition(|&b| b & 0xc0 != 0x80) else {
            return false;
        };
        if let Some(gone) = self.bytes.get_mut(start..self.len) {
            gone.zeroize();
        }
        self.len = start;
        true
    }

    fn wipe(&mut self) {
        self.bytes.as_mut_slice().zeroize();
        self.len = 0;
    }

    /// The line typed, and the buffer wiped.
    fn take(&mut self) -> Secret {
        let typed = self.bytes.get(..self.len).unwrap_or_default();
        // Only whole characters are pushed, so the bytes are UTF-8.
        let secret = Secret::new(std::str::from_utf8(typed).unwrap_or_default());
        self.wipe();
        secret
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    Esc,
    Csi,
}

#[derive(Debug, Default)]
pub struct Editor {
    line: String,
    pending_utf8: Vec<u8>,
    escape: Escape,
    last_was_cr: bool,
    history: Vec<String>,
    /// Position while browsing history (`history.len()` = the line being typed).
    browse: usize,
    saved: String,
    /// Secret entry: no echo, no history; the line goes to `secret_line`.
    secret: bool,
    secret_line: SecretLine,
}

impl Editor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts or ends secret entry (a password): the next lines are not echoed or remembered.
    pub fn set_secret(&mut self, secret: bool) {
        self.secret = secret;
        self.line.clear();
        self.secret_line.wipe();
    }

    /// The line typed so far.
    #[cfg(test)]
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The whole buffer a secret line is typed into, spare bytes included.
    #[cfg(test)]
    fn secret_buffer(&self) -> &[u8] {
        &self.secret_line.bytes
    }

    /// Feeds one byte. Appends what to echo to `echo`; `prompt` is used to redraw the line.
    pub fn feed(&mut self, byte: u8, prompt: &str, echo: &mut Vec<u8>) -> Option<Outcome> {
        let was_cr = std::mem::replace(&mut self.last_was_cr, false);
        match self.escape {
            Escape::Esc => {
                self.escape = if byte == b'[' || byte == b'O' {
                    Escape::Csi
                } else {
                    Escape::None
                };
                return None;
            }
            Escape::Csi => {
                // Parameters and intermediates continue the sequence; a final byte ends it.
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                    match byte {
                        b'A' if !self.secret => self.recall(-1, prompt, echo),
                        b'B' if !self.secret => self.recall(1, prompt, echo),
                        _ => {}
                    }
                } else if !(0x20..=0x3f).contains(&byte) {
                    self.escape = Escape::None;
                }
                return None;
            }
            Escape::None => {}
        }
        match byte {
            b'\r' | b'\n' => {
                if byte == b'\n' && was_cr {
                    return None;
                }
                self.last_was_cr = byte == b'\r';
                self.pending_utf8.zeroize();
                echo.extend_from_slice(b"\r\n");
                if self.secret {
                    return Some(Outcome::Secret(self.secret_line.take()));
                }
                let line = std::mem::take(&mut self.line);
                if !line.trim().is_empty() && self.history.last() != Some(&line) {
                    if self.history.len() == HISTORY {
                        self.history.remove(0);
                    }
                    self.history.push(line.clone());
                }
                self.browse = self.history.len();
                Some(Outcome::Line(line))
            }
            0x03 => {
                self.line.clear();
                self.secret_line.wipe();
                self.pending_utf8.zeroize();
                self.browse = self.history.len();
                echo.extend_from_slice(b"^C\r\n");
                Some(Outcome::Cancelled)
            }
            0x15 => {
                self.line.clear();
                self.secret_line.wipe();
                self.pending_utf8.zeroize();
                self.redraw(prompt, echo);
                None
            }
            0x7f | 0x08 => {
                self.pending_utf8.zeroize();
                if self.secret {
                    self.secret_line.pop();
                } else if self.line.pop().is_some() {
                    echo.extend_from_slice(b"\x08 \x08");
                }
                None
            }
            0x1b => {
                self.escape = Escape::Esc;
                None
            }
            0x0c => {
                // Ctrl-l: clear the screen and redraw.
                echo.extend_from_slice(b"\x1b[H\x1b[2J");
                self.redraw(prompt, echo);
                None
            }
            b if b < 0x20 => None,
            b if b < 0x80 => {
                self.pending_utf8.zeroize();
                self.push_char(b as char, echo);
                None
            }
            b => {
                self.pending_utf8.push(b);
                match std::str::from_utf8(&self.pending_utf8) {
                    Ok(s) => {
                        // One character: bytes are gathered only until they decode.
                        let c = s.chars().next();
                        self.pending_utf8.zeroize();
                        if let Some(c) = c {
                            self.push_char(c, echo);
                        }
                    }
                    Err(e) if e.error_len().is_some() || self.pending_utf8.len() >= 4 => {
                        self.pending_utf8.zeroize();
                    }
                    Err(_) => {}
                }
                None
            }
        }
    }

    fn push_char(&mut self, c: char, echo: &mut Vec<u8>) {
        if self.secret {
            if !self.secret_line.push(c) {
                echo.push(0x07);
            }
            return;
        }
        if self.line.len() + c.len_utf8() > MAX_LINE {
            echo.push(0x07);
            return;
        }
        self.line.push(c);
        let mut buf = [0u8; 4];
        echo.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }

    fn recall(&mut self, step: isize, prompt: &str, echo: &mut Vec<u8>) {
        let len = self.history.len();
        let target = self.browse as isize + step;
        if target < 0 || target as usize > len {
            echo.push(0x07);
            return;
        }
        if self.browse == len {
            self.saved = self.line.clone();
        }
        self.browse = target as usize;
        self.line = if self.browse == len {
            self.saved.clone()
        } else {
            self.history[self.browse].clone()
        };
        self.redraw(prompt, echo);
    }

    /// Writes the prompt and the current line from the start of the terminal line.
    pub fn redraw(&self, prompt: &str, echo: &mut Vec<u8>) {
        echo.extend_from_slice(b"\r\x1b[K");
        echo.extend_from_slice(prompt.as_bytes());
        if !self.secret {
            echo.extend_from_slice(self.line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_entry_echoes_nothing_and_is_forgotten() {
        let mut ed = Editor::new();
        ed.set_secret(true);
        let (outs, echo) = feed_all(&mut ed, b"s3cr\x7fet\r");
        assert_eq!(outs, vec![Outcome::Secret(Secret::new("s3cet"))]);
        assert_eq!(echo, b"\r\n");
        let mut redraw = Vec::new();
        ed.feed(b'x', "> ", &mut redraw);
        ed.redraw("> ", &mut redraw);
        assert!(!redraw.contains(&b'x'));
        ed.set_secret(false);
        let (_, echo) = feed_all(&mut ed, b"\x1b[A");
        // Nothing to recall: the secret never entered the history.
        assert_eq!(echo, b"\x07");
    }

    /// The buffer a password was typed into holds nothing of it once the line is taken, nor
    /// after ctrl-u, ctrl-c or the end of secret entry; a password never reaches the ordinary
    /// line buffer.
    #[test]
    fn secret_buffer_is_wiped() {
        let wiped = |ed: &Editor| ed.secret_buffer().iter().all(|&b| b == 0);
        let mut ed = Editor::new();
        ed.set_secret(true);
        let (outs, _) = feed_all(&mut ed, "pässwörd\x7f\x7fd日\r".as_bytes());
        assert_eq!(outs, vec![Outcome::Secret(Secret::new("pässwöd日"))]);
        assert_eq!(ed.secret_buffer().len(), MAX_LINE);
        assert!(wiped(&ed));
        assert_eq!(ed.line(), "");

        for cancel in [&b"\x15"[..], b"\x03"] {
            feed_all(&mut ed, b"hunter2");
            assert!(!wiped(&ed));
            assert_eq!(ed.line(), "");
            feed_all(&mut ed, cancel);
            assert!(wiped(&ed), "{cancel:?}");
        }
        feed_all(&mut ed, b"hunter2");
        ed.set_secret(false);
        assert!(wiped(&ed));

        // A full secret line rings the bell like an ordinary one.
        ed.set_secret(true);
        let (outs, echo) = feed_all(&mut ed, &[b'x'; MAX_LINE + 3]);
        assert!(outs.is_empty());
        assert_eq!(echo, vec![0x07; 3]);
        let (outs, _) = feed_all(&mut ed, b"\r");
        assert_eq!(
            outs,
            vec![Outcome::Secret(Secret::new(&"x".repeat(MAX_LINE)))]
        );
        assert!(wiped(&ed));
    }

    fn feed_all(ed: &mut Editor, bytes: &[u8]) -> (Vec<Outcome>, Vec<u8>) {
        let mut outs = Vec::new();
        let mut echo = Vec::new();
        for &b in bytes {
            if let Some(o) = ed.feed(b, "> ", &mut echo) {
                outs.push(o);
            }
        }
        (outs, echo)
    }

    #[test]
    fn typing_and_enter() {
        let mut ed = Editor::new();
        let (outs, echo) = feed_all(&mut ed, b"status\r\n");
        assert_eq!(outs, vec![Outcome::Line("status".into())]);
        assert_eq!(echo, b"status\r\n");
        let (outs, _) = feed_all(&mut ed, b"a\nb\r");
        assert_eq!(
            outs,
            vec![Outcome::Line("a".into()), Outcome::Line("b".into())]
        );
    }

    #[test]
    fn backspace_ctrl_u_ctrl_c() {
        let mut ed = Editor::new();
        let (outs, echo) = feed_all(&mut ed, b"stx\x7fat\x08\x08atus\r");
        assert_eq!(outs, vec![Outcome::Line("status".into())]);
        assert!(echo.windows(3).any(|w| w == b"\x08 \x08"));
        let (outs, _) = feed_all(&mut ed, b"garbage\x15disks\r");
        assert_eq!(outs, vec![Outcome::Line("disks".into())]);
        let (outs, echo) = feed_all(&mut ed, b"poweroff\x03");
        assert_eq!(outs, vec![Outcome::Cancelled]);
        assert!(echo.ends_with(b"^C\r\n"));
        assert_eq!(ed.line(), "");
        // Backspace on an empty line echoes nothing.
        let (_, echo) = feed_all(&mut ed, b"\x7f");
        assert!(echo.is_empty());
    }

    #[test]
    fn utf8_and_escape_sequences() {
        let mut ed = Editor::new();
        let (outs, _) = feed_all(&mut ed, "é日本\x1b[C\x1b[1;5Dx\r".as_bytes());
        assert_eq!(outs, vec![Outcome::Line("é日本x".into())]);
        // Backspace removes a whole character.
        let (outs, _) = feed_all(&mut ed, "日\x7fa\r".as_bytes());
        assert_eq!(outs, vec![Outcome::Line("a".into())]);
        // Invalid UTF-8 is dropped.
        let (outs, _) = feed_all(&mut ed, b"\xff\xfeok\r");
        assert_eq!(outs, vec![Outcome::Line("ok".into())]);
    }

    #[test]
    fn history() {
        let mut ed = Editor::new();
        feed_all(&mut ed, b"one\rtwo\r");
        let (outs, _) = feed_all(&mut ed, b"\x1b[A\x1b[A\r");
        assert_eq!(outs, vec![Outcome::Line("one".into())]);
        let (outs, _) = feed_all(&mut ed, b"dra\x1b[A\x1b[Bft\r");
        assert_eq!(outs, vec![Outcome::Line("draft".into())]);
        // Up past the oldest entry rings the bell and keeps the line.
        let (_, echo) = feed_all(&mut ed, b"\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A");
        assert!(echo.contains(&0x07));
    }

    #[test]
    fn long_lines_are_capped() {
        let mut ed = Editor::new();
        let input = vec![b'x'; MAX_LINE + 10];
        let (_, echo) = feed_all(&mut ed, &input);
        assert_eq!(ed.line().len(), MAX_LINE);
        assert_eq!(echo.iter().filter(|&&b| b == 0x07).count(), 10);
    }

    #[test]
    fn fuzz_random_bytes() {
        let mut ed = Editor::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut echo = Vec::new();
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            echo.clear();
            if let Some(Outcome::Line(line)) = ed.feed(state as u8, "> ", &mut echo) {
                assert!(line.len() <= MAX_LINE);
                let _ = super::super::parse::parse(&line);
            }
        }
    }
}
