//! `opscom-import status` and `history`: loads the configuration, asks the library
//! (`opscom_pipeline::status`) and prints its answer as text or JSON.

use std::path::Path;
use std::process::ExitCode;

use opscom_pipeline::held::{self, Action};
use opscom_pipeline::status;

use crate::exit;

/// `status --config C [TENANT] [--json]`.
pub fn status(config: &Path, tenant: Option<&str>, json: bool) -> ExitCode {
    let config = match status::load_config(config) {
        Ok(c) => c,
        Err(e) => return crate::config_failed(e),
    };
    match status::status(&config, tenant, std::time::SystemTime::now()) {
        Ok(report) if json => print_json(&report),
        Ok(report) => print!("{}", status::status_text(&report)),
        Err(e) => return unknown(&e),
    }
    ExitCode::SUCCESS
}

/// `history --config C TENANT [--limit N] [--json]`.
pub fn history(config: &Path, tenant: &str, limit: usize, json: bool) -> ExitCode {
    let config = match status::load_config(config) {
        Ok(c) => c,
        Err(e) => return crate::config_failed(e),
    };
    match status::history(&config, tenant, limit) {
        Ok(report) if json => print_json(&report),
        Ok(report) => print!("{}", status::history_text(&report)),
        Err(e) => return unknown(&e),
    }
    ExitCode::SUCCESS
}

/// `release`/`discard --config C TENANT FILE`.
pub fn held_request(config: &Path, tenant: &str, file: &str, action: Action) -> ExitCode {
    let config = match status::load_config(config) {
        Ok(c) => c,
        Err(e) => return crate::config_failed(e),
    };
    match held::request(&config, tenant, file, action) {
        Ok(path) => {
            let what = match action {
                Action::Release => "imported",
                Action::Discard => "moved to .bak without being imported",
            };
            println!(
                "{file} will be {what} by the next pass over {tenant} (within seconds while \
                 `run` watches the folder); asked through {}",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(held::RequestError::UnknownTenant(e)) => unknown(&e),
        Err(e @ held::RequestError::NotHeld { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::PROBLEMS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::CONFIG_OR_IO)
        }
    }
}

fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
}

fn unknown(e: &status::UnknownTenant) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(exit::CONFIG_OR_IO)
}
