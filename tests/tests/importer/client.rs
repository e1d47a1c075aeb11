//! What the client sees without a ticket (issue 12): `results/`, previews, success and
//! follow-up e-mails, uploads that cannot be imported, headers it can fix, refusals that quote
//! the value, subjects that show the file's name, and mail sent on its behalf, DKIM-signed.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use opscom_tests::{
    Lab, ROSTER_HEADER, RecordOutcome, Sandbox, SandboxConfig, SmtpServer, csv, describe,
    messages_to, roster,
};

const GOOD_AND_BAD: [&str; 3] = [
    "G1,OPSCOM,Ann,Lee,ann.lee@example.edu,,MA,1990-02-03",
    "B1,OPSCOM,Bad,Mail,not-an-email,,,",
    "G2,OPSCOM,Raj,Patel,raj.patel@example.edu,,,",
];

#[test]
fn results_hold_a_summary_and_the_failed_rows_and_nothing_is_overwritten() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    lab.upload("acme", "roster.csv", &csv(ROSTER_HEADER, &GOOD_AND_BAD));

    lab.once().expect_code(0, "once over a file with a bad row");

    let results_dir = lab.drop_dir("acme").join("results");
    let mode = std::fs::metadata(&results_dir)
        .expect("results/ is made")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o2770,
        0o2770,
        "the client's group may read, write and delete there: {mode:o}"
    );
    let results = lab.results("acme");
    assert_eq!(
        results.keys().collect::<Vec<_>>(),
        ["roster-failed.csv", "roster-summary.txt"]
    );
    let summary = String::from_utf8_lossy(&results["roster-summary.txt"]).into_owned();
    for expected in [
        "roster.csv",
        "3",
        "2",
        "1",
        "not a valid e-mail address",
        "line 3",
    ] {
        assert!(summary.contains(expected), "{expected:?} in:\n{summary}");
    }
    // The same round-trip CSV as the e-mail's attachment.
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 1, "{}", describe(&mail));
    let attached = mail[0]
        .attachments()
        .into_iter()
        .find(|a| a.name.as_deref() == Some("roster-failed.csv"))
        .expect("the failure CSV is attached");
    assert_eq!(results["roster-failed.csv"], attached.data);

    // The same name again: new results beside the old ones, never over them.
    lab.upload("acme", "roster.csv", &csv(ROSTER_HEADER, &GOOD_AND_BAD));
    lab.once().expect_code(0, "the same file again");
    let results = lab.results("acme");
    assert_eq!(results.len(), 4, "{:?}", results.keys());
    assert!(
        results.keys().any(|n| n.starts_with("roster-summary.")
            && n.ends_with(".txt")
            && n != "roster-summary.txt"),
        "{:?}",
        results.keys()
    );
    assert_eq!(
        String::from_utf8_lossy(&lab.results("acme")["roster-summary.txt"]),
        summary,
        "the first summary is untouched"
    );
}

