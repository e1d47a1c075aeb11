//! The decoded byte stream the CSV parser reads: plain UTF-8 or decoded (UTF-16, Windows-1252),
//! lone CRs mapped to LFs in old-Mac files, its last bytes and end remembered, and a runaway
//! record stopped ([`RecordTooLarge`]).

use encoding_rs_io::DecodeReaderBytes;
use std::io::{self, Read};

/// The io error our source returns when a record outgrows the limit.
#[derive(Debug)]
pub(super) struct RecordTooLarge;

impl std::fmt::Display for RecordTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record too large")
    }
}

impl std::error::Error for RecordTooLarge {}

pub(super) enum Decoded<R> {
    Plain(R),
    Decoded(DecodeReaderBytes<R, Vec<u8>>),
}

impl<R> std::fmt::Debug for Decoded<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoded::Plain(_) => "Plain",
            Decoded::Decoded(_) => "Decoded",
        })
    }
}

/// The UTF-8 stream the CSV parser reads: remembers its last bytes and whether it hit the end,
/// maps lone CRs to LFs in old-Mac files, and stops a runaway record.
#[derive(Debug)]
pub(super) struct Source<R> {
    pub(super) inner: Decoded<R>,
    pub(super) cr_only: bool,
    pub(super) delivered: u64,
    /// Decoded offset where the current record starts.
    pub(super) record_start: u64,
    /// `delivered - record_start` beyond this is a runaway record.
    pub(super) limit: u64,
    pub(super) last: Option<u8>,
    /// Decoded offset of the last double quote delivered, if any: a runaway record with none
    /// at or after `record_start` is a long line, not a stray quote.
    pub(super) last_quote: Option<u64>,
    pub(super) last_content: Option<u8>,
    pub(super) eof: bool,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.delivered.saturating_sub(self.record_start) > self.limit {
            return Err(io::Error::other(RecordTooLarge));
        }
        let n = match &mut self.inner {
            Decoded::Plain(r) => r.read(buf)?,
            Decoded::Decoded(r) => r.read(buf)?,
        };
        if n == 0 {
            self.eof = true;
            return Ok(0);
        }
        let got = &mut buf[..n];
        if self.cr_only {
            for b in got.iter_mut() {
                if *b == b'\r' {
                    *b = b'\n';
                }
            }
        }
        if let Some(i) = memchr::memrchr(b'"', got) {
            self.last_quote = Some(self.delivered + i as u64);
        }
        self.last = got.last().copied();
        if let Some(&b) = got.iter().rev().find(|&&b| b != b'\n' && b != b'\r') {
            self.last_content = Some(b);
        }
        self.delivered += n as u64;
        Ok(n)
    }
}
