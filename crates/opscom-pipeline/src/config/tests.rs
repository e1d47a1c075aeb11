//! Tests of configuration parsing: defaults, every refusal with its key, secrets kept secret.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::*;

struct Env(HashMap<&'static str, &'static str>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn env() -> Env {
    Env(HashMap::from([("ACME_TOKEN", "tok-123-secret")]))
}

fn config_text(drop_dir: &Path, tenant_extra: &str, top_extra: &str) -> String {
    format!(
        r#"
state_dir = "state"
{top_extra}
[mail]
smtp_url = "smtp://127.0.0.1:2525"

[[tenant]]
name = "acme"
drop_dir = "{}"
api_url = "http://127.0.0.1:9/"
api_token_env = "ACME_TOKEN"
reply_to_admin_email = "parking@acme.edu"
failed_import_email = "it@acme.edu"
{tenant_extra}
"#,
        drop_dir.display()
    )
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/opscom/import.toml"), &env())
}

fn keys(err: &ConfigError) -> Vec<&str> {
    err.problems.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn a_minimal_file_gets_the_documented_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let c = parse(&config_text(dir.path(), "", "")).unwrap();
    assert_eq!(c.schedule.interval, Duration::from_secs(300));
    assert_eq!(c.schedule.settle, Duration::from_secs(10));
    assert_eq!(c.state_dir, Path::new("/etc/opscom/state"));
    let t = &c.tenants[0];
    assert_eq!(t.concurrency, 8);
    assert_eq!(t.max_file_size, 100 << 20);
    assert_eq!(
        t.api.as_ref().unwrap().url,
        "http://127.0.0.1:9",
        "a trailing / is harmless"
    );
    assert_eq!(
        t.api.as_ref().unwrap().token.expose_secret(),
        "tok-123-secret"
    );
    assert_eq!(t.work_dir, Path::new("/etc/opscom/state/tenants/acme"));
}

#[test]
fn secrets_never_show_in_debug() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "", "").replace(
        "smtp://127.0.0.1:2525",
        "smtp://user:hunter2@127.0.0.1:2525",
    );
    let c = parse(&text).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("tok-123-secret"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn schedule_and_sizes_are_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        dir.path(),
        "concurrency = 3\nmax_file_size = \"2MiB\"\nrequests_per_second = 50",
        "[schedule]\ninterval = \"30s\"\nsettle = \"1s\"",
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.schedule.interval, Duration::from_secs(30));
    assert_eq!(c.schedule.settle, Duration::from_secs(1));
    assert_eq!(c.tenants[0].concurrency, 3);
    assert_eq!(c.tenants[0].max_file_size, 2 << 20);
    assert_eq!(
        c.tenants[0]
            .api
            .as_ref()
            .unwrap()
            .requests_per_second
            .map(|n| n.get()),
        Some(50)
    );
}

#[test]
fn unknown_keys_are_refused_with_their_key_a_hint_and_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = parse(&config_text(dir.path(), "concurrancy = 4", "")).unwrap_err();
    assert_eq!(keys(&err), ["tenant[acme].concurrancy"], "{err}");
    let reason = &err.problems[0].reason;
    assert!(reason.contains("did you mean `concurrency`?"), "{err}");
    assert!(reason.ends_with("(line 14)"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let text = r#"
state_dir = "/var/lib/x"
[schedule]
interval = "soon"
[mail]
smtp_url = "smtp://mail.example.com:25"
[[tenant]]
name = "Acme Corp"
drop_dir = "/nonexistent/drop"
api_url = "ftp://x"
api_token_env = "UNSET_VAR"
reply_to_admin_email = "not an address"
failed_import_email = "it@acme.edu"
concurrency = 0
max_file_size = "lots"
"#;
    let err = parse(text).unwrap_err();
    let k = keys(&err);
    for expected in [
        "schedule.interval",
        "mail.smtp_url",
        "tenant[Acme Corp].name",
        "tenant[Acme Corp].drop_dir",
        "tenant[Acme Corp].api_url",
        "tenant[Acme Corp].api_token_env",
        "tenant[Acme Corp].reply_to_admin_email",
        "tenant[Acme Corp].concurrency",
        "tenant[Acme Corp].max_file_size",
    ] {
        assert!(k.contains(&expected), "missing {expected} in {err}");
    }
    assert!(err.to_string().contains("UNSET_VAR is not set"), "{err}");
}

#[test]
fn token_file_loses_its_trailing_newline_and_missing_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "abc-def\n").unwrap();
    let text = config_text(dir.path(), "", "").replace(
        "api_token_env = \"ACME_TOKEN\"",
        &format!("api_token_file = \"{}\"", token.display()),
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.tenants[0].api.as_ref().unwrap().token.expose_secret(),
        "abc-def"
    );

    std::fs::remove_file(&token).unwrap();
    let err = parse(&text).unwrap_err();
    assert_eq!(keys(&err), ["tenant[acme].api_token_file"]);
}

