//! Several `run` processes over one configuration and one `state_dir`, a reload by SIGHUP, the
//! kernel's file-watch limit, and a tenant whose folder breaks while the others go on.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use opscom_tests::{Lab, RecordOutcome, Sandbox, SandboxConfig, SmtpServer, roster, wait_for};
use rustix::process::Signal;

/// The pid of the process holding the `flock` on `path`, from `/proc/locks`.
fn lock_holder(path: &Path) -> Option<u32> {
    let ino = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 4242 fd:01:123456 0 EOF`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (pid, id) = (fields.get(4)?, fields.get(5)?);
        let lock_ino: u64 = id.rsplit(':').next()?.parse().ok()?;
        (fields.get(1) == Some(&"FLOCK") && lock_ino == ino)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

#[test]
fn three_run_processes_import_each_file_once_and_survivors_take_over_a_killed_one() {
    const ROWS: usize = 2000;
    const CONCURRENCY: usize = 4;
    let sandbox = Sandbox::with(SandboxConfig::default().latency(Duration::from_millis(10)));
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    // A long interval: a takeover within the test's time can only come from the survivors
    // looking again at locked tenants, not from the next interval.
    lab.interval = "1h".into();
    lab.settle = "1s".into();
    for name in ["big", "east", "west"] {
        lab.tenant(name, &sandbox.url()).concurrency = CONCURRENCY;
    }
    let big = roster("BIG", ROWS);
    lab.upload("big", "roster.csv", &big);
    let mut expected_users = ROWS;
    for (tenant, prefix) in [("east", "E"), ("west", "W")] {
        for (i, age) in [300u64, 200, 100].into_iter().enumerate() {
            lab.upload_aged(
                tenant,
                &format!("part{i}.csv"),
                &roster(&format!("{prefix}{i}-"), 30),
                Duration::from_secs(age),
            );
            expected_users += 30;
        }
    }
    let config = lab.write_config();
    let args = ["run", "--config", &*config.to_string_lossy()];
    let mut instances: Vec<_> = (0..3).map(|_| lab.spawn(&args)).collect();

    // Kill the instance that holds the big tenant, mid-file.
    wait_for(
        Duration::from_secs(60),
        "the big file to be half-way",
        || (sandbox.pushes().len() >= 400).then_some(()),
    );
    let lock = lab.state_dir.join("tenants/big/lock");
    let holder = wait_for(
        Duration::from_secs(10),
        "the big tenant's lock holder",
        || lock_holder(&lock),
    );
    let victim = instances
        .iter()
        .position(|r| r.pid() == holder)
        .unwrap_or_else(|| panic!("the lock holder {holder} is one of the instances"));
    let killed = instances.remove(victim);
    killed.signal(Signal::KILL);
    let killed = killed.wait(Duration::from_secs(10));
    assert_eq!(killed.code, None, "killed mid-file:\n{}", killed.stderr);
    let pushed_at_kill = sandbox.pushes().len();
    assert!(
        lab.bak("big").is_empty(),
        "the kill came after the file was done ({pushed_at_kill} pushes)"
    );

    // A survivor resumes the claimed file long before the next interval.
    wait_for(
        Duration::from_secs(90),
        "a survivor to finish the killed instance's file",
        || lab.bak("big").contains_key("roster.csv").then_some(()),
    );
    for tenant in ["east", "west"] {
        wait_for(Duration::from_secs(30), "every part archived", || {
            (lab.bak(tenant).len() == 3).then_some(())
        });
    }

    assert_eq!(lab.bak("big").get("roster.csv"), Some(&big));
    let counts = sandbox.push_counts();
    assert_eq!(counts.len(), expected_users, "every user pushed");
    let more: Vec<_> = counts.iter().filter(|(_, n)| **n > 2).collect();
    assert!(more.is_empty(), "pushed more than twice: {more:?}");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n == 2).collect();
    assert!(
        twice.len() <= CONCURRENCY,
        "at most `concurrency` rows pushed twice after the kill: {twice:?}"
    );
    // Each file imported once: one record per file (a resumed file has one record too), every
    // line of records.jsonl one JSON object.
    let records = lab.records();
    let mut per_file: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &records {
        assert_eq!(r.outcome, RecordOutcome::Imported, "{records:#?}");
        *per_file
            .entry((r.tenant.clone(), r.file.clone()))
            .or_default() += 1;
    }
    assert_eq!(per_file.len(), 7, "{per_file:?}");
    assert!(per_file.values().all(|&n| n == 1), "{per_file:?}");
    for tenant in ["big", "east", "west"] {
        assert!(lab.drop_entries(tenant).is_empty());
    }
    eprintln!(
        "killed after {pushed_at_kill} pushes; {} rows pushed twice",
        twice.len()
    );

    for r in &instances {
        r.signal(Signal::TERM);
    }
    for r in instances {
        r.wait(Duration::from_secs(20))
            .expect_code(0, "a surviving instance after SIGTERM");
    }
}

#[test]
fn sighup_adds_removes_and_changes_tenants_and_refuses_a_broken_configuration() {
    let first = Sandbox::start();
    let second = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.interval = "1h".into();
    lab.settle = "1s".into();
    lab.tenant("stays", &first.url());
    lab.tenant("leaves", &first.url());
    let config = lab.write_config();
    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);
    wait_for(Duration::from_secs(20), "the service to start", || {
        service
            .stderr_so_far()
            .contains("service started")
            .then_some(())
    });
    let reloads = |n: usize| {
        wait_for(Duration::from_secs(20), "the reload to be logged", || {
            (service
                .stderr_so_far()
                .matches("configuration reloaded")
                .count()
                + service
                    .stderr_so_far()
                    .matches("configuration is refused")
                    .count()
                >= n)
                .then_some(())
        })
    };

    // Add one tenant, remove one, and point the remaining one at another API.
    lab.tenant("joins", &first.url());
    lab.tenants.retain(|t| t.name != "leaves");
    lab.tenants
        .iter_mut()
        .find(|t| t.name == "stays")
        .expect("stays")
        .api_url = second.url();
    lab.write_config();
    service.signal(Signal::HUP);
    reloads(1);
    let log = service.stderr_so_far();
    assert!(log.contains("joins") && log.contains("leaves"), "{log}");

    std::fs::write(lab.drop_dir("joins").join("new.csv"), roster("J", 3)).expect("upload");
    std::fs::write(
        lab.root().join("sftp/leaves/upload/old.csv"),
        roster("L", 3),
    )
    .expect("upload");
    std::fs::write(lab.drop_dir("stays").join("moved.csv"), roster("S", 3)).expect("upload");
    wait_for(Duration::from_secs(30), "the added tenant's upload", || {
        lab.bak("joins").contains_key("new.csv").then_some(())
    });
    wait_for(
        Duration::from_secs(30),
        "the changed tenant's upload",
        || lab.bak("stays").contains_key("moved.csv").then_some(()),
    );
    assert_eq!(
        second.users().len(),
        3,
        "the changed tenant uses its new API"
    );
    assert!(
        first.users().iter().all(|u| !u.unique_id.starts_with('S')),
        "the changed tenant's users went to the new API only"
    );
    assert!(
        lab.root().join("sftp/leaves/upload/old.csv").exists(),
        "a removed tenant's folder is no longer taken"
    );
    assert!(first.users().iter().all(|u| !u.unique_id.starts_with('L')));

    // A broken configuration is refused whole; the running one stays in force.
    let mut broken = lab.config_text();
    broken.push_str("\n[[tenant]]\nname = \"broken\"\nconcurency = 3\n");
    lab.write_config_text(&broken);
    service.signal(Signal::HUP);
    reloads(2);
    let log = service.stderr_so_far();
    assert!(log.contains("configuration is refused"), "{log}");
    assert!(log.contains("concurency"), "every problem is logged: {log}");
    std::fs::write(lab.drop_dir("joins").join("later.csv"), roster("K", 2)).expect("upload");
    wait_for(
        Duration::from_secs(30),
        "an upload after a refused reload",
        || lab.bak("joins").contains_key("later.csv").then_some(()),
    );

    service.signal(Signal::TERM);
    service
        .wait(Duration::from_secs(20))
        .expect_code(0, "run after SIGTERM");
}

#[test]
fn the_kernels_watch_limit_is_said_once_and_the_other_folders_are_scanned_by_interval() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.interval = "2s".into();
    lab.settle = "1s".into();
    for name in ["one", "two", "three", "four"] {
        lab.tenant(name, &sandbox.url());
    }
    let config = lab.write_config();
    // A user namespace of its own, whose inotify limit allows one watch: the other folders
    // cannot be watched.
    let service = lab.spawn_wrapped(
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "sh",
            "-c",
            "echo 1 > /proc/sys/user/max_inotify_watches && exec \"$@\"",
            "limited",
        ],
        &["run", "--config", &config.to_string_lossy()],
    );
    wait_for(Duration::from_secs(20), "the service to start", || {
        service
            .stderr_so_far()
            .contains("service started")
            .then_some(())
    });
    for name in ["one", "two", "three", "four"] {
        std::fs::write(lab.drop_dir(name).join("r.csv"), roster(name, 2)).expect("upload");
    }
    for name in ["one", "two", "three", "four"] {
        wait_for(Duration::from_secs(30), "every tenant's upload", || {
            lab.bak(name).contains_key("r.csv").then_some(())
        });
    }
    let log = service.stderr_so_far();
    assert_eq!(
        log.matches("limit on file watches is reached").count(),
        1,
        "said once: {log}"
    );
    assert!(log.contains("fs.inotify.max_user_watches"), "{log}");
    service.signal(Signal::TERM);
    service
        .wait(Duration::from_secs(20))
        .expect_code(0, "run after SIGTERM");
}

#[test]
fn a_tenant_whose_folder_breaks_is_paused_and_logged_once_while_the_others_go_on() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.interval = "1s".into();
    lab.settle = "1s".into();
    lab.tenant("fine", &sandbox.url());
    lab.tenant("broken", &sandbox.url());
    // The broken tenant's work folder is on another filesystem than its drop folder (/dev/shm
    // is a tmpfs): no claim can be made there.
    let elsewhere = tempfile::Builder::new()
        .prefix("opscom-it-elsewhere-")
        .tempdir_in("/dev/shm")
        .expect("a folder on /dev/shm");
    let text = lab.config_text().replace(
        "name = \"broken\"\n",
        &format!(
            "name = \"broken\"\nwork_dir = \"{}\"\n",
            elsewhere.path().join("work").display()
        ),
    );
    let config = lab.write_config_text(&text);
    lab.upload("fine", "a.csv", &roster("F", 3));
    lab.upload("broken", "b.csv", &roster("B", 3));

    let once = lab.run_to_end(&["once", "--config", &config.to_string_lossy()]);
    once.expect_code(3, "once with one tenant paused");
    assert!(lab.bak("fine").contains_key("a.csv"), "{}", once.stderr);
    assert_eq!(lab.drop_entries("broken"), ["b.csv"], "left where it was");
    assert!(once.stderr.contains("tenant paused"), "{}", once.stderr);

    lab.upload("fine", "c.csv", &roster("G", 3));
    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);
    wait_for(Duration::from_secs(30), "the fine tenant's upload", || {
        lab.bak("fine").contains_key("c.csv").then_some(())
    });
    // Several interval passes later, the pause is still logged once.
    std::thread::sleep(Duration::from_secs(4));
    let log = service.stderr_so_far();
    let paused = log
        .lines()
        .filter(|l| l.contains("tenant paused") && l.contains("broken"))
        .count();
    assert_eq!(paused, 1, "logged once, not every pass:\n{log}");
    service.signal(Signal::TERM);
    service
        .wait(Duration::from_secs(20))
        .expect_code(0, "run after SIGTERM");
}

#[test]
fn an_unreadable_drop_folder_pauses_its_tenant_and_the_others_go_on() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("fine", &sandbox.url());
    lab.tenant("locked", &sandbox.url());
    assert!(
        lab.run_unprivileged(),
        "this test runs the importer as `nobody`, so the suite must run as root (as CI does)"
    );
    lab.upload("fine", "a.csv", &roster("F", 3));
    lab.upload("locked", "b.csv", &roster("L", 3));
    let config = lab.write_config();
    // `command` hands the lab to `nobody`; then the folder is closed to everyone but root.
    let mut once = lab.command(&["once", "--config", &config.to_string_lossy()]);
    std::fs::set_permissions(
        lab.drop_dir("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .expect("close the folder");
    let out = once.output().expect("run once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a paused tenant waits:\n{stderr}"
    );
    assert!(lab.bak("fine").contains_key("a.csv"), "{stderr}");
    let paused: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("tenant paused"))
        .collect();
    assert_eq!(paused.len(), 1, "{stderr}");
    assert!(
        paused[0].contains("locked") && paused[0].contains("Permission denied"),
        "{stderr}"
    );
    std::fs::set_permissions(
        lab.drop_dir("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o770),
    )
    .expect("open the folder again");
    assert!(
        lab.drop_dir("locked").join("b.csv").exists(),
        "nothing lost"
    );
}
