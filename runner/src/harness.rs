//! `cargo test` for guests: each test of a guest test binary in its own fresh micro-VM.
//!
//! cargo hands the runner a test binary and libtest's command line. The runner asks the
//! binary for its tests (one boot with [`LIST`]), selects them as libtest would, boots a fresh
//! VM per test (with [`RUN`] and the test's name) on as many threads as libtest would use, and
//! prints libtest's report. A test that panics, crashes or times out fails alone. The guest
//! half is `hyperlight_rt::test`, the protocol `hyperlight_rt::abi::test`.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use hyperlight_rt::abi::test::{LIST, NOTE_NAME, NOTE_TYPE, RUN};

use crate::guest_file::GuestFile;
use crate::{Captured, Config, HostStdio, Outcome, Output};

/// libtest's exit code when a test failed.
const TESTS_FAILED: i32 = 101;

/// The part of libtest's command line a guest test binary understands.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    terse: bool,
    nocapture: bool,
    threads: Option<usize>,
}

impl Options {
    /// Parses what cargo passes after the binary (`cargo test -- ARGS` included). Flags that
    /// change nothing here (`--color`, `--show-output`, `-q`, ...) are accepted and ignored.
    pub fn parse(args: &[OsString]) -> Result<Options, String> {
        let mut options = Options::default();
        let mut args = args.iter().map(|arg| arg.to_string_lossy().into_owned());
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--list" => options.list = true,
                "--exact" => options.exact = true,
                "--nocapture" | "--no-capture" => options.nocapture = true,
                "--skip" => options.skip.push(value("--skip")?),
                "--format" => options.terse = value("--format")? == "terse",
                "--test-threads" => {
                    let threads = value("--test-threads")?;
                    options.threads =
                        Some(threads.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                            format!("--test-threads takes a positive number, not `{threads}`")
                        })?);
                }
                "--color" | "-Z" | "--logfile" | "--report-time" => {
                    let _ = value(&flag)?;
                }
                "-q" | "--quiet" | "--show-output" | "--include-ignored" | "--test" | "--bench" => {
                }
                "--ignored" => {
                    return Err(
                        "guest tests cannot be #[ignore]d; --ignored selects nothing".into(),
                    )
                }
                other if other.starts_with('-') => {
                    return Err(format!("unsupported test option `{other}`"))
                }
                _ => options.filters.push(arg),
            }
        }
        Ok(options)
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |pattern: &String| {
            if self.exact {
                name == pattern
            } else {
                name.contains(pattern.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skip.iter().any(matches)
    }
}

/// How one test ended, with what it printed.
struct TestResult {
    name: String,
    passed: bool,
    output: Vec<u8>,
}

/// Runs the tests of the test binary `elf` as libtest would and returns the exit code.
pub fn run(elf: &Path, args: &[OsString], config: &Config) -> i32 {
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("hyperlight-run: error: {message}");
            return crate::exit_code::RUNNER_FAILED;
        }
    };
    let started = Instant::now();
    let all = match list(elf, config) {
        Ok(names) => names,
        Err(message) => {
            eprintln!(
                "hyperlight-run: error: cannot list the tests of {}: {message}",
                elf.display()
            );
            return TESTS_FAILED;
        }
    };
    let selected: Vec<&String> = all.iter().filter(|name| options.selects(name)).collect();
    let mut stdout = std::io::stdout().lock();
    if options.list {
        for name in &selected {
            let _ = writeln!(stdout, "{name}: test");
        }
        if !options.terse {
            let _ = writeln!(stdout, "\n{}, 0 benchmarks", count(selected.len(), "test"));
        }
        return 0;
    }

    let _ = writeln!(stdout, "\nrunning {}", count(selected.len(), "test"));
    let _ = stdout.flush();
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .min(selected.len().max(1));
    let next = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel();
    let mut results = Vec::with_capacity(selected.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let sender = sender.clone();
            let (next, selected, options) = (&next, &selected, &options);
            scope.spawn(move || {
                while let Some(name) = selected.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let _ = sender.send(run_one(elf, name, config, options.nocapture));
                }
            });
        }
        drop(sender);
        for result in receiver {
            let verdict = if result.passed { "ok" } else { "FAILED" };
            let _ = writeln!(stdout, "test {} ... {verdict}", result.name);
            let _ = stdout.flush();
            results.push(result);
        }
    });

    let mut failed: Vec<&TestResult> = results.iter().filter(|r| !r.passed).collect();
    failed.sort_by(|a, b| a.name.cmp(&b.name));
    let mut report = String::new();
    if !failed.is_empty() {
        report.push_str("\nfailures:\n");
        for result in &failed {
            let _ = write!(
                report,
                "\n---- {} stdout ----\n{}",
                result.name,
                String::from_utf8_lossy(&result.output)
            );
        }
        report.push_str("\nfailures:\n");
        for result in &failed {
            let _ = writeln!(report, "    {}", result.name);
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    let _ = write!(
        report,
        "\ntest result: {verdict}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n\n",
        results.len() - failed.len(),
        failed.len(),
        all.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = stdout.write_all(report.as_bytes());
    if failed.is_empty() {
        0
    } else {
        TESTS_FAILED
    }
}

/// "1 test", "2 tests", as libtest counts.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// The names of the binary's tests, in the order it declares them.
fn list(elf: &Path, config: &Config) -> Result<Vec<String>, String> {
    let mut output = Captured::default();
    let args = [elf.as_os_str().to_owned(), LIST.into()];
    match crate::run(elf, &args, config, &mut output) {
        Ok(report) if matches!(report.outcome, Outcome::Exited(0)) => {
            Ok(String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_owned)
                .collect())
        }
        Ok(report) => Err(describe(&report.outcome, &output)),
        Err(err) => Err(err.to_string()),
    }
}

fn run_one(elf: &Path, name: &str, config: &Config, nocapture: bool) -> TestResult {
    let args = [
        elf.as_os_str().to_owned(),
        RUN.into(),
        OsStr::new(name).to_owned(),
    ];
    let mut captured = Captured::default();
    let mut host = HostStdio::new();
    let output: &mut dyn Output = if nocapture { &mut host } else { &mut captured };
    let result = crate::run(elf, &args, config, output);
    let mut text = interleaved(&captured);
    let passed = match result {
        Ok(report) => {
            let passed = matches!(report.outcome, Outcome::Exited(0));
            if !passed && !matches!(report.outcome, Outcome::Exited(crate::exit_code::PANIC)) {
                // A panic explains itself; anything else gets the runner's account of it.
                text.extend_from_slice(describe(&report.outcome, &Captured::default()).as_bytes());
                text.push(b'\n');
            }
            passed
        }
        Err(err) => {
            text.extend_from_slice(format!("hyperlight-run: error: {err}\n").as_bytes());
            false
        }
    };
    TestResult {
        name: name.to_owned(),
        passed,
        output: text,
    }
}

/// libtest shows a failed test's stdout and stderr as one text.
fn interleaved(captured: &Captured) -> Vec<u8> {
    let mut text = captured.stdout.clone();
    text.extend_from_slice(&captured.stderr);
    text
}

/// How a run that did not exit 0 ended, as the runner would report it.
fn describe(outcome: &Outcome, output: &Captured) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    match outcome {
        Outcome::Exited(code) => format!(
            "exited with code {code}{}",
            if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            }
        ),
        Outcome::Crashed(report) => {
            let mut text = format!("hyperlight-run: error: {}", report.summary);
            if !report.backtrace.is_empty() {
                let _ = write!(text, "\nguest backtrace:\n{}", report.backtrace.join("\n"));
            }
            text
        }
        Outcome::TimedOut(after) => {
            format!("hyperlight-run: error: the test did not finish within {after:?} (--timeout)")
        }
        Outcome::OutputClosed => "hyperlight-run: error: the test's output was closed".to_owned(),
    }
}

