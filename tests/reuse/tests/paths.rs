//! Each reuse path names only the crates it needs, and none links the importer's wiring.

use std::path::Path;

/// The workspace crates a test file names (`opscom_xxx`), sorted, without duplicates.
fn crates_named(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("test file readable");
    let mut names: Vec<String> = text
        .match_indices("opscom_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn each_path_uses_only_its_crate() {
    assert_eq!(crates_named("validate_csv.rs"), ["opscom_csv"]);
    assert_eq!(
        crates_named("push_users.rs"),
        ["opscom_api", "opscom_sandbox"]
    );
    assert_eq!(
        crates_named("failure_report.rs"),
        ["opscom_mail", "opscom_testkit"]
    );
}

#[test]
fn nothing_here_links_the_importers_wiring() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("manifest readable");
    let dependencies = manifest
        .split("[dev-dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dev-dependencies] table");
    for wiring in ["opscom-pipeline", "opscom-scheduler", "opscom-import"] {
        assert!(
            !dependencies.contains(wiring),
            "the reuse tests must not depend on {wiring}"
        );
    }
}
