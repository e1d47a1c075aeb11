//! [`explain_refusal`]: a row refused by the API, said as one sentence the client can act on,
//! quoting the value that was refused.

use std::fmt::Write as _;

use opscom_schema::{Attribute, Limit};

use crate::model::{ApiError, UserRecord};

/// The longest value quoted in an explanation, in characters ("…" included).
pub const MAX_QUOTED_CHARS: usize = 60;

/// The refusal `err` of `user` as one line the client can act on: what OPSCOM refused, quoting
/// the refused value (at most [`MAX_QUOTED_CHARS`] characters, on one line) and, where the API's
/// documentation lists them, the accepted values; then the API's error code.
///
/// The codes of `docs/opscom-push-api.md` are explained (9013–9022, 9030–9033); for 9030–9033 the
/// field is the one the API's message names (an attribute's key, or its key with spaces, such as
/// `first name`), else for 9030 the value over its documented limit (or the longest value). Any
/// other refusal (another code, a refusal by HTTP status alone, the token codes) is `err`'s own
/// text, which quotes the API's message. Nothing but `user`'s values of the attributes concerned
/// and `err` is used: the API token is never part of the text.
///
/// ```
/// use opscom_api::{ApiError, UserRecord, explain_refusal};
///
/// let user = UserRecord::new(7, "s1").with("login_source", "CAMPUS-SSO");
/// let err = ApiError { code: Some(9015), message: "Login Source is invalid".into(), http_status: 200 };
/// assert!(explain_refusal(&err, &user)
///     .starts_with("OPSCOM does not know the login source \"CAMPUS-SSO\" (error 9015)."));
/// ```
pub fn explain_refusal(err: &ApiError, user: &UserRecord) -> String {
    let Some(code) = err.code else {
        return err.to_string();
    };
    let value = |key: &str| value_of(user, key);
    let quoted = |key: &str| value(key).map(quote);
    match code {
        9013 => match quoted("unique_id") {
            Some(id) => format!(
                "OPSCOM did not accept the unique id {id} (error 9013). Give the user an id in the unique_id column (at most 50 characters)."
            ),
            None => "OPSCOM needs a unique id and the row has none (error 9013). Give the user an id in the unique_id column (at most 50 characters).".to_owned(),
        },
        9014 => format!(
            "{} (error 9014). {LOGIN_SOURCES}",
            match quoted("login_source") {
                Some(source) => format!("OPSCOM did not accept the login source {source} as given"),
                None => "OPSCOM needs a login source and the row has none".to_owned(),
            }
        ),
        9015 => format!(
            "OPSCOM does not know the login source {} (error 9015). {LOGIN_SOURCES}",
            quoted("login_source").unwrap_or_else(|| "given".to_owned())
        ),
        9016 => required(user, "email", "an e-mail address", 9016, "Add the user's e-mail address in the email column."),
        9017 => required(user, "first_name", "a first name", 9017, "Add the user's first name in the first_name column."),
        9018 => required(user, "last_name", "a last name", 9018, "Add the user's last name in the last_name column."),
        9019 => format!(
            "The e-mail {} is already used by another OPSCOM user (error 9019). Give each user their own e-mail address; if this is the same person, use the unique_id OPSCOM already has for them.",
            quoted("email").unwrap_or_else(|| "address".to_owned())
        ),
        9020 => format!(
            "The user name {} is already taken by another OPSCOM user (error 9020). Choose another user_name; if this is the same person, use the unique_id OPSCOM already has for them.",
            quoted("user_name").unwrap_or_else(|| "given".to_owned())
        ),
        9022 => {
            let mut details = Vec::new();
            for (key, name) in [
                ("unique_id", "unique id"),
                ("email", "e-mail"),
                ("user_name", "user name"),
            ] {
                if let Some(v) = quoted(key) {
                    details.push(format!("{name} {v}"));
                }
            }
            let details = if details.is_empty() {
                String::new()
            } else {
                format!(" ({})", details.join(", "))
            };
            format!(
                "OPSCOM already has a record with these details{details} (error 9022). If this is the same person, use the unique_id OPSCOM already has for them; otherwise correct the details."
            )
        }
        9030 => too_long(err, user),
        9031..=9033 => field_refusal(err, user, code),
        _ => err.to_string(),
    }
}

