//! The client's `results/` folder: for every file handled, `NAME-summary.txt`, and
//! `NAME-failed.csv` or `NAME-fixed.csv` when there are, so that a client whose mail system
//! quarantined the report still has it, over the same SFTP login.
//!
//! Results are a copy, never the commitment: a results folder that is a link or a file is never
//! followed or overwritten, and its client is told once how to fix it; any other failure to
//! write is logged. Neither blocks nor repeats an import.

use std::fs::File;
use std::path::Path;
use std::time::SystemTime;

use opscom_mail::{Report, failure_file_name, fixed_file_name, summary_text};
use opscom_scheduler::{DropFolder, FolderError};
use tracing::{debug, warn};

use crate::markers;
use crate::report::ReportSink;

/// What is written for one file.
pub(crate) struct ResultFiles<'a> {
    /// The file's name as uploaded.
    pub file_name: &'a str,
    /// Its report: `NAME-summary.txt` is its plain text.
    pub report: &'a Report,
    /// The failure CSV (`NAME-failed.csv`), when rows failed.
    pub failed_csv: Option<&'a Path>,
    /// The corrected file (`NAME-fixed.csv`), when there is one.
    pub fixed_csv: Option<&'a Path>,
}

/// `roster.csv` → `roster`: the stem the results are named after.
pub(crate) fn stem(file_name: &str) -> &str {
    let n = file_name.len();
    if n > 4 && file_name.is_char_boundary(n - 4) && file_name[n - 4..].eq_ignore_ascii_case(".csv")
    {
        &file_name[..n - 4]
    } else {
        file_name
    }
}

/// Writes the results of one file into `home`'s `results/`; never fails the caller.
pub(crate) fn write(
    home: &DropFolder,
    reports: &ReportSink,
    tenant: &str,
    files: &ResultFiles<'_>,
    now: SystemTime,
) {
    let at = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let summary = summary_text(files.report, at);
    let mut written = Vec::new();
    let mut outcome = home
        .write_result(
            &format!("{}-summary.txt", stem(files.file_name)),
            &mut summary.as_bytes(),
            now,
        )
        .map(|name| written.push(name));
    let copies = [
        (files.failed_csv, failure_file_name(files.file_name)),
        (files.fixed_csv, fixed_file_name(files.file_name)),
    ];
    for (path, name) in copies {
        let Some(path) = path else { continue };
        if outcome.is_err() {
            break;
        }
        outcome = match File::open(path) {
            Ok(mut f) => home
                .write_result(&name, &mut f, now)
                .map(|name| written.push(name)),
            Err(e) => {
                warn!(tenant = %tenant, file = %files.file_name, error = %e, "cannot read a result to copy into results/");
                Ok(())
            }
        };
    }
    match outcome {
        Ok(()) => {
            debug!(tenant = %tenant, file = %files.file_name, results = ?written, "results written");
            markers::subfolder_fixed(home, tenant, opscom_scheduler::RESULTS_DIR);
        }
        Err(e @ FolderError::NotAFolder { .. }) => {
            warn!(tenant = %tenant, file = %files.file_name, error = %e, "results not written; the report is still e-mailed");
            markers::tell_subfolder_once(home, reports, tenant, opscom_scheduler::RESULTS_DIR, now);
        }
        Err(e) => {
            warn!(tenant = %tenant, file = %files.file_name, error = %e, "results not written; the report is still e-mailed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_named_after_the_files_stem() {
        assert_eq!(stem("roster.csv"), "roster");
        assert_eq!(stem("Roster.CSV"), "Roster");
        assert_eq!(stem("roster.xlsx"), "roster.xlsx");
        assert_eq!(stem("é.csv"), "é");
        assert_eq!(stem(".csv"), ".csv");
    }
}
