//! [`SmtpMailer`]: sends through an SMTP server with lettre.
//!
//! `smtp://` (plain) is allowed only to a loopback address; `smtps://` is TLS from the first
//! byte; `smtp://…?tls=required` is STARTTLS, refused if the server does not offer it. A mailer is
//! configured from such a URL ([`SmtpMailer::from_url`]) or from its parts
//! ([`SmtpMailer::builder`]). The password comes from the URL or from the caller (an environment
//! variable), is held as a [`SecretString`], and never appears in `Debug`, errors or logs.

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

impl SmtpSecurity {
    /// The usual port: 25 (plain), 587 (STARTTLS), 465 (TLS).
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        }
    }
}

/// An [`SmtpMailer`] from parts: made by [`SmtpMailer::builder`], finished by
/// [`SmtpMailerBuilder::build`]. `Debug` never shows the password.
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the mailer"]
pub struct SmtpMailerBuilder {
    host: String,
    security: SmtpSecurity,
    port: Option<u16>,
    credentials: Option<(String, SecretString)>,
    command_timeout: Duration,
    send_timeout: Duration,
}

impl SmtpMailerBuilder {
    /// The server's port, instead of the usual one of the security mode.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Logs in with `username` and `password` (over TLS, or to a loopback server).
    pub fn credentials(mut self, username: impl Into<String>, password: SecretString) -> Self {
        self.credentials = Some((username.into(), password));
        self
    }

    /// The time allowed for each SMTP command and for a whole message (by default
    /// [`DEFAULT_COMMAND_TIMEOUT`] and [`DEFAULT_SEND_TIMEOUT`]).
    pub fn timeouts(mut self, command: Duration, send: Duration) -> Self {
        self.command_timeout = command;
        self.send_timeout = send;
        self
    }

