//! Keeping the failure CSV mailable: attached as is when small, zipped past a size limit (zip is
//! what Windows opens without extra software), and cut at a row boundary when even the zip is too
//! big. The file is streamed; memory is bounded by the attachment limit, not the CSV's size.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Size limits for the failure CSV attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentLimits {
    /// A CSV larger than this (bytes) is zipped.
    pub compress_above: u64,
    /// The largest attachment (bytes, before base64); a zip larger than this holds only the
    /// first rows that fit.
    pub max_attachment: u64,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        // Base64 adds a third: 5 MiB becomes ~6.8 MB, under every common 10 MB mail limit.
        AttachmentLimits {
            compress_above: 1024 * 1024,
            max_attachment: 5 * 1024 * 1024,
        }
    }
}

/// How the attachment was made to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentForm {
    /// The CSV as written.
    Plain,
    /// The whole CSV, zipped.
    Zipped,
    /// Zipped and cut: only the first `rows_kept` failed rows are in it.
    Cut {
        /// Failed rows in the attachment.
        rows_kept: u64,
    },
}

/// The attachment, ready to go into the message.
#[derive(Debug, Clone)]
pub(crate) struct PreparedAttachment {
    /// The file name the client sees.
    pub name: String,
    /// The MIME type.
    pub content_type: &'static str,
    /// The bytes (before transfer encoding).
    pub bytes: Vec<u8>,
    /// How it was made to fit.
    pub form: AttachmentForm,
}

/// Reads the failure CSV at `path` into an attachment named `csv_name` that fits `limits`.
pub(crate) fn prepare(
    path: &Path,
    csv_name: &str,
    limits: &AttachmentLimits,
    modified: zip::DateTime,
) -> io::Result<PreparedAttachment> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    prepare_from(file, size, csv_name, limits, modified)
}

/// Makes an attachment named `csv_name` that fits `limits` from a failure CSV held in memory.
pub(crate) fn prepare_bytes(
    bytes: &[u8],
    csv_name: &str,
    limits: &AttachmentLimits,
    modified: zip::DateTime,
) -> io::Result<PreparedAttachment> {
    prepare_from(
        Cursor::new(bytes),
        bytes.len() as u64,
        csv_name,
        limits,
        modified,
    )
}

/// The failure CSV `source` of `size` bytes (read from its start) as an attachment that fits.
fn prepare_from<R: Read + Seek>(
    mut file: R,
    size: u64,
    csv_name: &str,
    limits: &AttachmentLimits,
    modified: zip::DateTime,
) -> io::Result<PreparedAttachment> {
    if size <= limits.compress_above && size <= limits.max_attachment {
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        return Ok(PreparedAttachment {
            name: csv_name.to_owned(),
            content_type: "text/csv; charset=utf-8",
            bytes,
            form: AttachmentForm::Plain,
        });
    }
    let zip_name = match csv_name.strip_suffix(".csv") {
        Some(stem) => format!("{stem}.zip"),
        None => format!("{csv_name}.zip"),
    };
    let cap = usize::try_from(limits.max_attachment).unwrap_or(usize::MAX);
    let consumed = match zip_prefix(&mut file, size, csv_name, cap, modified)? {
        ZipOutcome::Fits(bytes) => {
            return Ok(PreparedAttachment {
                name: zip_name,
                content_type: "application/zip",
                bytes,
                form: AttachmentForm::Zipped,
            });
        }
        ZipOutcome::TooBig { consumed } => consumed,
    };
    // Deflate buffers: the input consumed when the cap was hit overstates what fits. Aim lower,
    // then halve until the zip of a row-aligned prefix fits.
    let mut target = consumed / 10 * 9;
    loop {
        file.seek(SeekFrom::Start(0))?;
        let (cut, rows_kept) = record_boundary_at_most(&mut file, target)?;
        file.seek(SeekFrom::Start(0))?;
        if let ZipOutcome::Fits(bytes) = zip_prefix(&mut file, cut, csv_name, cap, modified)? {
            return Ok(PreparedAttachment {
                name: zip_name,
                content_type: "application/zip",
                bytes,
                form: AttachmentForm::Cut { rows_kept },
            });
        }
        if rows_kept == 0 {
            // Not even the header fits (a header is at most one 1 MiB record: a limit this low is
            // a configuration mistake).
            return Err(io::Error::other(format!(
                "the failure CSV's header alone exceeds the {} byte attachment limit",
                limits.max_attachment
            )));
        }
        target = cut / 2;
    }
}

enum ZipOutcome {
    Fits(Vec<u8>),
    TooBig { consumed: u64 },
}

/// Zips the first `len` bytes of `file` into one entry, giving up once the zip passes `cap`.
fn zip_prefix<R: Read>(
    file: &mut R,
    len: u64,
    entry_name: &str,
    cap: usize,
    modified: zip::DateTime,
) -> io::Result<ZipOutcome> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(modified)
        .large_file(len > u64::from(u32::MAX));
    let mut zip = zip::ZipWriter::new(CappedCursor {
        inner: Cursor::new(Vec::new()),
        cap,
        over: false,
    });
    zip.start_file(entry_name, options)
        .map_err(io::Error::other)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file.take(len));
    let mut buf = vec![0u8; 64 * 1024];
    let mut consumed = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        consumed += n as u64;
        zip.write_all(&buf[..n])?;
        if zip.get_ref().is_some_and(|w| w.over) {
            zip.finish().map_err(io::Error::other)?;
            return Ok(ZipOutcome::TooBig { consumed });
        }
    }
    let out = zip.finish().map_err(io::Error::other)?;
    if out.over {
        Ok(ZipOutcome::TooBig { consumed })
    } else {
        Ok(ZipOutcome::Fits(out.inner.into_inner()))
    }
}

