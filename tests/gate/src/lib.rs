//! Gates for test suites that need something of the host (root, a kernel driver, a tool).
//!
//! A gated suite runs when its variable is `1`. Otherwise it is skipped: the test says why on
//! stderr and appends a line to the file `TANK_SKIP_LOG` names, so `cargo xtask test` counts it
//! apart from the passed ones. Under `TANK_REQUIRE_ALL=1` (which `cargo xtask test` sets,
//! together with every gate variable) a suite that cannot run because a tool is missing fails
//! with the line that installs it, instead of passing unseen. Only a fact of the host that no
//! package changes (no IPv6 loopback, say) may still skip there.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The variable under which a missing tool fails its test instead of skipping it.
pub const REQUIRE_ALL: &str = "TANK_REQUIRE_ALL";
/// The variable naming the file where skips are recorded.
pub const SKIP_LOG: &str = "TANK_SKIP_LOG";

/// How skips are handled: read from the environment by the free functions.
struct Policy {
    require_all: bool,
    log: Option<PathBuf>,
}

impl Policy {
    fn from_env() -> Policy {
        Policy {
            require_all: std::env::var(REQUIRE_ALL).as_deref() == Ok("1"),
            log: std::env::var_os(SKIP_LOG).map(PathBuf::from),
        }
    }

    fn skip(&self, test: &str, why: &str) {
        eprintln!("skipped: {test}: {why}");
        if let Some(path) = &self.log {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{test}: {why}");
            }
        }
    }

    fn missing(&self, test: &str, what: &str, package: &str) {
        let why = format!("{what}; install it with: apt-get install -y {package}");
        if self.require_all {
            panic!("{test} cannot run: {why}");
        }
        self.skip(test, &why);
    }
}

/// Whether the suite gated by `var` is to run (`var=1`); records a skip naming `test` and
/// `needs` otherwise.
pub fn enabled(var: &str, test: &str, needs: &str) -> bool {
    if std::env::var(var).as_deref() == Ok("1") {
        return true;
    }
    skip(test, &format!("set {var}=1 to run it (needs {needs})"));
    false
}

/// Records that `test` (or a part of it) did not run, and why.
pub fn skip(test: &str, why: &str) {
    Policy::from_env().skip(test, why)
}

/// Whether `program` can be started (found on PATH). When it cannot: under
/// `TANK_REQUIRE_ALL=1` this panics with the install line for `package`; otherwise it records a
/// skip of `test` and returns false.
pub fn tool(test: &str, program: &str, package: &str) -> bool {
    if on_path(program) {
        return true;
    }
    missing(test, &format!("{program} is not installed"), package);
    false
}

/// Something `test` needs is missing, and `package` brings it: fails under
/// `TANK_REQUIRE_ALL=1`, records a skip otherwise.
pub fn missing(test: &str, what: &str, package: &str) {
    Policy::from_env().missing(test, what, package)
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v '{program}' >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path() {
        assert!(on_path("sh"));
        assert!(!on_path("tank-no-such-program"));
    }

    #[test]
    fn a_missing_tool_fails_with_the_install_line_when_all_is_required() {
        let policy = Policy {
            require_all: true,
            log: None,
        };
        let caught = std::panic::catch_unwind(|| policy.missing("t", "x is missing", "pkg-x"));
        let err = caught.expect_err("a missing tool must fail the test");
        let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(
            text,
            "t cannot run: x is missing; install it with: apt-get install -y pkg-x"
        );
    }

    #[test]
    fn skips_are_recorded() {
        let path = std::env::temp_dir().join(format!("tank-skips-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let policy = Policy {
            require_all: false,
            log: Some(path.clone()),
        };
        policy.missing("t", "x is missing", "pkg-x");
        policy.skip("u", "no IPv6");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "t: x is missing; install it with: apt-get install -y pkg-x\nu: no IPv6\n"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
