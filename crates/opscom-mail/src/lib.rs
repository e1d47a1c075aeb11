//! The failure report (CSV and message), the Mailer trait with SMTP and outbox implementations, and the durable report spool.
