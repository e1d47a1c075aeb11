//! The first pass over a file: size, spreadsheet and binary detection, and the text encoding.
//!
//! BOM → UTF-8/UTF-16LE/UTF-16BE; no BOM and the whole file valid UTF-8 → UTF-8; otherwise
//! Windows-1252 (what Excel writes on Windows). The whole file is read once, in fixed-size chunks.

use crate::error::{Rejection, RejectionKind, SAVE_AS_CSV_UTF8};
use serde::Serialize;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

/// The text encoding a file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum Encoding {
    /// UTF-8 without a byte-order mark.
    #[serde(rename = "UTF-8")]
    Utf8,
    /// UTF-8 with a byte-order mark (Excel's "CSV UTF-8").
    #[serde(rename = "UTF-8 (BOM)")]
    Utf8Bom,
    /// UTF-16 little-endian, with a byte-order mark.
    #[serde(rename = "UTF-16LE")]
    Utf16Le,
    /// UTF-16 big-endian, with a byte-order mark.
    #[serde(rename = "UTF-16BE")]
    Utf16Be,
    /// Windows-1252 (Excel's "CSV (Comma delimited)" on Windows).
    #[serde(rename = "Windows-1252")]
    Windows1252,
}

impl Encoding {
    /// The encoding's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 (BOM)",
            Encoding::Utf16Le => "UTF-16LE",
            Encoding::Utf16Be => "UTF-16BE",
            Encoding::Windows1252 => "Windows-1252",
        }
    }

    /// The length of the byte-order mark at the start of the file.
    pub(crate) fn bom_len(self) -> u64 {
        match self {
            Encoding::Utf8Bom => 3,
            Encoding::Utf16Le | Encoding::Utf16Be => 2,
            Encoding::Utf8 | Encoding::Windows1252 => 0,
        }
    }

    /// The decoder to use, `None` for UTF-8 (read as is).
    pub(crate) fn decoder(self) -> Option<&'static encoding_rs::Encoding> {
        match self {
            Encoding::Utf8 | Encoding::Utf8Bom => None,
            Encoding::Utf16Le => Some(encoding_rs::UTF_16LE),
            Encoding::Utf16Be => Some(encoding_rs::UTF_16BE),
            Encoding::Windows1252 => Some(encoding_rs::WINDOWS_1252),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the first pass learnt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sniffed {
    pub encoding: Encoding,
    /// Lines end with a lone CR (old Mac Excel): no LF anywhere but some CR.
    pub cr_only: bool,
    /// About how many lines the file has (from the first chunk's line feeds and the size), to
    /// size the duplicate-id table once: an estimate, never relied upon.
    pub lines_estimate: u64,
}

pub(crate) enum SniffError {
    Io(io::Error),
    Rejected(Rejection),
}

impl From<io::Error> for SniffError {
    fn from(e: io::Error) -> Self {
        SniffError::Io(e)
    }
}

const CHUNK: usize = 64 * 1024;

fn reject(kind: RejectionKind, line: Option<u64>, reason: String, fix: &str) -> SniffError {
    SniffError::Rejected(Rejection::new(kind, line, reason, fix))
}

/// Reads the whole file once and decides how to read it. Leaves the reader anywhere.
pub(crate) fn sniff<R: Read + Seek>(
    reader: &mut R,
    max_file_bytes: Option<u64>,
) -> Result<Sniffed, SniffError> {
    let size = reader.seek(SeekFrom::End(0))?;
    if let Some(max) = max_file_bytes
        && size > max
    {
        return Err(reject(
            RejectionKind::TooLarge,
            None,
            format!("The file is {size} bytes; the limit for this folder is {max} bytes."),
            "Split the file into smaller files and upload them one after the other.",
        ));
    }
    reader.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 8];
    let head_len = read_full(reader, &mut head)?;
    let head = &head[..head_len];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Err(reject(
            RejectionKind::Spreadsheet,
            None,
            "The file is an Excel workbook (.xlsx) renamed to .csv, not a CSV text file.".into(),
            SAVE_AS_CSV_UTF8,
        ));
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Err(reject(
            RejectionKind::Spreadsheet,
            None,
            "The file is an old Excel workbook (.xls) renamed to .csv, not a CSV text file.".into(),
            SAVE_AS_CSV_UTF8,
        ));
    }
    let encoding = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        Encoding::Utf8Bom
    } else if head.starts_with(&[0xFF, 0xFE]) {
        Encoding::Utf16Le
    } else if head.starts_with(&[0xFE, 0xFF]) {
        Encoding::Utf16Be
    } else {
        Encoding::Utf8
    };
    reader.seek(SeekFrom::Start(encoding.bom_len()))?;
    match encoding.decoder() {
        Some(enc) => scan_utf16(reader, enc, encoding),
        None => scan_bytes(reader, encoding, size),
    }
}

fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn binary(line: u64) -> SniffError {
    reject(
        RejectionKind::Binary,
        Some(line),
        "The file contains NUL bytes: it is not a CSV text file (a spreadsheet, a database export, or UTF-16 without a byte-order mark).".into(),
        SAVE_AS_CSV_UTF8,
    )
}

fn count_lf(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// The physical line of byte `offset` (counted from the file's start): only on an error path,
/// so the common path does not count lines.
fn line_at<R: Read + Seek>(reader: &mut R, start: u64, offset: u64) -> Result<u64, SniffError> {
    reader.seek(SeekFrom::Start(start))?;
    let mut left = offset.saturating_sub(start);
    let mut buf = vec![0u8; CHUNK];
    let mut lines = 1;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let n = read_full(reader, &mut buf[..want])?;
        if n == 0 {
            break;
        }
        lines += count_lf(&buf[..n]);
        left -= n as u64;
    }
    Ok(lines)
}

/// UTF-8 (with or without BOM) or, failing validation without a BOM, Windows-1252.
fn scan_bytes<R: Read + Seek>(
    reader: &mut R,
    mut encoding: Encoding,
    size: u64,
) -> Result<Sniffed, SniffError> {
    let start = encoding.bom_len();
    let mut buf = vec![0u8; CHUNK + 4];
    let mut carry = 0usize; // bytes of an incomplete UTF-8 sequence kept at the front
    let mut consumed = 0u64; // bytes read after the BOM, before this chunk
    let (mut has_lf, mut has_cr) = (false, false);
    let mut lines_estimate = 0;
    // Where the first well-formed multi-byte UTF-8 character and the first byte that is not
    // UTF-8 are: a file with both is UTF-8 with some lines in another encoding.
    let mut first_utf8: Option<u64> = None;
    let mut first_invalid: Option<u64> = None;
    loop {
        let n = read_full(reader, &mut buf[carry..carry + CHUNK])?;
        let end = carry + n;
        let chunk = &buf[..end];
        let chunk_offset = start + consumed - carry as u64;
        consumed += n as u64;
        if let Some(pos) = memchr::memchr(0, chunk) {
            let line = line_at(reader, start, chunk_offset + pos as u64)?;
            return Err(binary(line));
        }
        if !has_lf {
            has_lf = memchr::memchr(b'\n', chunk).is_some();
            has_cr |= memchr::memchr(b'\r', chunk).is_some();
        }
        if consumed == n as u64 && n > 0 {
            // The first chunk: scale its line feeds (plus a margin) to the whole file.
            let per_chunk = count_lf(chunk).saturating_add(1).saturating_mul(5) / 4;
            lines_estimate = per_chunk.saturating_mul(size.div_ceil(n as u64));
        }
        if first_utf8.is_none()
            && let Some(pos) = utf8_multibyte_at(chunk)
        {
            first_utf8 = Some(chunk_offset + pos as u64);
        }
        let mut next_carry = 0;
        // The fast check first; the slower one that tells where only when it fails.
        if encoding != Encoding::Windows1252
            && simdutf8::basic::from_utf8(chunk).is_err()
            && let Err(e) = simdutf8::compat::from_utf8(chunk)
        {
            let incomplete_tail = e.error_len().is_none() && n > 0;
            if incomplete_tail {
                next_carry = end - e.valid_up_to();
            } else if encoding == Encoding::Utf8Bom {
                let line = line_at(reader, start, chunk_offset + e.valid_up_to() as u64)?;
                return Err(reject(
                    RejectionKind::Encoding,
                    Some(line),
                    format!(
                        "The file starts with a UTF-8 byte-order mark, but line {line} is not valid UTF-8."
                    ),
                    SAVE_AS_CSV_UTF8,
                ));
            } else {
                encoding = Encoding::Windows1252;
                first_invalid = Some(chunk_offset + e.valid_up_to() as u64);
            }
        }
        if n == 0 {
            break;
        }
        buf.copy_within(end - next_carry..end, 0);
        carry = next_carry;
    }
    if let (Some(utf8), Some(invalid)) = (first_utf8, first_invalid) {
        // Decoding it all as Windows-1252 would garble the UTF-8 lines (`José` → `JosÃ©`), and
        // as UTF-8 the others: refuse it, rather than send damaged names.
        let utf8_line = line_at(reader, start, utf8)?;
        let invalid_line = line_at(reader, start, invalid)?;
        return Err(reject(
            RejectionKind::Encoding,
            Some(invalid_line),
            format!(
                "The file mixes two text encodings: line {utf8_line} is UTF-8, but line {invalid_line} is not (it was probably pasted from another file or program), so some names would arrive garbled."
            ),
            SAVE_AS_CSV_UTF8,
        ));
    }
    Ok(Sniffed {
        encoding,
        cr_only: has_cr && !has_lf,
        lines_estimate,
    })
}

