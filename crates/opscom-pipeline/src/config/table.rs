//! Reading one TOML table key by key: each value's type is checked where it is taken, unknown
//! keys are reported with a "did you mean" hint, and every problem is kept with its place in the
//! file. Nothing here stops at the first problem, so one pass checks a whole file.

use toml::de::{DeTable, DeValue};

use super::Problem;

/// Where a problem shows: its dotted key and, when it has one, its byte offset in the file.
#[derive(Debug, Clone)]
pub(super) struct Place {
    /// `state_dir`, `schedule.interval`, `tenant[acme].drop_dir`.
    pub key: String,
    /// Where the key (or, for a missing key, its table) is written; `None` for problems that
    /// belong nowhere in particular, which come last.
    pub at: Option<usize>,
}

/// The problems found so far, each with its place.
#[derive(Debug)]
pub(super) struct Problems<'t> {
    text: &'t str,
    found: Vec<(Option<usize>, Problem)>,
}

impl<'t> Problems<'t> {
    /// No problems yet in the file `text`.
    pub fn new(text: &'t str) -> Self {
        Problems {
            text,
            found: Vec::new(),
        }
    }

    /// Records that `place` is wrong for `reason`.
    pub fn add(&mut self, place: &Place, reason: impl Into<String>) {
        self.found.push((
            place.at,
            Problem {
                key: place.key.clone(),
                reason: reason.into(),
            },
        ));
    }

    /// How many problems were recorded so far.
    pub fn len(&self) -> usize {
        self.found.len()
    }

    /// The problems in file order (those without a place last, in the order they were found),
    /// each reason followed by its line.
    pub fn into_sorted(self) -> Vec<Problem> {
        let mut found = self.found;
        found.sort_by_key(|(at, _)| at.unwrap_or(usize::MAX));
        let bytes = self.text.as_bytes();
        let (mut line, mut counted) = (1, 0);
        found
            .into_iter()
            .map(|(at, mut problem)| {
                if let Some(at) = at.map(|at| at.min(bytes.len())) {
                    line += bytes[counted..at].iter().filter(|&&b| b == b'\n').count();
                    counted = at;
                    problem.reason = format!("{} (line {line})", problem.reason);
                }
                problem
            })
            .collect()
    }
}

/// One table of the file, read key by key; every problem names `prefix.key`.
#[derive(Debug)]
pub(super) struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    /// Where the table's header is written (the top level: the start of the file).
    at: Option<usize>,
    /// `""` at the top level, else `schedule`, `mail`, `tenant[acme]`…
    prefix: String,
}

impl<'a, 'i> Table<'a, 'i> {
    /// The top level of a document.
    pub fn root(entries: &'a DeTable<'i>) -> Self {
        Table {
            entries,
            at: Some(0),
            prefix: String::new(),
        }
    }

    /// The same table, its keys named `prefix.key` from now on.
    pub fn renamed(self, prefix: String) -> Self {
        Table { prefix, ..self }
    }

    /// The problem key of `key` in this table.
    pub fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// Where problems about `key` show: the key when it is written, else the table.
    pub fn place(&self, key: &str) -> Place {
        let at = match self.entries.get_key_value(key) {
            Some((k, _)) => Some(k.span().start),
            None => self.at,
        };
        Place {
            key: self.key(key),
            at,
        }
    }

    /// Where problems about the table as a whole show.
    pub fn whole(&self) -> Place {
        Place {
            key: self.prefix.clone(),
            at: self.at,
        }
    }

    /// Records that `key` is wrong for `reason`.
    pub fn problem(&self, problems: &mut Problems<'_>, key: &str, reason: impl Into<String>) {
        problems.add(&self.place(key), reason);
    }

