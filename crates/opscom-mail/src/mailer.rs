//! The [`Mailer`] trait, the fully formatted [`OutgoingMessage`] it sends, and [`MailError`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which report a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Some rows of a file were not imported.
    Failures,
    /// A whole file was rejected before any row was sent.
    Rejected,
    /// Files wait because the OPSCOM API is unreachable.
    ImportDelayed,
    /// The tenant's API token was refused.
    TokenRejected,
    /// The drop folder needs the client's attention (imports are paused).
    FolderProblem,
    /// An alert to the operations team (not to the client): a condition started or cleared.
    OperatorAlert,
    /// Every row of a file was imported (or already up to date).
    Imported,
    /// A file in the `preview/` folder was checked; nothing was sent.
    Preview,
    /// An upload is not a file that can be imported (a spreadsheet, too large, a link…).
    NotImportable,
    /// An import is held until the client approves or discards it.
    Held,
    /// An approval or discard named a file that is not held.
    SignalNotHeld,
}

impl ReportKind {
    /// A stable lower-case name (part of the Message-ID key).
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Failures => "failures",
            ReportKind::Rejected => "rejected",
            ReportKind::ImportDelayed => "import-delayed",
            ReportKind::TokenRejected => "token-rejected",
            ReportKind::FolderProblem => "folder-problem",
            ReportKind::OperatorAlert => "operator-alert",
            ReportKind::Imported => "imported",
            ReportKind::Preview => "preview",
            ReportKind::NotImportable => "not-importable",
            ReportKind::Held => "held",
            ReportKind::SignalNotHeld => "signal-not-held",
        }
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a message is, apart from its bytes: kept beside them in the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Hex digest of the caller's key (tenant, subject id, kind): names the spool entry.
    pub key: String,
    /// The Message-ID, without angle brackets.
    pub message_id: String,
    /// The tenant the report is for.
    pub tenant: String,
    /// Which report it is.
    pub kind: ReportKind,
    /// The subject line (for logs and listings).
    pub subject: String,
    /// SMTP `MAIL FROM`.
    pub envelope_from: String,
    /// SMTP `RCPT TO`.
    pub envelope_to: Vec<String>,
}

/// A fully formatted message (RFC 5322 bytes) and its envelope, ready to send or spool.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub(crate) meta: MessageMeta,
    pub(crate) raw: Vec<u8>,
}

impl OutgoingMessage {
    pub(crate) fn new(meta: MessageMeta, raw: Vec<u8>) -> Self {
        OutgoingMessage { meta, raw }
    }

    /// What the message is.
    pub fn meta(&self) -> &MessageMeta {
        &self.meta
    }

    /// The Message-ID, without angle brackets.
    pub fn message_id(&self) -> &str {
        &self.meta.message_id
    }

    /// The subject line.
    pub fn subject(&self) -> &str {
        &self.meta.subject
    }

    /// The message as it goes on the wire.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

impl fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body holds client data (failed rows): show its size, not its contents.
        f.debug_struct("OutgoingMessage")
            .field("meta", &self.meta)
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

/// A message could not be sent. Either way the report stays queued; the difference tells the
/// caller whether to go on with the next message now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The server is down, slow, or answered 4xx: a later attempt may succeed.
    #[error("mail not sent, will retry: {reason}")]
    Transient {
        /// What happened, without secrets.
        reason: String,
    },
    /// The server refused this message for good (5xx), or the message cannot be sent as is.
    #[error("mail refused: {reason}")]
    Permanent {
        /// What happened, without secrets.
        reason: String,
    },
}

impl MailError {
    /// Whether a later attempt may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient { .. })
    }
}

/// Sends fully formatted messages. Implementations: [`crate::SmtpMailer`], [`crate::OutboxMailer`].
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one message; `Ok` means the server accepted it.
    async fn send(&self, message: &OutgoingMessage) -> Result<(), MailError>;
}

impl std::fmt::Debug for dyn Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Mailer")
    }
}

#[async_trait::async_trait]
impl<M: Mailer + ?Sized> Mailer for &M {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), MailError> {
        (**self).send(message).await
    }
}

#[async_trait::async_trait]
impl<M: Mailer + ?Sized> Mailer for Box<M> {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), MailError> {
        (**self).send(message).await
    }
}

#[async_trait::async_trait]
impl<M: Mailer + ?Sized> Mailer for std::sync::Arc<M> {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), MailError> {
        (**self).send(message).await
    }
}
