//! A running guest driven over its serial console: boot, wait for text, run console
//! commands, send QMP commands (the power button, pulling a disk out, setting a device
//! property), wait for QEMU to exit.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::qemu::QemuConfig;

/// The console prompt with the default host name.
pub const PROMPT: &str = "tank> ";

#[derive(Default)]
struct Output {
    text: String,
    closed: bool,
}

/// A QEMU guest whose serial console is on our pipes.
pub struct Guest {
    child: Child,
    stdin: ChildStdin,
    output: Arc<(Mutex<Output>, Condvar)>,
    /// Offset in the output from which the next `expect` searches.
    mark: usize,
    qmp: Option<PathBuf>,
    started: Instant,
    /// Where the console transcript is written when the guest is dropped.
    transcript: Option<PathBuf>,
}

impl Guest {
    /// Starts QEMU for `config` (its serial console must not be interactive).
    pub fn start(mut config: QemuConfig, name: &str) -> Result<Guest> {
        config.interactive = false;
        let run_dir = crate::runs_dir();
        std::fs::create_dir_all(&run_dir)?;
        let qmp = run_dir.join(format!("{name}-{}.qmp", std::process::id()));
        let _ = std::fs::remove_file(&qmp);
        config.qmp_socket = Some(qmp.clone());
        let mut cmd = config.command().map_err(anyhow::Error::msg)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context(
            "cannot start qemu-system-x86_64: install it with `apt-get install qemu-system-x86` \
             (or run `cargo xtask prereqs`)",
        )?;
        let stdin = child.stdin.take().context("qemu stdin")?;
        let mut stdout = child.stdout.take().context("qemu stdout")?;
        let output: Arc<(Mutex<Output>, Condvar)> = Arc::default();
        let sink = output.clone();
        let transcript = run_dir.join(format!("{name}.log"));
        // The transcript is written as the console prints, so a hung test can be looked at.
        let mut live = std::fs::File::create(&transcript).ok();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Bytes of a UTF-8 sequence cut by the end of a read, kept for the next one.
            let mut partial: Vec<u8> = Vec::new();
            loop {
                let n = stdout.read(&mut buf).unwrap_or(0);
                if let Some(f) = live.as_mut() {
                    let _ = f.write_all(&buf[..n]);
                }
                let (lock, cv) = &*sink;
                let mut out = lock.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    out.text.push_str(&String::from_utf8_lossy(&partial));
                    out.closed = true;
                    cv.notify_all();
                    return;
                }
                partial.extend_from_slice(&buf[..n]);
                let keep = incomplete_tail(&partial);
                let complete = partial.len() - keep;
                out.text
                    .push_str(&String::from_utf8_lossy(&partial[..complete]));
                partial.drain(..complete);
                cv.notify_all();
            }
        });
        Ok(Guest {
            child,
            stdin,
            output,
            mark: 0,
            qmp: Some(qmp),
            started: Instant::now(),
            transcript: Some(transcript),
        })
    }

    /// Wall time since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything the console printed so far.
    pub fn transcript(&self) -> String {
        self.output
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .text
            .clone()
    }

    /// Waits until `needle` appears after the mark; returns the text from the mark to the end
    /// of the needle and moves the mark past it.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.output;
        let mut out = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(pos) = out.text.get(self.mark..).and_then(|t| t.find(needle)) {
                let start = self.mark;
                let end = self.mark + pos + needle.len();
                self.mark = end;
                return Ok(out.text[start..end].to_string());
            }
            let now = Instant::now();
            if out.closed || now >= deadline {
                let tail: String = {
                    let t = &out.text;
                    let from = t.len().saturating_sub(3000);
                    let mut from = from;
                    while !t.is_char_boundary(from) {
                        from += 1;
                    }
                    t[from..].to_string()
                };
                bail!(
                    "{} waiting for {needle:?} after {:.1} s; console tail:\n{tail}",
                    if out.closed {
                        "QEMU exited"
                    } else {
                        "timed out"
                    },
                    self.started.elapsed().as_secs_f64()
                );
            }
            out = cv
                .wait_timeout(out, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Like [`Guest::expect`] for the echo of a typed line, which kernel messages printed to
    /// the console may cut in two (`pool sta[   26.7] BTRFS error ...\ntus`): kernel lines are
    /// skipped while matching.
    fn expect_echo(&mut self, echo: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.output;
        let mut out = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(end) = out
                .text
                .get(self.mark..)
                .and_then(|t| find_skipping_kernel_lines(t, echo))
            {
                self.mark += end;
                return Ok(());
            }
            let now = Instant::now();
            if out.closed || now >= deadline {
                drop(out);
                // Say what was seen, as `expect` does.
                return self.expect(echo, Duration::ZERO).map(|_| ());
            }
            out = cv
                .wait_timeout(out, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits for the first prompt.
    pub fn wait_prompt(&mut self, timeout: Duration) -> Result<()> {
        self.expect("Type 'help' for commands.", timeout)?;
        self.expect(PROMPT, Duration::from_secs(10))?;
        Ok(())
    }

    /// Sends raw bytes to the console.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        // A serial line at 115200 baud with a 16-byte FIFO: send in small pieces.
        for chunk in bytes.chunks(8) {
            self.stdin.write_all(chunk)?;
            self.stdin.flush()?;
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Moves the mark to the end of what was printed so far.
    pub fn skip_output(&mut self) {
        self.mark = self
            .output
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .text
            .len();
    }

    /// Types `line` and returns what the console printed before the next prompt (without the
    /// echoed command).
    pub fn run(&mut self, line: &str, timeout: Duration) -> Result<String> {
        self.skip_output();
        self.send(line.as_bytes())?;
        self.send(b"\r")?;
        // Wait for the echo first, so a prompt printed before the command is not taken for its
        // end; long lines are echoed only up to the editor's limit, so match their start.
        let echo: String = line.chars().take(40).collect();
        self.expect_echo(&echo, timeout)?;
        let text = self.expect(&format!("\n{PROMPT}"), timeout)?;
        let body = text.trim_end_matches(PROMPT);
        // Drop the rest of the echo line.
        let body = match body.find('\n') {
            Some(i) => &body[i + 1..],
            None => "",
        };
        Ok(body.replace('\r', ""))
    }

    /// Types `line`, a command that asks for a password twice (`user add`, `user passwd`),
    /// answers both prompts with `password` and returns what it printed before the next prompt.
    pub fn run_with_password(&mut self, line: &str, password: &str) -> Result<String> {
        let timeout = Duration::from_secs(60);
        self.skip_output();
        self.send(line.as_bytes())?;
        self.send(b"\r")?;
        let asked = self.expect("password: ", timeout)?;
        if asked.contains("error:") {
            bail!("'{line}' failed before asking for a password:\n{asked}");
        }
        self.send(password.as_bytes())?;
        self.send(b"\r")?;
        self.expect("password again: ", timeout)?;
        self.send(password.as_bytes())?;
        self.send(b"\r")?;
        let text = self.expect(&format!("\n{PROMPT}"), timeout)?;
        if text.contains(password) {
            bail!("the console echoed the password:\n{text}");
        }
        Ok(text.trim_end_matches(PROMPT).replace('\r', ""))
    }

    /// Runs `line` until `check` accepts its output or `timeout` runs out.
    pub fn run_until(
        &mut self,
        line: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.run(line, Duration::from_secs(30))?;
            if check(&out) {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                bail!("'{line}' never gave the expected output within {timeout:?}; last output:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Sends one QMP command and returns QEMU's reply (`{"return": ...}` or `{"error": ...}`).
    /// `command` is a command name without arguments (`system_powerdown`) or a whole command
    /// object (`{"execute":"device_del","arguments":{"id":"disk1"}}`).
    pub fn qmp(&mut self, command: &str) -> Result<serde_json::Value> {
        let command = if command.trim_start().starts_with('{') {
            command.trim().to_string()
        } else {
            serde_json::json!({ "execute": command }).to_string()
        };
        self.qmp_session()?.execute(&command)
    }

    /// Pulls the data disk device `id` out of the running machine (`disk0`, ..., `nvme0`, ...:
    /// see [`crate::qemu`]) and waits until QEMU reports it gone with the `DEVICE_DELETED`
    /// event. A `scsi-hd` on virtio-scsi goes at once, without the guest's help; a PCI device
    /// (`nvme` on the `pc` machine) waits for the guest to take part in ACPI hot-unplug; QEMU
    /// refuses devices on buses without hotplug (`ide-hd` on AHCI, `nvme` on q35's root bus)
    /// and the error says so.
    pub fn device_del(&mut self, id: &str) -> Result<()> {
        let mut qmp = self.qmp_session()?;
        let command = serde_json::json!({ "execute": "device_del", "arguments": { "id": id } });
        qmp.execute_ok(&command.to_string())
            .with_context(|| format!("device_del {id}"))?;
        qmp.wait_event(
            |e| {
                e["event"] == "DEVICE_DELETED"
                    && (e["data"]["device"] == id
                        || e["data"]["path"] == format!("/machine/peripheral/{id}").as_str())
            },
            Duration::from_secs(60),
        )
        .with_context(|| format!("QEMU accepted device_del {id} but did not delete it"))?;
        Ok(())
    }

    /// Sets QOM property `property` of the object at `path` (`qom-set`), e.g. an NVMe disk's
    /// `smart_critical_warning` at `/machine/peripheral/nvme0`.
    pub fn qom_set(
        &mut self,
        path: &str,
        property: &str,
        value: impl Into<serde_json::Value>,
    ) -> Result<()> {
        let command = serde_json::json!({
            "execute": "qom-set",
            "arguments": { "path": path, "property": property, "value": value.into() },
        });
        self.qmp_session()?
            .execute_ok(&command.to_string())
            .with_context(|| format!("qom-set {path} {property}"))?;
        Ok(())
    }

    /// Reads QOM property `property` of the object at `path` (`qom-get`).
    pub fn qom_get(&mut self, path: &str, property: &str) -> Result<serde_json::Value> {
        let command = serde_json::json!({
            "execute": "qom-get",
            "arguments": { "path": path, "property": property },
        });
        self.qmp_session()?
            .execute_ok(&command.to_string())
            .with_context(|| format!("qom-get {path} {property}"))
    }

    fn qmp_session(&self) -> Result<Qmp> {
        Qmp::connect(self.qmp.as_ref().context("no QMP socket")?)
    }

    /// Waits for QEMU to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("QEMU still running {timeout:?} later");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// QEMU's process id, to cut the power from another thread (`kill -KILL`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops QEMU at once (a power cut).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection to QEMU's QMP socket, past the capabilities negotiation. QEMU serves one
/// client at a time; each call of the guest's QMP methods opens its own.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events that arrived while waiting for a reply.
    events: Vec<serde_json::Value>,
}

impl Qmp {
    fn connect(path: &std::path::Path) -> Result<Qmp> {
        let stream =
            UnixStream::connect(path).with_context(|| format!("QMP socket {}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            events: Vec::new(),
        };
        qmp.read().context("QMP greeting")?;
        qmp.execute_ok(r#"{"execute":"qmp_capabilities"}"#)?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("QEMU closed the QMP socket");
        }
        serde_json::from_str(&line).with_context(|| format!("QMP sent {line:?}"))
    }

    /// Sends `command` (a JSON object) and returns the reply, keeping the events before it.
    fn execute(&mut self, command: &str) -> Result<serde_json::Value> {
        self.writer.write_all(command.as_bytes())?;
        self.writer.write_all(b"\n")?;
        loop {
            let v = self.read().with_context(|| format!("reply to {command}"))?;
            if v.get("return").is_some() || v.get("error").is_some() {
                return Ok(v);
            }
            if v.get("event").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Like [`Qmp::execute`], with an error reply as an error; returns what `return` holds.
    fn execute_ok(&mut self, command: &str) -> Result<serde_json::Value> {
        let mut reply = self.execute(command)?;
        if let Some(error) = reply.get("error") {
            bail!(
                "QEMU answered {}: {}",
                error["class"].as_str().unwrap_or("an error"),
                error["desc"].as_str().unwrap_or("(no description)")
            );
        }
        Ok(reply["return"].take())
    }

    /// Waits up to `timeout` for an event `pred` accepts (one seen already counts).
    fn wait_event(
        &mut self,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        if let Some(i) = self.events.iter().position(&pred) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let seen: Vec<String> = self
                    .events
                    .iter()
                    .map(|e| e["event"].as_str().unwrap_or("?").to_string())
                    .collect();
                bail!("no such QMP event within {timeout:?}; events seen: {seen:?}");
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            match self.read() {
                Ok(v) if pred(&v) => return Ok(v),
                Ok(v) => self.events.push(v),
                Err(e) => {
                    let timed_out = e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                        matches!(
                            io.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        )
                    });
                    if !timed_out {
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// How many bytes at the end of `bytes` start a UTF-8 sequence that is not complete yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=3.min(bytes.len()) {
        let b = bytes[bytes.len() - back];
        if b & 0xc0 == 0x80 {
            continue;
        }
        let needed = match b {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
        if let Some(path) = &self.transcript {
            let _ = std::fs::write(path, self.transcript());
        }
        if let Some(qmp) = &self.qmp {
            let _ = std::fs::remove_file(qmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::incomplete_tail;

    #[test]
    fn utf8_cut_at_a_read_boundary_waits_for_the_rest() {
        let text = "sé日".as_bytes();
        assert_eq!(incomplete_tail(text), 0);
        assert_eq!(incomplete_tail(&text[..2]), 1);
        assert_eq!(incomplete_tail(&text[..4]), 1);
        assert_eq!(incomplete_tail(&text[..5]), 2);
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&[0xff]), 0);
    }
}

/// The end (a byte offset in `text`) of the first match of `needle` in `text`, not counting
/// kernel log lines (`[   26.698838] ...` up to the end of their line) that cut into it.
pub fn find_skipping_kernel_lines(text: &str, needle: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let is_kernel_stamp = |at: usize| {
        let rest = &bytes[at..];
        if rest.first() != Some(&b'[') {
            return None;
        }
        let close = rest.iter().position(|&b| b == b']')?;
        let inside = &rest[1..close];
        let stamp = inside
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b' ' || *b == b'.')
            && inside.contains(&b'.')
            && inside.iter().any(u8::is_ascii_digit);
        stamp.then(|| {
            rest.iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |nl| nl + 1)
        })
    };
    let mut kept: Vec<(u8, usize)> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = is_kernel_stamp(i) {
            i += len;
            continue;
        }
        kept.push((bytes[i], i));
        i += 1;
    }
    let needle = needle.as_bytes();
    if needle.is_empty() {
        return Some(0);
    }
    kept.windows(needle.len())
        .find(|w| w.iter().map(|(b, _)| *b).eq(needle.iter().copied()))
        .map(|w| w[w.len() - 1].1 + 1)
}

#[cfg(test)]
mod echo_tests {
    use super::find_skipping_kernel_lines as find;

    #[test]
    fn kernel_lines_inside_an_echo_are_skipped() {
        let text =
            "tank> pool sta[   26.698838] BTRFS error (device sda): x\n[   26.7] more\ntus\nout";
        let end = find(text, "pool status").unwrap();
        assert_eq!(&text[end..], "\nout");
        assert_eq!(find("a pool status b", "pool status"), Some(13));
        assert_eq!(find("pool sta[not a stamp]tus", "pool status"), None);
        assert_eq!(find("nothing", "pool status"), None);
    }
}
