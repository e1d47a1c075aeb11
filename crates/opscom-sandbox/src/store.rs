//! The sandbox's behaviour without HTTP: token check, validation, uniqueness, upsert, request log.

use std::collections::{BTreeMap, HashMap, VecDeque};

use opscom_schema::Limit;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::SandboxConfig;

/// A stored user, as the read-only view `GET /_sandbox/users` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxUser {
    /// The upsert key.
    pub unique_id: String,
    /// Attribute key → value, under the attribute's canonical key (`state` is stored as `province`).
    pub attributes: BTreeMap<String, String>,
    /// How many pushes updated the user after it was created.
    pub updates: u32,
}

/// Which API endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /api/OC_TOMA/v1/profiles/push`.
    Push,
    /// `POST /api/OC_TOMA/v1/profiles/types/list`.
    TypesList,
}

/// What the sandbox made of a request's token (the token itself is never kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCheck {
    /// The request was answered before the token was looked at (fault, throttle, unparsable body).
    NotChecked,
    /// No `apiToken`, or an empty one.
    Missing,
    /// Unknown, or known without permission for this endpoint.
    NoPermission,
    /// Accepted.
    Valid,
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// A new user was stored.
    Created,
    /// A known user was updated.
    Updated,
    /// User types were listed.
    Listed,
    /// An `ErrorCode` body was sent.
    Rejected,
    /// A 503 was sent (outage or injected failure).
    Unavailable,
    /// A 429 was sent.
    Throttled,
}

/// One received API request, as the read-only view `GET /_sandbox/requests` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The `unique_id` sent, if any.
    pub unique_id: Option<String>,
    /// The string fields of the body, without `apiToken`.
    pub attributes: BTreeMap<String, String>,
    /// What the token was found to be.
    pub token: TokenCheck,
    /// The HTTP status answered.
    pub status: u16,
    /// The `ErrorCode` answered, if any.
    pub error_code: Option<i64>,
    /// How it was answered.
    pub outcome: RequestOutcome,
}

/// An answer to send: status, JSON body, and what to record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
    pub error_code: Option<i64>,
    pub outcome: RequestOutcome,
}

/// The message the sandbox sends with each error code (wording modelled on the published list).
pub fn error_message(code: i64) -> &'static str {
    match code {
        9001 => "API Token is missing",
        9002 => "API Token does not have permission for this request",
        9003 => "Request could not be parsed",
        9013 => "Unique ID is required",
        9014 => "Login Source is required",
        9015 => "Login Source is invalid",
        9016 => "User Email is required",
        9017 => "First Name is required",
        9018 => "Last Name is required",
        9019 => "E-mail must be unique",
        9020 => "Username must be unique",
        9030 => "Field is longer than its maximum length",
        9033 => "Field value is invalid",
        _ => "Error",
    }
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    users: Vec<SandboxUser>,
    by_id: HashMap<String, usize>,
    emails: HashMap<String, usize>,
    user_names: HashMap<String, usize>,
    requests: VecDeque<RecordedRequest>,
    seq: u64,
}

struct Parsed {
    object: serde_json::Map<String, Value>,
    attributes: BTreeMap<String, String>,
    unique_id: Option<String>,
}

impl Store {
    pub fn users(&self) -> Vec<SandboxUser> {
        self.users.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.iter().cloned().collect()
    }

    pub fn reset(&mut self) {
        *self = Store::default();
    }

    /// Records a request answered before its body was looked at (a fault or a throttle).
    pub fn record_fault(
        &mut self,
        config: &SandboxConfig,
        endpoint: Endpoint,
        status: u16,
        outcome: RequestOutcome,
    ) {
        self.record(
            config,
            RecordedRequest {
                seq: 0,
                endpoint,
                unique_id: None,
                attributes: BTreeMap::new(),
                token: TokenCheck::NotChecked,
                status,
                error_code: None,
                outcome,
            },
        );
    }