#[test]
fn exactly_one_mail_transport() {
    let dir = tempfile::tempdir().unwrap();
    let both =
        config_text(dir.path(), "", "").replace("[mail]\n", "[mail]\noutbox_dir = \"/tmp/out\"\n");
    assert_eq!(keys(&parse(&both).unwrap_err()), ["mail"]);
    let outbox = config_text(dir.path(), "", "").replace(
        "smtp_url = \"smtp://127.0.0.1:2525\"",
        "outbox_dir = \"out\"",
    );
    match parse(&outbox).unwrap().mail {
        MailSettings::Outbox { dir } => assert_eq!(dir, Path::new("/etc/opscom/out")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn smtp_urls_need_tls_off_loopback() {
    assert!(check_smtp_url("smtp://127.0.0.1:2525").is_ok());
    assert!(check_smtp_url("smtp://user:pw@localhost:25").is_ok());
    assert!(check_smtp_url("smtps://mail.example.com:465").is_ok());
    assert!(check_smtp_url("smtp://mail.example.com:587?tls=required").is_ok());
    assert!(check_smtp_url("smtp://mail.example.com:25").is_err());
    assert!(check_smtp_url("http://x").is_err());
}

#[test]
fn sizes() {
    assert_eq!(parse_size("100MiB"), Ok(100 << 20));
    assert_eq!(parse_size("10 MB"), Ok(10_000_000));
    assert_eq!(parse_size("512"), Ok(512));
    assert!(parse_size("0").is_err());
    assert!(parse_size("5 parsecs").is_err());
}

#[test]
fn two_tenants_cannot_share_a_name_or_a_drop_folder() {
    let dir = tempfile::tempdir().unwrap();
    let one = config_text(dir.path(), "", "");
    let tenant = one.split("[[tenant]]").nth(1).unwrap();
    let two = format!("{one}\n[[tenant]]{tenant}");
    let k = parse(&two).unwrap_err();
    assert!(keys(&k).contains(&"tenant[acme].name"), "{k}");
    assert!(keys(&k).contains(&"tenant[acme].drop_dir"), "{k}");
}

#[test]
fn tenants_never_share_or_nest_folders_however_they_are_spelled() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::create_dir_all(a.join("inner")).unwrap();
    let one = config_text(&a, "work_dir = \"/srv/work/shared\"", "");
    let tenant = one.split("[[tenant]]").nth(1).unwrap();
    // The same drop folder through `..`, and the same explicit work folder.
    let dotted = a.join("inner").join("..");
    let second = tenant
        .replace("name = \"acme\"", "name = \"globex\"")
        .replace(&a.display().to_string(), &dotted.display().to_string());
    let err = parse(&format!("{one}\n[[tenant]]{second}")).unwrap_err();
    assert!(keys(&err).contains(&"tenant[globex].drop_dir"), "{err}");
    assert!(keys(&err).contains(&"tenant[globex].work_dir"), "{err}");

    // A work folder or the outbox inside a client's drop folder is within the client's reach.
    let inside = config_text(&a, &format!("work_dir = \"{}/inner/w\"", a.display()), "").replace(
        "smtp_url = \"smtp://127.0.0.1:2525\"",
        &format!("outbox_dir = \"{}/out\"", a.display()),
    );
    let err = parse(&inside).unwrap_err();
    assert!(keys(&err).contains(&"tenant[acme].work_dir"), "{err}");
    assert!(keys(&err).contains(&"mail.outbox_dir"), "{err}");
}

/// A tenant for the larger configurations below: `extra` lines are appended to it.
fn tenant_text(name: &str, drop_dir: &Path, extra: &str) -> String {
    format!(
        r#"
[[tenant]]
name = "{name}"
drop_dir = "{}"
api_url = "https://api.example.com"
api_token_env = "ACME_TOKEN"
reply_to_admin_email = "parking@{name}.edu"
failed_import_email = "it@{name}.edu"
{extra}
"#,
        drop_dir.display()
    )
}

/// A folder `name` inside `dir`, created.
fn folder(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir(&path).unwrap();
    path
}

#[test]
fn every_problem_of_every_table_is_reported_in_one_round_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        r#"
state_dir = "{}/state"
colour = "blue"
[schedule]
interval = "1m"
setle = "5s"
[mail]
smtp_url = "smtp://127.0.0.1:2525"
smtp_pasword_env = "SMTP_PASSWORD"
"#,
        dir.path().display()
    );
    // An unknown key close to a known one.
    text += &tenant_text("acme", &folder(dir.path(), "acme"), "concurency = 4");
    // Values of the wrong type.
    text += &tenant_text(
        "globex",
        &folder(dir.path(), "globex"),
        "concurrency = \"8\"\nmax_file_size = 5",
    );
    // No name (so named by its index) and no failed_import_email.
    text += &tenant_text("nameless", &folder(dir.path(), "nameless"), "")
        .replace("name = \"nameless\"\n", "")
        .replace("failed_import_email = \"it@nameless.edu\"\n", "");
    // A bad address.
    text += &tenant_text("initech", &folder(dir.path(), "initech"), "")
        .replace("it@initech.edu", "it at initech");
    // A bad duration.
    text += &tenant_text(
        "umbrella",
        &folder(dir.path(), "umbrella"),
        "api_retry_budget = \"soon\"",
    );

    let err = parse(&text).unwrap_err();
    assert_eq!(
        keys(&err),
        [
            "colour",
            "schedule.setle",
            "mail.smtp_pasword_env",
            "tenant[acme].concurency",
            "tenant[globex].concurrency",
            "tenant[globex].max_file_size",
            "tenant[2].name",
            "tenant[2].failed_import_email",
            "tenant[initech].failed_import_email",
            "tenant[umbrella].api_retry_budget",
        ],
        "{err}"
    );
    let reasons: Vec<&str> = err.problems.iter().map(|p| p.reason.as_str()).collect();
    let expect = [
        "unknown key in the top level (its keys are state_dir, schedule, mail, records, tenant, metrics, operator)",
        "unknown key in [schedule]; did you mean `settle`?",
        "unknown key in [mail]; did you mean `smtp_password_env`?",
        "unknown key in [[tenant]]; did you mean `concurrency`?",
        "must be an integer, not a string: write 8 without quotes",
        "must be a string (in quotes), not an integer",
        "is missing",
        "is missing",
        "`it at initech` is not a valid e-mail address",
        "`soon` is not a duration like \"20s\"",
    ];
    for (reason, expected) in reasons.iter().zip(expect) {
        assert!(
            reason.starts_with(expected),
            "{reason:?} should start with {expected:?}"
        );
    }
    assert!(reasons[0].ends_with("(line 3)"), "{err}");
    assert!(reasons[2].ends_with("(line 9)"), "{err}");
}