    /// Checks the parts and configures the mailer; nothing is connected yet. Errors name the
    /// server as the equivalent `smtp_url` would.
    pub fn build(self) -> Result<SmtpMailer, SmtpUrlError> {
        let name = self.host.trim();
        let name = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        let port = self.port.unwrap_or(self.security.default_port());
        let (host, loopback) = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => (ip.to_string(), ip.is_loopback()),
            Err(_) => (name.to_owned(), name.eq_ignore_ascii_case("localhost")),
        };
        let in_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let shown = match self.security {
            SmtpSecurity::Plain => format!("smtp://{in_url}:{port}"),
            SmtpSecurity::StartTls => format!("smtp://{in_url}:{port}?tls=required"),
            SmtpSecurity::Tls => format!("smtps://{in_url}:{port}"),
        };
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(SmtpUrlError::Invalid {
                reason: format!("{:?} is not a host name or IP address", self.host),
            });
        }
        if self.security == SmtpSecurity::Plain && !loopback {
            return Err(SmtpUrlError::PlainNotLoopback { url: shown, host });
        }
        let (username, password) = match self.credentials {
            Some((user, password)) => (Some(user), Some(password)),
            None => (None, None),
        };
        SmtpMailer::assemble(
            host,
            port,
            self.security,
            username,
            password,
            self.command_timeout,
            self.send_timeout,
            shown,
        )
    }
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
        let port = parsed.port().unwrap_or(security.default_port());

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
        Self::assemble(
            host,
            port,
            security,
            username,
            password,
            DEFAULT_COMMAND_TIMEOUT,
            DEFAULT_SEND_TIMEOUT,
            shown,
        )
    }

    /// Configures a mailer from its parts, without a URL: the server's `host` (a name or an IP
    /// address) and how the connection is protected; then, on the [`SmtpMailerBuilder`], the
    /// port (by default 25, 587 or 465 for [`SmtpSecurity::Plain`], [`SmtpSecurity::StartTls`]
    /// and [`SmtpSecurity::Tls`]), credentials and timeouts. The rules of
    /// [`SmtpMailer::from_url`] hold: plain SMTP only to a loopback address, a password never
    /// shown.
    ///
    /// ```
    /// use opscom_mail::{SecretString, SmtpMailer, SmtpSecurity};
    ///
    /// let mailer = SmtpMailer::builder("mail.acme.edu", SmtpSecurity::StartTls)
    ///     .port(2587)
    ///     .credentials("importer", SecretString::from("s3cret"))
    ///     .build()?;
    /// assert_eq!((mailer.host(), mailer.port()), ("mail.acme.edu", 2587));
    /// # Ok::<(), opscom_mail::SmtpUrlError>(())
    /// ```
    pub fn builder(host: impl Into<String>, security: SmtpSecurity) -> SmtpMailerBuilder {
        SmtpMailerBuilder {
            host: host.into(),
            security,
            port: None,
            credentials: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
        }
    }

    /// The mailer for checked parts; `shown` names the server in errors (no password).
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        host: String,
        port: u16,
        security: SmtpSecurity,
        username: Option<String>,
        password: Option<SecretString>,
        command_timeout: Duration,
        send_timeout: Duration,
        shown: String,
    ) -> Result<Self, SmtpUrlError> {
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
            .timeout(Some(command_timeout));
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
            send_timeout,
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

    /// What a mailer is configured to do, for comparing two ways of building it.
    fn settings(m: &SmtpMailer) -> (String, u16, SmtpSecurity, Option<String>, bool, Duration) {
        (
            m.host.clone(),
            m.port,
            m.security,
            m.username.clone(),
            m.password.is_some(),
            m.send_timeout,
        )
    }

    #[test]
    fn the_builder_configures_what_the_equivalent_url_does() {
        let pairs = [
            (
                SmtpMailer::builder("127.0.0.1", SmtpSecurity::Plain).port(2525),
                "smtp://127.0.0.1:2525",
            ),
            (
                SmtpMailer::builder("localhost", SmtpSecurity::Plain),
                "smtp://localhost",
            ),
            (
                SmtpMailer::builder("::1", SmtpSecurity::Plain),
                "smtp://[::1]",
            ),
            (
                SmtpMailer::builder("mail.acme.edu", SmtpSecurity::Tls),
                "smtps://mail.acme.edu",
            ),
            (
                SmtpMailer::builder("mail.acme.edu", SmtpSecurity::StartTls)
                    .credentials("mailer", SecretString::from("s3cr@t")),
                "smtp://mailer:s3cr%40t@mail.acme.edu?tls=required",
            ),
        ];
        for (builder, url) in pairs {
            let built = builder.build().unwrap();
            let parsed = SmtpMailer::from_url(url, None).unwrap();
            assert_eq!(settings(&built), settings(&parsed), "{url}");
        }
        let m = SmtpMailer::builder("mail.acme.edu", SmtpSecurity::Tls)
            .timeouts(Duration::from_secs(5), Duration::from_secs(9))
            .build()
            .unwrap();
        assert_eq!(m.send_timeout, Duration::from_secs(9));
    }

    #[test]
    fn the_builder_keeps_the_rules_of_the_url() {
        let e = SmtpMailer::builder("mail.acme.edu", SmtpSecurity::Plain)
            .build()
            .unwrap_err();
        assert!(
            matches!(&e, SmtpUrlError::PlainNotLoopback { host, .. } if host == "mail.acme.edu")
        );
        assert!(e.to_string().contains("smtp://mail.acme.edu:25"), "{e}");
        for bad in ["", "  ", "mail.acme.edu/x", "user@mail.acme.edu"] {
            assert!(
                matches!(
                    SmtpMailer::builder(bad, SmtpSecurity::Tls).build(),
                    Err(SmtpUrlError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
        let builder = SmtpMailer::builder("mail.acme.edu", SmtpSecurity::Tls)
            .credentials("mailer", SecretString::from("s3cret-pw"));
        let shown = format!("{builder:?} {:?}", builder.clone().build().unwrap());
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("mailer"), "{shown}");
    }
}
