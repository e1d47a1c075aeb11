//! [`SmtpMailer`]: sends through an SMTP server with lettre.
//!
//! `smtp://` (plain) is allowed only to a loopback address; `smtps://` is TLS from the first
//! byte; `smtp://…?tls=required` is STARTTLS, refused if the server does not offer it. The
//! password comes from the URL or from the caller (an environment variable), is held as a
//! [`SecretString`], and never appears in `Debug`, errors or logs.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, AsyncSmtpTransportBuilder};
use lettre::{AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::mailer::{MailError, Mailer, OutgoingMessage};

/// Default time allowed for each SMTP command (connect, greeting, each reply).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed for one whole message.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// An SMTP URL was refused. Messages show the URL without its password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpUrlError {
    /// Not a URL.
    #[error("smtp_url is not a valid URL: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
    /// A scheme or `tls=` value other than the supported ones.
    #[error(
        "smtp_url {url}: unsupported {what}; use smtp:// (loopback only), smtps://, or smtp://HOST?tls=required"
    )]
    Unsupported {
        /// The URL, password removed.
        url: String,
        /// What is unsupported.
        what: String,
    },
    /// Plain SMTP to a non-loopback host would send reports and credentials in clear text.
    #[error(
        "smtp_url {url}: plain smtp:// is only allowed to a loopback address (127.0.0.1, ::1, localhost); use smtps://{host} or smtp://{host}?tls=required"
    )]
    PlainNotLoopback {
        /// The URL, password removed.
        url: String,
        /// The host.
        host: String,
    },
    /// A password was given both in the URL and separately.
    #[error("smtp_url {url}: the password is given both in the URL and separately; give it once")]
    PasswordTwice {
        /// The URL, password removed.
        url: String,
    },
    /// A password without a user name.
    #[error("smtp_url {url}: a password needs a user name (smtp://USER@HOST)")]
    PasswordWithoutUser {
        /// The URL, password removed.
        url: String,
    },
    /// TLS could not be set up.
    #[error("smtp_url {url}: cannot set up TLS: {reason}")]
    Tls {
        /// The URL, password removed.
        url: String,
        /// Why.
        reason: String,
    },
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text (loopback only).
    Plain,
    /// STARTTLS, required.
    StartTls,
    /// TLS from the start (`smtps://`).
    Tls,
}

/// Sends messages to an SMTP server. Cheap to share behind an `Arc`.
pub struct SmtpMailer {
    host: String,
    port: u16,
    security: SmtpSecurity,
    username: Option<String>,
    password: Option<SecretString>,
    send_timeout: Duration,
    builder: AsyncSmtpTransportBuilder,
    /// Built on first use: lettre's pool starts a task, which needs a running runtime.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl SmtpMailer {
    /// Configures a mailer from `smtp_url` and an optional separate password (e.g. from
    /// `smtp_password_env`). Nothing is connected yet.
    pub fn from_url(url: &str, password: Option<SecretString>) -> Result<Self, SmtpUrlError> {
        let parsed = url::Url::parse(url).map_err(|e| SmtpUrlError::Invalid {
            reason: e.to_string(),
        })?;
        let shown = redacted(&parsed);
        let tls_param: Option<String> = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        if let Some((key, _)) = parsed.query_pairs().find(|(k, _)| k != "tls") {
            return Err(SmtpUrlError::Unsupported {
                url: shown,
                what: format!("query parameter {key:?}"),
            });
        }
        let security = match (parsed.scheme(), tls_param.as_deref()) {
            ("smtp", None) => SmtpSecurity::Plain,
            ("smtp", Some("required")) => SmtpSecurity::StartTls,
            ("smtps", None) => SmtpSecurity::Tls,
            (scheme, None) => {
                return Err(SmtpUrlError::Unsupported {
                    url: shown,
                    what: format!("scheme {scheme:?}"),
                });
            }
            (_, Some(tls)) => {
                return Err(SmtpUrlError::Unsupported {
                    url: shown,
                    what: format!("tls={tls:?} (only tls=required, with smtp://)"),
                });
            }
        };
        // smtp:// is not a "special" scheme to the URL parser: an IPv4 host comes back as a name.
        let (host, loopback) = match parsed.host() {
            Some(url::Host::Domain(d)) => match d.parse::<std::net::IpAddr>() {
                Ok(ip) => (ip.to_string(), ip.is_loopback()),
                Err(_) => (d.to_owned(), d.eq_ignore_ascii_case("localhost")),
            },
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), ip.is_loopback()),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), ip.is_loopback()),
            None => {
                return Err(SmtpUrlError::Invalid {
                    reason: format!("{shown}: no host"),
                });
            }
        };
        if security == SmtpSecurity::Plain && !loopback {
            return Err(SmtpUrlError::PlainNotLoopback { url: shown, host });
        }
        let port = parsed.port().unwrap_or(match security {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        });

        let username = (!parsed.username().is_empty()).then(|| percent_decode(parsed.username()));
        let url_password = parsed
            .password()
            .map(|p| SecretString::from(percent_decode(p)));
        let password = match (url_password, password) {
            (Some(_), Some(_)) => return Err(SmtpUrlError::PasswordTwice { url: shown }),
            (a, b) => a.or(b),
        };
        if password.is_some() && username.is_none() {
            return Err(SmtpUrlError::PasswordWithoutUser { url: shown });
        }

        let tls = match security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls | SmtpSecurity::Tls => {
                let params = TlsParameters::new(host.clone()).map_err(|e| SmtpUrlError::Tls {
                    url: shown.clone(),
                    reason: e.to_string(),
                })?;
                if security == SmtpSecurity::StartTls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(DEFAULT_COMMAND_TIMEOUT));
        if let (Some(user), Some(pass)) = (&username, &password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                pass.expose_secret().to_owned(),
            ));
        }
        Ok(SmtpMailer {
            host,
            port,
            security,
            username,
            password,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            builder,
            transport: OnceLock::new(),
        })
    }

    /// Sets the time allowed for each SMTP command and for a whole message.
    pub fn with_timeouts(mut self, command: Duration, send: Duration) -> Self {
        self.builder = self.builder.timeout(Some(command));
        self.send_timeout = send;
        self.transport = OnceLock::new();
        self
    }

    /// The server's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the connection is protected.
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("send_timeout", &self.send_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), MailError> {
        let meta = message.meta();
        let parse = |a: &str| {
            a.parse::<lettre::Address>()
                .map_err(|e| MailError::Permanent {
                    reason: format!("invalid envelope address {a:?}: {e}"),
                })
        };
        let from = parse(&meta.envelope_from)?;
        let to = meta
            .envelope_to
            .iter()
            .map(|a| parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(Some(from), to).map_err(|e| MailError::Permanent {
            reason: format!("invalid envelope: {e}"),
        })?;
        let sent = tokio::time::timeout(
            self.send_timeout,
            self.transport().send_raw(&envelope, message.raw()),
        )
        .await;
        let result = match sent {
            Err(_) => Err(MailError::Transient {
                reason: format!(
                    "no answer from {}:{} within {:?}",
                    self.host, self.port, self.send_timeout
                ),
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e, &self.host, self.port)),
        };
        match &result {
            Ok(()) => tracing::info!(
                tenant = %meta.tenant,
                kind = %meta.kind,
                message_id = %meta.message_id,
                server = %self.host,
                "report sent"
            ),
            Err(e) => tracing::warn!(
                tenant = %meta.tenant,
                kind = %meta.kind,
                message_id = %meta.message_id,
                server = %self.host,
                error = %e,
                "report not sent"
            ),
        }
        result
    }
}

