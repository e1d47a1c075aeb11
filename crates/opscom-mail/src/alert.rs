//! Operator alerts: one plain-text e-mail to the operations team when a tenant's condition
//! starts (token refused, API unreachable…) and one when it clears. They go from the
//! `[operator]` sender to the `[operator]` address, never to the client, and carry the tenant,
//! what is wrong and how to fix it: never a token, never a row's data.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use lettre::message::Mailbox;
use lettre::message::header::{HeaderName, HeaderValue};

use crate::mailer::{MessageMeta, OutgoingMessage, ReportKind};
use crate::report::{AddressError, ComposeError, parse_address, report_key};
use crate::summary::shorten;

/// The display name of the alert sender.
const SENDER_NAME: &str = "opscom-import alerts";

/// Who operator alerts go from and to (`[operator] from` and `email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorEnvelope {
    from: lettre::Address,
    to: lettre::Address,
}

impl OperatorEnvelope {
    /// Validates the `[operator]` addresses: `from` (sender) and `email` (receiver).
    pub fn new(from: &str, email: &str) -> Result<Self, AddressError> {
        Ok(OperatorEnvelope {
            from: parse_address("operator.from", from)?,
            to: parse_address("operator.email", email)?,
        })
    }
}

/// Whether an alert starts or clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChange {
    /// The condition started (or lasted past its threshold): something needs doing.
    Started,
    /// The condition is over, after lasting this long.
    Cleared {
        /// From the condition's start to its end.
        lasted: Duration,
    },
}

/// One alert e-mail's contents.
#[derive(Debug, Clone)]
pub struct OperatorAlert {
    /// The tenant concerned.
    pub tenant: String,
    /// The alert's stable name (`token_refused`, `api_unreachable`…).
    pub alert: String,
    /// What is wrong, in one line (the subject's end).
    pub summary: String,
    /// What was seen (the fault, the cause), without secrets or row data.
    pub detail: String,
    /// How to fix it.
    pub fix: String,
    /// When the condition started.
    pub since: SystemTime,
    /// Started or cleared.
    pub change: AlertChange,
}

/// Formats `alert` for `envelope`, dated `date`. The Message-ID is stable for one alert's start
/// (or clear): spooling it again replaces the waiting copy instead of adding one.
pub fn compose_alert(
    alert: &OperatorAlert,
    envelope: &OperatorEnvelope,
    date: Timestamp,
) -> Result<OutgoingMessage, ComposeError> {
    let since = Timestamp::try_from(alert.since).unwrap_or(Timestamp::UNIX_EPOCH);
    let phase = match alert.change {
        AlertChange::Started => "start",
        AlertChange::Cleared { .. } => "clear",
    };
    let subject_id = format!("{}-{}-{phase}", alert.alert, since.as_millisecond());
    let key = report_key(&alert.tenant, &subject_id, ReportKind::OperatorAlert);
    let message_id = format!("opscom-import.{key}@{}", envelope.from.domain());
    let tenant = shorten(&alert.tenant, 80);
    let (subject, body) = match alert.change {
        AlertChange::Started => (
            format!(
                "[opscom-import] ALERT {tenant}: {} ({})",
                shorten(&alert.summary, 120),
                alert.alert
            ),
            format!(
                "Tenant:  {tenant}\n\
                 Alert:   {}\n\
                 Since:   {}\n\n\
                 WHAT IS WRONG\n\n{}\n\nSeen: {}\n\n\
                 HOW TO FIX IT\n\n{}\n\n\
                 You will get one more e-mail when this clears; none while it lasts.\n\n{}",
                alert.alert,
                human_time(since),
                alert.summary,
                shorten(&alert.detail, 500),
                alert.fix,
                footer(),
            ),
        ),
        AlertChange::Cleared { lasted } => (
            format!(
                "[opscom-import] CLEARED {tenant}: {} (after {})",
                alert.alert,
                human_duration(lasted)
            ),
            format!(
                "Tenant:  {tenant}\n\
                 Alert:   {}\n\
                 Since:   {}\n\
                 Cleared: {}\n\
                 Lasted:  {}\n\n\
                 This has cleared: {}\n\n{}",
                alert.alert,
                human_time(since),
                human_time(date),
                human_duration(lasted),
                alert.summary,
                footer(),
            ),
        ),
    };
    let sender = Mailbox::new(Some(SENDER_NAME.to_owned()), envelope.from.clone());
    let message = lettre::Message::builder()
        .from(sender)
        .to(Mailbox::new(None, envelope.to.clone()))
        .subject(subject.clone())
        .message_id(Some(format!("<{message_id}>")))
        .date(SystemTime::try_from(date).unwrap_or(SystemTime::UNIX_EPOCH))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-OPSCOM-Report"),
            ReportKind::OperatorAlert.as_str().to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-OPSCOM-Alert"),
            format!("{} {phase}", alert.alert),
        ))
        .body(body)
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    let meta = MessageMeta {
        key,
        message_id,
        tenant: alert.tenant.clone(),
        kind: ReportKind::OperatorAlert,
        subject,
        envelope_from: envelope.from.to_string(),
        envelope_to: vec![envelope.to.to_string()],
    };
    Ok(OutgoingMessage::new(meta, message.formatted()))
}

