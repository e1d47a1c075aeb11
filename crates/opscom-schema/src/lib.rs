//! The OPSCOM Push API's user attributes: possible header names, required flags and limits, as data.
//!
//! Everything the importer knows about the API's attributes lives in [`ATTRIBUTES`], one row per
//! attribute of the "Request Object Attributes" table in `docs/opscom-push-api.md`. Rows or details
//! the public documentation does not show are marked `inferred: true`; changing one is a one-line
//! edit here and nowhere else.
//!
//! ```
//! let attr = opscom_schema::lookup("state").unwrap();
//! assert_eq!(attr.key, "province");
//! assert_eq!(opscom_schema::nearest("Email"), Some("email"));
//! ```

#![warn(missing_docs)]

use serde::Serialize;

/// The header of the column that our failure reports append; accepted in an upload and ignored.
pub const IMPORT_ERROR_COLUMN: &str = "import_error";

/// What a value of an attribute must look like (beyond being non-empty when required).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Limit {
    /// No documented limit.
    None,
    /// At most this many characters (Unicode scalar values, not bytes).
    MaxChars {
        /// The maximum number of characters.
        max: usize,
    },
    /// A 2-letter postal abbreviation of a province or state (`MA`, `BC`): 2 ASCII letters.
    Province,
    /// A calendar date that exists, written `YYYY-MM-DD`.
    Date,
    /// A numeric id: 1 to 10 ASCII digits.
    NumericId,
    /// An e-mail address (syntax checked) of at most `max` characters.
    Email {
        /// The maximum number of characters.
        max: usize,
    },
}

impl Limit {
    /// The maximum number of characters this limit allows, if it sets one.
    pub fn max_chars(self) -> Option<usize> {
        match self {
            Limit::MaxChars { max } | Limit::Email { max } => Some(max),
            Limit::Province => Some(2),
            Limit::Date => Some(10),
            Limit::NumericId => Some(10),
            Limit::None => None,
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::None => f.write_str("no limit"),
            Limit::MaxChars { max } => write!(f, "at most {max} characters"),
            Limit::Province => f.write_str("2-letter province/state abbreviation (e.g. MA, BC)"),
            Limit::Date => f.write_str("date written YYYY-MM-DD"),
            Limit::NumericId => f.write_str("numeric id (1-10 digits)"),
            Limit::Email { max } => write!(f, "e-mail address, at most {max} characters"),
        }
    }
}

/// One attribute of the Push API's user object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Attribute {
    /// Human name, as in the API documentation ("Unique ID").
    pub name: &'static str,
    /// The JSON key sent to the API: the first possible name.
    pub key: &'static str,
    /// The exact header spellings accepted for this attribute (the key first).
    pub possible_names: &'static [&'static str],
    /// Whether a file must have this column and every row a value in it.
    pub required: bool,
    /// What a value must look like.
    pub limit: Limit,
    /// Whether this row (a name or a limit) is inferred rather than read in the public documentation.
    pub inferred: bool,
    /// One line for `opscom-import headers`.
    pub description: &'static str,
}

const fn attr(
    name: &'static str,
    possible_names: &'static [&'static str],
    required: bool,
    limit: Limit,
    inferred: bool,
    description: &'static str,
) -> Attribute {
    Attribute {
        name,
        key: possible_names[0],
        possible_names,
        required,
        limit,
        inferred,
        description,
    }
}

const fn max(n: usize) -> Limit {
    Limit::MaxChars { max: n }
}

