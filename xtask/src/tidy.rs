//! Tidy checks that keep the architecture true (ARCHITECTURE.md's invariants), run by `cargo test`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::root;

/// Crates that make a crate async, networked or a mailer.
const ASYNC_NET_MAIL: &[&str] = &[
    "tokio",
    "async-trait",
    "futures",
    "futures-util",
    "mio",
    "reqwest",
    "hyper",
    "h2",
    "axum",
    "lettre",
    "notify",
];

/// `cargo metadata` of the workspace.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Package name of every package id, and each package's normal (non-dev, non-build) dependencies.
struct Graph {
    names: BTreeMap<String, String>,
    normal_deps: BTreeMap<String, Vec<String>>,
    members: Vec<String>,
}

fn graph() -> Graph {
    let meta = metadata();
    let names = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut normal_deps = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect();
        normal_deps.insert(node["id"].as_str().unwrap().to_owned(), deps);
    }
    let members = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    Graph {
        names,
        normal_deps,
        members,
    }
}

impl Graph {
    fn id_of(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|id| self.names[*id] == name)
            .unwrap_or_else(|| panic!("workspace member {name} exists"))
    }

    /// Names of every package `name` depends on at run time, transitively.
    fn transitive(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![self.id_of(name).to_owned()];
        while let Some(id) = stack.pop() {
            for dep in &self.normal_deps[&id] {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        seen.iter().map(|id| self.names[id].clone()).collect()
    }

    /// Workspace members that depend directly (not as a dev-dependency) on `dep`.
    fn direct_dependents(&self, dep: &str) -> BTreeSet<String> {
        self.members
            .iter()
            .filter(|id| self.normal_deps[*id].iter().any(|d| self.names[d] == dep))
            .map(|id| self.names[id].clone())
            .collect()
    }
}

#[test]
fn import_core_is_synchronous_and_offline() {
    let g = graph();
    for krate in ["opscom-schema", "opscom-csv"] {
        let bad: Vec<_> = g
            .transitive(krate)
            .into_iter()
            .filter(|d| ASYNC_NET_MAIL.contains(&d.as_str()))
            .collect();
        assert!(
            bad.is_empty(),
            "{krate} must stay pure and synchronous (ARCHITECTURE.md), but depends on {bad:?}"
        );
    }
}

#[test]
fn only_the_api_crate_knows_http_and_only_the_mail_crate_knows_smtp() {
    let g = graph();
    let http = g.direct_dependents("reqwest");
    assert!(
        http.iter().all(|c| c == "opscom-api"),
        "only opscom-api may depend on reqwest, found {http:?}"
    );
    let mail = g.direct_dependents("lettre");
    assert!(
        mail.iter().all(|c| c == "opscom-mail"),
        "only opscom-mail may depend on lettre, found {mail:?}"
    );
    let scheduler = g.transitive("opscom-scheduler");
    for dep in ["reqwest", "lettre", "hyper"] {
        assert!(
            !scheduler.contains(dep),
            "opscom-scheduler knows no HTTP or SMTP, but depends on {dep}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let mut files = Vec::new();
    for dir in ["crates", "bins", "xtask", "tests", "fuzz"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 10, "found the sources");
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = fs::read_to_string(f).unwrap_or_default();
            !text.starts_with("//!")
        })
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not start with a `//!` line saying what they are: {missing:?}"
    );
}

#[test]
fn binaries_wire_and_libraries_work() {
    // A binary that grows past this has logic that belongs in a library crate.
    const MAX_LINES: usize = 900;
    for bin in ["opscom-import", "sandbox-server"] {
        let mut files = Vec::new();
        rust_files(&root().join("bins").join(bin), &mut files);
        let lines: usize = files
            .iter()
            .map(|f| fs::read_to_string(f).unwrap_or_default().lines().count())
            .sum();
        assert!(
            lines <= MAX_LINES,
            "bins/{bin} has {lines} lines (> {MAX_LINES}): move logic into a library crate"
        );
    }
}

/// The normal dependencies of `package` built with `--no-default-features`, one per line
/// (`cargo tree` resolves without building).
fn lean_tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            package,
            "--no-default-features",
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--locked"])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_scheduler_clock_and_runner_come_without_the_linux_folder_code() {
    // What a user of `Clock` and `run` gets with `default-features = false`.
    let tree = lean_tree("opscom-scheduler");
    for dep in ["rustix ", "notify ", "jiff "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(dep)),
            "opscom-scheduler without `folders` still pulls in {dep}:\n{tree}"
        );
    }
    assert!(tree.lines().any(|l| l.starts_with("tokio ")), "{tree}");
}

#[test]
fn the_production_binary_can_leave_out_the_demo_and_its_sandbox() {
    let tree = lean_tree("opscom-import");
    for dep in ["opscom-sandbox ", "tempfile "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(dep)),
            "opscom-import without `demo` still pulls in {dep}"
        );
    }
}
