//! [`OutboxMailer`]: "sends" by writing each message as an `.eml` file into a folder (the demo,
//! and sites that hand mail to another system).
//!
//! The file name comes from the report's stable key, so a resend of the same report replaces its
//! file instead of adding a second one. Files are written atomically (temp file, fsync, rename).

use std::path::{Path, PathBuf};

use crate::atomic::{Modes, write_atomically};

use crate::mailer::{MailError, Mailer, OutgoingMessage};

/// Writes each message to `DIR/TENANT-KIND-KEY.eml`, mode 0640 (the folder, when created,
/// 0750): readable by the owner's group, which may hand them on, and by no one else.
/// They stay until someone removes them.
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// An outbox in `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OutboxMailer { dir: dir.into() }
    }

    /// The folder messages are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `message` is (or would be) written.
    pub fn path_for(&self, message: &OutgoingMessage) -> PathBuf {
        let meta = message.meta();
        let tenant: String = meta
            .tenant
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let key: String = meta.key.chars().take(16).collect();
        self.dir
            .join(format!("{tenant}-{}-{key}.eml", meta.kind.as_str()))
    }
}

#[async_trait::async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), MailError> {
        let dir = self.dir.clone();
        let path = self.path_for(message);
        let raw = message.raw().to_vec();
        let written = tokio::task::spawn_blocking(move || {
            write_atomically(&dir, &path, &raw, Modes::GROUP_READABLE)
        })
        .await
        .map_err(|e| MailError::Transient {
            reason: format!("outbox writer stopped: {e}"),
        })?;
        let meta = message.meta();
        match written {
            Ok(path) => {
                tracing::info!(
                    tenant = %meta.tenant,
                    kind = %meta.kind,
                    message_id = %meta.message_id,
                    path = %path.display(),
                    "report written to the outbox"
                );
                Ok(())
            }
            Err(e) => Err(MailError::Transient {
                reason: format!("cannot write to the outbox {}: {e}", self.dir.display()),
            }),
        }
    }
}