#[test]
fn ten_thousand_tenants_with_two_problems_each_give_twenty_thousand_problems() {
    const TENANTS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "state_dir = \"{}/state\"\n[mail]\nsmtp_url = \"smtp://127.0.0.1:2525\"\n",
        dir.path().display()
    );
    for i in 0..TENANTS {
        let name = format!("t{i}");
        text += &tenant_text(&name, &folder(dir.path(), &name), "colour = \"blue\"")
            .replace(&format!("it@{name}.edu"), "nobody");
    }
    let err = parse(&text).unwrap_err();
    assert_eq!(err.problems.len(), 2 * TENANTS, "{}", err.problems[0].key);
    for (i, pair) in err.problems.chunks(2).enumerate() {
        assert_eq!(pair[0].key, format!("tenant[t{i}].failed_import_email"));
        assert_eq!(pair[1].key, format!("tenant[t{i}].colour"));
    }
}

#[test]
fn a_correct_file_with_every_key_gives_the_same_config_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let (acme, globex) = (folder(dir.path(), "acme"), folder(dir.path(), "globex"));
    let token = dir.path().join("globex.token");
    std::fs::write(&token, "globex-secret\n").unwrap();
    let text = format!(
        r#"
state_dir = "state"

[schedule]
interval = "2m"
settle = "3s"

[mail]
smtp_url = "smtps://user@mail.example.com:465"
smtp_password_env = "ACME_TOKEN"

[records]
rotate_size = "1MiB"
retention = "30d"

[[tenant]]
name = "acme"
drop_dir = "{acme}"
work_dir = "{work}"
api_url = "https://api.acme.edu/"
api_token_env = "ACME_TOKEN"
reply_to_admin_email = "parking@acme.edu"
failed_import_email = "it@acme.edu"
concurrency = 16
max_file_size = "10 MB"
requests_per_second = 25
api_retry_budget = "1m"
bak_retention = "90d"

[[tenant]]
name = "globex"
drop_dir = "{globex}"
api_url = "http://127.0.0.1:9"
api_token_file = "{token}"
reply_to_admin_email = "parking@globex.edu"
failed_import_email = "it@globex.edu"
"#,
        acme = acme.display(),
        globex = globex.display(),
        token = token.display(),
        work = dir.path().join("work").display(),
    );
    let c = parse(&text).unwrap();
    let expected = Config::new(
        "/etc/opscom/state",
        MailSettings::Smtp {
            url: SecretString::from("smtps://user@mail.example.com:465"),
            password: Some(SecretString::from("tok-123-secret")),
        },
        vec![
            Tenant::new(
                "acme",
                acme,
                dir.path().join("work"),
                "parking@acme.edu",
                "it@acme.edu",
            )
            .with_api(
                ApiSettings::new("https://api.acme.edu", SecretString::from("tok-123-secret"))
                    .with_token_source("the environment variable ACME_TOKEN (api_token_env)")
                    .with_requests_per_second(NonZeroU32::new(25).unwrap())
                    .with_retry_budget(Duration::from_secs(60)),
            )
            .with_concurrency(16)
            .with_max_file_size(10_000_000)
            .with_bak_retention(Duration::from_secs(90 * 24 * 3600)),
            Tenant::new(
                "globex",
                globex,
                "/etc/opscom/state/tenants/globex",
                "parking@globex.edu",
                "it@globex.edu",
            )
            .with_api(
                ApiSettings::new("http://127.0.0.1:9", SecretString::from("globex-secret"))
                    .with_token_source(format!("the file {} (api_token_file)", token.display())),
            ),
        ],
    )
    .with_schedule(Schedule {
        interval: Duration::from_secs(120),
        settle: Duration::from_secs(3),
    })
    .with_records(RecordsSettings {
        rotate_size: 1 << 20,
        retention: Duration::from_secs(30 * 24 * 3600),
    });
    // Secrets print redacted, so they are compared apart.
    assert_eq!(format!("{c:?}"), format!("{expected:?}"));
    let secrets = |c: &Config| {
        let mut s: Vec<String> = c
            .tenants
            .iter()
            .map(|t| t.api.as_ref().unwrap().token.expose_secret().to_owned())
            .collect();
        if let MailSettings::Smtp { url, password } = &c.mail {
            s.push(url.expose_secret().to_owned());
            s.extend(password.as_ref().map(|p| p.expose_secret().to_owned()));
        }
        s
    };
    assert_eq!(secrets(&c), secrets(&expected));
}

