//! Pure rules on file names: what is a candidate, what is odd, how names are shown and archived.

use std::time::SystemTime;

/// The importer's sub-folders of a drop folder: never an upload, never listed by a scan.
pub(crate) const RESERVED_NAMES: [&str; 4] = [".bak", "results", "preview", "held"];

/// What a name in the drop folder is, before its file type is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameClass {
    /// Ignored silently: `.`/`..`, hidden names (`.bak` included), the importer's sub-folders
    /// (`results`, `preview`, `held`), partial uploads.
    Ignored,
    /// Skipped and reported: not valid UTF-8.
    InvalidUtf8,
    /// Skipped and reported: contains a control character.
    ControlCharacter,
    /// A CSV name; its type and age decide the rest.
    Csv(String),
    /// A control file `NAME.approve` / `NAME.discard` (any case of the suffix).
    Signal {
        /// The control file's name.
        name: String,
        /// NAME.
        target: String,
        /// Approve (`true`) or discard (`false`).
        approve: bool,
    },
    /// Any other name: never imported; its type and age decide whether it is listed.
    Other(String),
}

/// Classifies a raw directory-entry name.
pub(crate) fn classify(raw: &[u8]) -> NameClass {
    if raw.is_empty() || raw.starts_with(b".") {
        return NameClass::Ignored;
    }
    let Ok(name) = std::str::from_utf8(raw) else {
        return NameClass::InvalidUtf8;
    };
    if name.chars().any(char::is_control) {
        return NameClass::ControlCharacter;
    }
    if is_partial(name) || is_importer_folder(name) {
        return NameClass::Ignored;
    }
    if let Some((target, approve)) = signal_target(name) {
        return NameClass::Signal {
            name: name.to_owned(),
            target: target.to_owned(),
            approve,
        };
    }
    if has_csv_extension(name) {
        NameClass::Csv(name.to_owned())
    } else {
        NameClass::Other(name.to_owned())
    }
}

/// Whether `name` is one of the importer's own folders in a drop folder (`.bak`, `results`,
/// `preview`, `held`; exact case): never an upload.
pub fn is_importer_folder(name: &str) -> bool {
    RESERVED_NAMES.contains(&name)
}

/// Whether `name` is a control file for a held file (`NAME.approve`, `NAME.discard`, any case
/// of the suffix): an instruction, not an upload.
pub fn is_control_file(name: &str) -> bool {
    signal_target(name).is_some()
}

/// `NAME.approve` → `(NAME, true)`, `NAME.discard` → `(NAME, false)`, any case of the suffix,
/// NAME not empty.
fn signal_target(name: &str) -> Option<(&str, bool)> {
    for (suffix, approve) in [(".approve", true), (".discard", false)] {
        if name.len() > suffix.len()
            && name.is_char_boundary(name.len() - suffix.len())
            && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        {
            return Some((&name[..name.len() - suffix.len()], approve));
        }
    }
    None
}

/// What a regular file with a name that is not `.csv` is, by its extension (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OtherName {
    /// `.xlsx`, `.xls`, `.xlsm`, `.ods`.
    Spreadsheet,
    /// `.txt`, `.tsv`.
    Text,
    /// Anything else.
    Other,
}

/// Sorts a name that is not `.csv` by its extension.
pub(crate) fn other_name(name: &str) -> OtherName {
    let ext = extension(name).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("xlsx" | "xls" | "xlsm" | "ods") => OtherName::Spreadsheet,
        Some("txt" | "tsv") => OtherName::Text,
        _ => OtherName::Other,
    }
}

/// A name's extension (after its last dot, without it): 1 to 16 bytes, letters and digits only,
/// with something before the dot. `None` for `README`, `.profile`, `a.b c`.
fn extension(name: &str) -> Option<&str> {
    let dot = name.rfind('.')?;
    let ext = &name[dot + 1..];
    let ok =
        dot > 0 && (1..=16).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(ext)
}

/// Whether a name may be created by the importer in one of its folders: one plain path
/// component, valid for a file name, not hidden, no control character, at most 255 bytes.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\0'])
        && !name.chars().any(char::is_control)
        && name.len() <= NAME_MAX
}

/// Whether a name ends in `.csv`, any case, with something before it.
pub fn has_csv_extension(name: &str) -> bool {
    name.len() > 4
        && name.is_char_boundary(name.len() - 4)
        && name[name.len() - 4..].eq_ignore_ascii_case(".csv")
}

/// Partial uploads: `*.filepart`, `*.part`, `*.tmp` (any case) and `~*`.
pub fn is_partial(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('~')
        || lower.ends_with(".filepart")
        || lower.ends_with(".part")
        || lower.ends_with(".tmp")
}

