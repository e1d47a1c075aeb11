//! `opscom-import demo`: the embedded default. A temporary folder with a drop folder holding a
//! built-in sample roster, the sandbox API in process, the outbox mailer; one pass, then a
//! summary of what happened and where to look.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use opscom_pipeline::Service;
use opscom_pipeline::config::{ApiSettings, Config, MailSettings, Tenant};
use opscom_sandbox::{DEFAULT_TOKEN, SandboxConfig};
use secrecy::SecretString;
use tokio::sync::watch;

/// The sample: twelve users, six with deliberate problems (bad e-mail, US-style date, a
/// province spelled out, a repeated id, an unknown login source, an e-mail already taken).
const SAMPLE: &str = include_str!("demo/roster.csv");
const SAMPLE_NAME: &str = "roster.csv";
const TENANT: &str = "demo-university";

pub async fn run() -> ExitCode {
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> anyhow::Result<()> {
    let root = tempfile::Builder::new()
        .prefix("opscom-import-demo-")
        .tempdir()?
        .keep();
    let drop_dir = root.join("sftp").join(TENANT).join("upload");
    let state_dir = root.join("state");
    let outbox = root.join("outbox");
    for dir in [&drop_dir, &state_dir, &outbox] {
        std::fs::create_dir_all(dir)?;
    }
    let upload = drop_dir.join(SAMPLE_NAME);
    std::fs::write(&upload, SAMPLE)?;
    // As if the client's upload finished a minute ago: past the settle time.
    std::fs::File::options()
        .write(true)
        .open(&upload)?
        .set_modified(SystemTime::now() - Duration::from_secs(60))?;

    let sandbox = opscom_sandbox::spawn(SandboxConfig::default()).await?;
    let tenant = Tenant::new(
        TENANT,
        drop_dir.clone(),
        state_dir.join("tenants").join(TENANT),
        "parking@demo-university.example",
        "registrar@demo-university.example",
    )
    .with_api(
        ApiSettings::new(sandbox.base_url(), SecretString::from(DEFAULT_TOKEN))
            .with_token_source("api_token in the configuration file"),
    )
    .with_concurrency(4);
    let config = Config::new(
        state_dir.clone(),
        MailSettings::Outbox {
            dir: outbox.clone(),
        },
        vec![tenant],
    );
    let service = Service::from_config(config).map_err(|problems| {
        anyhow::anyhow!(
            "{}",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.reason))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let (_stop, shutdown) = watch::channel(false);
    let report = service.once(shutdown).await;
    let users = sandbox.users();
    sandbox.shutdown().await?;

    println!("opscom-import demo: one pass over tenant `{TENANT}` with a built-in sample");
    println!("  API: an in-process OPSCOM sandbox; mail: an outbox folder\n");
    for pass in &report.tenants {
        for r in &pass.files {
            println!(
                "{}: {} rows, {} imported, {} failed ({})",
                r.file, r.rows_total, r.rows_ok, r.rows_failed, r.outcome
            );
        }
        if let Some(fault) = &pass.fault {
            anyhow::bail!("the pass stopped: {fault}");
        }
    }
    println!("users now in the sandbox API: {}", users.len());

    let bak = drop_dir.join(".bak");
    let eml = newest_file(&outbox, "eml")?;
    println!("\nWhere to look:");
    println!(
        "  the archived upload:   {}",
        newest_file(&bak, "csv")?.display()
    );
    println!("  the failure e-mail:    {}", eml.display());
    let csv = root.join("roster-failed.csv");
    match extract_attachment(&std::fs::read(&eml)?) {
        Some(bytes) => {
            std::fs::write(&csv, bytes)?;
            println!("  its attached CSV:      {}", csv.display());
        }
        None => println!("  (the e-mail has no attachment)"),
    }
    println!(
        "  the client's results:  {}",
        newest_file(&drop_dir.join("results"), "txt")?.display()
    );
    println!(
        "  per-file records:      {}",
        state_dir
            .join(opscom_pipeline::record::RECORDS_FILE)
            .display()
    );
    println!(
        "\nEverything is under {}; delete it when done.",
        root.display()
    );
    Ok(())
}

/// The most recently modified file with extension `ext` in `dir`.
fn newest_file(dir: &Path, ext: &str) -> anyhow::Result<PathBuf> {
    let mut files: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    files.sort();
    files
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow::anyhow!("no .{ext} file in {}", dir.display()))
}

/// The first base64 attachment of a MIME message, decoded (enough for our own outbox files).
fn extract_attachment(eml: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(eml);
    let start = text.find("Content-Disposition: attachment")?;
    let part = &text[start..];
    let body_start = part.find("\r\n\r\n").map(|i| i + 4)?;
    let body = &part[body_start..];
    let end = body.find("\r\n--").unwrap_or(body.len());
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}
