//! A file's life through the real binary: imported, reported, archived, recorded; rejected
//! files; encodings; `.bak` name collisions; order and hostile entries.

use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use opscom_tests::{
    DEFAULT_TOKEN, Lab, ROSTER_HEADER, RecordOutcome, Sandbox, SmtpServer, csv, describe,
    messages_to, roster, utc_stamp,
};

/// The main lifecycle, as the current user.
#[test]
fn once_imports_good_rows_reports_bad_ones_archives_and_records() {
    main_lifecycle(false);
}

/// The same lifecycle with the importer running as `nobody` when the tests run as root (CI):
/// root ignores permissions and would hide a file the importer cannot read, move or create.
#[test]
fn once_lifecycle_as_an_unprivileged_user() {
    main_lifecycle(true);
}

const UPLOAD_ROWS: [&str; 6] = [
    "G1,OPSCOM,Zoë,Ng,zoe.ng@example.edu,,MA,1990-02-03",
    "G2,OPSCOM,Ann,Lee,ann.lee@example.edu,617-555-0102,ON,",
    "B1,OPSCOM,=1+2,Mail,not-an-email,,,",
    "B2,OPSCOM,Bad,Date,bad.date@example.edu,,,1/15/1990",
    " G3 , OPSCOM ,  Raj , Patel ,raj.patel@example.edu,,,",
    "G1,OPSCOM,Dup,Licate,dup@example.edu,,,",
];

