//! The failure CSV: the upload's own header plus `import_error`, one row per failed user, written
//! as a stream (UTF-8 with BOM, CRLF) so memory does not grow with the number of failures.
//!
//! Every cell is passed through [`opscom_csv::formula::neutralise`] so no cell runs as a formula in
//! a spreadsheet; the importer undoes it with `restore` when the report is dropped back.

use std::io::Write;

use opscom_csv::formula::neutralise;

/// The name of the column that carries the reason a row failed.
pub const IMPORT_ERROR_COLUMN: &str = "import_error";

/// The UTF-8 byte-order mark Excel needs to read the file as UTF-8.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A failure CSV could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FailureCsvError {
    /// Writing to the destination failed (disk full, permission denied…).
    #[error("cannot write the failure CSV: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV encoder failed (in practice an I/O error underneath).
    #[error("cannot write the failure CSV at failed row {row}: {source}")]
    Csv {
        /// The 1-based number of the failed row being written (0 is the header).
        row: u64,
        /// What the encoder said.
        source: csv::Error,
    },
}

/// Writes the failure CSV one failed row at a time.
///
/// The header is the upload's header exactly as uploaded followed by `import_error`; when the
/// upload already has an `import_error` column (a report dropped back), that column is reused so
/// the report never grows a second one. Each row is padded (or cut) to the header's width; the
/// caller's reason names any extra cells.
#[derive(Debug)]
pub struct FailureCsvWriter<W: Write> {
    writer: csv::Writer<W>,
    width: usize,
    error_column: usize,
    rows: u64,
    row_buf: Vec<String>,
}

impl<W: Write> FailureCsvWriter<W> {
    /// Starts the file: writes the byte-order mark and the header row.
    pub fn new(mut w: W, header_raw: &[String]) -> Result<Self, FailureCsvError> {
        w.write_all(UTF8_BOM)?;
        let existing = header_raw.iter().position(|h| is_import_error_header(h));
        let mut header: Vec<String> = header_raw.to_vec();
        let error_column = match existing {
            Some(i) => i,
            None => {
                header.push(IMPORT_ERROR_COLUMN.to_owned());
                header.len() - 1
            }
        };
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(w);
        writer
            .write_record(header.iter().map(|h| neutralise(h).into_owned()))
            .map_err(|source| FailureCsvError::Csv { row: 0, source })?;
        Ok(FailureCsvWriter {
            writer,
            width: header.len(),
            error_column,
            rows: 0,
            row_buf: Vec::with_capacity(header.len()),
        })
    }

    /// Writes one failed row: the values as uploaded and the reason, prefixed with the line number
    /// of the upload where the row started.
    pub fn write_failure(
        &mut self,
        line: u64,
        values: &[String],
        reason: &str,
    ) -> Result<(), FailureCsvError> {
        self.rows += 1;
        self.row_buf.clear();
        for i in 0..self.width {
            if i == self.error_column {
                let text = format!("line {line}: {reason}");
                self.row_buf.push(neutralise(&text).into_owned());
            } else {
                let value = values.get(i).map(String::as_str).unwrap_or("");
                self.row_buf.push(neutralise(value).into_owned());
            }
        }
        self.writer
            .write_record(&self.row_buf)
            .map_err(|source| FailureCsvError::Csv {
                row: self.rows,
                source,
            })
    }

    /// Pushes every row written so far to the destination (a resumable report needs each row on
    /// disk before it is journalled).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    /// The destination.
    pub fn get_ref(&self) -> &W {
        self.writer.get_ref()
    }

    /// How many failed rows were written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// The number of columns of every row (header included).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Flushes the file and returns the destination (the caller fsyncs a file if it needs to).
    pub fn finish(self) -> Result<W, FailureCsvError> {
        self.writer
            .into_inner()
            .map_err(|e| FailureCsvError::Io(e.into_error()))
    }
}

/// Whether a header cell names the `import_error` column (exact, after a BOM and spaces).
fn is_import_error_header(cell: &str) -> bool {
    cell.trim_start_matches('\u{feff}').trim() == IMPORT_ERROR_COLUMN
}

/// The attachment name for an uploaded file's failures: `roster.csv` → `roster-failed.csv`.
///
/// Path separators and control characters are replaced, so the name is always a plain file name.
pub fn failure_file_name(upload_name: &str) -> String {
    let base = upload_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(upload_name);
    let stem = match base.rfind('.') {
        Some(dot) if dot > 0 && base[dot + 1..].eq_ignore_ascii_case("csv") => &base[..dot],
        _ => base,
    };
    let clean: String = stem
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let clean = clean.trim();
    let stem = if clean.is_empty() { "import" } else { clean };
    format!("{stem}-failed.csv")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn write(header: &[&str], rows: &[(u64, &[&str], &str)]) -> String {
        let mut w = FailureCsvWriter::new(Vec::new(), &strings(header)).unwrap();
        for (line, values, reason) in rows {
            w.write_failure(*line, &strings(values), reason).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn bom_crlf_header_plus_import_error_and_padding() {
        let out = write(
            &["unique_id", "email", "first_name"],
            &[
                (2, &["1", "a@x.org"], "first_name: required value is empty"),
                (
                    3,
                    &["2", "b@x.org", "Bo", "extra"],
                    "4 fields, header has 3: extra \"extra\"",
                ),
            ],
        );
        assert_eq!(
            out,
            "\u{feff}unique_id,email,first_name,import_error\r\n\
             1,a@x.org,,line 2: first_name: required value is empty\r\n\
             2,b@x.org,Bo,\"line 3: 4 fields, header has 3: extra \"\"extra\"\"\"\r\n"
        );
    }

    #[test]
    fn an_existing_import_error_column_is_reused() {
        let out = write(
            &["unique_id", "import_error", "email"],
            &[(
                2,
                &["1", "old reason", "bad"],
                "email: not an e-mail address",
            )],
        );
        assert_eq!(
            out,
            "\u{feff}unique_id,import_error,email\r\n\
             1,line 2: email: not an e-mail address,bad\r\n"
        );
    }

    #[test]
    fn formula_cells_are_neutralised() {
        let out = write(&["a", "b"], &[(2, &["=1+1", "@SUM(A1)"], "bad")]);
        assert!(out.contains("'=1+1,'@SUM(A1),line 2: bad\r\n"), "{out}");
    }

    #[test]
    fn failure_file_names() {
        assert_eq!(failure_file_name("roster.csv"), "roster-failed.csv");
        assert_eq!(failure_file_name("Roster.CSV"), "Roster-failed.csv");
        assert_eq!(failure_file_name("roster"), "roster-failed.csv");
        assert_eq!(failure_file_name("a/b\\c.d.csv"), "c.d-failed.csv");
        assert_eq!(failure_file_name(".csv"), ".csv-failed.csv");
        assert_eq!(failure_file_name("x\ny.csv"), "x_y-failed.csv");
        assert_eq!(failure_file_name(""), "import-failed.csv");
    }
}
