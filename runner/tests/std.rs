//! std guests for x86_64-hyperlight-hermit (tests/std-guests): what std gives a guest, real
//! crates.io crates that need std, and libtest's own `#[test]`s under `cargo test`, each test
//! in a fresh VM. Built against the shared std sysroot (`cargo xtask sysroot --target
//! x86_64-hyperlight-hermit`), on the pinned stable and on the test nightly.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{code, run, stderr, stdout};
use testkit::{assert_success, pinned_toolchain, project_root, test_nightly, TempDir, STD_TARGET};

fn guests() -> PathBuf {
    project_root().join("tests/std-guests")
}

/// cargo in tests/std-guests with `toolchain` and its std sysroot, the runner under test first
/// on PATH (and cargo-nextest, where `cargo xtask test` installed it).
fn cargo(toolchain: &str, sysroot: &Path) -> Command {
    let runner_dir = Path::new(common::RUNNER).parent().unwrap();
    let nextest_dir = testkit::cargo_nextest().map(|path| path.parent().unwrap().to_path_buf());
    let host_path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::iter::once(runner_dir.to_path_buf())
        .chain(nextest_dir)
        .chain(std::env::split_paths(&host_path));
    let mut cargo = testkit::std_guest_cargo(&guests(), sysroot, toolchain);
    cargo.env("PATH", std::env::join_paths(path).unwrap());
    cargo
}

/// Builds `bin` with the pinned toolchain (debug) and returns its path.
fn build(bin: &str) -> PathBuf {
    let output = cargo(&pinned_toolchain(), testkit::std_sysroot())
        .args(["build", "--bin", bin])
        .output()
        .unwrap();
    assert_success(&output, &format!("cargo build --bin {bin}"));
    guests()
        .join("target")
        .join(STD_TARGET)
        .join("debug")
        .join(bin)
}

/// What `features` prints before it ends as its first argument says.
fn features_output(args: &str, greeting: &str) -> String {
    format!(
        "args: {args}\n\
         GREETING: {greeting}\n\
         HOME: None\n\
         counts: {{\"one\": 1, \"three\": 1, \"two\": 2}}\n\
         joined: ONE-TWO-THREE-TWO (17 bytes)\n\
         hash seeds differ: true\n\
         slept at least 20ms: true\n\
         after 2026: true\n\
         thread: Err(\"unable to create thread!\")\n\
         fs::read: Err(\"Function not implemented (os error 38)\")\n"
    )
}