/// The accepted login sources, as `docs/opscom-push-api.md` describes them.
const LOGIN_SOURCES: &str = "Use OPSCOM (the default) or a login-source code set up on your OPSCOM site (its SAML/LDAP sources); ask your OPSCOM administrator for the list.";

/// 9016–9018: a field the API requires (for a new user).
fn required(user: &UserRecord, key: &str, what: &str, code: i64, fix: &str) -> String {
    match value_of(user, key) {
        None => {
            format!("OPSCOM needs {what} for a new user and the row has none (error {code}). {fix}")
        }
        Some(v) => format!(
            "OPSCOM needs {what} and did not accept {} (error {code}). {fix}",
            quote(v)
        ),
    }
}

/// 9030: the named field, else the value over its documented limit, else the longest value.
fn too_long(err: &ApiError, user: &UserRecord) -> String {
    let shorten = "Shorten it.";
    if let Some(attr) = named_attribute(&err.message) {
        let limit = attr.limit.max_chars().or_else(|| only_number(&err.message));
        let mut text = format!("The {} column", column_name(attr));
        if let Some(v) = value_of(user, attr.key) {
            let _ = write!(
                text,
                "'s value {} ({} characters)",
                quote(v),
                v.chars().count()
            );
        }
        match limit {
            Some(max) => {
                let _ = write!(text, " is longer than the {max} characters OPSCOM allows");
            }
            None => text.push_str(" is longer than OPSCOM allows"),
        }
        return format!("{text} (error 9030). {shorten}");
    }
    let values = || {
        user.attributes
            .iter()
            .filter_map(|(k, v)| Some((opscom_schema::lookup(k)?, v.as_str())))
            .chain(
                // The `unique_id` field, when `attributes` does not carry it.
                (user.attribute("unique_id").is_none() && !user.unique_id.is_empty())
                    .then(|| opscom_schema::by_key("unique_id"))
                    .flatten()
                    .map(|a| (a, user.unique_id.as_str())),
            )
    };
    let over: Vec<String> = values()
        .filter_map(|(attr, v)| {
            let max = attr.limit.max_chars()?;
            let count = v.chars().count();
            (count > max).then(|| {
                format!(
                    "the {} column's value {} has {count} characters (at most {max})",
                    column_name(attr),
                    quote(v)
                )
            })
        })
        .collect();
    if !over.is_empty() {
        return format!(
            "OPSCOM found a value longer than it allows (error 9030): {}. {shorten}",
            over.join("; ")
        );
    }
    match values().max_by_key(|(_, v)| v.chars().count()) {
        Some((attr, v)) => format!(
            "OPSCOM found a value longer than it allows (error 9030), without naming it; the longest is the {} column's value {} ({} characters). Shorten it.",
            column_name(attr),
            quote(v),
            v.chars().count()
        ),
        None => err.to_string(),
    }
}

/// 9031–9033: a field required, too short, or invalid; the field when the message names it.
fn field_refusal(err: &ApiError, user: &UserRecord, code: i64) -> String {
    let Some(attr) = named_attribute(&err.message) else {
        let what = match code {
            9031 => "a field it requires is empty",
            9032 => "a value is shorter than it allows",
            _ => "a value is not valid",
        };
        return format!(
            "OPSCOM says {what} (error {code}), without naming the field: {}.",
            quote(&err.message)
        );
    };
    let column = column_name(attr);
    let value = value_of(user, attr.key);
    match (code, value) {
        (9031, None) => {
            format!(
                "OPSCOM requires the {column} column, which the row leaves empty (error 9031). Fill it in."
            )
        }
        (9031, Some(v)) => format!(
            "OPSCOM requires the {column} column and did not accept {} (error 9031).",
            quote(v)
        ),
        (9032, Some(v)) => format!(
            "The {column} column's value {} is shorter than OPSCOM allows (error 9032). Give the full value.",
            quote(v)
        ),
        (9032, None) => format!(
            "The {column} column's value is shorter than OPSCOM allows (error 9032). Give the full value."
        ),
        (_, v) => {
            let shown = v
                .map(|v| format!("'s value {}", quote(v)))
                .unwrap_or_default();
            format!(
                "The {column} column{shown} is not valid for OPSCOM (error {code}). {}",
                accepted(attr)
            )
        }
    }
}