/// The end of the last CSV record ending at or before byte `target` (the header always
/// counts), and how many data records come before it. `file` is read from where it stands (its
/// start).
fn record_boundary_at_most<R: Read + Seek>(file: &mut R, target: u64) -> io::Result<(u64, u64)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::new(&mut *file));
    let mut record = csv::ByteRecord::new();
    let mut boundary = 0u64;
    let mut records = 0u64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {
                let end = reader.position().byte();
                if end > target && records > 0 {
                    break;
                }
                boundary = end;
                records += 1;
            }
            Ok(false) => break,
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    drop(reader);
    // The parser stops after the `\r` of a CRLF; the `\n` belongs with the record before it.
    file.seek(SeekFrom::Start(boundary))?;
    let mut next = [0u8; 1];
    if file.read(&mut next)? == 1 && next[0] == b'\n' {
        boundary += 1;
    }
    Ok((boundary, records.saturating_sub(1)))
}

/// An in-memory buffer that stops growing at `cap` bytes and remembers it was asked to.
struct CappedCursor {
    inner: Cursor<Vec<u8>>,
    cap: usize,
    over: bool,
}

impl Write for CappedCursor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = usize::try_from(self.inner.position())
            .unwrap_or(usize::MAX)
            .saturating_add(buf.len());
        if self.over || end > self.cap {
            // Past the cap the output is useless: discard it, and let the caller see `over`.
            self.over = true;
            return Ok(buf.len());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for CappedCursor {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure_csv::FailureCsvWriter;

    fn dt() -> zip::DateTime {
        zip::DateTime::from_date_and_time(2026, 11, 3, 10, 15, 0).unwrap()
    }

    /// Writes a failure CSV of `rows` rows of pseudo-random (poorly compressible) text.
    fn big_csv(dir: &Path, rows: u64) -> std::path::PathBuf {
        let path = dir.join("f.csv");
        let header = vec!["unique_id".to_owned(), "note".to_owned()];
        let mut w = FailureCsvWriter::new(File::create(&path).unwrap(), &header).unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for line in 0..rows {
            let note: String = (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'!' + (x % 90) as u8)
                })
                .collect();
            w.write_failure(line + 2, &[line.to_string(), note], "bad\nrow")
                .unwrap();
        }
        w.finish().unwrap();
        path
    }

    fn unzip(bytes: &[u8]) -> (String, Vec<u8>) {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut entry = archive.by_index(0).unwrap();
        let mut out = Vec::new();
        entry.read_to_end(&mut out).unwrap();
        (entry.name().unwrap().into_owned(), out)
    }

    #[test]
    fn small_is_plain_larger_is_zipped_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = big_csv(dir.path(), 50);
        let full = std::fs::read(&path).unwrap();
        let plain = prepare(&path, "r-failed.csv", &AttachmentLimits::default(), dt()).unwrap();
        assert_eq!(plain.form, AttachmentForm::Plain);
        assert_eq!(plain.bytes, full);

        let limits = AttachmentLimits {
            compress_above: 1000,
            max_attachment: 1 << 20,
        };
        let zipped = prepare(&path, "r-failed.csv", &limits, dt()).unwrap();
        assert_eq!(zipped.form, AttachmentForm::Zipped);
        assert_eq!(zipped.name, "r-failed.zip");
        assert_eq!(unzip(&zipped.bytes), ("r-failed.csv".to_owned(), full));
    }

    #[test]
    fn too_big_is_cut_at_a_row_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = big_csv(dir.path(), 2000);
        let full = std::fs::read(&path).unwrap();
        let limits = AttachmentLimits {
            compress_above: 1000,
            max_attachment: 64 * 1024,
        };
        let cut = prepare(&path, "r-failed.csv", &limits, dt()).unwrap();
        assert!(cut.bytes.len() <= 64 * 1024);
        let AttachmentForm::Cut { rows_kept } = cut.form else {
            panic!("expected a cut attachment, got {:?}", cut.form)
        };
        assert!(rows_kept > 10 && rows_kept < 2000, "{rows_kept}");
        let (_, csv) = unzip(&cut.bytes);
        assert!(
            full.starts_with(&csv),
            "the cut file is a prefix of the full one"
        );
        let mut reader = csv::ReaderBuilder::new().from_reader(&csv[3..]);
        let rows = reader.records().filter(|r| r.is_ok()).count() as u64;
        assert_eq!(rows, rows_kept);
        assert!(csv.ends_with(b"\r\n"));
    }

    #[test]
    fn bytes_in_memory_make_the_same_attachment_as_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = big_csv(dir.path(), 2000);
        let bytes = std::fs::read(&path).unwrap();
        for limits in [
            AttachmentLimits::default(),
            AttachmentLimits {
                compress_above: 1000,
                max_attachment: 1 << 20,
            },
            AttachmentLimits {
                compress_above: 1000,
                max_attachment: 64 * 1024,
            },
        ] {
            let from_file = prepare(&path, "r-failed.csv", &limits, dt()).unwrap();
            let from_bytes = prepare_bytes(&bytes, "r-failed.csv", &limits, dt()).unwrap();
            assert_eq!(from_bytes.form, from_file.form, "{limits:?}");
            assert_eq!(from_bytes.name, from_file.name, "{limits:?}");
            assert_eq!(from_bytes.bytes, from_file.bytes, "{limits:?}");
        }
    }
}
