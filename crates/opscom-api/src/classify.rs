//! Sorting one HTTP answer into exactly one class: the single table of what each answer means.
//!
//! The contract does not document the HTTP status of a failure, so the body decides first:
//!
//! | answer | class |
//! |---|---|
//! | 429, 502, 503, 504, 408, whatever the body | transient (honour `Retry-After`) |
//! | `ErrorCode` 9001 / 9002 in the body, any other status | token rejected |
//! | any other `ErrorCode` in the body, any other status (200 included) | row rejected |
//! | 401 / 403 without `ErrorCode` | token rejected |
//! | 2xx JSON without `ErrorCode` | accepted (logged when `"status"` is not `"success"`) |
//! | 2xx not JSON | transient |
//! | 400 / 409 / 413 / 422 without `ErrorCode` | row rejected (code `None`) |
//! | 404 without `ErrorCode` | transient ([`TransientCause::NotFound`]: no push API at this URL, a wrong `api_url`) |
//! | any other status without `ErrorCode` (500, 3xx, …) | transient |
//! | a body over [`MAX_ANSWER_BYTES`], with 408, 429, 502, 503, 504 | transient (honour `Retry-After`) |
//! | a body over [`MAX_ANSWER_BYTES`], any other status | transient ([`TransientCause::AnswerTooLarge`]) |
//!
//! A message taken from the API's answer (`ErrorMessage`, or `message`/`error` without a code)
//! goes into the failure report: it is [bounded](bound_message) to [`MAX_MESSAGE_CHARS`]
//! characters on one line.

use std::time::Duration;

use serde_json::Value;

use crate::model::{ApiError, TransientCause};

/// Token errors: the whole tenant stops, no row is blamed.
pub const TOKEN_ERROR_CODES: [i64; 2] = [9001, 9002];
/// "Request could not be parsed": a row failure, but a bug on our side.
pub const PARSE_ERROR_CODE: i64 = 9003;
/// The longest `Retry-After` honoured; longer values are cut to this.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// The longest answer body read from the API (64 KiB). A larger answer is not read further:
/// it is a broken answer, classified by [`classify_oversized`].
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest message from the API kept in an [`ApiError`], in characters ("…" included).
pub const MAX_MESSAGE_CHARS: usize = 300;

/// The class of one answer (before retries are considered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Stored. `status_success` is false when the body lacks `"status":"success"`.
    Accepted {
        /// Whether the body carried `"status":"success"`.
        status_success: bool,
    },
    /// The API refused the row.
    RowRejected(ApiError),
    /// The API refused the token.
    TokenRejected(ApiError),
    /// Worth another attempt.
    Transient(TransientCause),
}

/// Classifies one answer from its HTTP status, its `Retry-After` (already parsed) and its body.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Answer {
    if matches!(status, 408 | 429 | 502 | 503 | 504) {
        return Answer::Transient(TransientCause::Status {
            status,
            retry_after: retry_after.map(|d| d.min(RETRY_AFTER_CAP)),
        });
    }
    if (200..=299).contains(&status) && SUCCESS_BODIES.contains(&body.trim_ascii()) {
        // The usual answer, recognised without building a JSON tree (same class as below).
        return Answer::Accepted {
            status_success: true,
        };
    }
    classify_parsed(status, retry_after, body)
}

/// Classifies an answer whose body was over [`MAX_ANSWER_BYTES`] (by `Content-Length`, or as
/// read), without its body: a status that is transient whatever the body keeps its class and its
/// `Retry-After`; any other answer is broken ([`TransientCause::AnswerTooLarge`]), as its
/// `ErrorCode` cannot be known.
pub fn classify_oversized(
    status: u16,
    retry_after: Option<Duration>,
    content_length: Option<u64>,
) -> Answer {
    if matches!(status, 408 | 429 | 502 | 503 | 504) {
        return classify(status, retry_after, b"");
    }
    Answer::Transient(TransientCause::AnswerTooLarge {
        status,
        content_length,
    })
}

