//! `cargo test` of a guest crate (tests/guests/suite): every test in its own VM, selected and
//! reported as libtest does.

use std::path::{Path, PathBuf};
use std::process::Output;

use testkit::{pinned_toolchain, project_root};

fn cargo_test(args: &[&str]) -> Output {
    cargo(&["test", "--package", "suite"], args)
}

/// cargo in tests/guests against the shared sysroot, the runner under test (and cargo-nextest,
/// where `cargo xtask test` installed it) first on PATH.
fn cargo(command: &[&str], args: &[&str]) -> Output {
    let runner_dir = Path::new(env!("CARGO_BIN_EXE_hyperlight-run"))
        .parent()
        .unwrap();
    let nextest_dir = testkit::cargo_nextest().map(|path| path.parent().unwrap().to_path_buf());
    let path: Vec<PathBuf> = std::iter::once(runner_dir.to_path_buf())
        .chain(nextest_dir)
        .chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ))
        .collect();
    testkit::guest_cargo(
        &project_root().join("tests/guests"),
        testkit::sysroot(),
        &pinned_toolchain(),
    )
    .args(command)
    .args(args)
    .env("PATH", std::env::join_paths(path).unwrap())
    .output()
    .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn each_test_runs_in_its_own_vm_and_fails_alone() {
    testkit::require_kvm!();
    let output = cargo_test(&["--bin", "suite"]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(101),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("\nrunning 3 tests\n"), "{text}");
    for line in [
        "test tests::adds ... ok\n",
        "test tests::panics ... FAILED\n",
        "test tests::faults ... FAILED\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // The panicking test's own output and message, then the crash of the faulting one with
    // where it happened; the passing test's output stays captured.
    let panics = text
        .split("---- tests::panics stdout ----\n")
        .nth(1)
        .expect(&text);
    assert!(panics.starts_with(
        "output of a failing test is shown\npanicked at suite/src/main.rs:32:9:\nassertion `left == right` failed: two and two\n"
    ), "{panics}");
    let faults = text
        .split("---- tests::faults stdout ----\n")
        .nth(1)
        .expect(&text);
    assert!(
        faults
            .starts_with("hyperlight-run: error: guest crashed: page fault (#PF) at address 0x10"),
        "{faults}"
    );
    assert!(
        faults.contains("in suite::tests::faults at ") && faults.contains("suite/src/main.rs:38:"),
        "{faults}"
    );
    assert!(!text.contains("output of a passing test"), "{text}");
    assert!(
        text.contains("\nfailures:\n    tests::faults\n    tests::panics\n"),
        "{text}"
    );
    assert!(text.contains("\ntest result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in "), "{text}");
}

#[test]
fn a_filter_selects_tests_like_libtest() {
    testkit::require_kvm!();
    let output = cargo_test(&["--bin", "suite", "adds"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("\nrunning 1 test\ntest tests::adds ... ok\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 2 filtered out;"
        ),
        "{text}"
    );

    let skipped = cargo_test(&[
        "--bin", "suite", "--", "--skip", "faults", "--skip", "panics",
    ]);
    assert_eq!(skipped.status.code(), Some(0), "{}", stdout(&skipped));
    assert!(stdout(&skipped).contains("1 passed; 0 failed; 0 ignored; 0 measured; 2 filtered out;"));
}

#[test]
fn list_prints_the_tests() {
    testkit::require_kvm!();
    let output = cargo_test(&["--bin", "suite", "--", "--list"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        "tests::adds: test\ntests::faults: test\ntests::panics: test\n\n3 tests, 0 benchmarks\n"
    );
}

/// How cargo-nextest lists a test binary's tests: `#[test_case]`s are never ignored, so the
/// ignored ones are none, as libtest says of a binary without ignored tests.
#[test]
fn the_terse_lists_are_libtests() {
    testkit::require_kvm!();
    let list = |extra: &[&str]| {
        let args = [
            &["--bin", "suite", "--", "--list", "--format", "terse"],
            extra,
        ]
        .concat();
        let output = cargo_test(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        stdout(&output)
    };
    assert_eq!(
        list(&[]),
        "tests::adds: test\ntests::faults: test\ntests::panics: test\n"
    );
    assert_eq!(list(&["--ignored"]), "");
}

#[test]
fn integration_tests_run_in_vms_too() {
    testkit::require_kvm!();
    let output = cargo_test(&["--test", "integration"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("\nrunning 1 test\ntest sees_alloc ... ok\n"),
        "{text}"
    );
    assert!(
        text.contains("test result: ok. 1 passed; 0 failed;"),
        "{text}"
    );
}

/// cargo-nextest lists a no_std guest's test binaries (`--list --format terse`, with and
/// without `--ignored`) and runs each test through the runner, in its own VM.
#[test]
fn cargo_nextest_runs_each_test_in_its_own_vm() {
    testkit::require_kvm!();
    if testkit::cargo_nextest().is_none() {
        let why = "cargo-nextest is not installed (`cargo xtask test` installs it)";
        testkit::skip("cargo_nextest_runs_each_test_in_its_own_vm", why);
        return;
    }
    let output = cargo(
        &["nextest", "run", "--package", "suite", "--no-fail-fast"],
        &[],
    );
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(100), "{report}");
    for (verdict, test) in [
        ("PASS", "suite::bin/suite tests::adds"),
        ("PASS", "suite::integration sees_alloc"),
        ("FAIL", "suite::bin/suite tests::panics"),
        ("FAIL", "suite::bin/suite tests::faults"),
    ] {
        let found = report.lines().any(|line| {
            line.trim_start().starts_with(&format!("{verdict} [")) && line.ends_with(test)
        });
        assert!(found, "{verdict} {test} in:\n{report}");
    }
    assert!(
        report.contains("4 tests run: 2 passed, 2 failed, 0 skipped"),
        "{report}"
    );
}