#[test]
fn a_file_that_is_not_toml_is_reported_alone_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    // Unknown keys and a bad address too, but the syntax error hides them.
    let text = config_text(
        dir.path(),
        "colour = \"blue\"\nconcurrency = = 4",
        "shape = 1",
    )
    .replace("it@acme.edu", "nobody");
    let err = parse(&text).unwrap_err();
    assert_eq!(keys(&err), ["line 15"], "{err}");
}

#[test]
fn misshapen_tables_are_problems_of_their_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "", "schedule = 5\ntenant = [1]")
        .replace(
            "[mail]\nsmtp_url = \"smtp://127.0.0.1:2525\"\n",
            "mail = \"smtp\"\n",
        )
        .replace("[[tenant]]", "[[other]]");
    let err = parse(&text).unwrap_err();
    assert_eq!(
        keys(&err),
        ["schedule", "tenant[0]", "mail", "other"],
        "{err}"
    );

    // A tenant whose name is not a string is named by its index; nothing else of it is lost.
    let text = config_text(dir.path(), "concurrency = 0", "").replace("\"acme\"", "7");
    let err = parse(&text).unwrap_err();
    assert_eq!(
        keys(&err),
        ["tenant[0].name", "tenant[0].concurrency"],
        "{err}"
    );

    // No [mail], no state_dir, no tenant: each is its own problem.
    let err = parse("[schedule]\ninterval = \"1m\"\n").unwrap_err();
    assert_eq!(keys(&err), ["state_dir", "mail", "tenant"], "{err}");
}