    fn record(&mut self, config: &SandboxConfig, mut request: RecordedRequest) {
        self.seq += 1;
        request.seq = self.seq;
        if config.request_log_limit == 0 {
            return;
        }
        while self.requests.len() >= config.request_log_limit {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }

    /// `POST …/profiles/push`.
    pub fn push(&mut self, config: &SandboxConfig, body: &[u8]) -> Reply {
        let (reply, token, parsed) = self.push_inner(config, body);
        let (unique_id, attributes) = parsed
            .map(|p| (p.unique_id, p.attributes))
            .unwrap_or_default();
        self.record(
            config,
            RecordedRequest {
                seq: 0,
                endpoint: Endpoint::Push,
                unique_id,
                attributes,
                token,
                status: reply.status,
                error_code: reply.error_code,
                outcome: reply.outcome,
            },
        );
        reply
    }

    /// `POST …/profiles/types/list`.
    pub fn types_list(&mut self, config: &SandboxConfig, body: &[u8]) -> Reply {
        let (reply, token) = match parse(body) {
            None => (error(config, 9003), TokenCheck::NotChecked),
            Some(parsed) => match token_check(config, &parsed.object, true) {
                TokenCheck::Valid => {
                    let types: Vec<Value> = config
                        .user_types
                        .iter()
                        .map(|t| json!({"user_type_id": t.id.to_string(), "name": t.name}))
                        .collect();
                    let reply = Reply {
                        status: 200,
                        body: json!({"status": "success", "data": types}),
                        error_code: None,
                        outcome: RequestOutcome::Listed,
                    };
                    (reply, TokenCheck::Valid)
                }
                TokenCheck::Missing => (error(config, 9001), TokenCheck::Missing),
                other => (error(config, 9002), other),
            },
        };
        self.record(
            config,
            RecordedRequest {
                seq: 0,
                endpoint: Endpoint::TypesList,
                unique_id: None,
                attributes: BTreeMap::new(),
                token,
                status: reply.status,
                error_code: reply.error_code,
                outcome: reply.outcome,
            },
        );
        reply
    }

    fn push_inner(
        &mut self,
        config: &SandboxConfig,
        body: &[u8],
    ) -> (Reply, TokenCheck, Option<Parsed>) {
        let Some(parsed) = parse(body) else {
            return (error(config, 9003), TokenCheck::NotChecked, None);
        };
        let token = token_check(config, &parsed.object, false);
        let result = match token {
            TokenCheck::Missing => Err(9001.into()),
            TokenCheck::NoPermission | TokenCheck::NotChecked => Err(9002.into()),
            TokenCheck::Valid => self.check_and_store(config, &parsed),
        };
        let reply = match result {
            Err(refused) => refusal(config, refused),
            Ok(created) => Reply {
                status: 200,
                body: json!({"status": "success"}),
                error_code: None,
                outcome: if created {
                    RequestOutcome::Created
                } else {
                    RequestOutcome::Updated
                },
            },
        };
        (reply, token, Some(parsed))
    }

    /// Validates a push with a valid token and stores it: `Ok(true)` when created, `Err` on a refusal.
    fn check_and_store(
        &mut self,
        config: &SandboxConfig,
        parsed: &Parsed,
    ) -> Result<bool, Refusal> {
        // Every value but the token must be a string.
        if parsed
            .object
            .iter()
            .any(|(key, value)| key != "apiToken" && !value.is_string())
        {
            return Err(9003.into());
        }
        let unique_id = parsed.unique_id.clone().ok_or(Refusal::code(9013))?;
        let login_source = (parsed.attributes.get("login_source")).ok_or(Refusal::code(9014))?;
        if !config.login_sources.iter().any(|s| s == login_source) {
            return Err(9015.into());
        }
        let mut canonical = BTreeMap::new();
        for (key, value) in &parsed.attributes {
            let Some(attribute) = opscom_schema::lookup(key) else {
                continue; // unknown fields are ignored, as an upsert API usually does
            };
            check_limit(config, attribute.key, attribute.limit, value).map_err(|code| Refusal {
                code,
                // As the request named it (`state`, not `province`).
                field: (attribute.possible_names.iter().copied())
                    .find(|n| n == key)
                    .or(Some(attribute.key)),
                max: (code == 9030)
                    .then(|| attribute.limit.max_chars())
                    .flatten(),
            })?;
            canonical.insert(attribute.key.to_owned(), value.clone());
        }
        let existing = self.by_id.get(&unique_id).copied();
        if existing.is_none() && config.require_names_on_create {
            for (key, code) in [("email", 9016), ("first_name", 9017), ("last_name", 9018)] {
                if !canonical.contains_key(key) {
                    return Err(code.into());
                }
            }
        }
        let taken = |index: &HashMap<String, usize>, key: &str| {
            canonical
                .get(key)
                .and_then(|v| index.get(&v.to_lowercase()))
                .is_some_and(|&owner| Some(owner) != existing)
        };
        if taken(&self.emails, "email") {
            return Err(9019.into());
        }
        if taken(&self.user_names, "user_name") {
            return Err(9020.into());
        }
        let index = match existing {
            Some(index) => {
                let user = &mut self.users[index];
                for (key, index_map) in [
                    ("email", &mut self.emails),
                    ("user_name", &mut self.user_names),
                ] {
                    if let (Some(old), Some(_)) = (user.attributes.get(key), canonical.get(key)) {
                        index_map.remove(&old.to_lowercase());
                    }
                }
                user.attributes.extend(canonical);
                user.updates += 1;
                index
            }
            None => {
                self.users.push(SandboxUser {
                    unique_id: unique_id.clone(),
                    attributes: canonical,
                    updates: 0,
                });
                let index = self.users.len() - 1;
                self.by_id.insert(unique_id, index);
                index
            }
        };
        let user = &self.users[index];
        if let Some(email) = user.attributes.get("email") {
            self.emails.insert(email.to_lowercase(), index);
        }
        if let Some(name) = user.attributes.get("user_name") {
            self.user_names.insert(name.to_lowercase(), index);
        }
        Ok(existing.is_none())
    }
}

fn parse(body: &[u8]) -> Option<Parsed> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let attributes: BTreeMap<String, String> = object
        .iter()
        .filter(|(key, _)| *key != "apiToken")
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    let unique_id = attributes.get("unique_id").cloned();
    Some(Parsed {
        object,
        attributes,
        unique_id,
    })
}