fn main_lifecycle(unprivileged: bool) {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    if unprivileged {
        // Outside root (a developer's machine) this runs as the current user.
        let _as_nobody = lab.run_unprivileged();
    }
    let upload = csv(ROSTER_HEADER, &UPLOAD_ROWS);
    lab.upload("acme", "roster.csv", &upload);

    let run = lab.once();
    run.expect_code(0, "once over a file with good and bad rows");

    // The good rows are in the API, with their values trimmed.
    let users = sandbox.users_by_id();
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        ["G1", "G2", "G3"],
        "imported users: {users:#?}"
    );
    let g1 = &users["G1"].attributes;
    assert_eq!(
        g1.get("first_name").map(String::as_str),
        Some("Zoë"),
        "{g1:?}"
    );
    assert_eq!(
        g1.get("email").map(String::as_str),
        Some("zoe.ng@example.edu")
    );
    assert_eq!(
        g1.get("date_of_birth").map(String::as_str),
        Some("1990-02-03")
    );
    let g3 = &users["G3"].attributes;
    assert_eq!(
        g3.get("first_name").map(String::as_str),
        Some("Raj"),
        "{g3:?}"
    );
    assert_eq!(
        g3.get("login_source").map(String::as_str),
        Some("OPSCOM"),
        "{g3:?}"
    );
    // The first occurrence of a unique_id is imported; the repeat is not pushed.
    assert_eq!(sandbox.push_counts().get("G1"), Some(&1));

    // Empty cells are not sent: they never clear what OPSCOM holds.
    let pushes = sandbox.pushes();
    let sent = |id: &str| {
        pushes
            .iter()
            .find(|r| r.unique_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no push for {id}"))
            .attributes
            .clone()
    };
    let g1_sent = sent("G1");
    assert!(
        !g1_sent.contains_key("phone_cell"),
        "an empty cell was sent: {g1_sent:?}"
    );
    let g2_sent = sent("G2");
    assert!(
        !g2_sent.contains_key("date_of_birth"),
        "an empty cell was sent: {g2_sent:?}"
    );
    assert_eq!(
        g2_sent.get("phone_cell").map(String::as_str),
        Some("617-555-0102")
    );
    assert!(
        pushes
            .iter()
            .all(|r| !matches!(r.unique_id.as_deref(), Some("B1" | "B2"))),
        "invalid rows must not reach the API"
    );

    // One failure e-mail, from the tenant's admin address to its IT address.
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(
        mail.len(),
        1,
        "failure e-mails:\n{}",
        describe(&smtp.messages())
    );
    let m = &mail[0];
    assert_eq!(m.from_address(), Some("parking@acme.example.edu"));
    assert_eq!(m.reply_to_address(), Some("parking@acme.example.edu"));
    assert_eq!(
        m.envelope_to(),
        ["it@acme.example.edu"],
        "the SMTP envelope"
    );
    let subject = m.subject().unwrap_or_default();
    assert!(
        subject.contains("roster.csv") && subject.contains("3 of 6"),
        "subject should name the file and the counts: {subject:?}"
    );
    let body = m.text_body();
    assert!(
        body.contains("line 4"),
        "the body names the failed lines: {body}"
    );
    assert!(
        m.message_id().is_some_and(|id| !id.is_empty()),
        "a Message-ID"
    );

    // The attachment: the upload's header + import_error, UTF-8 with BOM, CRLF, one row per failure.
    let attachments = m.attachments();
    assert_eq!(attachments.len(), 1, "{attachments:?}");
    let a = &attachments[0];
    assert!(
        a.name.as_deref().is_some_and(|n| n.ends_with(".csv")),
        "attachment name: {:?}",
        a.name
    );
    assert!(
        a.data.starts_with(b"\xEF\xBB\xBF"),
        "the failure CSV starts with a BOM"
    );
    let text = String::from_utf8(a.data[3..].to_vec()).expect("the failure CSV is UTF-8");
    assert!(
        text.contains("\r\n") && !text.replace("\r\n", "").contains('\n'),
        "CRLF line ends"
    );
    let lines: Vec<&str> = text.trim_end_matches("\r\n").split("\r\n").collect();
    assert_eq!(lines[0], format!("{ROSTER_HEADER},import_error"));
    assert_eq!(lines.len(), 4, "header + 3 failed rows:\n{text}");
    assert!(lines[1].starts_with("B1,OPSCOM,"), "{text}");
    assert!(lines[1].contains("1+2,Mail,not-an-email,,,,"), "{text}");
    for line in &lines {
        for cell in line.split(',') {
            assert!(
                !cell
                    .trim_start_matches('"')
                    .starts_with(['=', '+', '-', '@']),
                "a cell Excel would run as a formula: {cell:?} in {line:?}"
            );
        }
    }
    assert!(
        lines[2].starts_with("B2,OPSCOM,Bad,Date,bad.date@example.edu,,,1/15/1990,"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("G1,OPSCOM,Dup,Licate,dup@example.edu,,,,"),
        "{text}"
    );

    // The upload is in .bak, unchanged, and gone from the drop folder.
    let bak = lab.bak("acme");
    assert_eq!(bak.keys().collect::<Vec<_>>(), ["roster.csv"]);
    assert_eq!(
        bak["roster.csv"], upload,
        "the archived file is the upload, unchanged"
    );
    assert!(
        lab.drop_entries("acme").is_empty(),
        "{:?}",
        lab.drop_entries("acme")
    );

    // One record line.
    let records = lab.records();
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!((r.tenant.as_str(), r.file.as_str()), ("acme", "roster.csv"));
    assert_eq!((r.rows_total, r.rows_ok, r.rows_failed), (6, 3, 3), "{r:?}");
    assert_eq!(r.outcome, RecordOutcome::ImportedWithFailures);

    if lab.is_unprivileged() {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(lab.state_dir.join("records.jsonl"))
            .expect("stat the records")
            .uid();
        assert_eq!(
            owner,
            opscom_tests::NOBODY,
            "the importer really ran as nobody"
        );
    }

    // Secrets stay out of logs and files.
    assert!(
        !run.stderr.contains(DEFAULT_TOKEN),
        "the token is in the logs"
    );
    let records_text =
        std::fs::read_to_string(lab.state_dir.join("records.jsonl")).expect("read records");
    assert!(
        !records_text.contains(DEFAULT_TOKEN),
        "the token is in the records"
    );
    assert!(
        !String::from_utf8_lossy(m.raw()).contains(DEFAULT_TOKEN),
        "the token is in a report"
    );

    // The client corrects the attached CSV and drops it back: it imports as it is.
    let fixed = String::from_utf8(a.data.clone())
        .expect("UTF-8")
        .replace("not-an-email", "b1@example.edu")
        .replace("1/15/1990", "1990-01-15")
        .replace("G1,OPSCOM,Dup", "G4,OPSCOM,Dup");
    lab.upload("acme", "roster-failed.csv", fixed.as_bytes());
    lab.once()
        .expect_code(0, "once over the corrected failure CSV");
    let users = sandbox.users_by_id();
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        ["B1", "B2", "G1", "G2", "G3", "G4"],
        "after the corrected file"
    );
    assert_eq!(
        users["B1"].attributes.get("email").map(String::as_str),
        Some("b1@example.edu")
    );
    assert_eq!(
        users["B1"].attributes.get("first_name").map(String::as_str),
        Some("=1+2"),
        "a round trip through the failure CSV does not alter values"
    );
    assert_eq!(
        users["B2"]
            .attributes
            .get("date_of_birth")
            .map(String::as_str),
        Some("1990-01-15")
    );
    assert!(
        users["B1"].attributes.keys().all(|k| k != "import_error"),
        "the import_error column must be ignored: {:?}",
        users["B1"].attributes
    );
    assert_eq!(
        users["G1"].attributes.get("first_name").map(String::as_str),
        Some("Zoë")
    );
    let records = lab.records();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(
        records[1].outcome,
        RecordOutcome::Imported,
        "{:?}",
        records[1]
    );
    assert_eq!((records[1].rows_total, records[1].rows_ok), (3, 3));
    assert_eq!(
        messages_to(&smtp, "it@acme.example.edu").len(),
        1,
        "no e-mail when every row is imported"
    );
    assert_eq!(
        lab.bak("acme").keys().collect::<Vec<_>>(),
        ["roster-failed.csv", "roster.csv"]
    );
}