/// What a valid value of `attr` looks like, as one sentence.
fn accepted(attr: &Attribute) -> String {
    match (attr.key, attr.limit) {
        ("user_type_id" | "locker_user_type_id", _) => {
            "Use the numeric id of a user type set up on your OPSCOM site; ask your OPSCOM administrator for the list.".to_owned()
        }
        ("login_source", _) => LOGIN_SOURCES.to_owned(),
        (_, Limit::None) => "Correct the value.".to_owned(),
        (_, limit) => format!("Expected: {limit}."),
    }
}

/// The column a client writes for `attr`: its possible names, `province/state`.
fn column_name(attr: &Attribute) -> String {
    attr.possible_names.join("/")
}

/// The value of the attribute `key` in `user`, under any of its possible names (`state` for
/// `province`; the `unique_id` field for `unique_id`), if not empty.
fn value_of<'a>(user: &'a UserRecord, key: &str) -> Option<&'a str> {
    let names = opscom_schema::by_key(key).map_or(&[][..], |a| a.possible_names);
    let value = user
        .attribute(key)
        .or_else(|| names.iter().find_map(|n| user.attribute(n)))
        .or_else(|| (key == "unique_id").then_some(user.unique_id.as_str()));
    value.filter(|v| !v.trim().is_empty())
}

/// `value` in double quotes, on one line, cut to [`MAX_QUOTED_CHARS`] characters with "…".
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_QUOTED_CHARS * 4) + 2);
    out.push('"');
    let mut count = 0;
    let mut chars = value.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if count == MAX_QUOTED_CHARS - 1 && chars.peek().is_some() {
            out.push('…');
            break;
        }
        let c = if c.is_control() || c.is_whitespace() || is_format(c) {
            ' '
        } else {
            c
        };
        out.push(c);
        count += 1;
    }
    out.push('"');
    out
}

/// Bidirectional and invisible formatting characters, which must not reach a report as they are.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// The attribute the API's message names: a possible name as a whole word (`city`, not in
/// `city2`), or written with spaces (`First Name`), case ignored; the longest name found wins.
fn named_attribute(message: &str) -> Option<&'static Attribute> {
    let lower = message.to_lowercase();
    let mut best: Option<(usize, &'static Attribute)> = None;
    for attr in opscom_schema::attributes() {
        for name in attr.possible_names {
            let spaced = name.replace('_', " ");
            for form in [name.to_string(), spaced] {
                if contains_word(&lower, &form) && best.is_none_or(|(len, _)| form.len() > len) {
                    best = Some((form.len(), attr));
                }
            }
        }
    }
    best.map(|(_, attr)| attr)
}

