//! [`fixed_header_copy`]: a copy of a file rejected for unknown headers, with only those header
//! cells renamed to the accepted names they are respellings of. Every other byte is copied as is.

use crate::error::UnknownHeader;
use crate::header::{HeaderMap, clean};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::Range;

/// The longest header record read (as [`crate::ReadOptions::max_record_bytes`]' default): a
/// longer one is not a header this function corrects.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// Writes to `output` a copy of `input` (a file whose [`crate::Rejection`] listed `fixes` as
/// its [`crate::Rejection::headers`]) with each unknown header cell replaced by its
/// [`UnknownHeader::exact_fix`]; returns the number of bytes written.
///
/// Only the header record changes, and in it only the cells of `fixes` (the whole cell: its
/// quotes and surrounding spaces too; the accepted names are plain ASCII and need no quotes). Every
/// other byte is copied unchanged: a byte-order mark, an Excel `sep=,` line before the header, the other header cells as written, the header's own line end (`\r\n`,
/// `\n` or `\r`), and every data row. The copy is streamed: memory holds the header record only
/// (at most [`MAX_HEADER_BYTES`]), whatever the file's size.
///
/// Encodings: UTF-8 (with or without a byte-order mark) and Windows-1252 (the names written are
/// ASCII, which is the same in both). A UTF-16 file is refused (see below).
///
/// # Errors
///
/// An error of kind [`io::ErrorKind::InvalidInput`], **with nothing written to `output`**, when
/// the copy cannot be made: `fixes` is empty or one of them has no `exact_fix` (so the file cannot
/// be corrected by renaming alone), a fix's column does not hold its `given` header (`fixes`
/// belong to another file), the renamed header would still be refused (another problem of the
/// header: a required column missing, a duplicate), the file is UTF-16, or there is no header
/// record within [`MAX_HEADER_BYTES`]. Any other kind is an I/O error of `input` or `output`
/// (then `output` may hold part of the copy and should be discarded).
///
/// ```
/// use opscom_csv::{ImportFile, ReadOptions, fixed_header_copy};
///
/// let csv = "unique_id,login_source,\"First Name\",E-Mail\r\n1,OPSCOM,Ann,ann@example.org\r\n";
/// let err = ImportFile::open(std::io::Cursor::new(csv), "roster.csv", &ReadOptions::default())
///     .unwrap_err();
/// let fixes = err.rejection().and_then(|r| r.header_fixes()).expect("every header has a fix");
/// let mut fixed = Vec::new();
/// fixed_header_copy(csv.as_bytes(), &mut fixed, fixes)?;
/// assert_eq!(
///     String::from_utf8(fixed).unwrap(),
///     "unique_id,login_source,first_name,email\r\n1,OPSCOM,Ann,ann@example.org\r\n"
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn fixed_header_copy(
    input: impl Read,
    mut output: impl Write,
    fixes: &[UnknownHeader],
) -> io::Result<u64> {
    if fixes.is_empty() {
        return Err(invalid("there is no unknown header to rename"));
    }
    if let Some(h) = fixes.iter().find(|h| h.exact_fix.is_none()) {
        return Err(invalid(&format!(
            "the header `{}` (column {}) has no exact fix: the file cannot be corrected by renaming alone",
            h.given,
            h.column + 1
        )));
    }
    let mut input = BufReader::with_capacity(64 * 1024, input);
    // Everything before the header's cells: a BOM, a `sep=,` line.
    let mut prefix: Vec<u8> = Vec::new();
    let head = input.fill_buf()?;
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(invalid(
            "the file is UTF-16: its header cannot be renamed in place",
        ));
    }
    if head.starts_with(b"\xEF\xBB\xBF") {
        prefix.extend_from_slice(b"\xEF\xBB\xBF");
        input.consume(3);
    }
    let mut seen_sep = false;
    let (record, cells, terminator) = loop {
        let (record, cells, terminator) = read_record(&mut input)?;
        if cells.is_empty() && terminator.is_empty() {
            return Err(invalid("the file has no header row"));
        }
        let texts: Vec<String> = cells
            .iter()
            .map(|c| cell_text(&record[c.clone()]))
            .collect();
        let sep = !seen_sep
            && texts.len() == 2
            && texts[1].trim().is_empty()
            && clean(&texts[0]) == "sep=";
        if sep {
            seen_sep = true;
            prefix.extend_from_slice(&record);
            prefix.extend_from_slice(&terminator);
            continue;
        }
        break (record, cells, terminator);
    };
    // Check everything before writing anything.
    let mut texts: Vec<String> = cells
        .iter()
        .map(|c| cell_text(&record[c.clone()]))
        .collect();
    for fix in fixes {
        let matches = cells
            .get(fix.column)
            .is_some_and(|c| cell_is(&record[c.clone()], &fix.given));
        if !matches {
            return Err(invalid(&format!(
                "column {} of the header is not `{}`: the fixes are not this file's",
                fix.column + 1,
                fix.given
            )));
        }
    }
    for fix in fixes {
        texts[fix.column] = fix.exact_fix.unwrap_or_default().to_owned();
    }
    if let Err(rejection) = HeaderMap::from_header(&texts, 1) {
        return Err(invalid(&format!(
            "the renamed header would still be refused: {}",
            rejection.reason
        )));
    }
    let mut written = 0u64;
    let mut put = |bytes: &[u8], output: &mut dyn Write| -> io::Result<()> {
        output.write_all(bytes)?;
        written += bytes.len() as u64;
        Ok(())
    };
    put(&prefix, &mut output)?;
    let mut at = 0;
    for (i, range) in cells.iter().enumerate() {
        if let Some(fix) = fixes.iter().find(|f| f.column == i) {
            put(&record[at..range.start], &mut output)?;
            put(fix.exact_fix.unwrap_or_default().as_bytes(), &mut output)?;
            at = range.end;
        }
    }
    put(&record[at..], &mut output)?;
    put(&terminator, &mut output)?;
    let rest = io::copy(&mut input, &mut output)?;
    output.flush()?;
    Ok(written + rest)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_owned())
}