#[test]
fn rejected_files_are_archived_and_reported_without_any_api_call() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    let mut xlsx = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00".to_vec();
    xlsx.extend_from_slice(b"[Content_Types].xml");
    xlsx.extend_from_slice(&[0u8, 7, 200, 13, 10, 255, 0, 1]);
    let files: [(&str, Vec<u8>, &[&str]); 5] = [
        (
            "capital.csv",
            b"unique_id,login_source,Email\r\nU1,OPSCOM,u1@example.edu\r\n".to_vec(),
            &["email"],
        ),
        (
            "semicolon.csv",
            b"unique_id;login_source;email\r\nU2;OPSCOM;u2@example.edu\r\n".to_vec(),
            &["semicolons", "CSV UTF-8"],
        ),
        ("empty.csv", Vec::new(), &["empty"]),
        ("workbook.csv", xlsx, &["xlsx"]),
        (
            "stray-quote.csv",
            stray_quote(),
            &["unterminated quote", "line 3"],
        ),
    ];
    // Distinct ages, so that the order (oldest first) is known.
    for (i, (name, bytes, _)) in files.iter().enumerate() {
        lab.upload_aged(
            "acme",
            name,
            bytes,
            Duration::from_secs(600 - 60 * i as u64),
        );
    }

    lab.once().expect_code(0, "once over rejected files");

    assert!(
        sandbox.requests().is_empty(),
        "a rejected file makes no API call: {:?}",
        sandbox.requests()
    );
    let bak = lab.bak("acme");
    for (name, bytes, _) in &files {
        assert_eq!(
            bak.get(*name),
            Some(bytes),
            "{name} is archived unchanged: {:?}",
            bak.keys()
        );
    }
    assert!(lab.drop_entries("acme").is_empty());
    let records = lab.records();
    assert_eq!(records.len(), 5, "{records:#?}");
    assert!(
        records.iter().all(|r| r.outcome == RecordOutcome::Rejected),
        "{records:#?}"
    );

    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(
        mail.len(),
        5,
        "one e-mail per rejected file:\n{}",
        describe(&mail)
    );
    for (name, _, words) in &files {
        let m = mail
            .iter()
            .find(|m| m.subject().is_some_and(|s| s.contains(name)))
            .unwrap_or_else(|| panic!("no e-mail about {name}:\n{}", describe(&mail)));
        assert!(
            m.subject().unwrap_or_default().contains("rejected"),
            "{:?}",
            m.subject()
        );
        let body = m.text_body();
        for w in *words {
            assert!(
                body.to_lowercase().contains(&w.to_lowercase()),
                "the e-mail about {name} should say why ({w:?}):\n{body}"
            );
        }
        assert_eq!(m.from_address(), Some("parking@acme.example.edu"));
    }
    let capital = mail
        .iter()
        .find(|m| m.subject().is_some_and(|s| s.contains("capital.csv")))
        .expect("checked above");
    assert!(
        capital.text_body().contains("`email`") || capital.text_body().contains("\"email\""),
        "the message names the nearest possible header:\n{}",
        capital.text_body()
    );
}