    /// Whether `key` is written, whatever its value.
    pub fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The string at `key` without any check or report (to name a table before reading it).
    pub fn peek_str(&self, key: &str) -> Option<&'a str> {
        self.entries.get(key)?.get_ref().as_str()
    }

    /// Reports every key that is not one of `known`, the keys of `table` (`[[tenant]]`…).
    pub fn unknown_keys(&self, problems: &mut Problems<'_>, known: &[&str], table: &str) {
        for (key, _) in self.entries.iter() {
            let key = key.get_ref().as_ref();
            if known.contains(&key) {
                continue;
            }
            let reason = match nearest(key, known) {
                Some(near) => format!("unknown key in {table}; did you mean `{near}`?"),
                None => format!("unknown key in {table} (its keys are {})", known.join(", ")),
            };
            self.problem(problems, key, reason);
        }
    }

    /// The string at `key`: `None` when it is absent, or not a string (reported).
    pub fn string(&self, problems: &mut Problems<'_>, key: &str) -> Option<&'a str> {
        let value = self.entries.get(key)?.get_ref();
        match value {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                let reason = format!("must be a string (in quotes), not {}", kind(other));
                self.problem(problems, key, reason);
                None
            }
        }
    }

    /// The string at `key`: `None` when it is absent or not a string, both reported.
    pub fn required_string(&self, problems: &mut Problems<'_>, key: &str) -> Option<&'a str> {
        if !self.has(key) {
            self.problem(problems, key, "is missing");
        }
        self.string(problems, key)
    }

    /// The integer at `key`: `None` when it is absent, or not an integer (reported).
    pub fn integer(&self, problems: &mut Problems<'_>, key: &str) -> Option<i64> {
        let value = self.entries.get(key)?.get_ref();
        let reason = match value {
            DeValue::Integer(n) => match i64::from_str_radix(n.as_str(), n.radix()) {
                Ok(n) => return Some(n),
                Err(_) => format!("{n} is out of range"),
            },
            DeValue::String(s) if s.trim().parse::<i64>().is_ok() => {
                format!(
                    "must be an integer, not a string: write {} without quotes",
                    s.trim()
                )
            }
            other => format!("must be an integer, not {}", kind(other)),
        };
        self.problem(problems, key, reason);
        None
    }

    /// The boolean at `key`: `None` when it is absent, or not a boolean (reported).
    pub fn boolean(&self, problems: &mut Problems<'_>, key: &str) -> Option<bool> {
        let value = self.entries.get(key)?.get_ref();
        let reason = match value {
            DeValue::Boolean(b) => return Some(*b),
            DeValue::String(s) if matches!(s.trim(), "true" | "false") => format!(
                "must be a boolean, not a string: write {} without quotes",
                s.trim()
            ),
            other => format!("must be true or false, not {}", kind(other)),
        };
        self.problem(problems, key, reason);
        None
    }

    /// The number (integer or float) at `key`: `None` when it is absent, or not a number
    /// (reported).
    pub fn number(&self, problems: &mut Problems<'_>, key: &str) -> Option<f64> {
        let value = self.entries.get(key)?.get_ref();
        let reason = match value {
            DeValue::Integer(n) => match i64::from_str_radix(n.as_str(), n.radix()) {
                Ok(n) => return Some(n as f64),
                Err(_) => format!("{n} is out of range"),
            },
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(f) if f.is_finite() => return Some(f),
                _ => format!("{f} is not a usable number"),
            },
            DeValue::String(s) if s.trim().parse::<f64>().is_ok() => format!(
                "must be a number, not a string: write {} without quotes",
                s.trim()
            ),
            other => format!("must be a number, not {}", kind(other)),
        };
        self.problem(problems, key, reason);
        None
    }

    /// The table at `key`, its keys named `key.…`: `None` when it is absent, or not a table
    /// (reported).
    pub fn table(&self, problems: &mut Problems<'_>, key: &str) -> Option<Table<'a, 'i>> {
        let value = self.entries.get(key)?;
        match value.get_ref() {
            DeValue::Table(entries) => Some(Table {
                entries,
                at: Some(value.span().start),
                prefix: self.key(key),
            }),
            other => {
                let reason = format!("must be a [{key}] table, not {}", kind(other));
                self.problem(problems, key, reason);
                None
            }
        }
    }

    /// The tables of the array at `key` (`[[key]]`), each named `key[INDEX]`: empty when it is
    /// absent; what is not a table is reported.
    pub fn tables(&self, problems: &mut Problems<'_>, key: &str) -> Vec<Table<'a, 'i>> {
        let Some(value) = self.entries.get(key) else {
            return Vec::new();
        };
        let array = match value.get_ref() {
            DeValue::Array(array) => array,
            other => {
                let reason = format!("must be [[{key}]] tables, not {}", kind(other));
                self.problem(problems, key, reason);
                return Vec::new();
            }
        };
        let mut tables = Vec::with_capacity(array.len());
        for (i, item) in array.iter().enumerate() {
            let place = Place {
                key: self.key(&format!("{key}[{i}]")),
                at: Some(item.span().start),
            };
            match item.get_ref() {
                DeValue::Table(entries) => tables.push(Table {
                    entries,
                    at: place.at,
                    prefix: place.key,
                }),
                other => problems.add(&place, format!("must be a table, not {}", kind(other))),
            }
        }
        tables
    }
}

/// `a string`, `an integer`… for "must be X, not Y".
fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The known key closest to the unknown `key`, if one is close enough to be what was meant:
/// a few edits away (case, `-` and spaces ignored), or containing it or contained in it.
fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let wanted: String = key
        .trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            ' ' | '-' => '_',
            c => c,
        })
        .collect();
    known
        .iter()
        .filter_map(|&name| {
            let distance = edit_distance(&wanted, name);
            let close = distance <= (wanted.len().max(name.len()) / 3).max(1);
            let contains =
                wanted.len() >= 3 && (name.contains(wanted.as_str()) || wanted.contains(name));
            (close || contains).then_some((distance, name))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// Edits (insertion, deletion, substitution, swap of neighbours) that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the optimal-string-alignment table: two rows back, the last, the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j - 1] + cost).min(last[j] + 1).min(row[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before, &mut last);
        std::mem::swap(&mut last, &mut row);
    }
    last[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("concurency", "concurrency"), 1);
        assert_eq!(edit_distance("concurrancy", "concurrency"), 1);
        assert_eq!(edit_distance("intreval", "interval"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }

    #[test]
    fn nearest_keys() {
        let known = ["concurrency", "api_token", "api_token_env", "max_file_size"];
        assert_eq!(nearest("concurency", &known), Some("concurrency"));
        assert_eq!(nearest("Max-File-Size", &known), Some("max_file_size"));
        assert_eq!(nearest("token", &known), Some("api_token"));
        assert_eq!(nearest("colour", &known), None);
    }
}