/// 5xx and client-side refusals are permanent for this message; everything else (connection
/// refused, timeouts, TLS trouble, 4xx) is worth another try later.
fn classify(e: &lettre::transport::smtp::Error, host: &str, port: u16) -> MailError {
    let reason = format!("{host}:{port}: {e}");
    if e.is_permanent() || e.is_client() {
        MailError::Permanent { reason }
    } else {
        MailError::Transient { reason }
    }
}

/// Decodes `%XX` escapes (user names and passwords in URLs).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL with its password replaced, for messages.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("REDACTED"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_only_to_loopback() {
        for ok in [
            "smtp://127.0.0.1:2525",
            "smtp://localhost",
            "smtp://[::1]:25",
        ] {
            let m = SmtpMailer::from_url(ok, None).unwrap();
            assert_eq!(m.security(), SmtpSecurity::Plain, "{ok}");
        }
        let e = SmtpMailer::from_url("smtp://mail.acme.edu", None).unwrap_err();
        assert!(matches!(e, SmtpUrlError::PlainNotLoopback { .. }), "{e}");
        assert!(e.to_string().contains("smtps://mail.acme.edu"));
    }

    #[test]
    fn tls_modes_and_default_ports() {
        let m = SmtpMailer::from_url("smtps://mail.acme.edu", None).unwrap();
        assert_eq!((m.security(), m.port()), (SmtpSecurity::Tls, 465));
        let m = SmtpMailer::from_url("smtp://mail.acme.edu?tls=required", None).unwrap();
        assert_eq!((m.security(), m.port()), (SmtpSecurity::StartTls, 587));
        for bad in [
            "smtp://mail.acme.edu?tls=opportunistic",
            "http://mail.acme.edu",
            "smtp://127.0.0.1?foo=bar",
        ] {
            assert!(
                matches!(
                    SmtpMailer::from_url(bad, None),
                    Err(SmtpUrlError::Unsupported { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn password_never_shows() {
        let m = SmtpMailer::from_url("smtps://mailer:s3cr%40t@mail.acme.edu", None).unwrap();
        let debug = format!("{m:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(debug.contains("mailer") && debug.contains("REDACTED"));

        let e = SmtpMailer::from_url(
            "smtps://mailer:s3cr%40t@mail.acme.edu",
            Some(SecretString::from("other")),
        )
        .unwrap_err();
        assert!(matches!(e, SmtpUrlError::PasswordTwice { .. }));
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("s3cr"), "{shown}");

        let e = SmtpMailer::from_url("smtp://:pw@127.0.0.1", None).unwrap_err();
        assert!(matches!(e, SmtpUrlError::PasswordWithoutUser { .. }));
        assert!(!e.to_string().contains("pw@"));
    }
}