#[test]
fn a_success_is_told_when_asked_and_a_delayed_file_is_always_followed_up() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("told", &sandbox.url()).extra = "notify_on_success = true".into();
    lab.tenant("quiet", &sandbox.url()).retry_budget = Some("1s".into());
    lab.upload("told", "roster.csv", &roster("T", 3));
    lab.upload("quiet", "roster.csv", &roster("Q", 2));
    lab.once().expect_code(0, "two clean files");

    let told = messages_to(&smtp, "it@told.example.edu");
    assert_eq!(told.len(), 1, "{}", describe(&told));
    let subject = told[0].subject().unwrap_or_default();
    assert!(
        subject.contains("roster.csv") && subject.contains("3"),
        "{subject}"
    );
    assert!(told[0].text_body().contains('3'), "{}", told[0].text_body());
    assert!(
        messages_to(&smtp, "it@quiet.example.edu").is_empty(),
        "notify_on_success is off by default"
    );
    assert!(lab.results("quiet").contains_key("roster-summary.txt"));

    // An outage: the file waits, the client is told once, then told when it is imported.
    sandbox.set_outage(true);
    lab.upload("quiet", "late.csv", &roster("L", 2));
    lab.once().expect_code(3, "the API is down");
    let delayed = messages_to(&smtp, "it@quiet.example.edu");
    assert_eq!(delayed.len(), 1, "{}", describe(&delayed));
    assert!(
        delayed[0]
            .subject()
            .is_some_and(|s| s.starts_with("Import delayed")),
        "{}",
        describe(&delayed)
    );
    sandbox.set_outage(false);
    lab.once().expect_code(0, "the API is back");
    let mail = messages_to(&smtp, "it@quiet.example.edu");
    assert_eq!(mail.len(), 2, "{}", describe(&mail));
    let follow_up = &mail[1];
    let subject = follow_up.subject().unwrap_or_default();
    assert!(
        subject.contains("late.csv") && subject.to_lowercase().contains("delay"),
        "the follow-up names the file and the delay: {subject}"
    );
    assert_eq!(sandbox.users_by_id().len(), 7);
}

#[test]
fn a_preview_is_checked_like_an_import_and_nothing_is_sent() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    // The first pass makes preview/; the client then uploads there.
    lab.once().expect_code(0, "an empty folder");
    let preview = lab.drop_dir("acme").join("preview");
    assert!(preview.is_dir(), "preview/ is made next to .bak");
    let path = preview.join("roster.csv");
    std::fs::write(&path, csv(ROSTER_HEADER, &GOOD_AND_BAD)).expect("upload a preview");
    lab.backdate(&path, Duration::from_secs(60));

    lab.once().expect_code(0, "once with a preview");

    assert!(
        sandbox.pushes().is_empty(),
        "a preview sends no request that changes a user: {:?}",
        sandbox.pushes()
    );
    assert!(lab.bak("acme").is_empty(), "nothing in the main .bak");
    assert_eq!(
        lab.files_in(&preview.join(".bak"))
            .keys()
            .collect::<Vec<_>>(),
        ["roster.csv"],
        "the file moves to preview/.bak"
    );
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 1, "{}", describe(&mail));
    let subject = mail[0].subject().unwrap_or_default();
    assert!(subject.starts_with("Preview"), "{subject}");
    let body = mail[0].text_body();
    assert!(body.contains('2') && body.contains('1'), "{body}");
    assert!(
        mail[0]
            .attachments()
            .iter()
            .any(|a| a.name.as_deref() == Some("roster-failed.csv")),
        "the rows that would fail are attached"
    );
    let summary =
        String::from_utf8_lossy(&lab.results("acme")["roster-summary.txt"]).to_lowercase();
    assert!(summary.contains("preview"), "{summary}");
    let records = lab.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, RecordOutcome::Previewed);
}