#[test]
fn a_value_of_the_wrong_type_is_one_problem_not_two() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "work_dir = false", "[schedule]\ninterval = 5")
        .replace("\"smtp://127.0.0.1:2525\"", "25")
        .replace("\"ACME_TOKEN\"", "[\"ACME_TOKEN\"]")
        .replace(&format!("\"{}\"", dir.path().display()), "1.5");
    let err = parse(&text).unwrap_err();
    assert_eq!(
        keys(&err),
        [
            "schedule.interval",
            "mail.smtp_url",
            "tenant[acme].drop_dir",
            "tenant[acme].api_token_env",
            "tenant[acme].work_dir",
        ],
        "{err}"
    );
    assert!(
        err.problems[0]
            .reason
            .starts_with("must be a string (in quotes), not an integer"),
        "{err}"
    );
}

#[test]
fn retention_keys_have_defaults_and_refuse_unusable_values() {
    let dir = tempfile::tempdir().unwrap();
    let c = parse(&config_text(dir.path(), "", "")).unwrap();
    assert_eq!(c.tenants[0].bak_retention, None, "archived files are kept");
    assert_eq!(c.records, RecordsSettings::default());
    assert_eq!(c.records.rotate_size, 10 << 20);
    assert_eq!(c.records.retention, Duration::from_secs(365 * 24 * 3600));

    let c = parse(&config_text(dir.path(), "bak_retention = \"90d\"", "")).unwrap();
    assert_eq!(
        c.tenants[0].bak_retention,
        Some(Duration::from_secs(90 * 86_400))
    );

    let text = config_text(
        dir.path(),
        "bak_retention = \"0s\"",
        "[records]\nrotate_size = \"big\"\nretention = \"forever\"\nkeep = 1\n",
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(
        keys(&err),
        [
            "records.rotate_size",
            "records.retention",
            "records.keep",
            "tenant[acme].bak_retention"
        ],
        "{err}"
    );
}

#[test]
fn the_operator_table_is_optional_and_checked_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let none = parse(&config_text(dir.path(), "", "")).unwrap();
    assert_eq!(none.operator, None);
    assert_eq!(none.tenants[0].expect_file_every, None);

    let good = config_text(
        dir.path(),
        "expect_file_every = \"1d\"",
        "[operator]\nemail = \"ops@opscom.example\"\nfrom = \"importer@opscom.example\"\n",
    );
    let c = parse(&good).unwrap();
    let operator = c.operator.expect("[operator]");
    assert_eq!(operator.email, "ops@opscom.example");
    assert_eq!(operator.from, "importer@opscom.example");
    assert_eq!(operator.alert_after, DEFAULT_ALERT_AFTER);
    assert_eq!(
        c.tenants[0].expect_file_every,
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        c.tenants[0].api.as_ref().unwrap().token_source,
        "the environment variable ACME_TOKEN (api_token_env)"
    );

    let bad = config_text(
        dir.path(),
        "expect_file_every = \"often\"",
        "[operator]\nemail = \"not an address\"\nalert_afterr = \"5m\"\n",
    );
    let err = parse(&bad).unwrap_err();
    assert_eq!(
        keys(&err),
        [
            "operator.from",
            "operator.email",
            "operator.alert_afterr",
            "tenant[acme].expect_file_every"
        ],
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("operator.from: is missing"), "{text}");
    assert!(text.contains("did you mean `alert_after`?"), "{text}");
    assert!(text.contains("is not a valid e-mail address"), "{text}");

    let zero = config_text(
        dir.path(),
        "",
        "[operator]\nemail = \"ops@opscom.example\"\nfrom = \"importer@opscom.example\"\nalert_after = \"0s\"\n",
    );
    assert_eq!(keys(&parse(&zero).unwrap_err()), ["operator.alert_after"]);
}