/// The offset of the first well-formed multi-byte UTF-8 character in `bytes` (a lead byte and
/// its continuation bytes, as `é` is `C3 A9`), if any. Windows-1252 text almost never forms one.
fn utf8_multibyte_at(bytes: &[u8]) -> Option<usize> {
    if bytes.is_ascii() {
        return None;
    }
    let mut i = 0;
    while i < bytes.len() {
        let len = match bytes[i] {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => {
                i += 1;
                continue;
            }
        };
        if let Some(candidate) = bytes.get(i..i + len)
            && std::str::from_utf8(candidate).is_ok()
        {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// UTF-16 with a BOM: decode everything once, to find malformed text and NULs.
fn scan_utf16<R: Read>(
    reader: &mut R,
    enc: &'static encoding_rs::Encoding,
    encoding: Encoding,
) -> Result<Sniffed, SniffError> {
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut input = vec![0u8; CHUNK];
    let mut output = vec![0u8; CHUNK * 3 + 16];
    let mut lines = 0u64;
    let (mut has_lf, mut has_cr) = (false, false);
    loop {
        let n = read_full(reader, &mut input)?;
        let last = n == 0;
        let mut src = &input[..n];
        loop {
            let (result, read, written) =
                decoder.decode_to_utf8_without_replacement(src, &mut output, last);
            let text = &output[..written];
            if let Some(pos) = memchr::memchr(0, text) {
                return Err(binary(lines + count_lf(&text[..pos]) + 1));
            }
            has_lf |= text.contains(&b'\n');
            has_cr |= text.contains(&b'\r');
            lines += count_lf(text);
            src = &src[read..];
            match result {
                encoding_rs::DecoderResult::InputEmpty => break,
                encoding_rs::DecoderResult::OutputFull => continue,
                encoding_rs::DecoderResult::Malformed(_, _) => {
                    let line = lines + 1;
                    return Err(reject(
                        RejectionKind::Encoding,
                        Some(line),
                        format!(
                            "The file starts with a {encoding} byte-order mark, but line {line} is not valid {encoding} text."
                        ),
                        SAVE_AS_CSV_UTF8,
                    ));
                }
            }
        }
        if last {
            break;
        }
    }
    Ok(Sniffed {
        encoding,
        cr_only: has_cr && !has_lf,
        lines_estimate: lines,
    })
}
