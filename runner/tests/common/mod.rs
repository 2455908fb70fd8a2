//! Helpers shared by the runner's integration tests: run the real `hyperlight-run` binary
//! with a watchdog, and check its error-reporting contract.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const RUNNER: &str = env!("CARGO_BIN_EXE_hyperlight-run");

/// Longer than any test guest should take; a run hitting it is a hang, which fails the test.
const WATCHDOG: Duration = Duration::from_secs(30);

pub fn runner() -> Command {
    let mut command = Command::new(RUNNER);
    command.env_remove("HYPERLIGHT_KVM_DEVICE");
    command
}

/// Waits for `child` (`what`, for the message), killing it and failing the test after `limit`:
/// a hang.
pub fn wait_with_watchdog(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} hung: killed after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `command` to completion (killing it after the watchdog) and returns its output and
/// how long it took.
pub fn run_with_watchdog(command: &mut Command) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning hyperlight-run");
    // Drain the pipes on threads so a chatty guest cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).unwrap();
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut bytes).unwrap();
        bytes
    });
    let status = wait_with_watchdog(&mut child, "hyperlight-run", WATCHDOG);
    let elapsed = started.elapsed();
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, elapsed)
}

/// Runs `hyperlight-run ARGS...`.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_watchdog(runner().args(args)).0
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {:?}", output.status))
}

/// The runner's contract for failures it reports: exactly one line on stderr, starting with
/// `hyperlight-run: error:`, and never a Rust panic.
pub fn assert_single_error_line(output: &Output) -> String {
    let text = stderr(output);
    assert!(!text.contains("panicked"), "the runner panicked:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{text}");
    assert!(
        lines[0].starts_with("hyperlight-run: error: "),
        "error line has the wrong prefix: {}",
        lines[0]
    );
    lines[0].to_owned()
}

/// A crash: exit code 134 and a report whose error line comes first and contains every one of
/// `needles`, then optionally `guest backtrace:` and frame lines; returns the error line.
pub fn assert_crash_report(output: &Output, needles: &[&str]) -> String {
    let text = stderr(output);
    assert_eq!(code(output), 134, "{text}");
    assert!(!text.contains("panicked"), "the runner panicked:\n{text}");
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().to_owned();
    assert!(
        first.starts_with("hyperlight-run: error: "),
        "report does not start with an error line:\n{text}"
    );
    let rest: Vec<&str> = lines.collect();
    if let Some((header, frames)) = rest.split_first() {
        assert_eq!(*header, "guest backtrace:", "{text}");
        assert!(
            frames.iter().all(|line| line.starts_with("   ")),
            "unexpected lines after the error:\n{text}"
        );
    }
    for needle in needles {
        assert!(first.contains(needle), "expected {needle:?} in: {first}");
    }
    first
}

pub fn example(name: &str) -> PathBuf {
    testkit::example(name)
}

pub fn probe() -> PathBuf {
    testkit::build_guest(&testkit::project_root().join("tests/guests"), "probe")
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
