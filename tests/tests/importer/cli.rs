//! The command line: configuration refused at start (exit 2, the key named), `validate` exit
//! statuses and JSON, `headers`, `--help`.

use opscom_tests::{Lab, ROSTER_HEADER, Sandbox, csv, roster};

/// A lab with one tenant whose configuration the test then breaks. No SMTP server is needed:
/// a refused configuration never reaches the mailer.
fn lab() -> (Sandbox, Lab) {
    let sandbox = Sandbox::start();
    let mut lab = Lab::new("smtp://127.0.0.1:9");
    lab.tenant("acme", &sandbox.url());
    (sandbox, lab)
}

#[track_caller]
fn refused(lab: &Lab, text: &str, command: &str, words: &[&str]) {
    let config = lab.write_config_text(text);
    let run = lab.run_to_end(&[command, "--config", &config.to_string_lossy()]);
    run.expect_code(2, &format!("`{command}` with a bad configuration"));
    for w in words {
        assert!(
            run.stderr.contains(w),
            "stderr should name {w:?}:\n{}",
            run.stderr
        );
    }
}

#[test]
fn a_bad_configuration_is_refused_at_start_naming_the_key() {
    let (sandbox, lab) = lab();
    lab.upload("acme", "roster.csv", &roster("C", 2));
    let good = lab.config_text();

    // An unknown key (a typo of `concurrency`).
    let typo = good.replace("concurrency = 4", "concurency = 4");
    refused(&lab, &typo, "once", &["concurency"]);
    refused(&lab, &typo, "run", &["concurency"]);

    // A token taken from an environment variable that is not set.
    let unset_var = "OPSCOM_IT_NO_SUCH_VARIABLE_7F3A";
    let token_line = good
        .lines()
        .find(|l| l.starts_with("api_token ="))
        .expect("a token line");
    let env_token = good.replace(token_line, &format!("api_token_env = \"{unset_var}\""));
    refused(&lab, &env_token, "once", &["api_token_env", unset_var]);

    // A drop folder that does not exist.
    let drop = lab.drop_dir("acme").to_string_lossy().into_owned();
    let missing = good.replace(&drop, &format!("{drop}-missing"));
    refused(&lab, &missing, "once", &["drop_dir"]);

    // An invalid address.
    let bad_address = good.replace("it@acme.example.edu", "it at acme");
    refused(&lab, &bad_address, "once", &["failed_import_email"]);

    // Nothing was touched: no API call, the upload still waits.
    assert!(sandbox.requests().is_empty());
    assert_eq!(lab.drop_entries("acme"), ["roster.csv"]);
}

#[test]
fn a_configuration_from_the_environment_is_accepted() {
    let (sandbox, mut lab) = lab();
    let smtp = opscom_tests::SmtpServer::start();
    lab.smtp_url = smtp.url();
    lab.upload("acme", "roster.csv", &roster("E", 3));
    let good = lab.config_text();
    let token_line = good
        .lines()
        .find(|l| l.starts_with("api_token ="))
        .expect("a token line");
    let text = good.replace(token_line, "api_token_env = \"OPSCOM_IT_TOKEN\"");
    let config = lab.write_config_text(&text);
    let run = lab
        .command(&["once", "--config", &config.to_string_lossy()])
        .env("OPSCOM_IT_TOKEN", opscom_tests::DEFAULT_TOKEN)
        .output()
        .expect("run the importer");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(sandbox.users().len(), 3);

    // A token file's trailing newline is not part of the token.
    let token_file = lab.root().join("token");
    std::fs::write(&token_file, format!("{}\n", opscom_tests::DEFAULT_TOKEN)).expect("write");
    let text = good.replace(
        token_line,
        &format!("api_token_file = \"{}\"", token_file.display()),
    );
    lab.upload("acme", "second.csv", &roster("TF", 2));
    let config = lab.write_config_text(&text);
    lab.run_to_end(&["once", "--config", &config.to_string_lossy()])
        .expect_code(0, "once with the token in a file");
    assert_eq!(sandbox.users().len(), 5);
}

