//! End to end through real OpenSSH SFTP (issue 6): clients upload with the real `sftp` client to
//! chrooted `internal-sftp` accounts of the test's own `sshd`; `opscom-import run`, as an
//! unprivileged service user, imports into the sandbox API and mails failures through a real SMTP
//! server. Set up with the operator's scripts in `deploy/`, as `docs/operating.md` describes.
//!
//! Runs as root (CI does; `cargo xtask e2e` runs it alone). When sshd is missing it fails with
//! the fix; it is never skipped. It never runs in parallel with itself (a lock file), removes an
//! earlier crashed run's leftovers at start and leaves no process, user or folder behind.

#[path = "e2e_sftp/system.rs"]
mod system;
#[path = "e2e_sftp/world.rs"]
mod world;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use world::{Tenant, World};

/// Good and bad rows: A1002 has a broken e-mail, A1003 a US-style date.
const ROSTER: &str = "\
unique_id,login_source,first_name,last_name,email,date_of_birth
A1001,OPSCOM,Ada,Lovelace,ada@a.example.edu,1995-12-10
A1002,OPSCOM,Alan,Turing,not-an-email,1994-06-23
A1003,OPSCOM,Grace,Hopper,grace@a.example.edu,1/15/1990
A1004,OPSCOM,Edsger,Dijkstra,edsger@a.example.edu,1990-05-11
";
const ROSTER_BAD: [&str; 2] = ["A1002", "A1003"];
const ROSTER_GOOD: [&str; 2] = ["A1001", "A1004"];

/// Tenant B's file, uploaded WinSCP-style.
const WINSCP: &str = "\
unique_id,login_source,first_name,last_name,email
B2001,OPSCOM,Barbara,Liskov,barbara@b.example.edu
B2002,OPSCOM,Donald,Knuth,donald@b.example.edu
B2003,OPSCOM,Frances,Allen,frances@b.example.edu
";

/// Tenant B's file uploaded from a private (0600) local file.
const PRIVATE: &str = "\
unique_id,login_source,first_name,last_name
B3001,OPSCOM,Ken,Thompson
B3002,OPSCOM,Dennis,Ritchie
";

/// Rows of the large file uploaded slowly.
const BIG_ROWS: usize = 5000;
/// Chunks of the slow upload, each followed by a pause well under `settle`.
const BIG_CHUNKS: usize = 5;
const PAUSE_SECS: u32 = 1;

fn big_csv() -> String {
    let mut text = String::from("unique_id,login_source,first_name,last_name,email\n");
    for i in 0..BIG_ROWS {
        text.push_str(&format!(
            "A-BIG-{i:05},OPSCOM,First{i},Last{i},big{i}@a.example.edu\n"
        ));
    }
    text
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// Writes a client's local file with mode 0666, so that the server's umask decides the mode.
fn local_file(world: &World, name: &str, text: &str) {
    let path = world.client_dir.join(name);
    fs::write(&path, text).expect("write a local file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod a local file");
}

fn records(world: &World) -> Vec<Value> {
    fs::read_to_string(world.state_dir.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("record `{l}`: {e}")))
        .collect()
}

fn record_for<'a>(records: &'a [Value], tenant: &str, file: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["tenant"] == tenant && r["file"] == file)
        .collect()
}

/// Waits (polling the records file: the importer is another process) until every `(tenant,
/// file)` has a record that is not `deferred`.
fn wait_for_records(world: &mut World, wanted: &[(&str, &str)]) -> Vec<Value> {
    wait_for(world, "every file processed", |all| {
        wanted.iter().all(|(t, f)| {
            record_for(all, t, f)
                .iter()
                .any(|r| r["outcome"] != "deferred")
        })
    })
}

