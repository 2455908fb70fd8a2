//! What a test costs when every test boots its own micro-VM, under `cargo test` and under
//! `cargo nextest run`.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use super::runner::guest_env;
use super::{median, median_time, Report};
use crate::toolchain::{project_root, TARGET};
use crate::tools::CARGO_NEXTEST;

const TESTS: usize = 100;
const RUNS: usize = 7;
const PER_TEST_GOAL: Duration = Duration::from_millis(3);
/// cargo's runner setting for the target, which cargo-nextest reads too.
const RUNNER_VAR: &str = "CARGO_TARGET_X86_64_HYPERLIGHT_NONE_RUNNER";

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("cargo test in micro-VMs");
    let runner = crate::runner::build_release(sh, &crate::signing::public_key(None)?)?;
    let nextest = CARGO_NEXTEST.ensure(sh)?;
    let project = write_hundred_tests(sh)?;
    let tests = build_test_binary(sh, &project)?;
    cargo_test(sh, report, &runner, &tests)?;
    cargo_nextest(sh, report, &nextest, &runner, &project)?;
    report.note(&format!(
        "A release test binary of {TESTS} `#[hyperlight_rt::test]`s that do nothing, and the \
         release runner. `cargo test`: the runner given the binary as cargo runs it, one boot \
         to list the tests and a fresh VM per test; whole process, median of {RUNS} runs, \
         divided by {TESTS}. `cargo nextest run`: nextest starts the runner once per test \
         (`BINARY NAME --exact --nocapture`), which reads the list the first one kept beside \
         the binary and boots one VM to run that test; runner time per test is the mean wall \
         time of those processes (from start to exit, timed by `cargo xtask time-runner` as the \
         target's runner), median of {RUNS} runs. The whole run adds cargo's up-to-date check, \
         nextest's listing and its own start of each test process (it starts each through a \
         copy of itself)."
    ));
    Ok(())
}

fn goal() -> String {
    format!("≤ {} ms", PER_TEST_GOAL.as_millis())
}

fn per_test(time: Duration) -> Duration {
    time / TESTS as u32
}

fn millis(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

/// The runner given the test binary as `cargo test` runs it, with default threads and one.
fn cargo_test(sh: &Shell, report: &mut Report, runner: &Path, tests: &Path) -> Result<()> {
    for (threads, what) in [
        (None, "default threads (one per core)"),
        (Some(1), "one thread"),
    ] {
        let mut args = vec!["--quiet".to_owned()];
        if let Some(threads) = threads {
            args.push(format!("--test-threads={threads}"));
        }
        let time = median_time(RUNS, || {
            cmd!(sh, "{runner} {tests}")
                .args(&args)
                .quiet()
                .ignore_stdout()
                .run()?;
            Ok(())
        })?;
        report.row(
            &format!("`cargo test`: runner time per test, {TESTS} trivial tests, {what}"),
            format!(
                "{:.2} ms ({:.0} ms in all)",
                millis(per_test(time)),
                millis(time)
            ),
            &goal(),
            Some(per_test(time) <= PER_TEST_GOAL),
        );
    }
    Ok(())
}

/// `cargo nextest run` of the crate, with default threads and one: the runner processes alone,
/// and the whole run.
fn cargo_nextest(
    sh: &Shell,
    report: &mut Report,
    nextest: &Path,
    runner: &Path,
    project: &Path,
) -> Result<()> {
    for (threads, what) in [
        (None, "default threads (one per core)"),
        (Some(1), "one thread"),
    ] {
        let args: Vec<String> = threads
            .map(|threads| format!("--test-threads={threads}"))
            .into_iter()
            .collect();
        let mut process_times = Vec::with_capacity(RUNS);
        let mut whole_times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let timed = nextest_runner_time(sh, nextest, runner, project, &args)?;
            process_times.push(timed);
            whole_times.push(nextest_run(
                sh,
                nextest,
                runner.as_os_str(),
                project,
                &args,
            )?);
        }
        let (process, whole) = (median(process_times), median(whole_times));
        report.row(
            &format!("`cargo nextest run`: runner time per test, {TESTS} trivial tests, {what}"),
            format!("{:.2} ms", millis(process)),
            &goal(),
            Some(process <= PER_TEST_GOAL),
        );
        report.row(
            &format!(
                "`cargo nextest run`: whole run per test (cargo and nextest included), {what}"
            ),
            format!(
                "{:.2} ms ({:.0} ms in all)",
                millis(per_test(whole)),
                millis(whole)
            ),
            "",
            None,
        );
    }
    Ok(())
}