#[test]
fn uploads_that_cannot_be_imported_are_reported_and_set_aside() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    let drop = lab.drop_dir("acme");
    let old = Duration::from_secs(120);
    lab.upload("acme", "roster.xlsx", b"PK\x03\x04 not really a workbook");
    lab.upload("acme", "notes.txt", b"unique_id\nA1\n");
    let outside = lab.root().join("secret.csv");
    std::fs::write(&outside, roster("SECRET", 2)).expect("a file outside");
    std::os::unix::fs::symlink(&outside, drop.join("link.csv")).expect("symlink");
    lab.backdate(&drop.join("link.csv"), old);
    std::fs::create_dir(drop.join("folder.csv")).expect("a folder named .csv");
    lab.backdate(&drop.join("folder.csv"), old);
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        drop.join("pipe.csv"),
        rustix::fs::Mode::from_raw_mode(0o640),
    )
    .expect("a FIFO");
    lab.backdate(&drop.join("pipe.csv"), old);
    // Upload temporaries and hidden names stay ignored.
    for name in ["big.csv.filepart", "~lock.csv", ".hidden.csv", "x.part"] {
        lab.upload("acme", name, &roster("TMP", 1));
    }
    lab.upload("acme", "good.csv", &roster("G", 2));

    lab.once()
        .expect_code(0, "once with uploads that cannot be imported");

    assert_eq!(sandbox.users_by_id().len(), 2, "the CSV file is imported");
    assert_eq!(
        lab.drop_entries("acme"),
        [".hidden.csv", "big.csv.filepart", "x.part", "~lock.csv"],
        "only temporaries and hidden names stay"
    );
    let bak = drop.join(".bak");
    for name in ["roster.xlsx", "notes.txt", "good.csv"] {
        assert!(bak.join(name).is_file(), "{name} in .bak");
    }
    let link = std::fs::symlink_metadata(bak.join("link.csv")).expect("the link is in .bak");
    assert!(
        link.file_type().is_symlink(),
        "moved as it is, never followed"
    );
    assert_eq!(std::fs::read(&outside).expect("read"), roster("SECRET", 2));
    assert!(
        std::fs::symlink_metadata(bak.join("folder.csv"))
            .expect("folder")
            .is_dir()
    );
    assert!(
        std::fs::symlink_metadata(bak.join("pipe.csv"))
            .expect("FIFO")
            .file_type()
            .is_fifo()
    );

    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 5, "one e-mail per upload: {}", describe(&mail));
    let about = |name: &str| {
        mail.iter()
            .find(|m| m.subject().is_some_and(|s| s.contains(name)))
            .unwrap_or_else(|| panic!("an e-mail about {name}: {}", describe(&mail)))
            .text_body()
    };
    assert!(
        about("roster.xlsx").contains("CSV UTF-8"),
        "{}",
        about("roster.xlsx")
    );
    assert!(about("notes.txt").contains("CSV"), "{}", about("notes.txt"));
    for name in ["link.csv", "folder.csv", "pipe.csv"] {
        assert!(about(name).contains(".bak"), "{}", about(name));
    }
    // A second pass says nothing more.
    lab.once().expect_code(0, "nothing new");
    assert_eq!(messages_to(&smtp, "it@acme.example.edu").len(), 5);
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn a_header_that_differs_only_in_spelling_comes_back_corrected_and_imports() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    let header = "Unique ID,login_source,First Name,LAST-NAME,email";
    let rows = [
        "S1,OPSCOM,Ann,Lee,ann@example.edu",
        "\"S2\",OPSCOM,\"Zoë, Jr\",Ng,zoe@example.edu",
    ];
    let upload = csv(header, &rows);
    lab.upload("acme", "roster.csv", &upload);

    lab.once().expect_code(0, "a rejected file");
    assert!(sandbox.pushes().is_empty());
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 1, "{}", describe(&mail));
    let body = mail[0].text_body();
    for expected in [
        "Unique ID",
        "unique_id",
        "First Name",
        "first_name",
        "last_name",
    ] {
        assert!(body.contains(expected), "{expected:?} in:\n{body}");
    }
    assert!(
        !body.contains("opscom-import"),
        "never asks the client to run a command:\n{body}"
    );
    let fixed = mail[0]
        .attachments()
        .into_iter()
        .find(|a| a.name.as_deref() == Some("roster-fixed.csv"))
        .expect("roster-fixed.csv is attached");
    let expected_fixed = csv("unique_id,login_source,first_name,last_name,email", &rows);
    assert_eq!(
        String::from_utf8_lossy(&fixed.data),
        String::from_utf8_lossy(&expected_fixed),
        "the same bytes but the header line"
    );
    assert_eq!(lab.results("acme")["roster-fixed.csv"], fixed.data);

    // Dropped back as it is, it imports.
    lab.upload("acme", "roster-fixed.csv", &fixed.data);
    lab.once().expect_code(0, "the corrected file");
    let users = sandbox.users_by_id();
    assert_eq!(users.keys().collect::<Vec<_>>(), ["S1", "S2"]);
    assert_eq!(
        users["S2"].attributes.get("first_name").map(String::as_str),
        Some("Zoë, Jr")
    );
}

