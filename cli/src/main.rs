//! `trackcore`: send Intercom events from a shell, a cron job or a JSONL file,
//! and bridge other systems' webhooks into events by rules in a file.
//! Every delivery decision is the core's (`trackcore` crate); see docs/cli.md.

mod bridge;
mod connect;
mod rules;
mod send;
mod signature;

use clap::{Parser, Subcommand};

/// Exit codes, the same for every command (docs/cli.md).
pub mod exit {
    /// Delivered (or, for checks, everything valid).
    pub const OK: i32 = 0;
    /// Intercom refused, retries ran out, or something in a file was invalid.
    pub const FAILED: i32 = 1;
    /// The command line, a file or the event itself is wrong (nothing was sent).
    pub const USAGE: i32 = 2;
    /// Intercom refused the access token.
    pub const AUTH: i32 = 3;
    /// Intercom did not confirm within --timeout.
    pub const TIMEOUT: i32 = 4;
    /// Same as USAGE: an event that fails validation is never sent.
    pub const INVALID: i32 = USAGE;
}

#[derive(Debug, Parser)]
#[command(name = "trackcore", version, about = "Send Intercom events without code: from a shell, a file, or other systems' webhooks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send one event, or every line of a JSONL file (--jsonl).
    Send(send::SendArgs),
    /// Turn incoming webhooks into events by the rules in a file.
    Bridge(bridge::BridgeArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Send(a) => {
            connect::init_log(false);
            send::run(a)
        }
        Cmd::Bridge(a) => bridge::run(a),
    };
    std::process::exit(code);
}