/// The bodies of a plain success, as the API and the sandbox send them.
const SUCCESS_BODIES: [&[u8]; 2] = [br#"{"status":"success"}"#, br#"{"status": "success"}"#];

/// [`classify`] for a status that is not always transient, through a full JSON parse.
fn classify_parsed(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Answer {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some((code, message)) = json.as_ref().and_then(error_code) {
        let error = ApiError {
            code: Some(code),
            message: message.unwrap_or_else(|| format!("error {code} without a message")),
            http_status: status,
        };
        return if TOKEN_ERROR_CODES.contains(&code) {
            Answer::TokenRejected(error)
        } else {
            Answer::RowRejected(error)
        };
    }
    let status_error = || ApiError {
        code: None,
        message: status_message(status, json.as_ref()),
        http_status: status,
    };
    match status {
        401 | 403 => Answer::TokenRejected(status_error()),
        200..=299 => match json {
            Some(value) => Answer::Accepted {
                status_success: is_success(&value),
            },
            None => Answer::Transient(TransientCause::NotJson { status }),
        },
        400 | 409 | 413 | 422 => Answer::RowRejected(status_error()),
        // Retried like an outage (a proxy may answer 404 for a moment), but told apart: when it
        // lasts, the tenant's `api_url` is wrong, a configuration error and not an outage.
        404 => Answer::Transient(TransientCause::NotFound),
        _ => Answer::Transient(TransientCause::Status {
            status,
            retry_after: retry_after.map(|d| d.min(RETRY_AFTER_CAP)),
        }),
    }
}

/// Finds `ErrorCode` (a number, or a string of digits) and `ErrorMessage` in an object.
/// Key case is ignored (`errorCode`, `errorcode`), as the casing is not documented.
fn error_code(value: &Value) -> Option<(i64, Option<String>)> {
    let object = value.as_object()?;
    let field = |name: &str| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let code = match field("ErrorCode")? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    let message = match field("ErrorMessage") {
        Some(Value::String(s)) => Some(bound_message(s)).filter(|m| !m.is_empty()),
        _ => None,
    };
    Some((code, message))
}

fn is_success(value: &Value) -> bool {
    value
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("success"))
}

/// A message for a refusal without `ErrorCode`: a JSON `message`/`error` field if there is one,
/// else the status's reason phrase.
fn status_message(status: u16, json: Option<&Value>) -> String {
    let from_body = json.and_then(|v| {
        ["message", "error", "ErrorMessage"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map(bound_message)
            .filter(|m| !m.is_empty())
    });
    from_body.unwrap_or_else(|| {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("unexpected status");
        format!("HTTP {status} {reason}")
    })
}

/// A message from the API made fit for a report line: runs of control characters (newlines
/// included), white space and bidirectional-text controls become one space, the ends are
/// trimmed, and text past [`MAX_MESSAGE_CHARS`] characters is cut (on a character boundary)
/// and ends with "…". Reads no further than the cut, however long `text` is.
pub fn bound_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE_CHARS + 8));
    let mut count = 0;
    let mut space = false;
    for c in text.chars() {
        if is_separator(c) {
            space = count > 0;
            continue;
        }
        let adding = usize::from(space) + 1;
        if count + adding > MAX_MESSAGE_CHARS {
            // Room for the "…": drop characters (and a space they leave at the end).
            while count > MAX_MESSAGE_CHARS - 1 {
                out.pop();
                count -= 1;
            }
            let kept = out.trim_end().len();
            out.truncate(kept);
            out.push('…');
            return out;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
        count += adding;
    }
    out
}

