//! Composes the failure report of a file with two failed rows (its CSV kept in memory) and
//! "sends" it with `OutboxMailer` into a temporary folder, then prints where the `.eml` is.
//!
//! Run with `cargo run -p opscom-mail --example report_to_outbox`. Only `opscom-mail` is needed
//! (with `tokio` to run the mailer and `jiff` for the date, its own dependencies, and
//! `tempfile` for the folder); the folder is kept so that the message can be opened.

use opscom_mail::{
    ComposeOptions, FailureCsv, FailureCsvWriter, FailureReport, FailureSummary, Mailer,
    OutboxMailer, Report, ReportEnvelope, compose,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let header: Vec<String> = ["unique_id", "login_source", "email", "date_of_birth"]
        .map(String::from)
        .to_vec();
    let failed = [
        (
            4,
            ["s1003", "OPSCOM", "carol@", "1990-01-15"],
            "invalid e-mail address",
            "email `carol@`: not a valid e-mail address",
        ),
        (
            7,
            ["s1006", "OPSCOM", "dan@example.org", "1/15/1990"],
            "invalid date",
            "date_of_birth `1/15/1990`: not a date written YYYY-MM-DD",
        ),
    ];

    // The failure CSV (the client's columns plus `import_error`) and the bounded summary.
    let mut csv = FailureCsvWriter::new(Vec::new(), &header)?;
    let mut summary = FailureSummary::new();
    for (line, values, category, reason) in failed {
        csv.write_failure(line, &values.map(String::from), reason)?;
        summary.add(category, line, reason);
    }
    let report = Report::Failures(FailureReport {
        file_name: "roster.csv".into(),
        rows_total: 8,
        rows_ok: 6,
        rows_failed: 2,
        summary,
        failure_csv: Some(FailureCsv::Bytes(csv.finish()?)),
        rows_unchanged: 0,
        after_delay: false,
    });

    let envelope = ReportEnvelope::new("acme", "parking@acme.edu", "it@acme.edu")?;
    let options = ComposeOptions::at(jiff::Timestamp::now());
    let message = compose(&report, &envelope, "roster.csv-example", &options)?;

    let dir = tempfile::Builder::new()
        .prefix("opscom-outbox-")
        .tempdir()?
        .keep();
    let outbox = OutboxMailer::new(dir.join("outbox"));
    outbox.send(&message).await?;
    println!("subject: {}", message.subject());
    println!("written to {}", outbox.path_for(&message).display());
    Ok(())
}
