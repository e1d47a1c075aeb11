//! The `opscom-sandbox` binary: runs the sandbox API on a port with latency and fault options.
//!
//! The first line on stdout is `listening on http://ADDRESS:PORT` (with `--port 0`, the port the
//! system chose). SIGINT or SIGTERM stops it gracefully.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use opscom_sandbox::{ErrorStatus, SandboxConfig, UserType};

/// An OPSCOM Push API look-alike for demos, tests and benchmarks. Not for production data.
#[derive(Debug, Parser)]
#[command(name = "opscom-sandbox", version)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to bind; 0 picks a free one (printed on the first line of stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// An accepted API token (repeatable, or comma-separated in the variable). Default: the
    /// sandbox's well-known demo token.
    #[arg(
        long = "token",
        env = "OPSCOM_SANDBOX_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    tokens: Vec<String>,
    /// A token known but without push permission (push answers 9002).
    #[arg(long = "pull-only-token", hide_env_values = true)]
    pull_only_tokens: Vec<String>,
    /// A login-source code configured on the site (repeatable). Default: OPSCOM.
    #[arg(long = "login-source", value_delimiter = ',')]
    login_sources: Vec<String>,
    /// A user type as ID=NAME (repeatable). Default: 1=Staff, 2=Student, 6=Visitor.
    #[arg(long = "user-type", value_parser = parse_user_type)]
    user_types: Vec<UserType>,
    /// Delay before every API answer, e.g. `50ms`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Share of API requests answered 503, from 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Requests per second past which the answer is 429 with Retry-After.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// The Retry-After sent with a 429, in seconds.
    #[arg(long, default_value_t = 1)]
    retry_after: u32,
    /// HTTP status of error bodies: 200 or 400.
    #[arg(long, default_value = "200", value_parser = parse_error_status)]
    error_status: ErrorStatus,
    /// Creating a user needs email (9016), first_name (9017) and last_name (9018).
    #[arg(long)]
    require_names_on_create: bool,
    /// How many received requests `GET /_sandbox/requests` keeps.
    #[arg(long, default_value_t = 100_000)]
    request_log_limit: usize,
}

fn parse_user_type(value: &str) -> Result<UserType, String> {
    let (id, name) = value
        .split_once('=')
        .ok_or_else(|| format!("expected ID=NAME, got {value:?}"))?;
    let id = id
        .trim()
        .parse()
        .map_err(|_| format!("{id:?} is not a numeric id"))?;
    Ok(UserType {
        id,
        name: name.trim().to_owned(),
    })
}

fn parse_error_status(value: &str) -> Result<ErrorStatus, String> {
    match value {
        "200" => Ok(ErrorStatus::Ok200),
        "400" => Ok(ErrorStatus::BadRequest400),
        other => Err(format!("{other:?}: expected 200 or 400")),
    }
}

fn config(args: &Args) -> SandboxConfig {
    let mut config = SandboxConfig::default()
        .pull_only_tokens(args.pull_only_tokens.clone())
        .latency(args.latency)
        .fail_rate(args.fail_rate)
        .error_status(args.error_status)
        .require_names_on_create(args.require_names_on_create)
        .request_log_limit(args.request_log_limit);
    if !args.tokens.is_empty() {
        config = config.tokens(args.tokens.clone());
    }
    if !args.login_sources.is_empty() {
        config = config.login_sources(args.login_sources.clone());
    }
    if !args.user_types.is_empty() {
        config = config.user_types(args.user_types.clone());
    }
    if let Some(rate) = args.rate_limit {
        config = config.rate_limit(rate, args.retry_after);
    }
    config
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = config(&args);
    let listener = tokio::net::TcpListener::bind((args.bind, args.port))
        .await
        .with_context(|| format!("cannot bind {}:{}", args.bind, args.port))?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{address}").context("cannot write to stdout")?;
        stdout.flush().context("cannot write to stdout")?;
    }
    tracing::info!(%address, ?config, "sandbox started");
    opscom_sandbox::serve(config, listener, shutdown_signal())
        .await
        .context("the sandbox server failed")?;
    tracing::info!("sandbox stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("opscom-sandbox: {error:#}");
            ExitCode::FAILURE
        }
    }
}