fn token_check(
    config: &SandboxConfig,
    object: &serde_json::Map<String, Value>,
    pull: bool,
) -> TokenCheck {
    match object.get("apiToken").and_then(Value::as_str) {
        None | Some("") => TokenCheck::Missing,
        Some(token) if config.tokens.iter().any(|t| t == token) => TokenCheck::Valid,
        Some(token) if pull && config.pull_only_tokens.iter().any(|t| t == token) => {
            TokenCheck::Valid
        }
        Some(_) => TokenCheck::NoPermission,
    }
}

fn error(config: &SandboxConfig, code: i64) -> Reply {
    refusal(config, Refusal::code(code))
}

/// A refused push: the code and, for the field errors (9030, 9033), the field (by its JSON key)
/// and its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    code: i64,
    field: Option<&'static str>,
    max: Option<usize>,
}

impl Refusal {
    fn code(code: i64) -> Self {
        Refusal {
            code,
            field: None,
            max: None,
        }
    }

    /// The `ErrorMessage`: [`error_message`], followed for a field error by the field (as the
    /// request named it) and its limit. Naming the field is **inferred** (see
    /// `docs/opscom-push-api.md`, error codes).
    fn message(&self) -> String {
        let base = error_message(self.code);
        match (self.field, self.max) {
            (Some(field), Some(max)) => format!("{base}: {field} ({max})"),
            (Some(field), None) => format!("{base}: {field}"),
            _ => base.to_owned(),
        }
    }
}

impl From<i64> for Refusal {
    fn from(code: i64) -> Self {
        Refusal::code(code)
    }
}

fn refusal(config: &SandboxConfig, refusal: Refusal) -> Reply {
    Reply {
        status: config.error_status.code(),
        body: json!({"ErrorCode": refusal.code, "ErrorMessage": refusal.message()}),
        error_code: Some(refusal.code),
        outcome: RequestOutcome::Rejected,
    }
}

fn check_limit(config: &SandboxConfig, key: &str, limit: Limit, value: &str) -> Result<(), i64> {
    if let Some(max) = limit.max_chars()
        && value.chars().count() > max
    {
        return Err(9030);
    }
    let valid = match limit {
        Limit::None | Limit::MaxChars { .. } => true,
        Limit::Province => value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()),
        Limit::Date => is_date(value),
        Limit::NumericId => {
            !value.is_empty()
                && value.bytes().all(|b| b.is_ascii_digit())
                && (key != "user_type_id"
                    || config.user_types.iter().any(|t| value.parse() == Ok(t.id)))
        }
        Limit::Email { .. } => is_email(value),
    };
    if valid { Ok(()) } else { Err(9033) }
}

fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(char::is_whitespace)
}

