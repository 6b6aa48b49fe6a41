//! Servers on the host that the appliance's alerts are delivered to: [`SmtpSink`], a small
//! SMTP server that records each message it accepts, and [`HttpSink`], a small HTTP/1.1 server
//! that records each request (a webhook). Both listen on 127.0.0.1, which a guest on QEMU's
//! user network reaches as [`HOST_FROM_GUEST`], serve every connection on its own thread and
//! can be stopped (the port then refuses connections) and started again on the same port, so a
//! test can take a sink down and bring it back. Neither does TLS: the appliance talks to them
//! with TLS off.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The host's 127.0.0.1 as a guest on QEMU's user network sees it.
pub const HOST_FROM_GUEST: &str = "10.0.2.2";

/// How long a connection may stay silent before the sink closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest command line, header line or chunk-size line a sink reads.
const MAX_LINE: usize = 64 * 1024;
/// The largest message or request body a sink keeps.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// The host name the SMTP sink greets with.
const SMTP_NAME: &str = "tank-test-sink";

// ---------------------------------------------------------------------------------------------
// The listener both sinks share.

/// A listener on 127.0.0.1 with an accepting thread and one thread per connection. Dropping
/// it (or [`Server::stop`]) closes the listener, shuts every open connection down and joins
/// all the threads.
struct Server {
    port: u16,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `127.0.0.1:port` (a free port if `None`) and serves each connection with
    /// `serve` on its own thread.
    ///
    /// The standard library sets `SO_REUSEADDR` on listeners on Unix, so a port whose last
    /// connections are still in `TIME_WAIT` can be listened on again at once.
    fn start<F>(kind: &str, port: Option<u16>, serve: F) -> Result<Server>
    where
        F: Fn(TcpStream) -> io::Result<()> + Send + Sync + 'static,
    {
        let listener =
            TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).with_context(|| match port {
                Some(p) => format!("the {kind} sink cannot listen on 127.0.0.1:{p}"),
                None => format!("the {kind} sink cannot listen on a free port of 127.0.0.1"),
            })?;
        let port = listener.local_addr()?.port();
        // Accepting polls, so that a stop is seen within a few milliseconds.
        listener.set_nonblocking(true)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let serve = Arc::new(serve);
        let acceptor = std::thread::Builder::new()
            .name(format!("{kind}-sink-{port}"))
            .spawn(move || accept_loop(listener, flag, serve))?;
        Ok(Server {
            port,
            stopping,
            acceptor: Some(acceptor),
        })
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop<F>(listener: TcpListener, stopping: Arc<AtomicBool>, serve: Arc<F>)
where
    F: Fn(TcpStream) -> io::Result<()> + Send + Sync + 'static,
{
    let mut connections: Vec<(JoinHandle<()>, TcpStream)> = Vec::new();
    while !stopping.load(Ordering::SeqCst) {
        connections.retain(|(thread, _)| !thread.is_finished());
        match listener.accept() {
            Ok((stream, _)) => {
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
                let serve = serve.clone();
                match std::thread::Builder::new()
                    .name("sink-connection".into())
                    .spawn(move || {
                        let _ = serve(stream);
                    }) {
                    Ok(thread) => connections.push((thread, handle)),
                    Err(_) => {
                        let _ = handle.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // Refuse new connections first, then end the open ones.
    drop(listener);
    for (_, stream) in &connections {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    for (thread, _) in connections {
        let _ = thread.join();
    }
}

/// What a sink has recorded, with a condition variable for the waiters.
struct Log<T> {
    items: Mutex<Vec<T>>,
    changed: Condvar,
}

impl<T: Clone> Log<T> {
    fn new() -> Arc<Self> {
        Arc::new(Log {
            items: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, item: T) {
        self.lock().push(item);
        self.changed.notify_all();
    }

    fn all(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// The first item `pred` accepts, waiting up to `timeout` for it; else the items so far.
    fn wait_for(&self, pred: impl Fn(&T) -> bool, timeout: Duration) -> Result<T, Vec<T>> {
        let deadline = Instant::now() + timeout;
        let mut items = self.lock();
        loop {
            if let Some(found) = items.iter().find(|i| pred(i)) {
                return Ok(found.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(items.clone());
            }
            items = self
                .changed
                .wait_timeout(items, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Reads a line up to and including `\n` (at most [`MAX_LINE`] bytes); `None` at the end of
/// the stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") && line.len() >= MAX_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line longer than {MAX_LINE} bytes"),
        ));
    }
    Ok(Some(line))
}

/// `line` without its `\r\n` or `\n`.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

// ---------------------------------------------------------------------------------------------
// SMTP.

/// Credentials a client sent with `AUTH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpAuth {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    pub user: String,
    pub password: String,
    /// Whether the sink answered `235` (else `535`).
    pub accepted: bool,
}

/// A message the SMTP sink accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    /// The name the client gave in `EHLO` or `HELO`.
    pub helo: String,
    /// The credentials the session authenticated with, if it did.
    pub auth: Option<SmtpAuth>,
    /// The `MAIL FROM` address, without the angle brackets.
    pub from: String,
    /// The `RCPT TO` addresses, without the angle brackets.
    pub to: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, without the final `.` line.
    pub data: String,
    /// The `Subject` header, unfolded, with RFC 2047 encoded words decoded.
    pub subject: Option<String>,
}

impl Mail {
    /// The first header called `name` (case-insensitive), unfolded, encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.data, name)
    }

    /// The body: the text after the header section, as sent.
    pub fn body(&self) -> &str {
        let data = self.data.as_str();
        if let Some(i) = data.find("\r\n\r\n") {
            &data[i + 4..]
        } else if let Some(i) = data.find("\n\n") {
            &data[i + 2..]
        } else {
            ""
        }
    }

    /// The body of a single-part message with its `Content-Transfer-Encoding` (`base64`,
    /// `quoted-printable`, `7bit`, `8bit`) undone, as UTF-8 (invalid bytes replaced).
    pub fn text(&self) -> String {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let body = self.body();
        let bytes = match encoding.as_str() {
            "base64" => base64_decode(body).unwrap_or_else(|| body.as_bytes().to_vec()),
            "quoted-printable" => quoted_printable_decode(body),
            _ => body.as_bytes().to_vec(),
        };
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn summary(&self) -> String {
        format!(
            "from <{}> to {:?}, subject {:?}{}",
            self.from,
            self.to,
            self.subject.as_deref().unwrap_or("(none)"),
            match &self.auth {
                Some(a) => format!(", AUTH {} as {:?}", a.mechanism, a.user),
                None => String::new(),
            }
        )
    }
}

#[derive(Default)]
struct SmtpShared {
    reject_password: Mutex<Option<String>>,
    auths: Mutex<Vec<SmtpAuth>>,
}

/// A small SMTP server on 127.0.0.1 for tests: `EHLO`/`HELO` (advertising `AUTH PLAIN LOGIN`
/// and `8BITMIME`, no `STARTTLS`), `AUTH PLAIN` and `AUTH LOGIN` (any credentials are accepted
/// unless the password is the one given to [`SmtpSink::set_reject_password`]), `MAIL FROM`,
/// `RCPT TO`, `DATA`, `RSET`, `NOOP`, `QUIT`. Every message it accepts is recorded as a
/// [`Mail`].
pub struct SmtpSink {
    server: Server,
    mails: Arc<Log<Mail>>,
    shared: Arc<SmtpShared>,
}

impl SmtpSink {
    /// Starts the sink on `127.0.0.1:port`, or on a free port if `None`.
    pub fn start(port: Option<u16>) -> Result<SmtpSink> {
        let mails = Log::new();
        let shared = Arc::new(SmtpShared::default());
        let (log, state) = (mails.clone(), shared.clone());
        let server = Server::start("SMTP", port, move |stream| {
            smtp_session(stream, &log, &state)
        })?;
        Ok(SmtpSink {
            server,
            mails,
            shared,
        })
    }

    /// The port the sink listens on.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Answers `535` to `AUTH` with this password (`None`: accept every password).
    pub fn set_reject_password(&self, password: Option<&str>) {
        *self
            .shared
            .reject_password
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = password.map(str::to_string);
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<Mail> {
        self.mails.all()
    }

    /// Every `AUTH` the sink answered, accepted or not, in order.
    pub fn auth_attempts(&self) -> Vec<SmtpAuth> {
        self.shared
            .auths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits up to `timeout` for a message `pred` accepts (one already received counts).
    pub fn wait_for(&self, pred: impl Fn(&Mail) -> bool, timeout: Duration) -> Result<Mail> {
        self.mails.wait_for(pred, timeout).or_else(|mails| {
            let mut text = format!(
                "no matching mail at 127.0.0.1:{} within {timeout:?}; received {}",
                self.port(),
                mails.len()
            );
            for (i, m) in mails.iter().enumerate() {
                text.push_str(&format!("\n  {}. {}", i + 1, m.summary()));
            }
            for a in self.auth_attempts().iter().filter(|a| !a.accepted) {
                text.push_str(&format!("\n  refused AUTH {} as {:?}", a.mechanism, a.user));
            }
            bail!(text)
        })
    }

    /// Stops the sink: the listener is closed (connections to the port are refused), open
    /// sessions are cut and the threads have ended when this returns. The recorded messages
    /// stay readable.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

/// The state of one SMTP session.
#[derive(Default)]
struct Session {
    helo: String,
    auth: Option<SmtpAuth>,
    from: Option<String>,
    to: Vec<String>,
}

fn smtp_session(stream: TcpStream, log: &Log<Mail>, shared: &SmtpShared) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut session = Session::default();
    out.write_all(format!("220 {SMTP_NAME} ESMTP ready\r\n").as_bytes())?;
    while let Some(raw) = read_line(&mut reader)? {
        let line = String::from_utf8_lossy(trim_eol(&raw)).into_owned();
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        let reply = match verb.as_str() {
            "EHLO" => {
                session = Session {
                    helo: arg,
                    ..Session::default()
                };
                format!("250-{SMTP_NAME}\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN")
            }
            "HELO" => {
                session = Session {
                    helo: arg,
                    ..Session::default()
                };
                format!("250 {SMTP_NAME}")
            }
            "AUTH" => smtp_auth(&arg, &mut reader, &mut out, &mut session, shared)?,
            "MAIL" => match address_after(&arg, "FROM:") {
                Some(from) => {
                    session.from = Some(from);
                    session.to.clear();
                    "250 2.1.0 Ok".into()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" => match (&session.from, address_after(&arg, "TO:")) {
                (None, _) => "503 5.5.1 MAIL first".into(),
                (Some(_), Some(to)) => {
                    session.to.push(to);
                    "250 2.1.5 Ok".into()
                }
                (Some(_), None) => "501 5.5.4 Syntax: RCPT TO:<address>".into(),
            },
            "DATA" => {
                if session.to.is_empty() {
                    "503 5.5.1 RCPT first".into()
                } else {
                    out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                    let data = read_data(&mut reader)?;
                    let data = String::from_utf8_lossy(&data).into_owned();
                    let mail = Mail {
                        helo: session.helo.clone(),
                        auth: session.auth.clone(),
                        from: session.from.take().unwrap_or_default(),
                        to: std::mem::take(&mut session.to),
                        subject: header_value(&data, "Subject"),
                        data,
                    };
                    log.push(mail);
                    "250 2.0.0 Ok: queued".into()
                }
            }
            "RSET" => {
                session.from = None;
                session.to.clear();
                "250 2.0.0 Ok".into()
            }
            "NOOP" => "250 2.0.0 Ok".into(),
            "QUIT" => {
                out.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            "STARTTLS" => "502 5.5.1 STARTTLS is not offered".into(),
            _ => "502 5.5.2 Command not recognised".into(),
        };
        out.write_all(reply.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    Ok(())
}

/// Handles `AUTH <mechanism> [initial response]`, reading the client's answers to the
/// challenges; returns the final reply.
fn smtp_auth(
    arg: &str,
    reader: &mut impl BufRead,
    out: &mut impl Write,
    session: &mut Session,
    shared: &SmtpShared,
) -> io::Result<String> {
    if session.auth.is_some() {
        return Ok("503 5.5.1 Already authenticated".into());
    }
    let (mechanism, initial) = match arg.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_string())),
        None => (arg.trim().to_ascii_uppercase(), None),
    };
    // Reads the client's answer to a challenge, `None` if it cancelled with `*`.
    let mut ask = |challenge: &str| -> io::Result<Option<String>> {
        out.write_all(format!("334 {challenge}\r\n").as_bytes())?;
        let line = read_line(reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let line = String::from_utf8_lossy(trim_eol(&line)).trim().to_string();
        Ok((line != "*").then_some(line))
    };
    let decode = |text: &str| base64_decode(text).map(|b| String::from_utf8_lossy(&b).into_owned());
    let (user, password) = match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial.filter(|i| i != "=") {
                Some(i) => i,
                None => match ask("")? {
                    Some(r) => r,
                    None => return Ok("501 5.7.0 Authentication cancelled".into()),
                },
            };
            let Some(decoded) = base64_decode(&response) else {
                return Ok("501 5.5.2 Cannot decode the response".into());
            };
            // authorisation identity NUL authentication identity NUL password
            let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
            if parts.len() != 3 {
                return Ok("501 5.5.2 PLAIN wants authzid NUL user NUL password".into());
            }
            (
                String::from_utf8_lossy(parts[1]).into_owned(),
                String::from_utf8_lossy(parts[2]).into_owned(),
            )
        }
        "LOGIN" => {
            let user = match initial {
                Some(i) => i,
                None => match ask("VXNlcm5hbWU6")? {
                    Some(u) => u,
                    None => return Ok("501 5.7.0 Authentication cancelled".into()),
                },
            };
            let Some(user) = decode(&user) else {
                return Ok("501 5.5.2 Cannot decode the user name".into());
            };
            let password = match ask("UGFzc3dvcmQ6")? {
                Some(p) => p,
                None => return Ok("501 5.7.0 Authentication cancelled".into()),
            };
            let Some(password) = decode(&password) else {
                return Ok("501 5.5.2 Cannot decode the password".into());
            };
            (user, password)
        }
        _ => return Ok("504 5.5.4 Unrecognised authentication mechanism".into()),
    };
    let rejected = shared
        .reject_password
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_deref()
        == Some(password.as_str());
    let auth = SmtpAuth {
        mechanism,
        user,
        password,
        accepted: !rejected,
    };
    shared
        .auths
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(auth.clone());
    if rejected {
        return Ok("535 5.7.8 Authentication credentials invalid".into());
    }
    session.auth = Some(auth);
    Ok("235 2.7.0 Authentication successful".into())
}

/// The address in `FROM:<a@b> PARAM...` (or `TO:`), without the brackets.
fn address_after(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].to_string())
    } else {
        rest.split_whitespace().next().map(str::to_string)
    }
}

/// The lines after `DATA` up to the line holding a single `.`, dot-unstuffed.
fn read_data(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        if trim_eol(&line) == b"." {
            return Ok(data);
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > MAX_BODY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message too large",
            ));
        }
        data.extend_from_slice(line);
    }
}

/// The first header `name` of `message`, unfolded and with encoded words decoded.
fn header_value(message: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in message.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(v) = value.as_mut() {
                v.push_str(line);
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((field, rest)) = line.split_once(':') {
            if field.trim().eq_ignore_ascii_case(name) {
                value = Some(rest.to_string());
            }
        }
    }
    value.map(|v| decode_encoded_words(v.trim()))
}

/// Decodes the RFC 2047 encoded words (`=?charset?B?...?=`, `=?charset?Q?...?=`) in a header
/// value; whitespace between two encoded words is dropped, as the RFC says. UTF-8, US-ASCII
/// and ISO-8859-1 are known; words in other charsets are left as they are.
pub fn decode_encoded_words(text: &str) -> String {
    let mut out = String::new();
    // Bytes of adjacent encoded words in one charset, decoded together (a character may be
    // split between two words), and whether that charset is ISO-8859-1.
    let mut pending: (Vec<u8>, bool) = (Vec::new(), false);
    let flush = |out: &mut String, pending: &mut (Vec<u8>, bool)| {
        if pending.1 {
            out.extend(pending.0.iter().map(|&b| b as char));
        } else {
            out.push_str(&String::from_utf8_lossy(&pending.0));
        }
        pending.0.clear();
    };
    // Whitespace not yet written: dropped if an encoded word follows an encoded word.
    let mut gap = String::new();
    let mut after_word = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some((latin1, bytes, len)) = encoded_word(rest) {
            if latin1 != pending.1 {
                flush(&mut out, &mut pending);
            }
            if !after_word {
                out.push_str(&gap);
            }
            gap.clear();
            pending.0.extend_from_slice(&bytes);
            pending.1 = latin1;
            after_word = true;
            rest = &rest[len..];
            continue;
        }
        if c.is_ascii_whitespace() {
            gap.push(c);
        } else {
            flush(&mut out, &mut pending);
            out.push_str(&gap);
            gap.clear();
            out.push(c);
            after_word = false;
        }
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut out, &mut pending);
    out.push_str(&gap);
    out
}

/// The encoded word at the start of `text`: whether its charset is ISO-8859-1 (else UTF-8 or
/// US-ASCII), its decoded bytes and its length.
fn encoded_word(text: &str) -> Option<(bool, Vec<u8>, usize)> {
    let inner = text.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let payload = &inner[..end];
    if payload.contains([' ', '\t']) {
        return None;
    }
    // `charset*language` (RFC 2231) names the charset before the star.
    let charset = charset.split('*').next().unwrap_or(charset);
    let latin1 = charset.eq_ignore_ascii_case("iso-8859-1");
    if !(latin1
        || charset.eq_ignore_ascii_case("utf-8")
        || charset.eq_ignore_ascii_case("us-ascii"))
    {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => base64_decode(payload)?,
        "Q" | "q" => quoted_printable_decode(&payload.replace('_', " ")),
        _ => return None,
    };
    // `inner` is the tail of `text` after the second `?`.
    Some((latin1, bytes, text.len() - inner.len() + end + 2))
}

/// Decodes base64 (standard alphabet, padding optional, whitespace ignored).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Decodes quoted-printable: `=XX` bytes and `=` soft line breaks.
fn quoted_printable_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let rest = &bytes[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            let hex = rest
                .get(..2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// HTTP.

/// A request the HTTP sink answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target, e.g. `/hook?x=1`.
    pub path: String,
    /// The headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, chunked transfer coding undone.
    pub body: Vec<u8>,
    /// The status the sink answered.
    pub status: u16,
}

impl HttpRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (invalid bytes replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("the body is not JSON: {:?}", self.body_text()))
    }

    fn summary(&self) -> String {
        let mut body = self.body_text();
        if body.len() > 200 {
            let mut cut = 200;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
            body.push_str("...");
        }
        format!(
            "{} {} (answered {}), body {body:?}",
            self.method, self.path, self.status
        )
    }
}

/// A small HTTP/1.1 server on 127.0.0.1 for tests: one request per connection, its body read
/// by `Content-Length` or chunked transfer coding, answered with the status set by
/// [`HttpSink::set_status`] (200 at first), a short text body and `Connection: close`. Every
/// request it reads is recorded as an [`HttpRequest`].
pub struct HttpSink {
    server: Server,
    requests: Arc<Log<HttpRequest>>,
    status: Arc<AtomicU16>,
}

impl HttpSink {
    /// Starts the sink on `127.0.0.1:port`, or on a free port if `None`.
    pub fn start(port: Option<u16>) -> Result<HttpSink> {
        let requests = Log::new();
        let status = Arc::new(AtomicU16::new(200));
        let (log, answer) = (requests.clone(), status.clone());
        let server = Server::start("HTTP", port, move |stream| {
            http_exchange(stream, &log, &answer)
        })?;
        Ok(HttpSink {
            server,
            requests,
            status,
        })
    }

    /// The port the sink listens on.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The URL of `path` (which starts with `/`) on this sink, as a guest on QEMU's user
    /// network reaches it.
    pub fn guest_url(&self, path: &str) -> String {
        format!("http://{HOST_FROM_GUEST}:{}{path}", self.port())
    }

    /// The status the next requests are answered with (e.g. 500 to make a client retry).
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.all()
    }

    /// Waits up to `timeout` for a request `pred` accepts (one already received counts).
    pub fn wait_for(
        &self,
        pred: impl Fn(&HttpRequest) -> bool,
        timeout: Duration,
    ) -> Result<HttpRequest> {
        self.requests.wait_for(pred, timeout).or_else(|requests| {
            let mut text = format!(
                "no matching request at 127.0.0.1:{} within {timeout:?}; received {}",
                self.port(),
                requests.len()
            );
            for (i, r) in requests.iter().enumerate() {
                text.push_str(&format!("\n  {}. {}", i + 1, r.summary()));
            }
            bail!(text)
        })
    }

    /// Stops the sink: the listener is closed (connections to the port are refused), open
    /// connections are cut and the threads have ended when this returns. The recorded
    /// requests stay readable.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

fn bad_request(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

fn http_exchange(stream: TcpStream, log: &Log<HttpRequest>, status: &AtomicU16) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    match read_request(&mut reader, &mut out) {
        Ok(Some(mut request)) => {
            let status = status.load(Ordering::SeqCst);
            request.status = status;
            log.push(request);
            respond(&mut out, status)
        }
        Ok(None) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => respond(&mut out, 400),
        Err(e) => Err(e),
    }
}

fn respond(out: &mut impl Write, status: u16) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let body = if status == 204 || (100..200).contains(&status) {
        String::new()
    } else if (200..300).contains(&status) {
        "ok\n".to_string()
    } else {
        format!("{status} {reason}\n")
    };
    out.write_all(
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )?;
    out.flush()
}

/// Reads one request; `None` if the client closed the connection before sending one.
fn read_request(
    reader: &mut impl BufRead,
    out: &mut impl Write,
) -> io::Result<Option<HttpRequest>> {
    let Some(first) = read_line(reader)? else {
        return Ok(None);
    };
    let first = String::from_utf8_lossy(trim_eol(&first)).into_owned();
    let mut words = first.split(' ');
    let (Some(method), Some(path), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Err(bad_request("not an HTTP request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad_request("not HTTP/1.x"));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut header_bytes = 0;
    loop {
        let line = read_line(reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        header_bytes += line.len();
        if header_bytes > MAX_LINE {
            return Err(bad_request("headers too large"));
        }
        let line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad_request("a header line without a colon"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request = HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body: Vec::new(),
        status: 0,
    };
    if request
        .header("Expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = request
        .header("Transfer-Encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("Content-Length") {
        let length: usize = length
            .trim()
            .parse()
            .map_err(|_| bad_request("a Content-Length that is not a number"))?;
        if length > MAX_BODY {
            return Err(bad_request("body too large"));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(Some(request))
}

/// Reads a chunked body: size lines in hex (extensions after `;` ignored), the data, a last
/// chunk of size 0 and the trailer section, which is dropped.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| bad_request("a chunk size that is not hex"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while let Some(line) = read_line(reader)? {
                if trim_eol(&line).is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(bad_request("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let end = read_line(reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        if !trim_eol(&end).is_empty() {
            return Err(bad_request("a chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::{Message, SmtpTransport, Transport};

    const WAIT: Duration = Duration::from_secs(10);

    fn alert(subject: &str, body: &str) -> Message {
        Message::builder()
            .from("Tank <tank@nas.example>".parse().unwrap())
            .to("Admin <admin@example.org>".parse().unwrap())
            .to("oncall@example.org".parse().unwrap())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .unwrap()
    }

    fn mailer(port: u16, mechanism: Mechanism, password: &str) -> SmtpTransport {
        SmtpTransport::builder_dangerous("127.0.0.1")
            .port(port)
            .credentials(Credentials::new("alerts".into(), password.into()))
            .authentication(vec![mechanism])
            .timeout(Some(WAIT))
            .build()
    }

    /// Sends `lines` one at a time, each after the previous reply, and returns every reply.
    fn smtp_dialogue(port: u16, lines: &[&str]) -> Vec<String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let read_reply = |reader: &mut BufReader<TcpStream>| {
            let mut reply = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                reply.push_str(&line);
                // A multi-line reply goes on while the code is followed by `-`.
                if line.len() < 4 || line.as_bytes()[3] != b'-' {
                    return reply;
                }
            }
        };
        let mut replies = vec![read_reply(&mut reader)];
        for line in lines {
            out.write_all(format!("{line}\r\n").as_bytes()).unwrap();
            // The lines of a message get no reply until its final `.`.
            if replies.last().is_some_and(|r| r.starts_with("354")) && *line != "." {
                continue;
            }
            replies.push(read_reply(&mut reader));
        }
        replies
    }

    fn http(port: u16, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(request).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn lettre_mail_with_auth_plain_arrives_with_its_decoded_subject() {
        let sink = SmtpSink::start(None).unwrap();
        let subject = "[tank] Pool « tank » dégradé: disk sdb missing ✗";
        let body = "The pool tank lost a member.\nReplace the disk: pool replace sdb sdc\n";
        mailer(sink.port(), Mechanism::Plain, "s3cret")
            .send(&alert(subject, body))
            .unwrap();
        let mail = sink
            .wait_for(|m| m.subject.as_deref() == Some(subject), WAIT)
            .unwrap();
        assert_eq!(mail.from, "tank@nas.example");
        assert_eq!(mail.to, ["admin@example.org", "oncall@example.org"]);
        let auth = mail.auth.clone().unwrap();
        assert_eq!(
            (
                auth.mechanism.as_str(),
                auth.user.as_str(),
                auth.password.as_str()
            ),
            ("PLAIN", "alerts", "s3cret")
        );
        assert!(auth.accepted);
        // lettre encodes a non-ASCII subject, so the raw header differs from the decoded one.
        assert!(mail.data.contains("=?utf-8?b?"), "{}", mail.data);
        // lettre ends the data with CRLF . CRLF after the body's own line end.
        assert_eq!(mail.text().replace("\r\n", "\n"), format!("{body}\n"));
        assert_eq!(
            mail.header("to").unwrap(),
            "Admin <admin@example.org>, oncall@example.org"
        );
        assert_eq!(sink.messages(), [mail]);
    }

    #[test]
    fn lettre_with_auth_login_is_recorded() {
        let sink = SmtpSink::start(None).unwrap();
        mailer(sink.port(), Mechanism::Login, "pa ss:wörd")
            .send(&alert("Disk sda is hot: 61 °C", "limit 55 °C\n"))
            .unwrap();
        let mail = sink.wait_for(|_| true, WAIT).unwrap();
        assert_eq!(mail.subject.as_deref(), Some("Disk sda is hot: 61 °C"));
        let auth = mail.auth.unwrap();
        assert_eq!(
            (
                auth.mechanism.as_str(),
                auth.user.as_str(),
                auth.password.as_str()
            ),
            ("LOGIN", "alerts", "pa ss:wörd")
        );
    }

    #[test]
    fn a_rejected_password_gets_535_and_no_mail_is_recorded() {
        let sink = SmtpSink::start(None).unwrap();
        sink.set_reject_password(Some("wrong"));
        let error = mailer(sink.port(), Mechanism::Plain, "wrong")
            .send(&alert("never", "never\n"))
            .unwrap_err();
        assert!(error.to_string().contains("535"), "{error}");
        assert!(sink.messages().is_empty());
        let attempts = sink.auth_attempts();
        assert_eq!(attempts.len(), 1);
        assert!(!attempts[0].accepted);
        assert_eq!(attempts[0].password, "wrong");
        // The failure report names the refused login.
        let report = sink
            .wait_for(|_| true, Duration::from_millis(50))
            .unwrap_err()
            .to_string();
        assert!(report.contains("received 0"), "{report}");
        assert!(
            report.contains("refused AUTH PLAIN as \"alerts\""),
            "{report}"
        );
        // Other passwords still work.
        mailer(sink.port(), Mechanism::Plain, "right")
            .send(&alert("later", "ok\n"))
            .unwrap();
        sink.wait_for(|m| m.subject.as_deref() == Some("later"), WAIT)
            .unwrap();
    }

    #[test]
    fn a_stopped_smtp_sink_refuses_connections_and_one_restarts_on_its_port() {
        let mut sink = SmtpSink::start(None).unwrap();
        let port = sink.port();
        mailer(port, Mechanism::Plain, "p")
            .send(&alert("first", "1\n"))
            .unwrap();
        sink.wait_for(|_| true, WAIT).unwrap();
        // An idle session is cut by the stop, not waited for.
        let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
        idle.set_read_timeout(Some(WAIT)).unwrap();
        let mut greeting = [0u8; 4];
        idle.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting, b"220 ");
        sink.stop();
        let mut rest = Vec::new();
        // The cut session ends (no read timeout).
        assert!(idle.read_to_end(&mut rest).is_ok());
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still accepts after stop()"
        );
        assert!(mailer(port, Mechanism::Plain, "p")
            .send(&alert("lost", "2\n"))
            .is_err());
        assert_eq!(sink.messages().len(), 1);
        // The sink comes back on the same port (its old connections are in TIME_WAIT).
        let again = SmtpSink::start(Some(port)).unwrap();
        assert_eq!(again.port(), port);
        mailer(port, Mechanism::Plain, "p")
            .send(&alert("second", "3\n"))
            .unwrap();
        let mail = again.wait_for(|_| true, WAIT).unwrap();
        assert_eq!(mail.subject.as_deref(), Some("second"));
    }

    #[test]
    fn a_hand_written_dialogue_with_rset_dot_stuffing_and_auth_login() {
        let sink = SmtpSink::start(None).unwrap();
        let replies = smtp_dialogue(
            sink.port(),
            &[
                "EHLO client.example",
                "RCPT TO:<early@example.org>",
                "AUTH LOGIN",
                "dXNlcg==",
                "cGFzcw==",
                "MAIL FROM:<dropped@example.org>",
                "RCPT TO:<dropped@example.org>",
                "RSET",
                "NOOP",
                "mail from:<a@example.org> BODY=8BITMIME",
                "rcpt to:<b@example.org>",
                "DATA",
                "Subject: =?UTF-8?Q?caf=C3=A9_is_?= =?utf-8?b?b3Blbg==?= now",
                "",
                "..leading dot",
                ".",
                "QUIT",
            ],
        );
        let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
        assert_eq!(
            codes,
            [
                "220", "250", "503", "334", "334", "235", "250", "250", "250", "250", "250", "250",
                "354", "250", "221"
            ],
            "{replies:?}"
        );
        assert!(replies[1].contains("250-8BITMIME"), "{}", replies[1]);
        assert!(replies[1].contains("AUTH PLAIN LOGIN"), "{}", replies[1]);
        assert!(!replies[1].contains("STARTTLS"), "{}", replies[1]);
        let mail = sink.wait_for(|_| true, WAIT).unwrap();
        assert_eq!(mail.helo, "client.example");
        assert_eq!(mail.from, "a@example.org");
        assert_eq!(mail.to, ["b@example.org"]);
        assert_eq!(mail.subject.as_deref(), Some("café is open now"));
        assert_eq!(mail.body(), ".leading dot\r\n");
        let auth = mail.auth.unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_str()),
            ("user", "pass")
        );
        assert_eq!(sink.messages().len(), 1);
    }

    #[test]
    fn auth_plain_with_a_challenge_and_helo() {
        let sink = SmtpSink::start(None).unwrap();
        let replies = smtp_dialogue(
            sink.port(),
            &[
                "HELO old.example",
                "AUTH PLAIN",
                // "\0u\0p"
                "AHUAcA==",
                "AUTH PLAIN AHUAcA==",
                "STARTTLS",
                "QUIT",
            ],
        );
        let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
        assert_eq!(
            codes,
            ["220", "250", "334", "235", "503", "502", "221"],
            "{replies:?}"
        );
        let attempts = sink.auth_attempts();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            (attempts[0].user.as_str(), attempts[0].password.as_str()),
            ("u", "p")
        );
    }

    #[test]
    fn encoded_words_are_decoded() {
        let cases = [
            ("plain text", "plain text"),
            ("=?utf-8?b?w6l0w6k=?=", "été"),
            ("=?UTF-8?Q?=C3=A9t=C3=A9_chaud?=", "été chaud"),
            // Whitespace between encoded words is dropped, around them it is kept.
            ("a =?utf-8?q?b?= \r\n =?utf-8?q?c?= d", "a bc d"),
            // A character split between two words.
            ("=?utf-8?b?ww==?= =?utf-8?b?qQ==?=", "é"),
            ("=?iso-8859-1?q?caf=E9?=", "café"),
            ("=?koi8-r?b?8fI=?=", "=?koi8-r?b?8fI=?="),
            ("=?utf-8?x?nope?=", "=?utf-8?x?nope?="),
        ];
        for (input, want) in cases {
            assert_eq!(decode_encoded_words(input), want, "{input:?}");
        }
        let folded = "From: a@b\r\nSubject: =?utf-8?b?UG9vbCA=?=\r\n =?utf-8?b?ZMOpZ3JhZMOp?=\r\nTo: c@d\r\n\r\nSubject: not this\r\n";
        assert_eq!(
            header_value(folded, "subject").as_deref(),
            Some("Pool dégradé")
        );
        assert_eq!(header_value(folded, "X-Missing"), None);
    }

    #[test]
    fn a_chunked_webhook_body_is_decoded_and_headers_are_case_insensitive() {
        let sink = HttpSink::start(None).unwrap();
        let response = http(
            sink.port(),
            b"POST /ntfy/tank HTTP/1.1\r\nHost: 10.0.2.2\r\nx-title: Pool degraded\r\n\
              PRIORITY: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
              6\r\nDisk s\r\n10;ext=1\r\ndb is missing.\r\n\r\n0\r\nX-Trailer: t\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Connection: close\r\n"), "{response}");
        let request = sink.wait_for(|r| r.path == "/ntfy/tank", WAIT).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.body_text(), "Disk sdb is missing.\r\n");
        assert_eq!(request.header("X-Title"), Some("Pool degraded"));
        assert_eq!(request.header("priority"), Some("5"));
        assert_eq!(request.status, 200);
    }

    #[test]
    fn the_status_override_is_answered_and_recorded() {
        let sink = HttpSink::start(None).unwrap();
        let body = r#"{"id":"pool-degraded","host":"tank","severity":"critical","state":"firing","title":"t","message":"m","time":"2025-01-01T00:00:00Z"}"#;
        let post = format!(
            "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        sink.set_status(500);
        let first = http(sink.port(), post.as_bytes());
        assert!(
            first.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{first}"
        );
        sink.set_status(200);
        let second = http(sink.port(), post.as_bytes());
        assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");
        assert!(second.ends_with("\r\n\r\nok\n"), "{second}");
        let requests = sink.requests();
        let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [500, 200]);
        assert_eq!(requests[0].json().unwrap()["severity"], "critical");
        assert_eq!(
            sink.guest_url("/hook"),
            format!("http://10.0.2.2:{}/hook", sink.port())
        );
        let report = sink
            .wait_for(|r| r.path == "/other", Duration::from_millis(50))
            .unwrap_err()
            .to_string();
        assert!(report.contains("received 2"), "{report}");
        assert!(report.contains("POST /hook (answered 500)"), "{report}");
    }

    #[test]
    fn a_stopped_http_sink_refuses_connections_and_one_restarts_on_its_port() {
        let mut sink = HttpSink::start(None).unwrap();
        let port = sink.port();
        http(port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        sink.wait_for(|r| r.path == "/a", WAIT).unwrap();
        sink.stop();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        let again = HttpSink::start(Some(port)).unwrap();
        let response = http(port, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(again.wait_for(|_| true, WAIT).unwrap().path, "/b");
        // A request that is not HTTP is answered 400 and not recorded.
        let bad = http(port, b"hello\r\n\r\n");
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        assert_eq!(again.requests().len(), 1);
    }
}
