//! What `cargo test` costs per test when every test boots its own micro-VM.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use super::runner::guest_env;
use super::{median_time, Report};
use crate::toolchain::{project_root, TARGET};

const TESTS: usize = 100;
const RUNS: usize = 7;
const PER_TEST_GOAL: Duration = Duration::from_millis(3);

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("cargo test in micro-VMs");
    let runner = crate::runner::build_release(sh, &crate::signing::public_key(None)?)?;
    let tests = build_hundred_tests(sh)?;

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
        let per_test = time / TESTS as u32;
        report.row(
            &format!("runner time per test, {TESTS} trivial tests, {what}"),
            format!(
                "{:.2} ms ({:.0} ms in all)",
                per_test.as_secs_f64() * 1e3,
                time.as_secs_f64() * 1e3
            ),
            &format!("≤ {} ms", PER_TEST_GOAL.as_millis()),
            Some(per_test <= PER_TEST_GOAL),
        );
    }
    report.note(&format!(
        "The release runner given a release test binary of {TESTS} `#[test_case]`s that do \
         nothing, as `cargo test` would run it: one boot to list the tests, then one fresh VM \
         per test. Whole process, median of {RUNS} runs, divided by {TESTS}."
    ));
    Ok(())
}

/// Writes a guest crate with `TESTS` trivial tests and builds its test binary.
fn build_hundred_tests(sh: &Shell) -> Result<std::path::PathBuf> {
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
        let _ = writeln!(main, "#[cfg(test)]\n#[test_case]\nfn test_{n:03}() {{}}");
    }
    sh.write_file(dir.join("src/main.rs"), main)?;

    let _env = guest_env(sh, &dir)?;
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
    Ok(dir.join(path))
}