/// A stray quote on line 3 swallows the rest of a file larger than the 1 MiB record limit.
fn stray_quote() -> Vec<u8> {
    let mut bytes =
        b"unique_id,login_source,first_name\r\nQ1,OPSCOM,Ann\r\nQ2,OPSCOM,\"Bob\r\n".to_vec();
    while bytes.len() < 1_200_000 {
        bytes.extend_from_slice(b"Q3,OPSCOM,Someone with a long enough name to fill the file\r\n");
    }
    bytes
}

#[test]
fn a_file_over_the_tenants_size_limit_is_rejected_whole() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("small", &sandbox.url()).max_file_size = Some("1KiB".into());
    let upload = roster("BIG", 100);
    assert!(upload.len() > 1024);
    lab.upload("small", "big.csv", &upload);

    lab.once()
        .expect_code(0, "once over a file over the size limit");
    assert!(
        sandbox.requests().is_empty(),
        "no API call for a rejected file"
    );
    assert_eq!(lab.bak("small").get("big.csv"), Some(&upload));
    let mail = messages_to(&smtp, "it@small.example.edu");
    assert_eq!(mail.len(), 1, "{}", describe(&mail));
    assert!(
        mail[0]
            .subject()
            .is_some_and(|s| s.contains("big.csv") && s.contains("rejected")),
        "{:?}",
        mail[0].subject()
    );
    let records = lab.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, RecordOutcome::Rejected);
}

#[test]
fn windows_1252_and_utf16_files_import_with_their_accents() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    // A trailing `/` on api_url is harmless.
    lab.tenant("acme", &format!("{}/", sandbox.url()));

    // UTF-8 with a BOM, LF line ends, quoted fields with commas, quotes and a line break.
    let utf8 = "\u{FEFF}unique_id,login_source,first_name,last_name,city,street\n\
                Q1,OPSCOM,Zoë,\"O\"\"Neil\",Québec,\"Apt 4, 200 Navy St\"\n\
                Q2,OPSCOM,Åsa,Ek,Malmö,\"Line one\nline two\"\n";
    lab.upload_aged("acme", "bom.csv", utf8.as_bytes(), Duration::from_secs(400));

    // What Excel's "CSV (Comma delimited)" writes on a Western Windows: Windows-1252.
    let mut cp1252 = b"unique_id,login_source,first_name,last_name,city\r\n".to_vec();
    cp1252.extend_from_slice(b"W1,OPSCOM,Ren\xe9e,M\xfcller,Montr\xe9al\r\n");
    cp1252.extend_from_slice(b"W2,OPSCOM,Fran\xe7ois,O\x92Brien,Z\xfcrich\r\n");
    lab.upload_aged("acme", "excel.csv", &cp1252, Duration::from_secs(300));

    // "Unicode text" style: UTF-16LE with a BOM.
    let text =
        "unique_id,login_source,first_name,last_name,city\r\nU1,OPSCOM,Zoë,Łukasiewicz,Kraków\r\n";
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    lab.upload_aged("acme", "unicode.csv", &utf16, Duration::from_secs(200));

    lab.once()
        .expect_code(0, "once over Windows-1252 and UTF-16 files");

    let users = sandbox.users_by_id();
    let attr = |id: &str, key: &str| {
        users
            .get(id)
            .unwrap_or_else(|| panic!("{id} not imported: {users:#?}"))
            .attributes
            .get(key)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(attr("W1", "first_name"), "Renée");
    assert_eq!(attr("W1", "last_name"), "Müller");
    assert_eq!(attr("W1", "city"), "Montréal");
    assert_eq!(attr("W2", "first_name"), "François");
    assert_eq!(
        attr("W2", "last_name"),
        "O’Brien",
        "0x92 is a right single quote in Windows-1252"
    );
    assert_eq!(attr("U1", "first_name"), "Zoë");
    assert_eq!(attr("U1", "last_name"), "Łukasiewicz");
    assert_eq!(attr("U1", "city"), "Kraków");
    assert_eq!(
        attr("Q1", "first_name"),
        "Zoë",
        "the BOM is not part of the first header"
    );
    assert_eq!(attr("Q1", "last_name"), "O\"Neil");
    assert_eq!(attr("Q1", "street"), "Apt 4, 200 Navy St");
    assert_eq!(attr("Q2", "street"), "Line one\nline two");
    assert_eq!(attr("Q2", "city"), "Malmö");
    assert!(smtp.messages().is_empty(), "{}", describe(&smtp.messages()));
    let records = lab.records();
    assert!(
        records.iter().all(|r| r.outcome == RecordOutcome::Imported),
        "{records:#?}"
    );
}