#[test]
fn a_results_or_preview_link_is_never_followed_and_the_client_is_told_once() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    let elsewhere = lab.root().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("a folder outside");
    std::os::unix::fs::symlink(&elsewhere, lab.drop_dir("acme").join("results")).expect("link");
    std::fs::write(
        lab.drop_dir("acme").join("preview"),
        b"a file named preview",
    )
    .expect("file");
    lab.upload("acme", "roster.csv", &csv(ROSTER_HEADER, &GOOD_AND_BAD));

    lab.once().expect_code(0, "imports go on");
    assert_eq!(sandbox.users_by_id().len(), 2);
    assert!(
        std::fs::read_dir(&elsewhere)
            .expect("list")
            .next()
            .is_none(),
        "nothing is written through the link"
    );
    assert_eq!(
        std::fs::read(lab.drop_dir("acme").join("preview")).expect("read"),
        b"a file named preview"
    );
    let mail = messages_to(&smtp, "it@acme.example.edu");
    let folder_mail =
        |m: &&opscom_tests::ReceivedMessage| m.text_body().contains("is not a folder");
    assert_eq!(
        mail.iter().filter(folder_mail).count(),
        2,
        "told once about results, once about preview: {}",
        describe(&mail)
    );
    assert!(
        mail.iter()
            .any(|m| m.subject().is_some_and(|s| s.contains("roster.csv"))),
        "the results are still e-mailed: {}",
        describe(&mail)
    );

    lab.upload("acme", "again.csv", &csv(ROSTER_HEADER, &GOOD_AND_BAD));
    lab.once().expect_code(0, "a second file");
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(
        mail.iter().filter(folder_mail).count(),
        2,
        "not told again: {}",
        describe(&mail)
    );
}

#[test]
fn a_file_name_holding_an_encoded_word_shows_as_uploaded() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    let name = "=?utf-8?q?Payroll?=.csv";
    lab.upload("acme", name, &csv(ROSTER_HEADER, &GOOD_AND_BAD));
    lab.once().expect_code(0, "once");
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 1, "{}", describe(&mail));
    let subject = mail[0].subject().unwrap_or_default();
    assert!(
        subject.starts_with(name),
        "the subject shows the name as uploaded: {subject:?}"
    );
}

#[test]
fn an_api_refusal_quotes_the_refused_value() {
    let sandbox = Sandbox::with(SandboxConfig::default().login_sources(["OPSCOM", "SSO"]));
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    lab.upload(
        "acme",
        "roster.csv",
        &csv(
            ROSTER_HEADER,
            &[
                "A1,SSO,Ann,Lee,ann@example.edu,,,",
                "A2,CAMPUS-SSO,Bob,Roy,bob@example.edu,,,",
            ],
        ),
    );
    lab.once().expect_code(0, "once");
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 1, "{}", describe(&mail));
    let failed = mail[0]
        .attachments()
        .into_iter()
        .find(|a| a.name.as_deref() == Some("roster-failed.csv"))
        .expect("the failure CSV");
    let text = String::from_utf8_lossy(&failed.data).into_owned();
    assert!(
        text.contains("\"CAMPUS-SSO\""),
        "the value is quoted:\n{text}"
    );
    assert!(
        text.contains("OPSCOM"),
        "the accepted default is named:\n{text}"
    );
}