/// Where the record reader is within a cell.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a cell.
    Start,
    /// In a cell that did not open with a quote (a quote in it is a character).
    Unquoted,
    /// Inside quotes.
    Quoted,
    /// Just after a quote inside quotes: the end of the quoted value, or the first of `""`.
    Closed,
}

/// One record as read: its bytes (without the line end), its cells' ranges, its line end.
type RawRecord = (Vec<u8>, Vec<Range<usize>>, Vec<u8>);

/// Reads one CSV record's bytes (without its line end), its cells' byte ranges (each cell whole:
/// quotes and spaces included) and its line end (`\r\n`, `\n`, `\r`, or empty at the end of the
/// input). A line break inside quotes belongs to the record.
fn read_record(input: &mut impl BufRead) -> io::Result<RawRecord> {
    let mut record = Vec::new();
    let mut cells = Vec::new();
    let mut state = State::Start;
    let mut cell_start = 0;
    let mut terminator = Vec::new();
    'read: loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let mut used = 0;
        for &b in buf {
            if state != State::Quoted && (b == b'\n' || b == b'\r') {
                terminator.push(b);
                used += 1;
                break;
            }
            used += 1;
            // As `csv_core` reads: a quote opens a quoted value only at the start of a cell;
            // inside one, `""` is a quote and a lone quote closes it.
            state = match (state, b) {
                (State::Start | State::Unquoted | State::Closed, b',') => {
                    cells.push(cell_start..record.len());
                    cell_start = record.len() + 1;
                    State::Start
                }
                (State::Start, b'"') | (State::Closed, b'"') => State::Quoted,
                (State::Quoted, b'"') => State::Closed,
                (State::Quoted, _) => State::Quoted,
                _ => State::Unquoted,
            };
            record.push(b);
            if record.len() > MAX_HEADER_BYTES {
                return Err(invalid("no header record within the first megabyte"));
            }
        }
        input.consume(used);
        if !terminator.is_empty() {
            if terminator == b"\r" {
                // `\r\n` is one line end.
                if input.fill_buf()?.first() == Some(&b'\n') {
                    terminator.push(b'\n');
                    input.consume(1);
                }
            }
            break 'read;
        }
    }
    if !record.is_empty() || !terminator.is_empty() {
        cells.push(cell_start..record.len());
    }
    Ok((record, cells, terminator))
}

/// Whether a header cell reads as `given` (trimmed), in UTF-8 or in Windows-1252.
fn cell_is(bytes: &[u8], given: &str) -> bool {
    let windows_1252 = encoding_rs::WINDOWS_1252.decode(bytes).0;
    [cell_text(bytes), unquote(&windows_1252)]
        .iter()
        .any(|t| clean(t) == given)
}

/// A cell's text as the reader sees it: unquoted (`""` → `"`), decoded as UTF-8 or else
/// Windows-1252.
fn cell_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => unquote(text),
        Err(_) => unquote(&encoding_rs::WINDOWS_1252.decode(bytes).0),
    }
}