fn is_date(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = value.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_TOKEN, ErrorStatus};

    fn body(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut object = serde_json::Map::new();
        object.insert("apiToken".into(), DEFAULT_TOKEN.into());
        object.insert("login_source".into(), "OPSCOM".into());
        for (key, value) in fields {
            object.insert((*key).into(), (*value).into());
        }
        serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
    }

    fn code(reply: &Reply) -> Option<i64> {
        reply.body.get("ErrorCode").and_then(Value::as_i64)
    }

    #[test]
    fn a_valid_push_creates_then_updates_by_unique_id() {
        let config = SandboxConfig::default();
        let mut store = Store::default();
        let first = store.push(&config, &body(&[("unique_id", "u1"), ("city", "Halifax")]));
        assert_eq!(
            (first.status, &first.body),
            (200, &json!({"status": "success"}))
        );
        assert_eq!(first.outcome, RequestOutcome::Created);
        let second = store.push(
            &config,
            &body(&[("unique_id", "u1"), ("first_name", "Ann")]),
        );
        assert_eq!(second.outcome, RequestOutcome::Updated);
        let users = store.users();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].updates, 1);
        assert_eq!(
            users[0].attributes.get("city").map(String::as_str),
            Some("Halifax")
        );
        assert_eq!(
            users[0].attributes.get("first_name").map(String::as_str),
            Some("Ann")
        );
    }

    #[test]
    fn tokens_are_checked_first() {
        let config = SandboxConfig::default().pull_only_tokens(["reader"]);
        let mut store = Store::default();
        let missing = store.push(&config, br#"{"unique_id":"u1","login_source":"OPSCOM"}"#);
        assert_eq!(code(&missing), Some(9001));
        let empty = store.push(&config, br#"{"apiToken":"","unique_id":"u1"}"#);
        assert_eq!(code(&empty), Some(9001));
        let unknown = store.push(
            &config,
            br#"{"apiToken":"nope","unique_id":"u1","login_source":"OPSCOM"}"#,
        );
        assert_eq!(code(&unknown), Some(9002));
        let reader = store.push(
            &config,
            br#"{"apiToken":"reader","unique_id":"u1","login_source":"OPSCOM"}"#,
        );
        assert_eq!(code(&reader), Some(9002));
        assert!(store.users().is_empty());
        // The pull-only token may list user types.
        let listed = store.types_list(&config, br#"{"apiToken":"reader"}"#);
        assert_eq!(listed.outcome, RequestOutcome::Listed);
    }

    #[test]
    fn unparsable_bodies_and_non_string_values_are_9003() {
        let config = SandboxConfig::default();
        let mut store = Store::default();
        assert_eq!(code(&store.push(&config, b"not json")), Some(9003));
        assert_eq!(code(&store.push(&config, b"[1,2]")), Some(9003));
        let number = format!(
            r#"{{"apiToken":"{DEFAULT_TOKEN}","unique_id":"u1","login_source":"OPSCOM","user_type_id":6}}"#
        );
        assert_eq!(code(&store.push(&config, number.as_bytes())), Some(9003));
    }

    #[test]
    fn required_fields_and_login_sources() {
        let config = SandboxConfig::default().login_sources(["OPSCOM", "SAML_U"]);
        let mut store = Store::default();
        assert_eq!(code(&store.push(&config, &body(&[]))), Some(9013));
        assert_eq!(
            code(&store.push(&config, &body(&[("unique_id", "")]))),
            Some(9013)
        );
        let no_source = format!(r#"{{"apiToken":"{DEFAULT_TOKEN}","unique_id":"u1"}}"#);
        assert_eq!(code(&store.push(&config, no_source.as_bytes())), Some(9014));
        let bad = store.push(
            &config,
            &body(&[("unique_id", "u1"), ("login_source", "LDAP")]),
        );
        assert_eq!(code(&bad), Some(9015));
        let lower = store.push(
            &config,
            &body(&[("unique_id", "u1"), ("login_source", "opscom")]),
        );
        assert_eq!(code(&lower), Some(9015), "login sources match exactly");
        let saml = store.push(
            &config,
            &body(&[("unique_id", "u1"), ("login_source", "SAML_U")]),
        );
        assert_eq!(saml.status, 200);
    }

    #[test]
    fn limits_come_from_the_schema_table() {
        let config = SandboxConfig::default();
        let mut store = Store::default();
        let long_city = "x".repeat(51);
        let cases: [(&str, &str, i64); 7] = [
            ("city", &long_city, 9030),
            ("state", "MAS", 9030),
            ("province", "M1", 9033),
            ("email", "not-an-address", 9033),
            ("date_of_birth", "2001-02-29", 9033),
            ("user_type_id", "99", 9033),
            ("unique_id", &"u".repeat(51), 9030),
        ];
        for (key, value, expected) in cases {
            let mut fields = vec![(key, value)];
            if key != "unique_id" {
                fields.push(("unique_id", "u1"));
            }
            assert_eq!(
                code(&store.push(&config, &body(&fields))),
                Some(expected),
                "{key}={value}"
            );
        }
        // The message names the field as the request named it, and a length's limit.
        let reply = store.push(&config, &body(&[("unique_id", "u1"), ("state", "MAS")]));
        assert_eq!(
            reply.body["ErrorMessage"],
            "Field is longer than its maximum length: state (2)"
        );
        let reply = store.push(&config, &body(&[("unique_id", "u1"), ("email", "nope")]));
        assert_eq!(reply.body["ErrorMessage"], "Field value is invalid: email");
        // 50 characters (not bytes) is within the limit.
        let accents = "é".repeat(50);
        let ok = store.push(
            &config,
            &body(&[
                ("unique_id", "u1"),
                ("city", &accents),
                ("state", "NS"),
                ("user_type_id", "6"),
                ("date_of_birth", "2000-02-29"),
            ]),
        );
        assert_eq!(ok.status, 200, "{:?}", ok.body);
        // `state` is stored under its canonical key.
        assert_eq!(
            store.users()[0]
                .attributes
                .get("province")
                .map(String::as_str),
            Some("NS")
        );
    }

    #[test]
    fn email_and_user_name_are_unique_across_users() {
        let config = SandboxConfig::default();
        let mut store = Store::default();
        let first = body(&[
            ("unique_id", "u1"),
            ("email", "a@x.org"),
            ("user_name", "ann"),
        ]);
        assert_eq!(store.push(&config, &first).status, 200);
        // The same user pushing the same values again is an update, not a clash.
        assert_eq!(store.push(&config, &first).outcome, RequestOutcome::Updated);
        let clash = store.push(&config, &body(&[("unique_id", "u2"), ("email", "A@X.org")]));
        assert_eq!(code(&clash), Some(9019));
        let clash = store.push(&config, &body(&[("unique_id", "u2"), ("user_name", "ann")]));
        assert_eq!(code(&clash), Some(9020));
        // u1 moves to a new address; the old one becomes free.
        assert_eq!(
            store
                .push(&config, &body(&[("unique_id", "u1"), ("email", "b@x.org")]))
                .status,
            200
        );
        let freed = store.push(&config, &body(&[("unique_id", "u2"), ("email", "a@x.org")]));
        assert_eq!(freed.outcome, RequestOutcome::Created);
    }

    #[test]
    fn names_can_be_required_on_create_only() {
        let config = SandboxConfig::default().require_names_on_create(true);
        let mut store = Store::default();
        assert_eq!(
            code(&store.push(&config, &body(&[("unique_id", "u1")]))),
            Some(9016)
        );
        assert_eq!(
            code(&store.push(&config, &body(&[("unique_id", "u1"), ("email", "a@x.org")]))),
            Some(9017)
        );
        assert_eq!(
            code(&store.push(
                &config,
                &body(&[
                    ("unique_id", "u1"),
                    ("email", "a@x.org"),
                    ("first_name", "A")
                ])
            )),
            Some(9018)
        );
        let full = body(&[
            ("unique_id", "u1"),
            ("email", "a@x.org"),
            ("first_name", "A"),
            ("last_name", "B"),
        ]);
        assert_eq!(store.push(&config, &full).outcome, RequestOutcome::Created);
        assert_eq!(
            store
                .push(&config, &body(&[("unique_id", "u1"), ("city", "Truro")]))
                .outcome,
            RequestOutcome::Updated
        );
    }

    #[test]
    fn error_bodies_can_come_with_400() {
        let config = SandboxConfig::default().error_status(ErrorStatus::BadRequest400);
        let mut store = Store::default();
        let reply = store.push(&config, &body(&[]));
        assert_eq!((reply.status, code(&reply)), (400, Some(9013)));
        assert_eq!(reply.body["ErrorMessage"], "Unique ID is required");
    }

    #[test]
    fn the_request_log_keeps_no_token_and_is_bounded() {
        let config = SandboxConfig::default().request_log_limit(2);
        let mut store = Store::default();
        for n in 0..3 {
            store.push(&config, &body(&[("unique_id", &format!("u{n}"))]));
        }
        let requests = store.requests();
        assert_eq!(
            requests.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(requests[1].unique_id.as_deref(), Some("u2"));
        assert_eq!(requests[1].token, TokenCheck::Valid);
        let text = serde_json::to_string(&requests).unwrap_or_default();
        assert!(
            !text.contains(DEFAULT_TOKEN) && !text.contains("apiToken"),
            "{text}"
        );
    }

    #[test]
    fn types_list_answers_the_configured_types() {
        let config = SandboxConfig::default();
        let mut store = Store::default();
        let reply = store.types_list(
            &config,
            format!(r#"{{"apiToken":"{DEFAULT_TOKEN}"}}"#).as_bytes(),
        );
        assert_eq!(
            reply.body["data"][2],
            json!({"user_type_id": "6", "name": "Visitor"})
        );
        assert_eq!(code(&store.types_list(&config, b"{}")), Some(9001));
    }
}