/// Writes a guest crate with `TESTS` trivial tests and returns its directory.
fn write_hundred_tests(sh: &Shell) -> Result<PathBuf> {
    let dir = project_root().join("target/bench/hundred-tests");
    let runtime = project_root().join("guest");
    sh.write_file(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"hundred-tests\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nhyperlight-rt = {{ path = {:?} }}\n\n\
             [profile.release]\npanic = \"abort\"\n\n[profile.dev]\npanic = \"abort\"\n\n[workspace]\n",
            runtime.display().to_string()
        ),
    )?;
    let mut main = String::from(
        "#![no_std]\n#![no_main]\n#![cfg_attr(test, feature(custom_test_frameworks), \
         test_runner(hyperlight_rt::test_runner), reexport_test_harness_main = \"test_main\")]\n\
         hyperlight_rt::main!(main);\nfn main() {}\n",
    );
    for n in 0..TESTS {
        let _ = writeln!(main, "#[hyperlight_rt::test]\nfn test_{n:03}() {{}}");
    }
    sh.write_file(dir.join("src/main.rs"), main)?;
    Ok(dir)
}

/// Builds the crate's release test binary and returns its path.
fn build_test_binary(sh: &Shell, project: &Path) -> Result<PathBuf> {
    let _env = guest_env(sh, project)?;
    let built = cmd!(
        sh,
        "cargo test --release --no-run --target {TARGET} --message-format=short"
    )
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_TARGET_DIR")
    .output()?;
    // cargo names the test binary on stderr: "Executable unittests src/main.rs (PATH)".
    let stderr = String::from_utf8_lossy(&built.stderr);
    let path = stderr
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Executable unittests src/main.rs (")?
                .strip_suffix(')')
        })
        .with_context(|| format!("cargo test --no-run named no test binary:\n{stderr}"))?;
    Ok(project.join(path))
}

/// The mean wall time of the runner processes that run the tests in one `cargo nextest run`
/// (nextest starts one per test, `BINARY NAME --exact --nocapture`), each timed by
/// `cargo xtask time-runner`.
fn nextest_runner_time(
    sh: &Shell,
    nextest: &Path,
    runner: &Path,
    project: &Path,
    args: &[String],
) -> Result<Duration> {
    let log = project.join("target/runner-times");
    let _ = std::fs::remove_file(&log);
    let mut timed = std::env::current_exe()?.into_os_string();
    for part in [
        OsStr::new("time-runner"),
        log.as_os_str(),
        runner.as_os_str(),
    ] {
        timed.push(" ");
        timed.push(part);
    }
    nextest_run(sh, nextest, &timed, project, args)?;
    // The runs of single tests, not nextest's two listings.
    let mut times = Vec::with_capacity(TESTS);
    for line in sh.read_file(&log)?.lines() {
        let (nanos, args) = line.split_once(' ').context("a malformed runner time")?;
        if args.split(' ').any(|arg| arg == "--exact") {
            times.push(nanos.parse::<u64>()?);
        }
    }
    anyhow::ensure!(
        times.len() == TESTS,
        "timed {} runs of single tests, not {TESTS}",
        times.len()
    );
    Ok(Duration::from_nanos(
        times.iter().sum::<u64>() / TESTS as u64,
    ))
}

/// The wall time of one `cargo nextest run ARGS` of the crate, with `runner` as the target's
/// runner.
fn nextest_run(
    sh: &Shell,
    nextest: &Path,
    runner: &OsStr,
    project: &Path,
    args: &[String],
) -> Result<Duration> {
    let _env = guest_env(sh, project)?;
    let started = Instant::now();
    cmd!(
        sh,
        "{nextest} nextest run --release --target {TARGET} {args...}"
    )
    .env(RUNNER_VAR, runner)
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_TARGET_DIR")
    .quiet()
    .ignore_stdout()
    .ignore_stderr()
    .run()?;
    Ok(started.elapsed())
}

/// `cargo xtask time-runner LOG COMMAND...`: runs COMMAND, appends its wall time in
/// nanoseconds and its arguments to LOG (one line, one write, so that parallel runs append
/// whole lines) and exits with its code.
pub fn time_runner(log: &Path, command: &[OsString]) -> Result<()> {
    let started = Instant::now();
    let status = std::process::Command::new(&command[0])
        .args(&command[1..])
        .status()
        .with_context(|| format!("running {:?}", command[0]))?;
    let elapsed = started.elapsed().as_nanos();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let args: Vec<_> = command[1..]
        .iter()
        .map(|arg| arg.to_string_lossy())
        .collect();
    file.write_all(format!("{elapsed} {}\n", args.join(" ")).as_bytes())?;
    std::process::exit(status.code().unwrap_or(1));
}
