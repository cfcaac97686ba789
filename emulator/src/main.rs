//! `trackcore-emulator`: run the Intercom `/events` emulator as a process.
//!
//! The first line on stdout is `trackcore-emulator listening on http://127.0.0.1:PORT`,
//! flushed at once so test harnesses can read the port. The second names the
//! inspector page; then comes one line per Intercom API request unless `--quiet`.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;
use trackcore_emulator::{Emulator, EmulatorConfig};

/// A local emulator of Intercom's Data Events API (POST /events), for tests and development.
#[derive(Debug, Parser)]
#[command(name = "trackcore-emulator", version)]
struct Cli {
    /// Port on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 8089)]
    port: u16,
    /// Accepted bearer token (repeatable). Default: test-token.
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Calls per minute, enforced in 10-second windows of ceil(N/6); 0 = unlimited.
    #[arg(long, default_value_t = trackcore_emulator::DEFAULT_RATE_LIMIT_PER_MINUTE)]
    rate_limit_per_minute: u32,
    /// Active event-name cap; a new name past it gets 422 event_name_limit_reached. 0 = no cap.
    #[arg(long, default_value_t = trackcore_emulator::DEFAULT_MAX_EVENT_NAMES)]
    max_event_names: usize,
    /// Answer 404 "User Not Found" for events of unknown contacts.
    #[arg(long)]
    require_known_users: bool,
    /// A known contact by external id / user_id (repeatable).
    #[arg(long = "known-user-id")]
    known_user_ids: Vec<String>,
    /// A known contact by email (repeatable).
    #[arg(long = "known-email")]
    known_emails: Vec<String>,
    /// Fixed delay before every API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Random extra delay, uniform in 0..=J milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Probability (0..1) of a random 500/503 on POST /events.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Probability (0..1) of closing a POST /events connection without a response.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Seed for fault injection (reproducible runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Exit when standard input reaches end-of-file (handy for parent processes).
    #[arg(long)]
    exit_on_stdin_close: bool,
    /// Print nothing per request (by default one line per Intercom API request on stdout).
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    for (flag, p) in [("--error-rate", cli.error_rate), ("--drop-rate", cli.drop_rate)] {
        if !(0.0..=1.0).contains(&p) {
            eprintln!("trackcore-emulator: {flag} must be between 0 and 1, got {p}");
            return ExitCode::from(2);
        }
    }
    let config = EmulatorConfig {
        port: cli.port,
        tokens: if cli.tokens.is_empty() {
            vec![trackcore_emulator::DEFAULT_TOKEN.to_string()]
        } else {
            cli.tokens
        },
        rate_limit_per_minute: cli.rate_limit_per_minute,
        max_event_names: cli.max_event_names,
        require_known_users: cli.require_known_users,
        known_user_ids: cli.known_user_ids,
        known_emails: cli.known_emails,
        latency_ms: cli.latency_ms,
        latency_jitter_ms: cli.latency_jitter_ms,
        error_rate: cli.error_rate,
        drop_rate: cli.drop_rate,
        seed: cli.seed,
        log_requests: !cli.quiet,
    };
    let emu = match Emulator::start(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("trackcore-emulator: cannot listen on 127.0.0.1:{}: {e}", cli.port);
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "trackcore-emulator listening on {}", emu.base_url());
        let _ = writeln!(out, "inspector: open {}/ in a browser", emu.base_url());
        let _ = out.flush();
    }

    let waiter = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trackcore-emulator: cannot start signal handling: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdin_closed = async move {
        if !cli.exit_on_stdin_close {
            return std::future::pending::<()>().await;
        }
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 1024];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        })
        .await;
    };
    waiter.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
            _ = stdin_closed => {}
        }
    });
    drop(emu);
    // The blocking stdin reader may still be parked in read(); do not wait for it.
    waiter.shutdown_background();
    ExitCode::SUCCESS
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await
}