#[test]
fn a_second_upload_of_the_same_name_never_overwrites_bak() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());

    let monday = roster("MON", 2);
    lab.upload("acme", "roster.csv", &monday);
    lab.once().expect_code(0, "first upload");

    let tuesday = roster("TUE", 2);
    lab.upload("acme", "roster.csv", &tuesday);
    let before = SystemTime::now();
    lab.once().expect_code(0, "second upload of the same name");
    let after = SystemTime::now();

    let bak = lab.bak("acme");
    assert_eq!(bak.len(), 2, "{:?}", bak.keys());
    assert_eq!(
        bak["roster.csv"], monday,
        "the first upload is never overwritten"
    );
    let (second_name, second) = bak
        .iter()
        .find(|(n, _)| n.as_str() != "roster.csv")
        .expect("a second archived file");
    assert_eq!(second, &tuesday);
    let stamps = stamps_between(before, after);
    assert!(
        stamps
            .iter()
            .any(|s| *second_name == format!("roster.{s}.csv")),
        "the second upload is archived as roster.YYYYMMDDTHHMMSSZ.csv (UTC, during the pass): \
         {second_name} not among {stamps:?}"
    );

    // Every time-stamped name of the next pass is already taken: the importer adds -2.
    let wednesday = roster("WED", 2);
    lab.upload("acme", "roster.csv", &wednesday);
    let taken_from = SystemTime::now();
    let window = stamps_between(taken_from, taken_from + Duration::from_secs(120));
    let mut squatters = window.clone();
    squatters.retain(|s| {
        let path = lab
            .drop_dir("acme")
            .join(".bak")
            .join(format!("roster.{s}.csv"));
        match std::fs::File::create_new(&path) {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, format!("squatter {s}").as_bytes())
                    .expect("write a squatter");
                true
            }
            // The second upload's own name: it stays as it is.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => panic!("pre-create {}: {e}", path.display()),
        }
    });
    lab.once().expect_code(0, "third upload of the same name");
    let bak = lab.bak("acme");
    assert_eq!(bak["roster.csv"], monday);
    assert_eq!(&bak[second_name], &tuesday);
    for s in &squatters {
        assert_eq!(
            bak[&format!("roster.{s}.csv")],
            format!("squatter {s}").into_bytes(),
            "nothing in .bak is overwritten"
        );
    }
    let third: Vec<_> = bak
        .iter()
        .filter(|(_, bytes)| **bytes == wednesday)
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(third.len(), 1, "{:?}", bak.keys());
    assert!(
        window
            .iter()
            .any(|s| third[0] == format!("roster.{s}-2.csv")),
        "the third upload is archived as roster.STAMP-2.csv: {}",
        third[0]
    );
    let users = sandbox.users_by_id();
    assert!(
        ["MON0", "TUE0", "WED1"]
            .iter()
            .all(|id| users.contains_key(*id))
    );
}

