//! Tests of configuration parsing: defaults, every refusal with its key, secrets kept secret.

use std::collections::HashMap;
use std::path::Path;

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
    assert_eq!(t.api_url, "http://127.0.0.1:9", "a trailing / is harmless");
    assert_eq!(t.api_token.expose_secret(), "tok-123-secret");
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
    assert_eq!(c.tenants[0].requests_per_second.map(|n| n.get()), Some(50));
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = parse(&config_text(dir.path(), "concurrancy = 4", "")).unwrap_err();
    assert!(err.to_string().contains("concurrancy"), "{err}");
    assert!(keys(&err)[0].starts_with("line "), "{err}");
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
    assert_eq!(c.tenants[0].api_token.expose_secret(), "abc-def");

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