/// A raw name made safe to print: invalid UTF-8 bytes as `\xNN`, control characters escaped.
pub fn escape_name(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The archive name to try at `attempt` (0: the file's own name; 1: `NAME.YYYYMMDDTHHMMSSZ.ext`;
/// n ≥ 2: `NAME.YYYYMMDDTHHMMSSZ-n.ext`), NAME being the original name without its extension:
/// `.csv` (any case, written `.csv`), or another extension of letters and digits as written
/// (`roster.xlsx` → `roster.YYYYMMDDTHHMMSSZ.xlsx`); a name without one gets the stamp at its
/// end (`README` → `README.YYYYMMDDTHHMMSSZ`).
pub(crate) fn archive_name(original: &str, now: SystemTime, attempt: u32) -> String {
    if attempt == 0 {
        return original.to_owned();
    }
    let (stem, ext) = if has_csv_extension(original) {
        (&original[..original.len() - 4], ".csv".to_owned())
    } else {
        match extension(original) {
            Some(ext) => (
                &original[..original.len() - ext.len() - 1],
                format!(".{ext}"),
            ),
            None => (original, String::new()),
        }
    };
    let stamp = utc_stamp(now);
    let suffix = if attempt == 1 {
        format!(".{stamp}{ext}")
    } else {
        format!(".{stamp}-{attempt}{ext}")
    };
    // A name is at most 255 bytes: a long stem is shortened (at a character boundary) so that
    // the archive name always fits, rather than failing the archive for good.
    let mut keep = stem.len().min(NAME_MAX - suffix.len());
    while !stem.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &stem[..keep])
}

/// The longest file name Linux filesystems take, in bytes.
const NAME_MAX: usize = 255;

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub(crate) fn utc_stamp(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => ts.strftime("%Y%m%dT%H%M%SZ").to_string(),
        Err(_) => "19700101T000000Z".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn classifies_names() {
        assert_eq!(classify(b"users.csv"), NameClass::Csv("users.csv".into()));
        assert_eq!(classify(b"USERS.CSV"), NameClass::Csv("USERS.CSV".into()));
        assert_eq!(classify(b"Users.Csv"), NameClass::Csv("Users.Csv".into()));
        assert_eq!(
            classify("élèves été.csv".as_bytes()),
            NameClass::Csv("élèves été.csv".into())
        );
        for ignored in [
            &b".hidden.csv"[..],
            b".bak",
            b".",
            b"..",
            b"users.csv.filepart",
            b"users.csv.part",
            b"users.csv.TMP",
            b"~users.csv",
            b".csv",
            b"results",
            b"preview",
            b"held",
            b".approve",
        ] {
            assert_eq!(
                classify(ignored),
                NameClass::Ignored,
                "{}",
                escape_name(ignored)
            );
        }
        assert_eq!(classify(b"a\nb.csv"), NameClass::ControlCharacter);
        assert_eq!(classify(b"a\x1bb.csv"), NameClass::ControlCharacter);
        assert_eq!(classify(b"caf\xe9.csv"), NameClass::InvalidUtf8);
        for other in [
            "users.txt",
            "users.xlsx",
            "users.csv.bak",
            "Results",
            "README",
        ] {
            assert_eq!(classify(other.as_bytes()), NameClass::Other(other.into()));
        }
        assert_eq!(
            classify(b"roster.csv.APPROVE"),
            NameClass::Signal {
                name: "roster.csv.APPROVE".into(),
                target: "roster.csv".into(),
                approve: true
            }
        );
        assert_eq!(
            classify(b"roster.csv.discard"),
            NameClass::Signal {
                name: "roster.csv.discard".into(),
                target: "roster.csv".into(),
                approve: false
            }
        );
        assert_eq!(classify(b"~roster.csv.approve"), NameClass::Ignored);
        assert_eq!(classify(b"roster.csv.approve.part"), NameClass::Ignored);
    }

    #[test]
    fn other_names_are_sorted_by_extension() {
        for s in ["a.xlsx", "a.XLS", "a.xlsm", "a.Ods"] {
            assert_eq!(other_name(s), OtherName::Spreadsheet, "{s}");
        }
        for s in ["a.txt", "a.TSV"] {
            assert_eq!(other_name(s), OtherName::Text, "{s}");
        }
        for s in ["a.pdf", "README", "xlsx", "a.csv.bak", "a. txt"] {
            assert_eq!(other_name(s), OtherName::Other, "{s}");
        }
    }

    #[test]
    fn archive_names_keep_other_extensions() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_379_300); // 2026-12-04T10:15:00Z
        assert_eq!(
            archive_name("roster.xlsx", t, 1),
            "roster.20261204T101500Z.xlsx"
        );
        assert_eq!(
            archive_name("roster-summary.txt", t, 2),
            "roster-summary.20261204T101500Z-2.txt"
        );
        assert_eq!(archive_name("README", t, 1), "README.20261204T101500Z");
        assert_eq!(archive_name("a b.c d", t, 1), "a b.c d.20261204T101500Z");
        let long = format!("{}.xlsx", "é".repeat(124));
        let name = archive_name(&long, t, 12);
        assert!(name.len() <= 255 && name.ends_with("Z-12.xlsx"), "{name}");
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name("roster-summary.txt"));
        for bad in ["", ".x", "a/b", "a\nb", "a\0b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(!is_plain_name(&"a".repeat(256)));
    }

    #[test]
    fn escapes_for_display() {
        assert_eq!(escape_name(b"a\nb.csv"), "a\\nb.csv");
        assert_eq!(escape_name(b"caf\xe9.csv"), "caf\\xe9.csv");
        assert_eq!(escape_name("été.csv".as_bytes()), "été.csv");
    }

    #[test]
    fn archive_names_follow_the_contract() {
        let t = UNIX_EPOCH + Duration::from_secs(1_736_942_400); // 2025-01-15T12:00:00Z
        assert_eq!(archive_name("users.csv", t, 0), "users.csv");
        assert_eq!(
            archive_name("users.csv", t, 1),
            "users.20250115T120000Z.csv"
        );
        assert_eq!(
            archive_name("users.csv", t, 2),
            "users.20250115T120000Z-2.csv"
        );
        assert_eq!(
            archive_name("Roster.CSV", t, 3),
            "Roster.20250115T120000Z-3.csv"
        );
    }

    #[test]
    fn archive_names_of_long_uploads_still_fit_a_file_name() {
        let t = UNIX_EPOCH + Duration::from_secs(1_736_942_400);
        let long = format!("{}.csv", "é".repeat(124)); // 252 bytes
        for attempt in [1, 2, 12] {
            let name = archive_name(&long, t, attempt);
            assert!(name.len() <= 255, "{} bytes", name.len());
            assert!(name.starts_with("éé") && name.ends_with(".csv"), "{name}");
        }
    }
}