/// Waits (polling the records file) until `done` holds for the records.
fn wait_for(world: &mut World, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = records(world);
        if done(&all) {
            return all;
        }
        assert!(
            world.importer_running(),
            "opscom-import run exited while files were waiting"
        );
        assert!(
            Instant::now() < deadline,
            "no {what} within 120 s; records so far:\n{}",
            all.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `args` as `user` (with its groups), as the OS would for that account.
fn as_user(user: &str, args: &[&str]) -> std::process::Output {
    system::output_with_input(
        Command::new("setpriv")
            .arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .args(["--init-groups", "--"])
            .args(args),
        b"",
    )
}

fn assert_refused(world: &World, tenant: &Tenant, batch: &str, what: &str) {
    assert_refused_with(world, tenant, batch, what, "Permission denied");
}

fn assert_refused_with(world: &World, tenant: &Tenant, batch: &str, what: &str, why: &str) {
    let out = world.sftp(tenant, batch);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(why),
        "{what}: the server must refuse `{batch}` with `{why}`; sftp exited {} with:\n{stderr}",
        out.status
    );
}

#[test]
fn sftp_uploads_are_imported_with_production_permissions() {
    let mut world = World::start();
    let (a, b) = (world.tenants[0].clone(), world.tenants[1].clone());

    // Links: a client cannot plant a `.bak` (or anything) that points elsewhere.
    local_file(&world, "note.txt", "not a roster\n");
    // Hidden: an upload that is not a CSV file would be reported and set aside once settled.
    world.sftp_ok(&a, "put note.txt .note");
    assert_refused(
        &world,
        &a,
        "symlink /upload .bak",
        "a .bak symlink to the drop folder",
    );
    assert_refused(&world, &a, "symlink / .bak", "a .bak symlink to the chroot");
    // `-P hardlink`: the server does not even offer the extension.
    assert_refused_with(
        &world,
        &a,
        "ln .note .bak",
        "a .bak hard link",
        "Server does not support hardlink@openssh.com",
    );
    assert_refused(&world, &a, "ln -s .note .bak", "a .bak symlink (ln -s)");
    world.sftp_ok(&a, "rm .note");
    assert!(
        fs::symlink_metadata(a.drop_dir.join(".bak")).is_err(),
        "no .bak may exist after the refused links"
    );

    // A file with good and bad rows.
    local_file(&world, "roster.csv", ROSTER);
    world.sftp_ok(&a, "put roster.csv");

    // WinSCP-style (tenant B): `.filepart`, left longer than `settle`, then renamed.
    local_file(&world, "winscp.csv", WINSCP);
    // A large file in slow chunks (tenant A): each pause is well under `settle`.
    let big = big_csv();
    let mut batch = String::new();
    for k in 1..=BIG_CHUNKS {
        let mut cut = big.len() * k / BIG_CHUNKS;
        if k < BIG_CHUNKS && big.as_bytes()[cut - 1] == b'\n' {
            cut += 1; // cut inside a row: a half-written upload ends mid-record
        }
        local_file(&world, &format!("big.{k}"), &big[..cut]);
        if k == 1 {
            batch.push_str("put big.1 big.csv\n");
        } else {
            batch.push_str(&format!("!sleep {PAUSE_SECS}\nput -a big.{k} big.csv\n"));
        }
    }
    std::thread::scope(|s| {
        let winscp = s.spawn(|| {
            world.sftp_ok(
                &b,
                "put winscp.csv winscp.csv.filepart\n!sleep 4\nrename winscp.csv.filepart winscp.csv\n",
            )
        });
        world.sftp_ok(&a, &batch);
        winscp.join().expect("the WinSCP-style upload");
    });

    let all = wait_for_records(
        &mut world,
        &[
            (&a.user, "roster.csv"),
            (&b.user, "winscp.csv"),
            (&a.user, "big.csv"),
        ],
    );
    let show = all
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.iter().all(|r| r["outcome"] != "deferred"),
        "nothing may be deferred (a half-written upload claimed too early is deferred):\n{show}"
    );
    let roster = record_for(&all, &a.user, "roster.csv");
    assert_eq!(roster.len(), 1, "{show}");
    assert_eq!(roster[0]["outcome"], "imported_with_failures", "{show}");
    assert_eq!(
        (
            roster[0]["rows_ok"].as_u64(),
            roster[0]["rows_failed"].as_u64()
        ),
        (Some(2), Some(2)),
        "{show}"
    );
    let big_rec = record_for(&all, &a.user, "big.csv");
    assert_eq!(
        big_rec.len(),
        1,
        "the big file is imported once, whole:\n{show}"
    );
    assert_eq!(big_rec[0]["outcome"], "imported", "{show}");
    assert_eq!(
        big_rec[0]["rows_total"].as_u64(),
        Some(BIG_ROWS as u64),
        "{show}"
    );
    let winscp = record_for(&all, &b.user, "winscp.csv");
    assert_eq!(winscp.len(), 1, "{show}");
    assert_eq!(winscp[0]["outcome"], "imported", "{show}");
    assert!(
        all.iter().all(|r| !r["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with(".filepart")),
        "a .filepart is never taken:\n{show}"
    );

    // The users in the sandbox: every good row, no bad one.
    let users: Value =
        serde_json::from_str(&world.sandbox_get("/_sandbox/users")).expect("users JSON");
    let ids: BTreeSet<String> = users
        .as_array()
        .expect("a list of users")
        .iter()
        .map(|u| u["unique_id"].as_str().expect("unique_id").to_owned())
        .collect();
    let mut expected: BTreeSet<String> = ROSTER_GOOD.iter().map(|s| s.to_string()).collect();
    expected.extend((0..BIG_ROWS).map(|i| format!("A-BIG-{i:05}")));
    expected.extend(["B2001", "B2002", "B2003"].map(String::from));
    assert_eq!(ids.len(), expected.len(), "users in the sandbox");
    assert_eq!(ids, expected, "users in the sandbox");

    // Through sftp, as the client: the files in `.bak`, listable and downloadable, not writable.
    let listing = world.sftp_ok(&a, "ls -1 /upload/.bak");
    for name in ["roster.csv", "big.csv"] {
        assert!(
            listing.lines().any(|l| l.trim().ends_with(name)),
            "{name} in A's .bak:\n{listing}"
        );
    }
    world.sftp_ok(&a, "get /upload/.bak/roster.csv roster.back.csv");
    assert_eq!(
        fs::read_to_string(world.client_dir.join("roster.back.csv")).expect("downloaded"),
        ROSTER,
        "the client downloads its file from .bak unchanged"
    );
    assert_refused(
        &world,
        &a,
        "rm /upload/.bak/roster.csv",
        "a client deleting from .bak",
    );
    assert_refused(
        &world,
        &a,
        "put note.txt /upload/.bak/note.csv",
        "a client writing into .bak",
    );
    // The results, through the client's own login: a summary and the failed rows, which the
    // client may download and delete.
    let listing = world.sftp_ok(&a, "ls -1 /upload/results");
    for name in ["roster-summary.txt", "roster-failed.csv", "big-summary.txt"] {
        assert!(
            listing.lines().any(|l| l.trim().ends_with(name)),
            "{name} in A's results/:\n{listing}"
        );
    }
    world.sftp_ok(
        &a,
        "get /upload/results/roster-summary.txt summary.txt\nget /upload/results/roster-failed.csv failed.csv",
    );
    let summary = fs::read_to_string(world.client_dir.join("summary.txt")).expect("downloaded");
    assert!(
        summary.contains("roster.csv")
            && summary.contains("line 3")
            && summary.contains("not a valid e-mail address"),
        "the summary names the file and the failed rows' reasons:\n{summary}"
    );
    let failed_csv = fs::read(world.client_dir.join("failed.csv")).expect("downloaded");
    world.sftp_ok(&a, "rm /upload/results/big-summary.txt");
    let results = a.drop_dir.join("results");
    assert_eq!(
        (
            mode(&results) & 0o7777,
            fs::metadata(&results).expect("results").gid()
        ),
        (0o2770, a.gid),
        "results/ is the client's group's to read and clean"
    );
    let listing_b = world.sftp_ok(&b, "ls -1 .bak");
    assert!(
        listing_b.lines().any(|l| l.trim().ends_with("winscp.csv")),
        "{listing_b}"
    );
    assert!(!listing_b.contains("filepart"), "{listing_b}");

    // Tenant A cannot list or read tenant B's folder: not through SFTP (the chroot), and not as
    // the OS user either (B's folder belongs to B's group).
    let root_listing = world.sftp_ok(&a, "ls -1a /");
    let entries: BTreeSet<&str> = root_listing
        .lines()
        .filter(|l| !l.starts_with("sftp>"))
        .map(|l| l.trim().trim_start_matches('/'))
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        entries,
        BTreeSet::from([".", "..", "upload"]),
        "A's chroot:\n{root_listing}"
    );
    let b_bak = b.drop_dir.join(".bak");
    for batch in [
        format!("ls /../{}/upload", b.user),
        format!("ls {}", b.drop_dir.display()),
        format!("get {}/winscp.csv stolen.csv", b_bak.display()),
    ] {
        let out = world.sftp(&a, &batch);
        assert!(
            !out.status.success(),
            "A must not reach B's folder with `{batch}`"
        );
    }
    assert!(!world.client_dir.join("stolen.csv").exists());
    for args in [
        vec!["ls", b.drop_dir.to_str().unwrap()],
        vec!["cat", b_bak.join("winscp.csv").to_str().unwrap()],
    ] {
        let out = as_user(&a.user, &args);
        assert!(
            !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "user {} must not run `{}`: {}",
            a.user,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Permissions as in production.
    for t in [&a, &b] {
        let drop = fs::metadata(&t.drop_dir).expect("drop folder");
        assert_eq!(
            (mode(&t.drop_dir), drop.uid(), drop.gid()),
            (0o2770, t.uid, t.gid),
            "{}",
            t.drop_dir.display()
        );
        let bak = t.drop_dir.join(".bak");
        let meta = fs::symlink_metadata(&bak).expect(".bak");
        assert!(meta.is_dir(), ".bak is a real folder");
        assert_eq!(
            mode(&bak) & 0o777,
            0o750,
            "{}: the client's group may list, no one else",
            bak.display()
        );
        assert_eq!(
            (meta.uid(), meta.gid()),
            (world.service_uid, t.gid),
            "{} owner",
            bak.display()
        );
        for entry in fs::read_dir(&bak).expect("list .bak") {
            let path = entry.expect("a .bak entry").path();
            let m = fs::symlink_metadata(&path).expect("stat");
            assert_eq!(
                (mode(&path), m.uid(), m.gid()),
                (0o640, t.uid, t.gid),
                "{}: uploaded with umask 0027 (0666 locally), readable by the tenant's group only",
                path.display()
            );
        }
    }
    assert_eq!(mode(&world.state_dir) & 0o777, 0o700, "state_dir");
    for top in [&world.state_dir, &world.work_root] {
        for path in walk(top) {
            let m = fs::symlink_metadata(&path).expect("stat");
            assert_eq!(
                m.mode() & 0o007,
                0,
                "{} must not be world-accessible",
                path.display()
            );
            assert_eq!(
                m.uid(),
                world.service_uid,
                "{} belongs to the service user",
                path.display()
            );
        }
    }

    // A client whose local file is private (0600): OpenSSH's `put` asks for the local mode, the
    // umask cannot add group read, so the importer cannot read the upload. It is left in place
    // (not claimed: the client still sees it) and reported, until the client's `chmod` of the doc.
    local_file(&world, "private.csv", PRIVATE);
    fs::set_permissions(
        world.client_dir.join("private.csv"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod 600");
    world.sftp_ok(&b, "put private.csv");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fs::read_to_string(&world.importer_log)
        .unwrap_or_default()
        .contains("may not read it")
    {
        assert!(
            Instant::now() < deadline,
            "the unreadable upload was never reported; log:\n{}",
            system::tail(&world.importer_log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let listing = world.sftp_ok(&b, "ls -1 /upload");
    assert!(
        listing
            .lines()
            .any(|l| l.trim_end().ends_with("private.csv")),
        "the unreadable upload stays visible to the client:\n{listing}"
    );
    run_doc_fix_for_unreadable_uploads(&world, &b);
    wait_for_records(&mut world, &[(&b.user, "private.csv")]);
    let users = world.sandbox_get("/_sandbox/users");
    assert!(
        users.contains("B3001") && users.contains("B3002"),
        "private.csv imported after the fix"
    );

    // A preview, uploaded by the client into preview/: checked, nothing sent, moved to
    // preview/.bak, its summary in results/, all seen through the client's login.
    let users_before = world.sandbox_get("/_sandbox/users");
    local_file(&world, "check.csv", ROSTER);
    world.sftp_ok(&b, "put check.csv preview/check.csv");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !b.drop_dir.join("preview/.bak/check.csv").is_file() {
        assert!(
            Instant::now() < deadline,
            "the preview was never taken; log:\n{}",
            system::tail(&world.importer_log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        world.sandbox_get("/_sandbox/users"),
        users_before,
        "a preview sends nothing"
    );
    let listing = world.sftp_ok(&b, "ls -1 /upload/preview/.bak\nls -1 /upload/results");
    assert!(
        listing.contains("check.csv") && listing.contains("check-summary.txt"),
        "{listing}"
    );

    // The operator's commands of docs/operating.md on the records and the log.
    run_doc_commands(&world);

    // A clean stop on SIGTERM (as systemd stops it).
    let status = world.stop_importer();
    assert!(
        status.is_some_and(|s| s.success()),
        "opscom-import run must exit 0 on SIGTERM, got {status:?}"
    );

    // B's one e-mail: the preview's, never mistaken for an import's.
    let to_b: Vec<_> = world
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.to_addresses() == [b.failed_to.as_str()])
        .collect();
    assert_eq!(to_b.len(), 1, "B: the preview's e-mail only");
    assert!(
        to_b[0]
            .subject()
            .is_some_and(|s| s.starts_with("Preview of check.csv")),
        "{:?}",
        to_b[0].subject()
    );

    // Exactly one e-mail to A: the failure report of roster.csv.
    let messages: Vec<_> = world
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.to_addresses() != [b.failed_to.as_str()])
        .collect();
    assert_eq!(
        messages.len(),
        1,
        "one failure e-mail, for the only file with bad rows; got subjects {:?}",
        messages
            .iter()
            .map(|m| m.subject().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    );
    let mail = &messages[0];
    assert_eq!(mail.from_address(), Some(a.reply_to.as_str()));
    assert_eq!(mail.reply_to_address(), Some(a.reply_to.as_str()));
    assert_eq!(mail.to_addresses(), [a.failed_to.as_str()]);
    assert_eq!(
        mail.envelope_from(),
        Some(a.reply_to.clone()),
        "the envelope sender (what SPF checks)"
    );
    // As shown in docs/operating.md.
    assert_eq!(
        mail.subject(),
        Some("roster.csv: 2 of 4 users not imported")
    );
    let body = mail.text_body();
    assert!(
        body.contains("2 of the 4 users in roster.csv were not imported"),
        "the body says what happened:\n{body}"
    );
    let attachments = mail.attachments();
    let csv = attachments
        .iter()
        .find(|att| att.content_type == "text/csv")
        .unwrap_or_else(|| panic!("a CSV attachment; got {attachments:?}"));
    let csv = String::from_utf8_lossy(&csv.data);
    assert!(
        csv.lines()
            .next()
            .is_some_and(|h| h.trim_end().ends_with(",import_error")),
        "{csv}"
    );
    for id in ROSTER_BAD {
        assert!(csv.contains(id), "{id} is in the failure CSV:\n{csv}");
    }
    assert_eq!(
        String::from_utf8_lossy(&failed_csv),
        csv,
        "results/roster-failed.csv is the attachment"
    );
    for id in ROSTER_GOOD {
        assert!(!csv.contains(id), "{id} is not in the failure CSV:\n{csv}");
    }
    assert!(
        !csv.contains(&a.token) && !body.contains(&a.token),
        "no token in the e-mail"
    );
}

/// Every file and folder under `top` (not following links), `top` included.
fn walk(top: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![top.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let path = out[i].clone();
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            for entry in fs::read_dir(&path).expect("list a folder") {
                out.push(entry.expect("an entry").path());
            }
        }
        i += 1;
    }
    out
}

/// The `jq` commands of docs/operating.md, on this run's records and log (paths replaced).
fn run_doc_commands(world: &World) {
    let doc =
        fs::read_to_string(world.workspace.join("docs/operating.md")).expect("docs/operating.md");
    let commands: Vec<&str> = doc
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("jq ") || l.starts_with("journalctl -u opscom-import"))
        .collect();
    assert!(
        commands.len() >= 3,
        "docs/operating.md shows how to read records and logs with jq"
    );
    let state = world.state_dir.display().to_string();
    let log = world.importer_log.display().to_string();
    for command in commands {
        let shell = command
            .replace("/var/lib/opscom-import", &state)
            .replace("journalctl -u opscom-import -o cat", &format!("cat {log}"));
        let out = system::output_with_input(Command::new("sh").args(["-c", &shell]), b"");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Every command works; each prints something, except the filters on warnings and errors.
        let may_be_empty = command.contains(".level");
        assert!(
            out.status.success() && (may_be_empty || !stdout.trim().is_empty()),
            "the doc's `{command}` (run as `{shell}`) must work and print something; it exited {} with\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !stdout.contains(&world.tenants[0].token),
            "no token in `{command}`"
        );
    }
}

/// The doc's fix for uploads the importer cannot read (`find … -exec chmod g+r`), run on
/// `tenant`'s work folder.
fn run_doc_fix_for_unreadable_uploads(world: &World, tenant: &Tenant) {
    let doc =
        fs::read_to_string(world.workspace.join("docs/operating.md")).expect("docs/operating.md");
    let command = "chmod 640 roster.csv";
    assert!(
        doc.lines().any(|l| l == command),
        "docs/operating.md shows the client's fix `{command}`"
    );
    world.sftp_ok(tenant, &command.replace("roster.csv", "private.csv"));
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    system::require_tool("systemd-analyze", "systemd");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let exe = std::env::current_exe().expect("the test's path");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("opscom-import");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo xtask e2e`",
        binary.display()
    );
    system::run(
        Command::new("sh")
            .arg(workspace.join("deploy/verify-unit.sh"))
            .arg(binary),
    );
}

#[test]
fn operating_doc_shows_the_deployed_sshd_block() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let doc = fs::read_to_string(workspace.join("docs/operating.md")).expect("docs/operating.md");
    let snippet = fs::read_to_string(workspace.join("deploy/sshd_config.d/opscom-sftp.conf"))
        .expect("the sshd drop-in");
    for line in snippet
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        assert!(
            doc.lines().any(|d| d == line),
            "docs/operating.md lacks the drop-in's line `{line}`"
        );
    }
    let unit =
        fs::read_to_string(workspace.join("deploy/opscom-import.service")).expect("the unit");
    for key in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/srv/sftp",
        "UMask=0027",
    ] {
        assert!(unit.lines().any(|l| l == key), "the unit has {key}");
        assert!(doc.contains(key), "docs/operating.md explains {key}");
    }
}
