//! `tank-agent`: the test client's init. As PID 1 it boots the guest and serves the serial
//! console ([`tank_test_agent::boot`]); with `--stdio` (on any machine) it serves standard
//! input and output with no system setup, for trying commands; started by the kernel as
//! `/sbin/modprobe` it fails at once (every module the image has is loaded at boot).
#![forbid(unsafe_code)]

use std::path::Path;

use tank_test_agent::agent::{Agent, State};
use tank_test_agent::console::Output;
use tank_test_agent::protocol::Fields;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if name == "modprobe" {
        std::process::exit(1);
    }
    if rustix::process::getpid().is_init() {
        tank_test_agent::boot::run();
    }
    if args.get(1).map(String::as_str) == Some("--stdio") {
        let out = Output::new(std::io::stdout());
        tank_test_agent::console::init_logging(out.clone());
        let about = Fields::new()
            .put("agent", "tank-agent")
            .put("version", tank_test_agent::VERSION);
        out.line(&format!("tank-agent ready {}", about.render()));
        let agent = Agent::new(
            State {
                listeners: Default::default(),
                address: None,
                about,
            },
            out,
        );
        agent.serve(std::io::stdin());
        return;
    }
    eprintln!(
        "tank-agent {}: the test client's init; run it as PID 1 in the test client image \
         (cargo xtask test builds it), or with --stdio to type commands here",
        tank_test_agent::VERSION
    );
    std::process::exit(2);
}