#[test]
fn validate_exit_statuses_and_json() {
    let (_sandbox, lab) = lab();
    let dir = lab.root().join("check");
    std::fs::create_dir_all(&dir).expect("create a folder");
    let good = dir.join("good.csv");
    std::fs::write(&good, roster("V", 5)).expect("write");
    let bad_rows = dir.join("bad-rows.csv");
    std::fs::write(
        &bad_rows,
        csv(
            ROSTER_HEADER,
            &[
                "V1,OPSCOM,Ann,Lee,ann@example.edu,,,",
                "V2,OPSCOM,Bob,Ray,not-an-email,,,",
                "V3,OPSCOM,Cy,Oh,cy@example.edu,,,1/15/1990",
            ],
        ),
    )
    .expect("write");
    let semicolons = dir.join("semicolons.csv");
    std::fs::write(&semicolons, "unique_id;login_source\r\nV1;OPSCOM\r\n").expect("write");
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();

    let run = lab.run_to_end(&["validate", &path(&good)]);
    run.expect_code(0, "validate on a valid file");

    let run = lab.run_to_end(&["validate", &path(&good), "--json"]);
    run.expect_code(0, "validate --json on a valid file");
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("validate --json prints JSON ({e}):\n{}", run.stdout));
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["rows"], 5, "{json}");

    let run = lab.run_to_end(&["validate", &path(&bad_rows)]);
    run.expect_code(1, "validate on a file with bad rows");
    assert!(
        run.stdout.contains(":3:") && run.stdout.contains(":4:"),
        "problems are listed with their lines:\n{}",
        run.stdout
    );
    let run = lab.run_to_end(&["validate", &path(&bad_rows), "--json"]);
    run.expect_code(1, "validate --json on a file with bad rows");
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("validate --json prints JSON ({e}):\n{}", run.stdout));
    assert_eq!(json["ok"], false);
    assert_eq!(
        (json["rows"].as_u64(), json["invalid"].as_u64()),
        (Some(3), Some(2)),
        "{json}"
    );
    let lines: Vec<u64> = json["invalid_rows"]
        .as_array()
        .expect("invalid_rows is an array")
        .iter()
        .filter_map(|r| r["line"].as_u64())
        .collect();
    assert_eq!(lines, [3, 4], "{json}");

    let run = lab.run_to_end(&["validate", &path(&semicolons)]);
    run.expect_code(1, "validate on a rejected file");
    let run = lab.run_to_end(&["validate", &path(&semicolons), "--json"]);
    run.expect_code(1, "validate --json on a rejected file");
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("validate --json prints JSON ({e}):\n{}", run.stdout));
    assert!(
        !json["file_error"].is_null(),
        "the file error is in the JSON: {json}"
    );

    let run = lab.run_to_end(&["validate", &path(&dir.join("nope.csv"))]);
    run.expect_code(2, "validate on a missing file");
    assert!(
        run.stderr.contains("nope.csv"),
        "the error names the file:\n{}",
        run.stderr
    );
    let run = lab.run_to_end(&["validate", &path(&dir), "--json"]);
    run.expect_code(2, "validate on a folder (unreadable as a file)");
}

#[test]
fn headers_lists_every_possible_name() {
    let (_sandbox, lab) = lab();
    let run = lab.run_to_end(&["headers"]);
    run.expect_code(0, "headers");
    let mut count = 0;
    for a in opscom_schema::attributes() {
        for name in a.possible_names {
            count += 1;
            assert!(
                run.stdout
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .any(|w| w == *name),
                "`headers` does not list {name:?}:\n{}",
                run.stdout
            );
        }
    }
    assert!(count >= 20, "the schema lists its names ({count})");
    assert!(run.stdout.contains("import_error"), "{}", run.stdout);
    // "(inferred)" is explained once.
    assert_eq!(
        run.stdout.matches("(inferred):").count(),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn every_command_has_help() {
    let (_sandbox, lab) = lab();
    for command in [
        &["--help"][..],
        &["run", "--help"],
        &["once", "--help"],
        &["validate", "--help"],
        &["headers", "--help"],
        &["demo", "--help"],
        &["status", "--help"],
        &["history", "--help"],
    ] {
        let run = lab.run_to_end(command);
        run.expect_code(0, &format!("{command:?}"));
        assert!(run.stdout.contains("Usage"), "{command:?}:\n{}", run.stdout);
    }
    // An operator first reads what the program does for them.
    let help = lab.run_to_end(&["--help"]);
    assert!(
        help.stdout
            .starts_with("Imports your clients' user lists into OPSCOM"),
        "{}",
        help.stdout
    );
}