fn footer() -> String {
    "-- \nSent automatically by opscom-import to the [operator] address of its configuration.\n"
        .to_owned()
}

fn human_time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `3 s`, `5 min 2 s`, `2 h 5 min`, `3 d 4 h`: the two largest units.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, m) => format!("{m} min {seconds} s"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(change: AlertChange) -> OperatorAlert {
        OperatorAlert {
            tenant: "acme".into(),
            alert: "token_refused".into(),
            summary: "the OPSCOM API refuses this tenant's token".into(),
            detail: "error 9001".into(),
            fix: "put a valid token in the file /etc/t (api_token_file) and reload".into(),
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            change,
        }
    }

    #[test]
    fn a_start_and_a_clear_name_the_tenant_the_alert_and_the_fix() {
        let env = OperatorEnvelope::new("importer@ops.example", "ops@ops.example").unwrap();
        let date = Timestamp::from_second(1_800_000_100).unwrap();
        let start = compose_alert(&alert(AlertChange::Started), &env, date).unwrap();
        let text = String::from_utf8_lossy(start.raw()).into_owned();
        assert!(
            start.subject().contains("ALERT acme"),
            "{}",
            start.subject()
        );
        assert!(
            text.contains("token_refused") && text.contains("/etc/t"),
            "{text}"
        );
        assert!(text.contains("To: ops@ops.example"), "{text}");
        assert_eq!(start.meta().envelope_from, "importer@ops.example");
        let clear = compose_alert(
            &alert(AlertChange::Cleared {
                lasted: Duration::from_secs(7500),
            }),
            &env,
            date,
        )
        .unwrap();
        assert!(
            clear
                .subject()
                .contains("CLEARED acme: token_refused (after 2 h 5 min)"),
            "{}",
            clear.subject()
        );
        assert_ne!(start.message_id(), clear.message_id());
        // The same start composed again is the same message (the spool replaces it).
        let again = compose_alert(&alert(AlertChange::Started), &env, date).unwrap();
        assert_eq!(start.message_id(), again.message_id());
    }

    #[test]
    fn bad_addresses_are_refused_with_their_key() {
        let e = OperatorEnvelope::new("not an address", "ops@ops.example").unwrap_err();
        assert_eq!(e.field, "operator.from");
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(Duration::from_secs(3)), "3 s");
        assert_eq!(human_duration(Duration::from_secs(302)), "5 min 2 s");
        assert_eq!(human_duration(Duration::from_secs(90_000)), "1 d 1 h");
    }
}