/// Every attribute of the Push API's user object, in the documentation's order.
#[rustfmt::skip]
pub static ATTRIBUTES: &[Attribute] = &[
    attr("Unique ID", &["unique_id"], true, max(50), false,
        "The user's id in your system; the key of the upsert (a new id creates a user, a known id updates it)."),
    attr("Login Source", &["login_source"], true, max(20), false,
        "A login-source code configured on the site: OPSCOM by default, or a site-specific SAML/LDAP code."),
    attr("First Name", &["first_name"], false, max(50), false,
        "First name (the API may require it when it creates a user: error 9017)."),
    attr("Last Name", &["last_name"], false, max(50), false,
        "Last name (the API may require it when it creates a user: error 9018)."),
    attr("User Name", &["user_name"], false, max(50), false,
        "User name; unique per site (error 9020)."),
    attr("Email", &["email"], false, Limit::Email { max: 100 }, true,
        "E-mail address; unique per site (error 9019); the API may require it for a new user (9016)."),
    attr("Street, address 1", &["street"], false, Limit::None, false,
        "Street of the first address."),
    attr("City, address 1", &["city"], false, max(50), false,
        "City of the first address."),
    attr("Province/State, address 1", &["province", "state"], false, Limit::Province, false,
        "Province or state of the first address, 2-letter postal abbreviation."),
    attr("Postal/ZIP code, address 1", &["postal_code", "zip"], false, max(20), false,
        "Postal or ZIP code of the first address."),
    attr("Street, address 2", &["street2"], false, max(20), false,
        "Street of the second address (20 characters, as documented)."),
    attr("City, address 2", &["city2"], false, max(50), false,
        "City of the second address."),
    attr("Province/State, address 2", &["province2", "state2"], false, Limit::Province, true,
        "Province or state of the second address, 2-letter postal abbreviation."),
    attr("Postal/ZIP code, address 2", &["postal_code2", "zip2"], false, max(20), true,
        "Postal or ZIP code of the second address."),
    attr("Cell phone", &["phone_cell"], false, Limit::None, true,
        "Cell phone number."),
    attr("User type", &["user_type_id"], false, Limit::NumericId, true,
        "Numeric id of a user type configured on the site (Pull API profiles/types/list)."),
    attr("Employee number", &["employ_no"], false, Limit::None, true,
        "Employee number."),
    attr("Employee phone", &["employee_phone"], false, Limit::None, true,
        "Employee phone number."),
    attr("Student number", &["student_no"], false, Limit::None, true,
        "Student number."),
    attr("Student phone", &["student_phone"], false, Limit::None, true,
        "Student phone number."),
    attr("Driver's licence number", &["driver_licence_num", "driver_license_num"], false, Limit::None, true,
        "Driver's licence number."),
    attr("Driver's licence province/state", &["driver_licence_prov", "driver_license_state"], false, Limit::None, true,
        "Province or state that issued the driver's licence."),
    attr("Date of birth", &["date_of_birth"], false, Limit::Date, true,
        "Date of birth, written YYYY-MM-DD."),
    attr("Locker user type", &["locker_user_type_id"], false, Limit::NumericId, true,
        "Numeric id of a locker user type."),
];

/// Every attribute, in the documentation's order.
pub fn attributes() -> impl Iterator<Item = &'static Attribute> {
    ATTRIBUTES.iter()
}

/// The attribute whose possible names include `header` exactly (case-sensitive, no trimming).
pub fn lookup(header: &str) -> Option<&'static Attribute> {
    ATTRIBUTES
        .iter()
        .find(|a| a.possible_names.contains(&header))
}

/// The attribute whose JSON key is `key`.
pub fn by_key(key: &str) -> Option<&'static Attribute> {
    ATTRIBUTES.iter().find(|a| a.key == key)
}

/// The accepted header name closest to `header`, for a "did you mean" hint.
///
/// Comparison ignores case and treats spaces, dashes and dots like underscores; `None` when no
/// name is reasonably close (an edit distance above about half the name's length, and neither
/// name containing the other).
pub fn nearest(header: &str) -> Option<&'static str> {
    closest(header).first().copied()
}

/// Every accepted header name (the import-error column included) reasonably close to
/// `header`, best first, by [`nearest`]'s comparison and cut-off; equal scores keep the
/// table's order. Empty when none is close.
pub fn closest(header: &str) -> Vec<&'static str> {
    let wanted = normalise(header);
    if wanted.is_empty() {
        return Vec::new();
    }
    let w: String = wanted.iter().collect();
    let names = ATTRIBUTES
        .iter()
        .flat_map(|a| a.possible_names.iter().copied())
        .chain([IMPORT_ERROR_COLUMN]);
    let mut ranked: Vec<(usize, &'static str)> = Vec::new();
    for name in names {
        let candidate: Vec<char> = name.chars().collect();
        let distance = levenshtein(&wanted, &candidate);
        let longest = wanted.len().max(candidate.len());
        let contains = name.contains(&w) || (w.contains(name) && name.len() >= 3);
        if distance > longest / 2 && !contains {
            continue;
        }
        // A containment match ranks like a close edit.
        let score = if contains { distance.min(2) } else { distance };
        ranked.push((score, name));
    }
    // Stable: equal scores keep the table's order.
    ranked.sort_by_key(|&(score, _)| score);
    ranked.into_iter().map(|(_, name)| name).collect()
}

