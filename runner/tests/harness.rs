//! `cargo test` and `cargo nextest run` of guest crates: every test in its own VM, selected,
//! judged and reported as libtest does. tests/guests/suite has `#[test_case]`s;
//! tests/guests/tested has tests as Rust developers write them (`#[hyperlight_rt::test]` with
//! `#[ignore]`, `#[should_panic]` and time limits) in a binary, a library and tests/.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{pinned_toolchain, project_root};

fn cargo_test(args: &[&str]) -> Output {
    cargo(&["test", "--package", "suite"], args)
}

/// cargo in tests/guests against the shared sysroot, the runner under test (and cargo-nextest,
/// where `cargo xtask test` installed it) first on PATH.
fn cargo(command: &[&str], args: &[&str]) -> Output {
    cargo_command(command, args).output().unwrap()
}

fn cargo_command(command: &[&str], args: &[&str]) -> Command {
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
    let mut cargo = testkit::guest_cargo(
        &project_root().join("tests/guests"),
        testkit::sysroot(),
        &pinned_toolchain(),
    );
    cargo
        .args(command)
        .args(args)
        .env("PATH", std::env::join_paths(path).unwrap());
    cargo
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

// --- tests/guests/tested: `#[hyperlight_rt::test]` ---

/// The runner as a project's `.cargo/config.toml` would give it a default time limit for its
/// tests (`runner = "hyperlight-run --timeout 300ms"`); cargo and cargo-nextest read this
/// variable as that setting.
const RUNNER_WITH_TIMEOUT: (&str, &str) = (
    "CARGO_TARGET_X86_64_HYPERLIGHT_NONE_RUNNER",
    "hyperlight-run --timeout 300ms",
);

/// `cargo test --package tested ARGS`, the runner's default time limit set.
fn test_tested(args: &[&str]) -> Output {
    cargo_command(&["test", "--package", "tested"], args)
        .env(RUNNER_WITH_TIMEOUT.0, RUNNER_WITH_TIMEOUT.1)
        .output()
        .unwrap()
}

/// The report with its one varying part, the time it took, replaced by `<time>`; and the
/// crash report of `crashed` (a test whose block must start with `crash_start`), whose
/// addresses move with every change of the code, by `<crash report>`.
fn normalized(text: &str, crashed: Option<(&str, &str)>) -> String {
    let (head, tail) = text.split_once("finished in ").expect(text);
    let tail = tail.split_once('s').expect(text).1;
    let mut text = format!("{head}finished in <time>{tail}");
    if let Some((test, crash_start)) = crashed {
        let header = format!("---- {test} stdout ----\n");
        let start = text.find(&header).expect(&text) + header.len();
        let end = text[start..]
            .find("\n---- ")
            .map_or(text.len(), |end| start + end);
        assert!(text[start..].starts_with(crash_start), "{text}");
        text.replace_range(start..end, "<crash report>");
    }
    text
}

/// Every way a test can end, in the binary's unit tests, one thread so that the report's
/// order is fixed: each judged as libtest would, in its own VM, and reported in libtest's
/// words (`- should panic`, `ignored, REASON`, the notes), a passing test's output not shown.
#[test]
fn cargo_test_judges_each_test_by_its_attributes() {
    testkit::require_kvm!();
    let output = test_tested(&["--bin", "tested", "--", "--test-threads", "1"]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(101),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crash = "hyperlight-run: error: guest crashed: page fault (#PF) at address 0x10 \
                 (reading the null page), rip ";
    assert_eq!(
        normalized(&text, Some(("tests::crashes", crash))),
        "
running 13 tests
test tests::hangs_without_a_limit_of_its_own ... ignored, hangs until the runner's --timeout stops it
test tests::ignored ... ignored
test tests::ignored_with_a_reason ... ignored, needs a slow device
test tests::a_plain_test_case ... ok
test tests::crashes ... FAILED
test tests::does_not_panic - should panic ... FAILED
test tests::fails ... FAILED
test tests::hangs ... FAILED
test tests::panics - should panic ... ok
test tests::panics_with_another_message - should panic ... FAILED
test tests::panics_with_the_expected_message - should panic ... ok
test tests::passes ... ok
test tests::returns_an_error ... FAILED

failures:

---- tests::crashes stdout ----
<crash report>
---- tests::does_not_panic stdout ----
note: test did not panic as expected at tested/src/main.rs:75:8
---- tests::fails stdout ----
output of a failing test
panicked at tested/src/main.rs:38:9:
assertion `left == right` failed: two and two
  left: 4
 right: 5

---- tests::hangs stdout ----
output before hanging
hyperlight-run: error: timed out after 300ms
---- tests::panics_with_another_message stdout ----
output before the panic
panicked at tested/src/main.rs:70:9:
division by zero
note: panic did not contain expected string
      panic message: \"division by zero\"
 expected substring: \"out of range\"
---- tests::returns_an_error stdout ----
Error: \"no luck\"
note: the test exited with code 1

failures:
    tests::crashes
    tests::does_not_panic
    tests::fails
    tests::hangs
    tests::panics_with_another_message
    tests::returns_an_error

test result: FAILED. 4 passed; 6 failed; 3 ignored; 0 measured; 0 filtered out; finished in <time>

"
    );
    // The crash says where, with the guest's backtrace.
    assert!(
        text.contains("in tested::tests::crashes at ")
            && text.contains("tested/src/main.rs:80:30\nguest backtrace:\n"),
        "{text}"
    );
}

/// `cargo test -q` (cargo passes `--quiet` on): libtest's terse report, a character per test
/// and a line per failure, then the same failures and summary.
#[test]
fn cargo_test_quiet_gives_the_terse_report() {
    testkit::require_kvm!();
    let output = test_tested(&["-q", "--bin", "tested", "--", "--test-threads", "1"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(101), "{text}");
    let (results, rest) = text.split_once("\nfailures:\n").expect(&text);
    assert_eq!(
        results,
        "
running 13 tests
iii. 4/13
tests::crashes --- FAILED
tests::does_not_panic --- FAILED
tests::fails --- FAILED
tests::hangs --- FAILED
. 9/13
tests::panics_with_another_message --- FAILED
.. 12/13
tests::returns_an_error --- FAILED
"
    );
    assert!(
        normalized(rest, None).ends_with(
            "\ntest result: FAILED. 4 passed; 6 failed; 3 ignored; 0 measured; 0 filtered out; \
             finished in <time>\n\n"
        ),
        "{rest}"
    );
}

/// Ignored tests run on request, and the runner's `--timeout` limits a test that sets no
/// limit of its own (`hangs` keeps its own 300ms either way).
#[test]
fn ignored_tests_run_on_request_within_the_runners_time_limit() {
    testkit::require_kvm!();
    let output = test_tested(&["--bin", "tested", "--", "--ignored", "--test-threads", "1"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(101), "{text}");
    assert_eq!(
        normalized(&text, None),
        "
running 3 tests
test tests::hangs_without_a_limit_of_its_own ... FAILED
test tests::ignored ... ok
test tests::ignored_with_a_reason ... ok

failures:

---- tests::hangs_without_a_limit_of_its_own stdout ----
hyperlight-run: error: timed out after 300ms

failures:
    tests::hangs_without_a_limit_of_its_own

test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 10 filtered out; finished in <time>

"
    );

    let output = test_tested(&[
        "--bin",
        "tested",
        "--",
        "--include-ignored",
        "--exact",
        "tests::ignored",
        "tests::passes",
        "--test-threads=1",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        normalized(&stdout(&output), None),
        "
running 2 tests
test tests::ignored ... ok
test tests::passes ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 11 filtered out; finished in <time>

"
    );

    let list = |extra: &[&str]| {
        let args = [&["--bin", "tested", "--", "--list"], extra].concat();
        let output = test_tested(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        stdout(&output)
    };
    assert_eq!(
        list(&["--format", "terse", "--ignored"]),
        "tests::hangs_without_a_limit_of_its_own: test\ntests::ignored: test\n\
         tests::ignored_with_a_reason: test\n"
    );
    assert_eq!(list(&["--skip", "tests::"]), "\n0 tests, 0 benchmarks\n");
    assert_eq!(
        list(&["panics_with"]),
        "tests::panics_with_another_message: test\ntests::panics_with_the_expected_message: test\n\
         \n2 tests, 0 benchmarks\n"
    );
}

/// Captured output: shown for passing tests only on request (`--show-output`, which the
/// exact command rust-analyzer's "Run Test" issues passes), passed straight through with
/// `--nocapture`, the test named before it runs.
#[test]
fn the_editor_run_test_command_shows_the_tests_output() {
    testkit::require_kvm!();
    let run_test =
        |test: &str| test_tested(&["--bin", "tested", "--", test, "--exact", "--show-output"]);
    let output = run_test("tests::passes");
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        normalized(&stdout(&output), None),
        "
running 1 test
test tests::passes ... ok

successes:

---- tests::passes stdout ----
output of a passing test
its stderr


successes:
    tests::passes

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 12 filtered out; finished in <time>

"
    );
    let output = run_test("tests::panics_with_the_expected_message");
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        normalized(&stdout(&output), None),
        "
running 1 test
test tests::panics_with_the_expected_message - should panic ... ok

successes:

---- tests::panics_with_the_expected_message stdout ----
panicked at tested/src/main.rs:63:9:
index 7 out of range


successes:
    tests::panics_with_the_expected_message

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 12 filtered out; finished in <time>

"
    );

    let output = test_tested(&["--bin", "tested", "--", "tests::passes", "--nocapture"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("\ntest tests::passes ... output of a passing test\nok\n"),
        "{}",
        stdout(&output)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("its stderr\n"));
}

/// Unit tests of a library crate and integration tests in tests/ take the attribute too.
#[test]
fn library_and_integration_tests_run_in_vms_too() {
    testkit::require_kvm!();
    let output = test_tested(&["--lib", "--", "--test-threads=1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        normalized(&stdout(&output), None),
        "
running 2 tests
test tests::adds ... ok
test tests::overflows - should panic ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in <time>

"
    );
    let output = test_tested(&["--test", "outside", "--", "--test-threads=1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        normalized(&stdout(&output), None),
        "
running 2 tests
test ignored_outside ... ignored
test adds_from_outside ... ok

test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in <time>

"
    );
}

/// `cargo nextest run --package tested ARGS`, the runner's default time limit set, or `None`
/// (the test reported as skipped) without cargo-nextest, which `cargo xtask test` installs.
fn nextest_tested(test: &str, args: &[&str]) -> Option<Output> {
    if testkit::cargo_nextest().is_none() {
        let why = "cargo-nextest is not installed (`cargo xtask test` installs it)";
        testkit::skip(test, why);
        return None;
    }
    let command = ["nextest", "run", "--package", "tested", "--no-fail-fast"];
    let output = cargo_command(&command, args)
        .env(RUNNER_WITH_TIMEOUT.0, RUNNER_WITH_TIMEOUT.1)
        .output()
        .unwrap();
    Some(output)
}

/// Whether nextest's report says `verdict` (`PASS`, `FAIL`, `TRY 2 FAIL`) for `test` (as nextest
/// names it: `tested::bin/tested tests::fails`).
fn nextest_says(report: &str, verdict: &str, test: &str) -> bool {
    report
        .lines()
        .any(|line| line.trim_start().starts_with(&format!("{verdict} [")) && line.ends_with(test))
}

/// The binary (as nextest names it), the test and whether it passes, for every test of
/// tests/guests/tested, with the runner's default time limit set.
const TESTED: [(&str, &str, bool); 17] = [
    ("tested", "tests::adds", true),
    ("tested", "tests::overflows", true),
    ("tested::outside", "adds_from_outside", true),
    ("tested::outside", "ignored_outside", true),
    ("tested::bin/tested", "tests::a_plain_test_case", true),
    ("tested::bin/tested", "tests::crashes", false),
    ("tested::bin/tested", "tests::does_not_panic", false),
    ("tested::bin/tested", "tests::fails", false),
    ("tested::bin/tested", "tests::hangs", false),
    (
        "tested::bin/tested",
        "tests::hangs_without_a_limit_of_its_own",
        false,
    ),
    ("tested::bin/tested", "tests::ignored", true),
    ("tested::bin/tested", "tests::ignored_with_a_reason", true),
    ("tested::bin/tested", "tests::panics", true),
    (
        "tested::bin/tested",
        "tests::panics_with_another_message",
        false,
    ),
    (
        "tested::bin/tested",
        "tests::panics_with_the_expected_message",
        true,
    ),
    ("tested::bin/tested", "tests::passes", true),
    ("tested::bin/tested", "tests::returns_an_error", false),
];

/// Each `<testcase>` of a JUnit report: (classname, name) and whether it has no `<failure>`.
fn junit_outcomes(xml: &str) -> BTreeMap<(String, String), bool> {
    let attribute = |element: &str, name: &str| {
        let start = format!("{name}=\"");
        let value = element.split(&start).nth(1).expect(element);
        value.split('"').next().unwrap().to_owned()
    };
    xml.split("<testcase ")
        .skip(1)
        .map(|element| {
            let key = (attribute(element, "classname"), attribute(element, "name"));
            (key, !element.contains("<failure"))
        })
        .collect()
}

/// cargo-nextest runs tests with attributes through the runner, each in its own VM, judged as
/// `cargo test` judges them: ignored ones only on request (`--run-ignored all`), failing ones
/// again with `--retries`, a filter expression, and a JUnit report with every test's outcome.
#[test]
fn cargo_nextest_runs_tests_with_attributes() {
    testkit::require_kvm!();
    let test = "cargo_nextest_runs_tests_with_attributes";
    let Some(output) = nextest_tested(test, &[]) else {
        return;
    };
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(100), "{report}");
    let ignored = [
        "ignored_outside",
        "tests::ignored",
        "tests::ignored_with_a_reason",
    ];
    let not_ignored = TESTED
        .iter()
        .filter(|(_, name, _)| !ignored.contains(name) && !name.starts_with("tests::hangs_"));
    for (binary, name, passes) in not_ignored {
        let verdict = if *passes { "PASS" } else { "FAIL" };
        let test = format!("{binary} {name}");
        assert!(
            nextest_says(&report, verdict, &test),
            "{verdict} {test} in:\n{report}"
        );
    }
    assert!(
        report.contains("13 tests run: 7 passed, 6 failed, 4 skipped"),
        "{report}"
    );

    let config = testkit::TempDir::new("nextest-config");
    let config_file = config.path().join("nextest.toml");
    std::fs::write(
        &config_file,
        "[profile.default.junit]\npath = \"junit.xml\"\n",
    )
    .unwrap();
    let args = [
        "--run-ignored",
        "all",
        "--retries",
        "1",
        "--config-file",
        config_file.to_str().unwrap(),
    ];
    let Some(output) = nextest_tested(test, &args) else {
        return;
    };
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(100), "{report}");
    for (binary, name, passes) in TESTED {
        let verdict = if passes { "PASS" } else { "TRY 2 FAIL" };
        let test = format!("{binary} {name}");
        assert!(
            nextest_says(&report, verdict, &test),
            "{verdict} {test} in:\n{report}"
        );
    }
    assert!(
        report.contains("17 tests run: 10 passed, 7 failed, 0 skipped"),
        "{report}"
    );
    let junit = project_root().join("tests/guests/target/nextest/default/junit.xml");
    let expected: BTreeMap<(String, String), bool> = TESTED
        .iter()
        .map(|(binary, name, passes)| ((binary.to_string(), name.to_string()), *passes))
        .collect();
    assert_eq!(
        junit_outcomes(&std::fs::read_to_string(junit).unwrap()),
        expected
    );

    let Some(output) = nextest_tested(test, &["-E", "test(/^tests::panics/)"]) else {
        return;
    };
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(100), "{report}");
    let panics = [
        ("PASS", "tests::panics"),
        ("PASS", "tests::panics_with_the_expected_message"),
        ("FAIL", "tests::panics_with_another_message"),
    ];
    for (verdict, name) in panics {
        let test = format!("tested::bin/tested {name}");
        assert!(
            nextest_says(&report, verdict, &test),
            "{verdict} {test} in:\n{report}"
        );
    }
    assert!(
        report.contains("3 tests run: 2 passed, 1 failed, 14 skipped"),
        "{report}"
    );
}
