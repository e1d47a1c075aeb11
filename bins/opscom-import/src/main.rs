//! `opscom-import`: the CLI of the managed user import. Parses flags, builds the pieces from the
//! library crates, runs one command and maps its outcome to an exit status. Little else.

#[cfg(feature = "demo")]
mod demo;
mod progress;
mod status;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use opscom_pipeline::Service;
use opscom_pipeline::config::{Config, ConfigError};
use opscom_pipeline::held::Action;
use tokio::sync::watch;

/// The command line; `ABOUT` opens `--help`.
#[derive(Debug, Parser)]
#[command(name = "opscom-import", version, about = ABOUT, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// What the program does, for an operator: the first lines of `--help`.
const ABOUT: &str = "Imports your clients' user lists into OPSCOM: every CSV file a client uploads to its \
SFTP folder is checked, each user is created or updated, and the client gets an e-mail listing the \
users that could not be imported, with the reason. Try `opscom-import demo` to see one import.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The service: scans every drop folder each `interval` and reacts to new files at once;
    /// stops cleanly on SIGINT/SIGTERM.
    Run {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// One pass over every tenant, then exit: 0 all handled, 3 something waits, 2 bad config.
    Once {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Offline check of one CSV: headers and every row. 0 valid, 1 problems found, 2 unreadable.
    Validate {
        /// The CSV file.
        file: PathBuf,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print every attribute with its accepted header names, whether it is required, and limits.
    Headers,
    /// Run a full import of a built-in sample against an in-process sandbox API and a mail
    /// outbox in a temporary folder, and show what happened.
    Demo,
    /// Each tenant's last file, files waiting and why, unsent reports, alerts, last problem.
    /// Reads only; works while `run` runs. 0, or 2 bad config or unknown tenant.
    Status {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Only this tenant.
        tenant: Option<String>,
        /// Print the answer as JSON on stdout (see docs/operating.md, "Status and history").
        #[arg(long)]
        json: bool,
    },
    /// Imports a file held for approval (`hold_changed_percent`), as the client's
    /// `NAME.approve` would: the service acts on its next pass. 0, 1 not held, 2 bad config.
    Release {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The tenant.
        tenant: String,
        /// The held file's name (as in `status`).
        file: String,
    },
    /// Drops a file held for approval into `.bak` without importing it, as the client's
    /// `NAME.discard` would. 0, 1 not held, 2 bad config.
    Discard {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The tenant.
        tenant: String,
        /// The held file's name (as in `status`).
        file: String,
    },
    /// A tenant's last files from the records, newest first. 0, or 2 bad config or unknown tenant.
    History {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The tenant.
        tenant: String,
        /// How many files at most.
        #[arg(long, default_value_t = opscom_pipeline::status::DEFAULT_HISTORY_LIMIT)]
        limit: usize,
        /// Print the answer as JSON on stdout (see docs/operating.md, "Status and history").
        #[arg(long)]
        json: bool,
    },
}

/// Exit statuses of the contract (`docs/product-spec.md`).
mod exit {
    pub const PROBLEMS: u8 = 1;
    pub const CONFIG_OR_IO: u8 = 2;
    pub const WAITS: u8 = 3;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.command);
    match cli.command {
        Command::Validate { file, json } => validate::run(&file, json),
        Command::Headers => {
            print!("{}", validate::headers_table());
            ExitCode::SUCCESS
        }
        Command::Once { config } => runtime().block_on(once(config)),
        Command::Run { config } => runtime().block_on(run(config)),
        Command::Demo => demo_command(),
        Command::Status {
            config,
            tenant,
            json,
        } => status::status(&config, tenant.as_deref(), json),
        Command::History {
            config,
            tenant,
            limit,
            json,
        } => status::history(&config, &tenant, limit, json),
        Command::Release {
            config,
            tenant,
            file,
        } => status::held_request(&config, &tenant, &file, Action::Release),
        Command::Discard {
            config,
            tenant,
            file,
        } => status::held_request(&config, &tenant, &file, Action::Discard),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn init_logging(format: LogFormat, command: &Command) {
    use tracing_subscriber::EnvFilter;
    // The service logs info by default; the interactive commands only warnings.
    let default = match command {
        Command::Run { .. } | Command::Once { .. } => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_env("OPSCOM_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn load(path: &std::path::Path) -> Result<Service, ExitCode> {
    let config = Config::load(path).map_err(config_failed)?;
    Service::from_config(config).map_err(|problems| {
        config_failed(ConfigError {
            path: path.to_owned(),
            problems,
        })
    })
}

fn config_failed(e: ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(exit::CONFIG_OR_IO)
}

/// A shutdown signal that turns true on SIGINT or SIGTERM.
fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping: finishing or checkpointing the files in hand");
        let _ = tx.send(true);
    });
    rx
}

async fn once(config: PathBuf) -> ExitCode {
    let service = match load(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let service = match progress::Bar::for_terminal() {
        Some(bar) => service.with_progress(Arc::new(bar)),
        None => service,
    };
    let report = service.once(shutdown_on_signals()).await;
    for pass in &report.tenants {
        opscom_pipeline::log_pass(pass);
    }
    if report.waits() {
        ExitCode::from(exit::WAITS)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run(config: PathBuf) -> ExitCode {
    let service = match load(&config) {
        Ok(s) => Arc::new(s),
        Err(code) => return code,
    };
    // Bound before the loop starts: a port in use is a start-up error (exit 2).
    let _metrics = match service.serve_metrics().await {
        Ok(server) => server,
        Err(problems) => {
            return config_failed(ConfigError {
                path: config,
                problems,
            });
        }
    };
    reload_on_sighup(Arc::clone(&service), config);
    match service.run(shutdown_on_signals()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::CONFIG_OR_IO)
        }
    }
}

/// On SIGHUP (`systemctl reload`), reads the configuration again and hands it to the running
/// service; a configuration with any problem is refused whole, each problem logged, and the
/// running one stays in force.
fn reload_on_sighup(service: Arc<Service>, path: PathBuf) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: reloading needs a restart");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!(config = %path.display(), "reloading the configuration");
            let loaded = Config::load(&path).map_err(|e| e.problems);
            match loaded.and_then(|config| service.reload(config)) {
                Ok(r) => tracing::info!(
                    added = ?r.added,
                    removed = ?r.removed,
                    changed = ?r.changed,
                    "configuration reloaded"
                ),
                Err(problems) => {
                    for p in &problems {
                        tracing::error!(key = %p.key, reason = %p.reason, "configuration problem");
                    }
                    tracing::error!(
                        problems = problems.len(),
                        "the new configuration is refused; the running one stays in force"
                    );
                }
            }
        }
    });
}

#[cfg(feature = "demo")]
fn demo_command() -> ExitCode {
    runtime().block_on(demo::run())
}

/// A build without the `demo` feature (a lean production binary) says how to get it.
#[cfg(not(feature = "demo"))]
fn demo_command() -> ExitCode {
    eprintln!(
        "error: this opscom-import was built without the demo (--no-default-features); \
         build it with the default features to run `opscom-import demo`"
    );
    ExitCode::from(exit::CONFIG_OR_IO)
}
