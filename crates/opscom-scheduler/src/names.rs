//! Pure rules on file names: what is a candidate, what is odd, how names are shown and archived.

use std::time::SystemTime;

/// What a name in the drop folder is, before its file type is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameClass {
    /// Ignored silently: `.`/`..`, hidden names (`.bak` included), partial uploads, non-CSV names.
    Ignored,
    /// Skipped and reported: not valid UTF-8.
    InvalidUtf8,
    /// Skipped and reported: contains a control character.
    ControlCharacter,
    /// A CSV name; its type and age decide the rest.
    Csv(String),
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
    if is_partial(name) || !has_csv_extension(name) {
        return NameClass::Ignored;
    }
    NameClass::Csv(name.to_owned())
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

/// The archive name to try at `attempt` (0: the file's own name; 1: `NAME.YYYYMMDDTHHMMSSZ.csv`;
/// n ≥ 2: `NAME.YYYYMMDDTHHMMSSZ-n.csv`), NAME being the original name without `.csv`.
pub(crate) fn archive_name(original: &str, now: SystemTime, attempt: u32) -> String {
    if attempt == 0 {
        return original.to_owned();
    }
    let stem = if has_csv_extension(original) {
        &original[..original.len() - 4]
    } else {
        original
    };
    let stamp = utc_stamp(now);
    let suffix = if attempt == 1 {
        format!(".{stamp}.csv")
    } else {
        format!(".{stamp}-{attempt}.csv")
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
            b"users.txt",
            b"users.xlsx",
            b".csv",
            b"users.csv.bak",
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