/// Whether `word` occurs in `text` between non-word characters (letters, digits, `_`).
fn contains_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The one number in `message`, if it has exactly one.
fn only_number(message: &str) -> Option<usize> {
    let mut numbers = message
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    match (numbers.next(), numbers.next()) {
        (Some(n), None) => n.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i64, message: &str) -> ApiError {
        ApiError {
            code: Some(code),
            message: message.into(),
            http_status: 200,
        }
    }

    fn user() -> UserRecord {
        UserRecord::new(4, "s1001")
            .with("unique_id", "s1001")
            .with("login_source", "CAMPUS-SSO")
            .with("email", "x@y.org")
            .with("user_name", "jdoe")
            .with("first_name", "Ann")
            .with("province", "Nova Scotia")
    }

    fn explain(code: i64, message: &str) -> String {
        let text = explain_refusal(&err(code, message), &user());
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(text.contains(&format!("(error {code})")), "{text}");
        text
    }

    #[test]
    fn login_source_invalid_quotes_it_and_lists_what_is_accepted() {
        assert_eq!(
            explain(9015, "Login Source is invalid"),
            "OPSCOM does not know the login source \"CAMPUS-SSO\" (error 9015). Use OPSCOM (the default) or a login-source code set up on your OPSCOM site (its SAML/LDAP sources); ask your OPSCOM administrator for the list."
        );
    }

    #[test]
    fn login_source_required() {
        let text = explain_refusal(
            &err(9014, "Login Source is required"),
            &UserRecord::new(2, "u1"),
        );
        assert!(text.starts_with("OPSCOM needs a login source and the row has none (error 9014). Use OPSCOM (the default)"), "{text}");
        let text = explain(9014, "Login Source is required");
        assert!(text.contains("\"CAMPUS-SSO\""), "{text}");
    }

    #[test]
    fn unique_id_required() {
        let text = explain_refusal(&err(9013, "Unique ID is required"), &UserRecord::new(2, ""));
        assert!(
            text.starts_with("OPSCOM needs a unique id and the row has none (error 9013)."),
            "{text}"
        );
        assert!(explain(9013, "Unique ID is required").contains("\"s1001\""));
    }

    #[test]
    fn names_and_email_required() {
        let bare = UserRecord::new(2, "u1").with("login_source", "OPSCOM");
        for (code, column) in [(9016, "email"), (9017, "first_name"), (9018, "last_name")] {
            let text = explain_refusal(&err(code, "required"), &bare);
            assert!(
                text.contains("for a new user and the row has none"),
                "{text}"
            );
            assert!(text.contains(&format!("in the {column} column")), "{text}");
            assert!(text.contains(&format!("(error {code})")), "{text}");
        }
        // Sent, yet refused: quoted.
        assert!(explain(9016, "User Email is required").contains("did not accept \"x@y.org\""));
        assert!(explain(9017, "First Name is required").contains("\"Ann\""));
    }

    #[test]
    fn email_and_user_name_taken() {
        assert!(explain(9019, "E-mail must be unique").starts_with(
            "The e-mail \"x@y.org\" is already used by another OPSCOM user (error 9019)."
        ));
        assert!(explain(9020, "Username must be unique").starts_with(
            "The user name \"jdoe\" is already taken by another OPSCOM user (error 9020)."
        ));
    }

    #[test]
    fn a_record_with_these_details() {
        let text = explain(9022, "Record already exists");
        assert!(
            text.starts_with("OPSCOM already has a record with these details (unique id \"s1001\", e-mail \"x@y.org\", user name \"jdoe\") (error 9022)."),
            "{text}"
        );
    }

    #[test]
    fn too_long_names_the_field_the_message_names() {
        let user = user().with("city", "C".repeat(70));
        let text = explain_refusal(
            &err(9030, "Field is longer than its maximum length: city (50)"),
            &user,
        );
        let quoted = format!("\"{}…\"", "C".repeat(59));
        assert_eq!(
            text,
            format!(
                "The city column's value {quoted} (70 characters) is longer than the 50 characters OPSCOM allows (error 9030). Shorten it."
            )
        );
        // A field written with spaces; `city2` is not `city`.
        let user = user.with("city2", "D".repeat(51));
        let text = explain_refusal(&err(9030, "City2 is too long"), &user);
        assert!(text.starts_with("The city2 column's value \"DDD"), "{text}");
        let text = explain_refusal(&err(9030, "First Name too long"), &UserRecord::new(1, "u"));
        assert!(
            text.starts_with("The first_name column is longer than the 50 characters"),
            "{text}"
        );
        // No documented limit: the message's number.
        let text = explain_refusal(
            &err(9030, "street exceeds 120 characters"),
            &UserRecord::new(1, "u"),
        );
        assert!(
            text.contains("longer than the 120 characters OPSCOM allows"),
            "{text}"
        );
    }

    #[test]
    fn too_long_without_a_field_finds_the_value_over_its_limit_or_the_longest() {
        let user = user().with("street2", "12345 Long Street Name Road");
        let text = explain_refusal(&err(9030, "Field is longer than its maximum length"), &user);
        assert_eq!(
            text,
            "OPSCOM found a value longer than it allows (error 9030): the province/state column's value \"Nova Scotia\" has 11 characters (at most 2); the street2 column's value \"12345 Long Street Name Road\" has 27 characters (at most 20). Shorten it."
        );
        let user = UserRecord::new(1, "u1")
            .with("street", "1 Main Street")
            .with("city", "Truro");
        let text = explain_refusal(&err(9030, "too long"), &user);
        assert!(
            text.contains(
                "the longest is the street column's value \"1 Main Street\" (13 characters)"
            ),
            "{text}"
        );
    }

    #[test]
    fn field_required_short_or_invalid() {
        let text = explain(9031, "Field is required: last_name");
        assert_eq!(
            text,
            "OPSCOM requires the last_name column, which the row leaves empty (error 9031). Fill it in."
        );
        let text = explain(9032, "user_name is too short");
        assert!(
            text.starts_with(
                "The user_name column's value \"jdoe\" is shorter than OPSCOM allows (error 9032)."
            ),
            "{text}"
        );
        let text = explain(9033, "Field value is invalid: province");
        assert_eq!(
            text,
            "The province/state column's value \"Nova Scotia\" is not valid for OPSCOM (error 9033). Expected: 2-letter province/state abbreviation (e.g. MA, BC)."
        );
        let user = UserRecord::new(1, "u1").with("user_type_id", "99");
        let text = explain_refusal(&err(9033, "Field value is invalid: user_type_id"), &user);
        assert!(text.contains("\"99\""), "{text}");
        assert!(
            text.contains("numeric id of a user type set up on your OPSCOM site"),
            "{text}"
        );
        // Not named: the API's message is quoted.
        let text = explain(9033, "Field value is invalid");
        assert_eq!(
            text,
            "OPSCOM says a value is not valid (error 9033), without naming the field: \"Field value is invalid\"."
        );
    }

    #[test]
    fn other_refusals_keep_the_apis_message() {
        let e = err(9007, "Permit not found");
        assert_eq!(explain_refusal(&e, &user()), e.to_string());
        let e = ApiError {
            code: None,
            message: "HTTP 422 Unprocessable Entity".into(),
            http_status: 422,
        };
        assert_eq!(explain_refusal(&e, &user()), e.to_string());
    }

    #[test]
    fn quoted_values_are_one_bounded_line() {
        let huge = format!("{}\n\u{202E}evil", "x".repeat(100_000));
        let user = UserRecord::new(1, "u1").with("login_source", huge);
        let text = explain_refusal(&err(9015, "Login Source is invalid"), &user);
        assert!(text.chars().count() < 400, "{text}");
        assert!(text.contains(&format!("\"{}…\"", "x".repeat(59))), "{text}");
        assert_eq!(quote("a\r\nb\u{202E}c"), "\"a  b c\"");
        assert_eq!(
            quote(&"y".repeat(60)).chars().count(),
            62,
            "60 characters fit"
        );
        assert_eq!(quote(&"y".repeat(61)), format!("\"{}…\"", "y".repeat(59)));
    }

    #[test]
    fn the_word_match_is_whole() {
        assert_eq!(
            named_attribute("city2 too long").map(|a| a.key),
            Some("city2")
        );
        assert_eq!(named_attribute("the city is").map(|a| a.key), Some("city"));
        assert_eq!(
            named_attribute("ZIP2 bad").map(|a| a.key),
            Some("postal_code2")
        );
        assert_eq!(
            named_attribute("locker_user_type_id bad").map(|a| a.key),
            Some("locker_user_type_id")
        );
        assert_eq!(
            named_attribute("Field is longer than its maximum length"),
            None
        );
        assert_eq!(
            named_attribute("Login Source is invalid").map(|a| a.key),
            Some("login_source")
        );
    }
}