#[test]
fn a_std_guest_gets_args_env_collections_time_entropy_and_clear_errors() {
    testkit::require_kvm!();
    let features = build("features");
    let output = run([
        "-e".as_ref(),
        "GREETING=hello".as_ref(),
        features.as_os_str(),
        "a b".as_ref(),
        "c".as_ref(),
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        features_output(r#"["a b", "c"]"#, "hello") + "done\n"
    );
    assert_eq!(stderr(&output), "to stderr\n");
}

#[test]
fn process_exit_and_panics_end_the_guest_with_their_codes() {
    testkit::require_kvm!();
    let features = build("features");
    let output = run([features.as_os_str(), "exit3".as_ref()]);
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        features_output(r#"["exit3"]"#, "<environment variable not found>")
    );

    let output = run([features.as_os_str(), "panic".as_ref()]);
    assert_eq!(code(&output), 101, "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "to stderr\n\nthread 'main' (1) panicked at features/src/main.rs:53:26:\n\
         the guest panicked on purpose\n"
    );
}

#[test]
fn crates_io_crates_that_need_std_build_and_run() {
    testkit::require_kvm!();
    let crates = build("crates");
    let output = run([&crates]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "json: {\"answer\":42,\"guest\":\"hermit\"}\n\
         regex: 01/12/2026\n\
         anyhow: outer: inner\n"
    );
}

fn cargo_test(args: &[&str]) -> Output {
    cargo(&pinned_toolchain(), testkit::std_sysroot())
        .args(["test", "--package", "libtest-demo"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cargo_test_runs_libtest_with_each_test_in_its_own_vm() {
    testkit::require_kvm!();
    let output = cargo_test(&["--lib"]);
    let text = stdout(&output);
    assert_eq!(code(&output), 101, "{text}{}", stderr(&output));
    assert!(text.contains("\nrunning 5 tests\n"), "{text}");
    for line in [
        "test tests::ignored ... ignored\n",
        "test tests::adds ... ok\n",
        "test tests::fails ... FAILED\n",
        "test tests::panics_as_expected - should panic ... ok\n",
        "test tests::panics_with_the_wrong_message - should panic ... FAILED\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // A failing test's output and libtest's account of it; a passing test's stays captured.
    let fails = text
        .split("---- tests::fails stdout ----\n")
        .nth(1)
        .expect(&text);
    assert!(
        fails.starts_with(
            "output of a failing test is shown\n\nthread 'main' (1) panicked at libtest/src/lib.rs:20:9:\n\
             assertion `left == right` failed: two and two\n  left: 4\n right: 5\n"
        ),
        "{text}"
    );
    let wrong = text
        .split("---- tests::panics_with_the_wrong_message stdout ----\n")
        .nth(1)
        .expect(&text);
    assert!(
        wrong.starts_with(
            "panic did not contain expected string\n      panic message: \"overflow\"\n \
             expected substring: \"another message\"\n"
        ),
        "{text}"
    );
    assert!(!text.contains("captured unless the test fails"), "{text}");
    assert!(
        text.contains(
            "\nfailures:\n    tests::fails\n    tests::panics_with_the_wrong_message\n\n\
             test result: FAILED. 2 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out;"
        ),
        "{text}"
    );
}

#[test]
fn ignored_tests_run_on_request_and_filters_select_as_libtest_does() {
    testkit::require_kvm!();
    let output = cargo_test(&["--lib", "--", "--ignored"]);
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    assert!(
        text.contains("\nrunning 1 test\ntest tests::ignored ... ok\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 4 filtered out;"
        ),
        "{text}"
    );

    let output = cargo_test(&["--lib", "--", "--include-ignored", "adds", "ignored"]);
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    assert!(
        text.contains(
            "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out;"
        ),
        "{text}"
    );

    let output = cargo_test(&["--lib", "--", "--list", "--format", "terse", "--ignored"]);
    assert_eq!(stdout(&output), "tests::ignored: test\n");

    // The integration test in tests/, as `cargo test --test api` runs it.
    let output = cargo_test(&["--test", "api"]);
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    assert!(text.contains("test adds_from_outside ... ok\n"), "{text}");
}

/// The command rust-analyzer's "Run Test" lens issues for one test.
#[test]
fn the_editor_run_test_command_runs_one_test_and_shows_its_output() {
    testkit::require_kvm!();
    let output = cargo_test(&["--lib", "--", "tests::adds", "--exact", "--show-output"]);
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    assert!(
        text.contains("\nrunning 1 test\ntest tests::adds ... ok\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 4 filtered out;"
        ),
        "{text}"
    );
}

/// Whether `toolchain`'s std uses Hermit ABI constants its own hermit-abi lacks: then std
/// does not compile for any Hermit target (x86_64-unknown-hermit neither), as with
/// nightly-2026-10-29, whose std sets IPV6_UNICAST_HOPS, absent from hermit-abi 0.5.3.
fn std_misses_hermit_abi_constants(toolchain: &str) -> Option<String> {
    let output = Command::new("rustc")
        .args([&format!("+{toolchain}"), "--print", "sysroot"])
        .output()
        .unwrap();
    let library = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
        .join("lib/rustlib/src/rust/library");
    let socket = std::fs::read_to_string(library.join("std/src/sys/net/connection/socket/mod.rs"))
        .unwrap_or_default();
    let vendor = std::fs::read_dir(library.join("vendor")).ok()?;
    let abi = vendor.filter_map(Result::ok).find(|entry| {
        entry
            .file_name()
            .to_string_lossy()
            .starts_with("hermit-abi-")
    })?;
    let abi = std::fs::read_to_string(abi.path().join("src/lib.rs")).unwrap_or_default();
    ["IPV6_UNICAST_HOPS", "IPV6_MULTICAST_HOPS"]
        .into_iter()
        .find(|constant| {
            socket.contains(&format!("c::{constant}"))
                && !abi.contains(&format!("const {constant}:"))
        })
        .map(|constant| format!("{toolchain}'s std uses {constant}, which its hermit-abi lacks"))
}

#[test]
fn a_std_guest_builds_and_runs_on_the_test_nightly() {
    let nightly = test_nightly();
    if let Some(why) = std_misses_hermit_abi_constants(&nightly) {
        let test = "a_std_guest_builds_and_runs_on_the_test_nightly";
        testkit::skip(
            test,
            &format!("{why}: its std compiles for no Hermit target"),
        );
        return;
    }
    let sysroot = testkit::target_sysroot_for(STD_TARGET, &nightly);
    let output = cargo(&nightly, &sysroot)
        .args(["build", "--bin", "features", "--target-dir"])
        .arg(guests().join("target/nightly"))
        .output()
        .unwrap();
    assert_success(&output, "cargo +nightly build --bin features");
    if testkit::kvm_or_skip("a_std_guest_builds_and_runs_on_the_test_nightly: booting it") {
        let features = guests()
            .join("target/nightly")
            .join(STD_TARGET)
            .join("debug/features");
        let output = run([&features]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        assert_eq!(
            stdout(&output),
            features_output("[]", "<environment variable not found>") + "done\n"
        );
    }
}

/// `cargo nextest run` in tests/std-guests, or `None` (the test reported as skipped) without
/// cargo-nextest, which `cargo xtask test` installs.
fn cargo_nextest(test: &str, args: &[&str]) -> Option<Output> {
    if testkit::cargo_nextest().is_none() {
        testkit::skip(
            test,
            "cargo-nextest is not installed (`cargo xtask test` installs it)",
        );
        return None;
    }
    let output = cargo(&pinned_toolchain(), testkit::std_sysroot())
        .args([
            "nextest",
            "run",
            "--package",
            "libtest-demo",
            "--no-fail-fast",
        ])
        .args(args)
        .output()
        .unwrap();
    Some(output)
}

/// cargo-nextest runs the same libtest binaries through the runner: every test in its own VM,
/// with nextest's own selection, retries and JUnit report.
#[test]
fn cargo_nextest_runs_each_test_in_its_own_vm() {
    testkit::require_kvm!();
    let test = "cargo_nextest_runs_each_test_in_its_own_vm";
    let Some(output) = cargo_nextest(test, &[]) else {
        return;
    };
    let report = stderr(&output);
    assert_eq!(code(&output), 100, "{report}");
    for line in [
        "PASS [",
        "libtest-demo tests::adds",
        "libtest-demo tests::panics_as_expected",
        "libtest-demo::api adds_from_outside",
    ] {
        assert!(report.contains(line), "{line} in:\n{report}");
    }
    for failed in ["tests::fails", "tests::panics_with_the_wrong_message"] {
        let line = report
            .lines()
            .find(|line| line.contains("FAIL [") && line.ends_with(failed));
        assert!(line.is_some(), "{failed} failed in:\n{report}");
    }
    assert!(
        report.contains("5 tests run: 3 passed, 2 failed, 1 skipped"),
        "{report}"
    );

    // The ignored test too, each failing one tried twice, and a JUnit report.
    let config = TempDir::new("nextest-config");
    let junit = config.path().join("nextest.toml");
    std::fs::write(&junit, "[profile.default.junit]\npath = \"junit.xml\"\n").unwrap();
    let Some(output) = cargo_nextest(
        test,
        &[
            "--run-ignored",
            "all",
            "--retries",
            "1",
            "--config-file",
            junit.to_str().unwrap(),
        ],
    ) else {
        return;
    };
    let report = stderr(&output);
    assert_eq!(code(&output), 100, "{report}");
    assert!(report.contains("libtest-demo tests::ignored"), "{report}");
    assert!(report.contains("TRY 2 FAIL ["), "{report}");
    assert!(
        report.contains("6 tests run: 4 passed, 2 failed, 0 skipped"),
        "{report}"
    );
    let xml = std::fs::read_to_string(guests().join("target/nextest/default/junit.xml")).unwrap();
    for name in [
        "tests::adds",
        "tests::fails",
        "tests::ignored",
        "tests::panics_as_expected",
        "tests::panics_with_the_wrong_message",
        "adds_from_outside",
    ] {
        assert!(
            xml.contains(&format!("name=\"{name}\"")),
            "{name} in:\n{xml}"
        );
    }
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");

    // A filter expression.
    let Some(output) = cargo_nextest(test, &["-E", "test(adds)"]) else {
        return;
    };
    let report = stderr(&output);
    assert_eq!(code(&output), 0, "{report}");
    assert!(
        report.contains("2 tests run: 2 passed, 4 skipped"),
        "{report}"
    );
}