#[test]
fn the_client_facing_keys_have_defaults_and_refuse_unusable_values() {
    let dir = tempfile::tempdir().unwrap();
    let c = parse(&config_text(dir.path(), "", "")).unwrap();
    let t = &c.tenants[0];
    assert!(!t.notify_on_success);
    assert_eq!(t.from_mode, FromMode::Own);
    assert_eq!(t.mode, ImportMode::Full);
    assert_eq!(t.full_every, DEFAULT_FULL_EVERY);
    assert_eq!(t.hold_changed_percent, None);
    assert!(c.mail_from.is_none() && c.dkim.is_none());

    let key = dir.path().join("dkim.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let mail = format!(
        "from = \"imports@opscom.example\"\ndkim_key_file = \"{}\"\ndkim_selector = \"opscom1\"\ndkim_domain = \"opscom.example\"\n",
        key.display()
    );
    let text = config_text(
        dir.path(),
        "notify_on_success = true\nfrom_mode = \"on_behalf\"\ndisplay_name = \"Acme Parking\"\n\
         mode = \"delta\"\nfull_every = \"1d\"\nhold_changed_percent = 12.5",
        "",
    )
    .replace("[mail]\n", &format!("[mail]\n{mail}"));
    let c = parse(&text).unwrap();
    let t = &c.tenants[0];
    assert!(t.notify_on_success);
    assert_eq!(t.from_mode, FromMode::OnBehalf);
    assert_eq!(t.display_name.as_deref(), Some("Acme Parking"));
    assert_eq!(t.mode, ImportMode::Delta);
    assert_eq!(t.full_every, Duration::from_secs(24 * 3600));
    assert_eq!(t.hold_changed_percent, Some(12.5));
    assert_eq!(c.mail_from.as_deref(), Some("imports@opscom.example"));
    let dkim = c.dkim.expect("dkim");
    assert_eq!(
        (dkim.selector.as_str(), dkim.domain.as_str()),
        ("opscom1", "opscom.example")
    );

    let bad = config_text(
        dir.path(),
        "notify_on_success = \"yes\"\nfrom_mode = \"theirs\"\nmode = \"partial\"\n\
         full_every = \"0s\"\nhold_changed_percent = 150",
        "",
    );
    let e = parse(&bad).unwrap_err();
    assert_eq!(
        keys(&e),
        [
            "tenant[acme].notify_on_success",
            "tenant[acme].from_mode",
            "tenant[acme].mode",
            "tenant[acme].full_every",
            "tenant[acme].hold_changed_percent",
        ],
        "{e}"
    );
}

#[test]
fn on_behalf_needs_the_operators_sender_and_dkim_needs_its_three_keys() {
    let dir = tempfile::tempdir().unwrap();
    let e = parse(&config_text(dir.path(), "from_mode = \"on_behalf\"", "")).unwrap_err();
    assert_eq!(keys(&e), ["tenant[acme].from_mode"], "{e}");
    assert!(e.to_string().contains("[mail]"), "{e}");

    let text = config_text(dir.path(), "", "")
        .replace("[mail]\n", "[mail]\ndkim_selector = \"opscom1\"\n");
    let e = parse(&text).unwrap_err();
    assert_eq!(keys(&e), ["mail"], "{e}");
    assert!(
        e.to_string().contains("dkim_key_file") && e.to_string().contains("dkim_domain"),
        "the missing keys are named: {e}"
    );
}