/// Every `YYYYMMDDTHHMMSSZ` stamp from `from` to `to`, whole seconds included.
fn stamps_between(from: SystemTime, to: SystemTime) -> Vec<String> {
    let mut out = Vec::new();
    let mut t = from - Duration::from_secs(1);
    while t <= to + Duration::from_secs(1) {
        out.push(utc_stamp(t));
        t += Duration::from_secs(1);
    }
    out.dedup();
    out
}

#[test]
fn files_go_oldest_first_and_a_symlink_does_not_break_the_pass() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());

    // Monday's file has the later name but the older mtime.
    lab.upload_aged(
        "acme",
        "z-monday.csv",
        &roster("MON", 20),
        Duration::from_secs(3600),
    );
    lab.upload_aged(
        "acme",
        "a-tuesday.CSV",
        &roster("TUE", 20),
        Duration::from_secs(1800),
    );
    // A client-made symlink to a file outside the drop folder, and other entries that are not
    // ready uploads.
    let outside = lab.root().join("secret.csv");
    std::fs::write(&outside, roster("SECRET", 3)).expect("write a file outside");
    std::os::unix::fs::symlink(&outside, lab.drop_dir("acme").join("x.csv")).expect("symlink");
    std::fs::create_dir(lab.drop_dir("acme").join("folder.csv")).expect("a folder named .csv");
    // Made now and the settle time a minute: the link and the folder are still settling.
    lab.settle = "60s".into();
    lab.upload("acme", "partial.csv.filepart", &roster("PART", 3));
    lab.upload("acme", ".hidden.csv", &roster("HID", 3));
    // Names a client's SFTP tool can create: a control character, and bytes that are not UTF-8.
    lab.upload("acme", "tab\tname.csv", &roster("CTL", 3));
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.csv");
    std::fs::write(lab.drop_dir("acme").join(latin1), roster("LAT", 3)).expect("write");

    lab.once()
        .expect_code(0, "once with hostile entries in the folder");

    let pushes = sandbox.pushes();
    let ids: Vec<String> = pushes.iter().filter_map(|r| r.unique_id.clone()).collect();
    assert_eq!(ids.len(), 40, "{ids:?}");
    let last_monday = ids
        .iter()
        .rposition(|id| id.starts_with("MON"))
        .expect("monday pushed");
    let first_tuesday = ids
        .iter()
        .position(|id| id.starts_with("TUE"))
        .expect("tuesday pushed");
    assert!(
        last_monday < first_tuesday,
        "the older file is imported whole before the newer one starts: {ids:?}"
    );
    assert!(
        ids.iter()
            .all(|id| id.starts_with("MON") || id.starts_with("TUE")),
        "only ready uploads are imported: {ids:?}"
    );
    let records = lab.records();
    let files: Vec<&str> = records.iter().map(|r| r.file.as_str()).collect();
    assert_eq!(files, ["z-monday.csv", "a-tuesday.CSV"]);

    // The entries that are not uploads are left where they are; the symlink and the folder,
    // still settling, too (once settled, they are reported and set aside: see
    // `client::uploads_that_cannot_be_imported_are_reported_and_set_aside`).
    assert_eq!(
        lab.drop_entries("acme"),
        [
            ".hidden.csv",
            "caf\u{FFFD}.csv",
            "folder.csv",
            "partial.csv.filepart",
            "tab\tname.csv",
            "x.csv"
        ]
    );
    assert!(
        std::fs::symlink_metadata(lab.drop_dir("acme").join("x.csv"))
            .expect("the symlink is still there")
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&outside).expect("read"), roster("SECRET", 3));
    assert_eq!(
        lab.bak("acme").keys().collect::<Vec<_>>(),
        ["a-tuesday.CSV", "z-monday.csv"]
    );
}