/// `text` without the quotes around it (spaces outside them ignored), `""` read as `"`.
fn unquote(text: &str) -> String {
    let trimmed = text.trim();
    match trimmed.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImportFile, ReadOptions, RowOutcome};
    use std::io::Cursor;

    /// The fixes the reader gives for `bytes`.
    fn fixes_of(bytes: &[u8]) -> Vec<UnknownHeader> {
        let err = ImportFile::open(Cursor::new(bytes), "f.csv", &ReadOptions::default())
            .expect_err("the header is refused");
        err.rejection()
            .map(|r| r.headers.clone())
            .unwrap_or_default()
    }

    fn fixed(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let fixes = fixes_of(bytes);
        let mut out = Vec::new();
        let n = fixed_header_copy(bytes, &mut out, &fixes)?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }

    /// The rows (line, unique_id, values by key) the reader yields.
    fn rows(bytes: &[u8]) -> Vec<(u64, Vec<(String, String)>)> {
        let file = ImportFile::open(Cursor::new(bytes), "f.csv", &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        file.map(|row| match row.unwrap_or_else(|e| panic!("{e}")) {
            RowOutcome::Valid(row) => (
                row.line,
                row.fields()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            RowOutcome::Invalid(row) => panic!("line {}: {}", row.line, row.reason()),
        })
        .collect()
    }

    /// Bytes after the first line end.
    fn after_header(bytes: &[u8], header_end: usize) -> &[u8] {
        &bytes[header_end..]
    }

    #[test]
    fn quoted_and_respelled_headers_with_crlf_and_a_bom() {
        let input = b"\xEF\xBB\xBFunique_id,\"login_source\",\"First Name\", LAST-NAME ,EMail\r\n\
                      1,OPSCOM,Ann,\"Lee, Jr\",ann@example.org\r\n\
                      2,OPSCOM,\"Bob\r\nBy\",Roe,bob@example.org\r\n";
        let out = fixed(input).unwrap();
        let header = b"\xEF\xBB\xBFunique_id,\"login_source\",first_name,last_name,email\r\n";
        assert_eq!(&out[..header.len()], header);
        let input_header_end = input.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(
            after_header(&out, header.len()),
            after_header(input, input_header_end)
        );
        let got = rows(&out);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 2);
        assert_eq!(got[1].0, 3);
        assert!(got[0].1.contains(&("last_name".into(), "Lee, Jr".into())));
        assert!(
            got[1]
                .1
                .contains(&("first_name".into(), "Bob\r\nBy".into()))
        );
    }

    #[test]
    fn windows_1252_rows_are_copied_untouched() {
        // `é` is 0xE9 in Windows-1252: not UTF-8, so the file is read as Windows-1252.
        let input = b"Unique ID,login_source,city\n1,OPSCOM,Montr\xE9al\n";
        let out = fixed(input).unwrap();
        assert_eq!(out, b"unique_id,login_source,city\n1,OPSCOM,Montr\xE9al\n");
        let got = rows(&out);
        assert!(got[0].1.contains(&("city".into(), "Montréal".into())));
        // A header cell in Windows-1252 is compared decoded: 0xA0 is a no-break space.
        let input = b"unique_id,login_source,\"First\xA0Name\",street\n1,OPSCOM,Jos\xE9,Rue\n";
        let fixes = fixes_of(input);
        assert_eq!(fixes[0].given, "First\u{a0}Name");
        assert_eq!(fixes[0].exact_fix, Some("first_name"));
        let out = fixed(input).unwrap();
        assert_eq!(
            out,
            b"unique_id,login_source,first_name,street\n1,OPSCOM,Jos\xE9,Rue\n"
        );
        assert!(
            rows(&out)[0]
                .1
                .contains(&("first_name".into(), "José".into()))
        );
    }

    #[test]
    fn a_header_without_rows_and_without_a_line_end() {
        let out = fixed(b"unique_id,Login Source,email").unwrap();
        assert_eq!(out, b"unique_id,login_source,email");
        let out = fixed(b"unique_id,Login Source,email\n").unwrap();
        assert_eq!(out, b"unique_id,login_source,email\n");
    }

    #[test]
    fn a_sep_line_before_the_header_is_kept() {
        let input = b"sep=,\r\nunique_id,login_source,E_mail\r\n1,OPSCOM,a@b.cd\r\n";
        let out = fixed(input).unwrap();
        assert_eq!(
            out,
            b"sep=,\r\nunique_id,login_source,email\r\n1,OPSCOM,a@b.cd\r\n".as_slice()
        );
        assert_eq!(rows(&out).len(), 1);
    }

    #[test]
    fn records_split_as_csv_core_splits_them() {
        let mut input = &b"a,\"b,\"\"c\"\"\r\n\",d\"e,,\"f\"g\r\nnext"[..];
        let (record, cells, end) = read_record(&mut input).unwrap();
        let cells: Vec<&[u8]> = cells.iter().map(|c| &record[c.clone()]).collect();
        assert_eq!(
            cells,
            [&b"a"[..], b"\"b,\"\"c\"\"\r\n\"", b"d\"e", b"", b"\"f\"g"]
        );
        assert_eq!(end, b"\r\n");
        assert_eq!(cell_text(cells[1]), "b,\"c\"\r\n");
        assert_eq!(input, b"next");
    }

    #[test]
    fn a_lone_cr_line_end_is_kept() {
        let input = b"unique_id,Login_Source\r1,OPSCOM\r";
        assert_eq!(fixed(input).unwrap(), b"unique_id,login_source\r1,OPSCOM\r");
    }

    #[test]
    fn no_copy_without_a_unique_exact_fix() {
        // `Frist Name` is close to `first_name` but not a respelling of it.
        let input = b"unique_id,login_source,Frist Name,Email\n1,OPSCOM,Ann,a@b.cd\n";
        let fixes = fixes_of(input);
        assert_eq!(fixes[0].exact_fix, None);
        assert_eq!(fixes[1].exact_fix, Some("email"));
        let mut out = Vec::new();
        let err = fixed_header_copy(&input[..], &mut out, &fixes).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.is_empty(), "nothing written");
        // Two respellings of one name: neither is a fix.
        let input = b"unique_id,login_source,First Name,first-name\n1,OPSCOM,Ann,Ann\n";
        let fixes = fixes_of(input);
        assert!(fixes.iter().all(|h| h.exact_fix.is_none()), "{fixes:?}");
        assert!(fixed_header_copy(&input[..], &mut out, &fixes).is_err());
        // A respelling of a name another column has.
        let input = b"unique_id,login_source,email,E-mail\n1,OPSCOM,a@b.cd,a@b.cd\n";
        assert_eq!(fixes_of(input)[0].exact_fix, None);
        // A respelling of another name of an attribute another column has.
        let input = b"unique_id,login_source,province,STATE\n1,OPSCOM,NS,NS\n";
        assert_eq!(fixes_of(input)[0].exact_fix, None);
        assert!(out.is_empty());
    }

    #[test]
    fn no_copy_when_the_renamed_header_is_still_refused() {
        // `login_source` is missing: renaming `Email` does not make the file importable.
        let input = b"unique_id,Email\n1,a@b.cd\n";
        let fixes = fixes_of(input);
        assert_eq!(fixes[0].exact_fix, Some("email"));
        let mut out = Vec::new();
        let err = fixed_header_copy(&input[..], &mut out, &fixes).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("`login_source` is missing"),
            "{err}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn fixes_of_another_file_are_refused() {
        let fixes = fixes_of(b"unique_id,login_source,Email\n1,OPSCOM,a@b.cd\n");
        let other = b"unique_id,login_source,E-Mail\n1,OPSCOM,a@b.cd\n";
        let mut out = Vec::new();
        let err = fixed_header_copy(&other[..], &mut out, &fixes).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.is_empty());
        let utf16 = b"\xFF\xFEu\0";
        assert!(fixed_header_copy(&utf16[..], &mut out, &fixes).is_err());
        assert!(fixed_header_copy(&b""[..], &mut out, &fixes).is_err());
        assert!(fixed_header_copy(&other[..], &mut out, &[]).is_err());
    }

    /// A reader that hands out a large file in small pieces, never holding it whole.
    struct Generated {
        header: Vec<u8>,
        rows: u64,
        pos: u64,
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.header.is_empty() {
                let n = self.header.len().min(buf.len());
                buf[..n].copy_from_slice(&self.header[..n]);
                self.header.drain(..n);
                return Ok(n);
            }
            if self.pos >= self.rows {
                return Ok(0);
            }
            let row = format!("{},OPSCOM\n", self.pos);
            self.pos += 1;
            let n = row.len().min(buf.len());
            buf[..n].copy_from_slice(&row.as_bytes()[..n]);
            Ok(n)
        }
    }

    #[test]
    fn the_copy_is_streamed() {
        let fixes = fixes_of(b"Unique-ID,login_source\n1,OPSCOM\n");
        let input = Generated {
            header: b"Unique-ID,login_source\n".to_vec(),
            rows: 200_000,
            pos: 0,
        };
        /// Counts bytes and checks the first line, keeping nothing.
        struct Sink(u64, Vec<u8>);
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.1.len() < 40 {
                    self.1.extend_from_slice(&buf[..buf.len().min(40)]);
                }
                self.0 += buf.len() as u64;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Sink(0, Vec::new());
        let n = fixed_header_copy(input, &mut sink, &fixes).unwrap();
        assert_eq!(n, sink.0);
        assert!(sink.1.starts_with(b"unique_id,login_source\n0,OPSCOM\n"));
        assert!(n > 2_000_000);
    }
}
