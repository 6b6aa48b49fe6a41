//! The configuration console on the board's serial (and VGA) terminals.
//!
//! Each console device gets a session thread: it reads raw bytes, edits the line
//! ([`editor`]), parses it into a [`Request`] ([`parse`]), hands the request to the init's
//! event loop and prints the typed reply ([`render`]). Messages for the operator (alerts,
//! shutdown notices) are broadcast to every session with [`Consoles::notify`]. The console
//! never touches the system itself.

pub mod editor;
pub mod parse;
pub mod parse_alert;
pub mod parse_backup;
pub mod parse_sharing;
pub mod parse_snapshot;
pub mod render;
pub mod request;
pub mod time;
pub mod version;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use editor::{Editor, Outcome};
pub use request::{Reply, Request};
use zeroize::Zeroize;

use crate::init::Event;

/// Guest uptime when the first prompt was written.
pub static FIRST_PROMPT_AT: OnceLock<f64> = OnceLock::new();

struct Session {
    device: String,
    tty: Mutex<Option<File>>,
    editor: Mutex<Editor>,
}

/// Every console session, for broadcasts and the prompt.
pub struct Consoles {
    sessions: Vec<Arc<Session>>,
    prompt: Mutex<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Consoles {
    /// Opens each device under `/dev` and starts its session thread.
    pub fn start(devices: &[&str], hostname: &str, events: Sender<Event>) -> Arc<Consoles> {
        let consoles = Arc::new(Consoles {
            sessions: devices
                .iter()
                .map(|d| {
                    Arc::new(Session {
                        device: d.to_string(),
                        tty: Mutex::new(None),
                        editor: Mutex::new(Editor::new()),
                    })
                })
                .collect(),
            prompt: Mutex::new(format!("{hostname}> ")),
        });
        for session in &consoles.sessions {
            let device = session.device.clone();
            let session = session.clone();
            let events = events.clone();
            let all = consoles.clone();
            let spawned = crate::supervise::spawn_supervised(
                format!("console-{device}"),
                crate::supervise::Policy::RESTART,
                move || all.run(&session, &events),
            );
            if let Err(e) = spawned {
                log::error!("cannot start the console on {device}: {e}");
            }
        }
        consoles
    }

    pub fn set_hostname(&self, hostname: &str) {
        *lock(&self.prompt) = format!("{hostname}> ");
    }

    fn prompt(&self) -> String {
        lock(&self.prompt).clone()
    }

    /// Prints `message` on every console, above the line being typed.
    pub fn notify(&self, message: &str) {
        let prompt = self.prompt();
        for session in &self.sessions {
            let editor = lock(&session.editor);
            let mut out = b"\r\x1b[K".to_vec();
            out.extend_from_slice(message.replace('\n', "\r\n").as_bytes());
            out.extend_from_slice(b"\r\n");
            editor.redraw(&prompt, &mut out);
            write_tty(session, &out);
        }
    }

    fn run(&self, session: &Session, events: &Sender<Event>) {
        let mut tty = loop {
            match open_tty(&session.device) {
                Ok(f) => break f,
                Err(e) => {
                    log::warn!("console /dev/{}: {e}; retrying", session.device);
                    std::thread::sleep(Duration::from_secs(5));
                }
            }
        };
        match tty.try_clone() {
            Ok(w) => *lock(&session.tty) = Some(w),
            Err(e) => log::warn!("console /dev/{}: {e}", session.device),
        }
        write_tty(
            session,
            format!(
                "\r\nTank {} on {}. Type 'help' for commands.\r\n{}",
                crate::version(),
                session.device,
                self.prompt()
            )
            .as_bytes(),
        );
        let _ = FIRST_PROMPT_AT.set(crate::system::info::uptime_secs());
        let mut buf = [0u8; 256];
        let mut pending: Option<Pending> = None;
        loop {
            let n = match tty.read(&mut buf) {
                Ok(0) => {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("console /dev/{}: {e}; reopening", session.device);
                    std::thread::sleep(Duration::from_secs(1));
                    if let Ok(f) = open_tty(&session.device) {
                        tty = f;
                    }
                    continue;
                }
            };
            for &byte in &buf[..n] {
                let prompt = self.prompt_for(&pending);
                let mut echo = Vec::new();
                let outcome = lock(&session.editor).feed(byte, &prompt, &mut echo);
                write_tty(session, &echo);
                let typed = match outcome {
                    None => continue,
                    Some(Outcome::Cancelled) => {
                        if pending.take().is_some() {
                            lock(&session.editor).set_secret(false);
                            write_tty(session, b"not confirmed: nothing changed\n");
                        }
                        write_tty(session, self.prompt().as_bytes());
                        continue;
                    }
                    Some(typed) => typed,
                };
                let answer = match (pending.take(), typed) {
                    (None, Outcome::Line(line)) => self.execute(&line, events),
                    (Some(Pending::Confirm { answers, request }), Outcome::Line(line)) => {
                        let typed = line.trim();
                        if answers.iter().any(|a| a == typed) {
                            self.send(request.with_confirmation(typed.to_string()), events)
                        } else {
                            Answer::Text("not confirmed: nothing changed\n".into())
                        }
                    }
                    (
                        Some(Pending::Secret {
                            request,
                            first: None,
                        }),
                        Outcome::Secret(secret),
                    ) => {
                        if secret.as_str().is_empty() {
                            lock(&session.editor).set_secret(false);
                            Answer::Text(
                                "an empty password is not allowed: nothing changed\n".into(),
                            )
                        } else {
                            pending = Some(Pending::Secret {
                                request,
                                first: Some(secret),
                            });
                            Answer::Text(String::new())
                        }
                    }
                    (
                        Some(Pending::Secret {
                            request,
                            first: Some(first),
                        }),
                        Outcome::Secret(secret),
                    ) => {
                        lock(&session.editor).set_secret(false);
                        if first == secret {
                            self.send(request.with_secret(secret), events)
                        } else {
                            Answer::Text("the passwords differ: nothing changed\n".into())
                        }
                    }
                    // The editor is in secret mode exactly while a password is awaited, so a
                    // line never meets a password question nor a password another question.
                    _ => {
                        lock(&session.editor).set_secret(false);
                        Answer::Text("nothing changed\n".into())
                    }
                };
                let mut out = match answer {
                    Answer::Text(text) => text,
                    Answer::Ask {
                        question,
                        answers,
                        request,
                    } => {
                        pending = Some(Pending::Confirm {
                            answers,
                            request: *request,
                        });
                        format!("{question}\n")
                    }
                    Answer::Secret { prompt, request } => {
                        lock(&session.editor).set_secret(true);
                        pending = Some(Pending::Secret {
                            request: *request,
                            first: None,
                        });
                        format!("{prompt}\n")
                    }
                }
                .replace('\n', "\r\n")
                .into_bytes();
                let prompt = self.prompt_for(&pending);
                out.extend_from_slice(prompt.as_bytes());
                write_tty(session, &out);
            }
            // The bytes read may be a password's: they do not stay on the stack.
            buf[..n].zeroize();
        }
    }

    /// The prompt for the session's state: the host's, or a question's.
    fn prompt_for(&self, pending: &Option<Pending>) -> String {
        match pending {
            None => self.prompt(),
            Some(Pending::Confirm { .. }) => CONFIRM_PROMPT.to_string(),
            Some(Pending::Secret { first: None, .. }) => PASSWORD_PROMPT.to_string(),
            Some(Pending::Secret { first: Some(_), .. }) => PASSWORD_AGAIN_PROMPT.to_string(),
        }
    }

    /// Runs one line.
    fn execute(&self, line: &str, events: &Sender<Event>) -> Answer {
        match parse::parse(line) {
            Ok(parse::Parsed::Empty) => Answer::Text(String::new()),
            Ok(parse::Parsed::Help(noun)) => Answer::Text(parse::help(noun.as_deref())),
            Ok(parse::Parsed::Request(r)) => self.send(r, events),
            Err(e) => Answer::Text(format!("{e}\n")),
        }
    }

    /// Hands a request to the event loop and waits for the reply.
    fn send(&self, request: Request, events: &Sender<Event>) -> Answer {
        let (tx, rx) = mpsc::channel();
        if events.send(Event::Command { request, reply: tx }).is_err() {
            return Answer::Text(
                "error: the appliance is not answering (its event loop stopped); reboot it\n"
                    .into(),
            );
        }
        match rx.recv_timeout(Duration::from_secs(3600)) {
            Ok(Ok(Reply::Confirm {
                question,
                answers,
                request,
            })) => Answer::Ask {
                question,
                answers,
                request,
            },
            Ok(Ok(Reply::AskSecret { prompt, request })) => Answer::Secret { prompt, request },
            Ok(Ok(reply)) => Answer::Text(render::reply(&reply)),
            Ok(Err(message)) => Answer::Text(format!("error: {message}\n")),
            Err(_) => Answer::Text(
                "error: no answer within an hour; see 'log' for what is going on\n".into(),
            ),
        }
    }
}

/// The prompt while the console waits for a confirmation.
pub const CONFIRM_PROMPT: &str = "confirm> ";

/// The prompts while the console reads a password (without echo), twice.
pub const PASSWORD_PROMPT: &str = "password: ";
pub const PASSWORD_AGAIN_PROMPT: &str = "password again: ";

/// What a session waits for after a question.
enum Pending {
    /// One of `answers`, to complete `request`.
    Confirm {
        answers: Vec<String>,
        request: Request,
    },
    /// A password, typed twice (`first` holds the first entry, wiped when dropped).
    Secret {
        request: Request,
        first: Option<request::Secret>,
    },
}

/// What the console prints after a line: text, or a question whose answer completes a request.
enum Answer {
    Text(String),
    Ask {
        question: String,
        answers: Vec<String>,
        request: Box<Request>,
    },
    Secret {
        prompt: String,
        request: Box<Request>,
    },
}

fn write_tty(session: &Session, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(tty) = lock(&session.tty).as_mut() {
        let _ = tty.write_all(bytes);
    }
}

/// Opens a terminal and puts it in raw mode (no echo, no line discipline, no signals), keeping
/// `\n` → `\r\n` output translation.
fn open_tty(device: &str) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(format!("/dev/{device}"))?;
    let mut termios = rustix::termios::tcgetattr(&file)?;
    termios.make_raw();
    termios.output_modes |=
        rustix::termios::OutputModes::OPOST | rustix::termios::OutputModes::ONLCR;
    rustix::termios::tcsetattr(&file, rustix::termios::OptionalActions::Now, &termios)?;
    Ok(file)
}
