//! The contract suites' inspection reads (`EventInspection`) are test support, a right no
//! service holds: the adapters implement them only with their `testkit` feature, which only
//! dev-dependencies turn on. What `tracklayer` and the Lambda functions are built from is read
//! from cargo's own resolution of their (non-dev) dependencies.

use std::process::Command;

/// Runs cargo (the one running this test) in the workspace; its standard output.
fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn release_builds_of_the_cli_and_the_functions_leave_out_the_test_only_port_methods() {
    // The adapters gate the inspection reads behind a `testkit` feature that turns on core's.
    let metadata: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--offline",
        "--no-deps",
        "--format-version",
        "1",
    ]))
    .expect("cargo metadata is JSON");
    for adapter in ["tracklayer-local", "tracklayer-aws"] {
        let package = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == adapter)
            .expect("a workspace member");
        assert_eq!(
            package["features"]["testkit"],
            serde_json::json!(["tracklayer-core/testkit"]),
            "{adapter}"
        );
    }

    // No normal or build dependency of a release binary turns `testkit` on.
    let tree = cargo(&[
        "tree",
        "--offline",
        "--edges",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p} [{f}]",
        "-p",
        "tracklayer",
        "-p",
        "tracklayer-ingest",
        "-p",
        "tracklayer-deliver",
        "-p",
        "tracklayer-dsr",
        "-p",
        "tracklayer-admin",
    ]);
    let ours: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("tracklayer-"))
        .collect();
    assert!(
        ours.iter().any(|l| l.starts_with("tracklayer-local ")),
        "{tree}"
    );
    for line in ours {
        assert!(!line.contains("testkit"), "{line}");
    }
}
