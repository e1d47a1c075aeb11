//! `opscom-import validate FILE [--json]` and `opscom-import headers`: offline, no network.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use opscom_csv::{ErrorKind, FileError, ImportFile, ReadOptions, RowOutcome};
use serde::Serialize;

use crate::exit;

/// What `validate --json` prints: one object, rows with problems streamed into `invalid_rows`.
#[derive(Serialize)]
struct Head<'a> {
    file: &'a str,
    encoding: String,
    header: &'a [String],
}

#[derive(Serialize)]
struct Tail {
    rows: u64,
    valid: u64,
    invalid: u64,
    file_error: Option<opscom_csv::ErrorSummary>,
    ok: bool,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    line: u64,
    reason: String,
    problems: &'a [opscom_csv::RowProblem],
}

/// Validates `path`: 0 valid, 1 content problems (listed), 2 cannot be opened or read.
pub fn run(path: &Path, json: bool) -> ExitCode {
    let name = path.display().to_string();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {name}: cannot open the file: {e}");
            return ExitCode::from(exit::CONFIG_OR_IO);
        }
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = crate::progress::bytes_bar(len);
    let result = match &bar {
        Some(bar) => check(bar.wrap_read(file), &name, json),
        None => check(file, &name, json),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {name}: cannot write the output: {e}");
            ExitCode::from(exit::CONFIG_OR_IO)
        }
    }
}

fn check<R: io::Read + io::Seek>(reader: R, name: &str, json: bool) -> io::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let opened = ImportFile::open(reader, name, &ReadOptions::default());
    let (mut rows, mut valid, mut invalid) = (0u64, 0u64, 0u64);
    let mut file_error: Option<FileError> = None;
    let mut head_written = false;
    match opened {
        Err(e) => file_error = Some(e),
        Ok(mut file) => {
            if json {
                let head = serde_json::to_string(&Head {
                    file: name,
                    encoding: file.encoding().to_string(),
                    header: file.header_raw(),
                })?;
                // Open the object and its row array; the tail closes it.
                write!(out, "{},\"invalid_rows\":[", &head[..head.len() - 1])?;
                head_written = true;
            }
            while let Some(row) = file.next_row() {
                match row {
                    Ok(RowOutcome::Valid(_)) => {
                        rows += 1;
                        valid += 1;
                    }
                    Ok(RowOutcome::Invalid(row)) => {
                        rows += 1;
                        invalid += 1;
                        if json {
                            if invalid > 1 {
                                out.write_all(b",")?;
                            }
                            serde_json::to_writer(
                                &mut out,
                                &JsonRow {
                                    line: row.line,
                                    reason: row.reason(),
                                    problems: &row.problems,
                                },
                            )?;
                        } else {
                            writeln!(out, "{name}:{}: {}", row.line, row.reason())?;
                        }
                    }
                    Err(e) => {
                        file_error = Some(e);
                        break;
                    }
                }
            }
        }
    }
    let io_error = file_error
        .as_ref()
        .is_some_and(|e| matches!(e.kind(), ErrorKind::Io(_)));
    let ok = file_error.is_none() && invalid == 0;
    if json {
        let tail = serde_json::to_string(&Tail {
            rows,
            valid,
            invalid,
            file_error: file_error.as_ref().map(FileError::summary),
            ok,
        })?;
        if head_written {
            writeln!(out, "],{}", &tail[1..])?;
        } else {
            let file = serde_json::to_string(name)?;
            writeln!(out, "{{\"file\":{file},\"invalid_rows\":[],{}", &tail[1..])?;
        }
    } else {
        if let Some(e) = &file_error {
            writeln!(out, "{e}")?;
        }
        let verdict = if ok {
            "valid"
        } else {
            "NOT importable as it is"
        };
        writeln!(
            out,
            "{name}: {rows} rows, {valid} valid, {invalid} with problems: {verdict}"
        )?;
    }
    out.flush()?;
    Ok(if io_error {
        ExitCode::from(exit::CONFIG_OR_IO)
    } else if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PROBLEMS)
    })
}

/// The table printed by `opscom-import headers`.
pub fn headers_table() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Column headers must equal one of the accepted names exactly (after removing a BOM and surrounding spaces)."
    );
    let _ = writeln!(
        out,
        "The column `{}` (from a failure report) is accepted and ignored.\n",
        opscom_schema::IMPORT_ERROR_COLUMN
    );
    let _ = writeln!(
        out,
        "{:<34} {:<44} {:<9} limit",
        "attribute", "accepted header names", "required"
    );
    for a in opscom_schema::attributes() {
        let names = a.possible_names.join(", ");
        let required = if a.required { "yes" } else { "no" };
        let inferred = if a.inferred { " (inferred)" } else { "" };
        let _ = writeln!(
            out,
            "{:<34} {:<44} {:<9} {}{inferred}",
            a.name, names, required, a.limit
        );
    }
    if opscom_schema::attributes().any(|a| a.inferred) {
        let _ = writeln!(
            out,
            "\n(inferred): OPSCOM's public API documentation does not show this name or limit; it is our best reading of it, and the API may differ."
        );
    }
    out
}