#[test]
fn unsettled_and_future_dated_uploads_wait() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.settle = "10m".into();
    lab.tenant("acme", &sandbox.url());
    // Just written: not settled yet.
    lab.upload_aged("acme", "fresh.csv", &roster("F", 2), Duration::ZERO);
    // A client's clock a day ahead: the mtime counts as now, so it has not settled either.
    let future = lab.upload("acme", "future.csv", &roster("T", 2));
    std::fs::File::options()
        .write(true)
        .open(&future)
        .and_then(|f| f.set_modified(SystemTime::now() + Duration::from_secs(86_400)))
        .expect("date the upload a day ahead");
    // Settled long ago: taken.
    lab.upload_aged(
        "acme",
        "old.csv",
        &roster("O", 2),
        Duration::from_secs(3600),
    );

    lab.once().expect_code(
        0,
        "once with unsettled uploads (nothing waits on the importer's side)",
    );
    assert_eq!(lab.bak("acme").keys().collect::<Vec<_>>(), ["old.csv"]);
    assert_eq!(lab.drop_entries("acme"), ["fresh.csv", "future.csv"]);
    let users = sandbox.users_by_id();
    assert_eq!(users.keys().collect::<Vec<_>>(), ["O0", "O1"]);
}

#[test]
fn a_young_file_cut_off_mid_record_is_deferred_not_half_imported() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    let mut upload = roster("CUT", 5);
    upload.extend_from_slice(b"CUT5,OPSCOM,Half,Wri");
    // Settled (1 s) but young: an upload tool may still be writing it.
    lab.upload_aged("acme", "cut.csv", &upload, Duration::from_secs(3));

    lab.once()
        .expect_code(3, "once over a young file cut off mid-record");
    assert!(
        lab.bak("acme").is_empty(),
        "a cut-off young file is not archived"
    );
    assert!(
        sandbox.user("CUT5").is_none(),
        "the cut-off last record is never imported half-written"
    );
    assert!(smtp.messages().is_empty(), "{}", describe(&smtp.messages()));
}

#[test]
fn a_bak_symlink_stops_only_that_tenant() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("hostile", &sandbox.url());
    lab.tenant("calm", &sandbox.url());
    let elsewhere = lab.root().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("create a folder outside the drop folder");
    std::os::unix::fs::symlink(&elsewhere, lab.drop_dir("hostile").join(".bak"))
        .expect("a client-made .bak symlink");
    lab.upload("hostile", "roster.csv", &roster("H", 3));
    lab.upload("calm", "roster.csv", &roster("C", 3));

    let run = lab.once();
    run.expect_code(3, "once with a tenant whose .bak is a symlink");
    assert!(
        run.stderr.contains(".bak"),
        "the fault is reported:\n{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).expect("read").count(),
        0,
        "nothing is moved through the symlink"
    );
    assert!(
        lab.bak("calm").contains_key("roster.csv"),
        "the other tenant goes on"
    );
    let users = sandbox.users_by_id();
    assert_eq!(users.keys().collect::<Vec<_>>(), ["C0", "C1", "C2"]);
}

#[test]
fn json_logs_parse_and_carry_no_row_contents() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    lab.upload(
        "acme",
        "roster.csv",
        &csv(
            ROSTER_HEADER,
            &[
                "J1,OPSCOM,Philippa,Quixote,philippa.quixote@example.edu,617-555-0199,MA,1980-05-06",
                "J2,OPSCOM,Bartholomew,Zanzibar,not-an-address,,,",
            ],
        ),
    );
    let config = lab.write_config();
    let run = lab.run_to_end(&[
        "--log-format",
        "json",
        "once",
        "--config",
        &config.to_string_lossy(),
    ]);
    run.expect_code(0, "once with JSON logs");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "the service logs");
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
    }
    for secret in [
        "Philippa",
        "Quixote",
        "philippa.quixote",
        "617-555-0199",
        "Bartholomew",
        "not-an-address",
        DEFAULT_TOKEN,
    ] {
        assert!(
            !run.stderr.contains(secret),
            "the logs carry {secret:?}:\n{}",
            run.stderr
        );
    }
}