fn normalise(s: &str) -> Vec<char> {
    s.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| if matches!(c, ' ' | '-' | '.') { '_' } else { c })
        .collect()
}

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The possible names of every attribute row in docs/opscom-push-api.md's table, in order.
    const DOC_TABLE: &[&[&str]] = &[
        &["unique_id"],
        &["login_source"],
        &["first_name"],
        &["last_name"],
        &["user_name"],
        &["email"],
        &["street"],
        &["city"],
        &["province", "state"],
        &["postal_code", "zip"],
        &["street2"],
        &["city2"],
        &["province2", "state2"],
        &["postal_code2", "zip2"],
        &["phone_cell"],
        &["user_type_id"],
        &["employ_no"],
        &["employee_phone"],
        &["student_no"],
        &["student_phone"],
        &["driver_licence_num", "driver_license_num"],
        &["driver_licence_prov", "driver_license_state"],
        &["date_of_birth"],
        &["locker_user_type_id"],
    ];

    #[test]
    fn table_covers_every_attribute_of_the_doc() {
        let ours: Vec<&[&str]> = attributes().map(|a| a.possible_names).collect();
        assert_eq!(ours, DOC_TABLE);
    }

    #[test]
    fn no_possible_name_appears_twice_and_key_is_first_name() {
        let mut seen = HashSet::new();
        for a in attributes() {
            assert_eq!(a.key, a.possible_names[0]);
            for n in a.possible_names {
                assert!(seen.insert(*n), "{n} appears twice");
                assert_eq!(n.trim(), *n);
                assert_ne!(*n, IMPORT_ERROR_COLUMN);
            }
        }
    }

    #[test]
    fn only_unique_id_and_login_source_are_required() {
        let required: Vec<_> = attributes().filter(|a| a.required).map(|a| a.key).collect();
        assert_eq!(required, ["unique_id", "login_source"]);
    }

    #[test]
    fn documented_limits() {
        let limit = |k| by_key(k).unwrap().limit;
        assert_eq!(limit("unique_id"), Limit::MaxChars { max: 50 });
        assert_eq!(limit("login_source"), Limit::MaxChars { max: 20 });
        assert_eq!(limit("street2"), Limit::MaxChars { max: 20 });
        assert_eq!(limit("street"), Limit::None);
        assert_eq!(limit("email"), Limit::Email { max: 100 });
        assert_eq!(limit("province"), Limit::Province);
        assert_eq!(limit("province2"), Limit::Province);
        assert_eq!(limit("date_of_birth"), Limit::Date);
        assert_eq!(limit("user_type_id"), Limit::NumericId);
        assert_eq!(limit("locker_user_type_id"), Limit::NumericId);
        assert!(!by_key("unique_id").unwrap().inferred);
        assert!(by_key("phone_cell").unwrap().inferred);
    }

    #[test]
    fn lookup_is_exact() {
        assert_eq!(lookup("zip").unwrap().key, "postal_code");
        assert_eq!(
            lookup("driver_license_state").unwrap().key,
            "driver_licence_prov"
        );
        assert!(lookup("Email").is_none());
        assert!(lookup(" email").is_none());
        assert!(lookup(IMPORT_ERROR_COLUMN).is_none());
    }

    #[test]
    fn nearest_suggests_the_likely_name() {
        assert_eq!(nearest("Email"), Some("email"));
        assert_eq!(nearest("E-mail"), Some("email"));
        assert_eq!(nearest("First Name"), Some("first_name"));
        assert_eq!(nearest("uniqueid"), Some("unique_id"));
        assert_eq!(nearest("LoginSource"), Some("login_source"));
        assert_eq!(nearest("Date Of Birth"), Some("date_of_birth"));
        assert_eq!(nearest("ZIP"), Some("zip"));
        assert_eq!(nearest("Import Error"), Some(IMPORT_ERROR_COLUMN));
        assert_eq!(nearest("Department"), None);
        assert_eq!(nearest(""), None);
    }
}
