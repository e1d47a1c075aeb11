//! One claimed file through mapping, validation, API pushes and report, generic over the API, mailer, store and clock.