/// Whether `elf` is a guest test binary: it carries the note `hyperlight_rt::tests!` puts
/// there. Only the ELF and program headers and the notes are read.
pub fn is_test_binary(elf: &Path) -> bool {
    GuestFile::open(elf)
        .is_ok_and(|file| crate::elf::find_note(file.front(), NOTE_NAME, NOTE_TYPE).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        Options::parse(&args.iter().map(OsString::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn selects_like_libtest() {
        let options = parse(&["add"]);
        assert!(options.selects("tests::adds") && !options.selects("tests::panics"));
        let exact = parse(&["--exact", "tests::adds"]);
        assert!(exact.selects("tests::adds") && !exact.selects("tests::adds_more"));
        let skip = parse(&["--skip", "panic", "--skip=fault"]);
        assert!(
            skip.selects("tests::adds")
                && !skip.selects("tests::panics")
                && !skip.selects("tests::faults")
        );
        assert!(parse(&[]).selects("anything"));
    }

    #[test]
    fn reads_cargos_flags() {
        let options = parse(&[
            "--list",
            "--format",
            "terse",
            "--test-threads=2",
            "--nocapture",
            "-q",
        ]);
        assert!(options.list && options.terse && options.nocapture);
        assert_eq!(options.threads, Some(2));
        assert!(Options::parse(&[OsString::from("--test-threads=0")]).is_err());
        assert!(Options::parse(&[OsString::from("--bogus")]).is_err());
    }
}