/// Characters that must not reach a report line as they are.
fn is_separator(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Parses `Retry-After`: delay-seconds or an HTTP date (relative to `now`). Capped at
/// [`RETRY_AFTER_CAP`]; a date in the past means "now".
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: i64, message: &str, status: u16) -> Answer {
        Answer::RowRejected(ApiError {
            code: Some(code),
            message: message.into(),
            http_status: status,
        })
    }

    #[test]
    fn error_code_body_is_a_row_rejection_even_with_200() {
        let body = br#"{"ErrorCode":9019,"ErrorMessage":"E-mail must be unique"}"#;
        assert_eq!(
            classify(200, None, body),
            row(9019, "E-mail must be unique", 200)
        );
        assert_eq!(
            classify(400, None, body),
            row(9019, "E-mail must be unique", 400)
        );
        assert_eq!(
            classify(500, None, body),
            row(9019, "E-mail must be unique", 500)
        );
    }

    #[test]
    fn error_code_as_string_and_other_casing_are_read() {
        let body = br#"{"errorCode":"9030","errorMessage":"City too long"}"#;
        assert_eq!(classify(200, None, body), row(9030, "City too long", 200));
    }

    #[test]
    fn token_codes_and_auth_statuses_reject_the_token() {
        let body = br#"{"ErrorCode":9002,"ErrorMessage":"no permission"}"#;
        assert!(
            matches!(classify(200, None, body), Answer::TokenRejected(e) if e.code == Some(9002))
        );
        assert!(matches!(classify(401, None, b""), Answer::TokenRejected(e) if e.code.is_none()));
        assert!(matches!(
            classify(403, None, b"<html>"),
            Answer::TokenRejected(_)
        ));
    }

    #[test]
    fn success_and_odd_success_bodies_are_accepted() {
        assert_eq!(
            classify(200, None, br#"{"status":"success"}"#),
            Answer::Accepted {
                status_success: true
            }
        );
        assert_eq!(
            classify(201, None, br#"{"result":"ok"}"#),
            Answer::Accepted {
                status_success: false
            }
        );
    }

    #[test]
    fn the_success_shortcut_agrees_with_the_full_parse() {
        for status in [200, 201, 204, 299, 400, 401, 500, 404] {
            for body in [
                &br#"{"status":"success"}"#[..],
                br#"  {"status": "success"}
"#,
                br#"{"status":"Success"}"#,
                br#"{"status":"success","ErrorCode":9019}"#,
            ] {
                assert_eq!(
                    classify(status, None, body),
                    classify_parsed(status, None, body),
                    "{status} {}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn two_hundred_without_json_is_transient() {
        assert_eq!(
            classify(200, None, b"<html>maintenance</html>"),
            Answer::Transient(TransientCause::NotJson { status: 200 })
        );
        assert_eq!(
            classify(200, None, b""),
            Answer::Transient(TransientCause::NotJson { status: 200 })
        );
    }

    #[test]
    fn throttling_and_server_errors_are_transient_whatever_the_body() {
        let body = br#"{"ErrorCode":9019,"ErrorMessage":"x"}"#;
        assert_eq!(
            classify(429, Some(Duration::from_secs(600)), body),
            Answer::Transient(TransientCause::Status {
                status: 429,
                retry_after: Some(RETRY_AFTER_CAP)
            })
        );
        assert!(matches!(classify(503, None, b""), Answer::Transient(_)));
        assert!(matches!(classify(500, None, b"oops"), Answer::Transient(_)));
        assert_eq!(
            classify(404, None, b"not found"),
            Answer::Transient(TransientCause::NotFound)
        );
        // An `ErrorCode` body is the API's own answer, whatever the status.
        assert!(matches!(
            classify(404, None, br#"{"ErrorCode":9019,"ErrorMessage":"x"}"#),
            Answer::RowRejected(_)
        ));
    }

    #[test]
    fn bad_request_without_error_code_is_a_row_rejection_without_code() {
        match classify(400, None, br#"{"message":"bad field"}"#) {
            Answer::RowRejected(e) => {
                assert_eq!(e.code, None);
                assert_eq!(e.message, "bad field");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates_and_is_capped() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("3600", now), Some(RETRY_AFTER_CAP));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn api_error_display_quotes_message_and_code() {
        let e = ApiError {
            code: Some(9019),
            message: "E-mail must be unique".into(),
            http_status: 200,
        };
        assert_eq!(
            e.to_string(),
            r#"the OPSCOM API refused this user: "E-mail must be unique" (error 9019)"#
        );
        let e = ApiError {
            code: None,
            message: "HTTP 401 Unauthorized".into(),
            http_status: 401,
        };
        assert_eq!(
            e.to_string(),
            r#"the OPSCOM API refused this user: "HTTP 401 Unauthorized" (HTTP 401)"#
        );
    }

    #[test]
    fn a_huge_multi_line_error_message_is_cut_to_one_bounded_line() {
        let message = format!("Line one\r\n\tline\u{202E}two {}", "é".repeat(1 << 20));
        let body = serde_json::json!({"ErrorCode": 9033, "ErrorMessage": message}).to_string();
        assert!(body.len() > 1 << 20);
        let Answer::RowRejected(error) = classify(200, None, body.as_bytes()) else {
            panic!("expected a row rejection");
        };
        assert_eq!(error.code, Some(9033));
        assert_eq!(error.message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(
            error.message.starts_with("Line one line two éé"),
            "{}",
            error.message
        );
        assert!(error.message.ends_with("é…"), "{}", error.message);
        assert!(!error.message.chars().any(char::is_control));
    }

    #[test]
    fn a_message_without_code_is_bounded_too() {
        let body = serde_json::json!({"message": "x".repeat(10_000)}).to_string();
        let Answer::RowRejected(error) = classify(400, None, body.as_bytes()) else {
            panic!("expected a row rejection");
        };
        assert_eq!(error.code, None);
        assert_eq!(error.message.chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn bound_message_keeps_short_text_and_cuts_at_the_limit() {
        assert_eq!(
            bound_message("  E-mail must be unique \n"),
            "E-mail must be unique"
        );
        assert_eq!(bound_message("a\n\n\u{0}b\u{7f}\u{85}c"), "a b c");
        assert_eq!(bound_message("\n\t "), "");
        let exact = "x".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(bound_message(&exact), exact);
        let over = format!("{exact}y");
        let cut = bound_message(&over);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut.ends_with("x…"));
        // Trailing white space past the limit is not "more text".
        assert_eq!(bound_message(&format!("{exact}  \n")), exact);
        // A space just before the cut does not end the message before the "…".
        let spaced = format!("{} {}", "x".repeat(MAX_MESSAGE_CHARS - 2), "y".repeat(5));
        let cut = bound_message(&spaced);
        assert!(cut.ends_with("x…"), "{cut}");
        assert!(cut.chars().count() <= MAX_MESSAGE_CHARS);
        // Multi-byte characters are cut on a boundary.
        let emoji = "🦀".repeat(MAX_MESSAGE_CHARS * 2);
        let cut = bound_message(&emoji);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn an_oversized_answer_is_transient_and_keeps_a_throttling_status() {
        assert_eq!(
            classify_oversized(200, None, Some(209_715_200)),
            Answer::Transient(TransientCause::AnswerTooLarge {
                status: 200,
                content_length: Some(209_715_200)
            })
        );
        assert!(matches!(
            classify_oversized(401, None, None),
            Answer::Transient(TransientCause::AnswerTooLarge { status: 401, .. })
        ));
        assert_eq!(
            classify_oversized(503, Some(Duration::from_secs(2)), None),
            Answer::Transient(TransientCause::Status {
                status: 503,
                retry_after: Some(Duration::from_secs(2))
            })
        );
        assert_eq!(
            TransientCause::AnswerTooLarge {
                status: 200,
                content_length: Some(9)
            }
            .to_string(),
            "HTTP 200 with an answer over 65536 bytes (Content-Length 9)"
        );
    }
}