/// A test-only RSA key (generated with `openssl genpkey`) and its public half.
fn dkim_key(lab: &Lab) -> (std::path::PathBuf, String) {
    let key = lab.root().join("dkim.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("openssl (Debian's openssl package) makes the test key");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .expect("openssl");
    assert!(out.status.success());
    use std::io::Write;
    let mut b64 = std::process::Command::new("base64")
        .args(["-w0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("base64");
    b64.stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("write");
    let public = b64.wait_with_output().expect("base64");
    (key, String::from_utf8(public.stdout).expect("ascii"))
}

#[test]
fn a_report_sent_on_the_clients_behalf_is_dkim_signed_and_verifies() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    let (key, public) = dkim_key(&lab);
    lab.extra_toml = String::new();
    lab.tenant("acme", &sandbox.url()).extra =
        "from_mode = \"on_behalf\"\ndisplay_name = \"Acme Parking\"".into();
    let config = lab.config_text().replace(
        "[mail]\n",
        &format!(
            "[mail]\nfrom = \"imports@opscom.example\"\ndkim_key_file = \"{}\"\n\
             dkim_selector = \"opscom1\"\ndkim_domain = \"opscom.example\"\n",
            key.display()
        ),
    );
    lab.write_config_text(&config);
    lab.upload("acme", "roster.csv", &csv(ROSTER_HEADER, &GOOD_AND_BAD));
    let run = lab.run_to_end(&[
        "once",
        "--config",
        &lab.root().join("config.toml").to_string_lossy(),
    ]);
    run.expect_code(0, "once");

    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 1, "{}", describe(&mail));
    let m = &mail[0];
    assert_eq!(m.from_address(), Some("imports@opscom.example"));
    let from = m.header("From").unwrap_or_default();
    assert!(from.contains("Acme Parking via OPSCOM"), "{from}");
    assert_eq!(m.reply_to_address(), Some("parking@acme.example.edu"));
    assert_eq!(m.envelope_from().as_deref(), Some("imports@opscom.example"));
    assert!(m.header("DKIM-Signature").is_some(), "signed");

    // The message as received verifies against the public key (dkimpy, as a receiver would).
    let verify = |raw: &[u8]| -> bool {
        let python = std::env::var("OPSCOM_TEST_PYTHON").expect(
            "OPSCOM_TEST_PYTHON names a Python with dkimpy: run the tests with `cargo xtask test`",
        );
        let file = lab.root().join("received.eml");
        // The test server adds its own trace headers first; a receiver verifies what was signed.
        std::fs::write(&file, raw).expect("write");
        let script = format!(
            "import dkim,sys\n\
             msg=open(sys.argv[1],'rb').read()\n\
             txt=b'v=DKIM1; k=rsa; p={public}'\n\
             ok=dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt if name.startswith(b'opscom1._domainkey.opscom.example') else None)\n\
             print('ok' if ok else 'bad')\n"
        );
        let out = std::process::Command::new(python)
            .args(["-c", &script])
            .arg(&file)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "dkimpy failed (missing? `cargo xtask test` installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim() == "ok"
    };
    assert!(verify(m.raw()), "the signature verifies");
    let tampered = String::from_utf8_lossy(m.raw()).replacen("roster.csv", "rostex.csv", 3);
    assert!(!verify(tampered.as_bytes()), "a changed message does not");
}

#[test]
fn run_takes_a_preview_within_seconds() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    // No scan before an hour: only the folder watch can bring the preview in.
    lab.interval = "1h".into();
    lab.tenant("acme", &sandbox.url());
    let config = lab.write_config();
    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);
    let preview = lab.drop_dir("acme").join("preview");
    opscom_tests::wait_for(Duration::from_secs(30), "preview/ made", || {
        preview.is_dir().then_some(())
    });
    // The watch on preview/ starts after the pass that made it.
    std::thread::sleep(Duration::from_millis(1500));
    let path = preview.join("roster.csv");
    std::fs::write(&path, roster("P", 3)).expect("upload a preview");
    lab.backdate(&path, Duration::from_secs(60));
    opscom_tests::wait_for(Duration::from_secs(30), "the preview taken", || {
        preview.join(".bak/roster.csv").is_file().then_some(())
    });
    assert!(sandbox.pushes().is_empty());
    service.signal(rustix::process::Signal::TERM);
    service
        .wait(Duration::from_secs(20))
        .expect_code(0, "run after SIGTERM");
}