#[test]
fn demo_runs_end_to_end() {
    let smtp_unused = "smtp://127.0.0.1:9";
    let lab = Lab::new(smtp_unused);
    // The demo's temporary folder goes inside the lab, so that nothing is left behind.
    let run = lab
        .command(&["demo"])
        .env("TMPDIR", lab.root())
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bak = stdout
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.contains("/.bak/")))
        .unwrap_or_else(|| panic!("the demo prints where .bak is:\n{stdout}"));
    assert!(std::path::Path::new(bak).is_file(), "{bak} exists");
    assert!(bak.starts_with(&*lab.root().to_string_lossy()), "{bak}");
    let summary = stdout
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.contains("/results/")))
        .unwrap_or_else(|| panic!("the demo prints where the client's results are:\n{stdout}"));
    let text = std::fs::read_to_string(summary).expect("the summary is there");
    assert!(text.contains("roster.csv"), "{text}");
}

#[test]
fn the_failure_csv_pads_short_rows_and_quotes_extra_cells() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    let header = "unique_id,login_source,first_name,last_name";
    lab.upload(
        "acme",
        "ragged.csv",
        &csv(
            header,
            &[
                "R1,OPSCOM,Ann,Lee",
                "R2,OPSCOM,Short",
                "R3,OPSCOM,Too,Many,Cells,Here",
                "R4,,No,Source",
            ],
        ),
    );

    lab.once().expect_code(0, "once over a ragged file");
    assert_eq!(sandbox.users_by_id().keys().collect::<Vec<_>>(), ["R1"]);
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 1, "{}", describe(&mail));
    let attachment = &mail[0].attachments()[0];
    let text = String::from_utf8_lossy(&attachment.data[3..]).into_owned();
    let lines: Vec<&str> = text.trim_end_matches("\r\n").split("\r\n").collect();
    assert_eq!(lines[0], format!("{header},import_error"));
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].starts_with("R2,OPSCOM,Short,,"),
        "a short row is padded to the header's width: {text}"
    );
    assert!(lines[2].starts_with("R3,OPSCOM,Too,Many,"), "{text}");
    assert!(
        lines[2].contains("Cells") && lines[2].contains("Here"),
        "extra cells are quoted in the reason: {text}"
    );
    assert!(lines[3].starts_with("R4,,No,Source,"), "{text}");
    assert!(
        mail[0].subject().is_some_and(|s| s.contains("3 of 4")),
        "{:?}",
        mail[0].subject()
    );
}

#[test]
fn an_upload_the_importer_may_not_read_is_left_and_reported_without_blocking_the_tenant() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    // As root the importer runs as `nobody` and the file stays root's; otherwise the file is
    // made unreadable to its owner.
    let as_nobody = lab.run_unprivileged();
    let private = lab.upload_aged(
        "acme",
        &format!("{}private.csv", opscom_tests::KEEP_OWNER_PREFIX),
        &roster("P", 2),
        Duration::from_secs(3600),
    );
    let mode = if as_nobody { 0o600 } else { 0o000 };
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(mode))
        .expect("make the upload private");
    lab.upload_aged(
        "acme",
        "roster.csv",
        &roster("R", 2),
        Duration::from_secs(60),
    );

    let run = lab.once();
    run.expect_code(0, "once with an unreadable upload before a good one");
    assert_eq!(lab.bak("acme").keys().collect::<Vec<_>>(), ["roster.csv"]);
    assert_eq!(
        lab.drop_entries("acme"),
        [format!("{}private.csv", opscom_tests::KEEP_OWNER_PREFIX)],
        "the unreadable upload stays where the client can see and fix it"
    );
    assert!(
        run.stderr.contains("may not read it"),
        "the skip is reported: {}",
        run.stderr
    );
    let users = sandbox.users_by_id();
    assert_eq!(users.keys().collect::<Vec<_>>(), ["R0", "R1"]);
}
