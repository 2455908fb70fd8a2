//! `cargo test` for guests: each test of a guest test binary in its own fresh micro-VM.
//!
//! cargo hands the runner a test binary and libtest's command line. The runner asks the
//! binary for its tests, selects them as libtest would, boots a fresh VM per test on as many
//! threads as libtest would use, and prints libtest's report. A test that panics, crashes or
//! times out fails alone. How a binary lists and runs its tests is its [`Protocol`].

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
/// The environment variable naming the one test a libtest binary built with panic=abort runs
/// (libtest's own way of running each test in a child process).
const LIBTEST_INVOKE: &str = "__RUST_TEST_INVOKE";
/// The exit code of such a run whose test passed (libtest's `TR_OK`).
const LIBTEST_PASSED: i32 = 50;

/// How a test binary lists its tests and runs one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `hyperlight_rt::test_runner` (no_std guests; `hyperlight_rt::abi::test`): [`LIST`], and
    /// [`RUN`] with the test's name.
    Runtime,
    /// libtest itself (std guests on x86_64-hyperlight-hermit): `--list --format terse`
    /// (with `--ignored` for the ignored tests), and [`LIBTEST_INVOKE`] naming the test, which
    /// exits [`LIBTEST_PASSED`] if it passed.
    Libtest,
}

impl Protocol {
    /// The protocol of `elf`, if it is a guest test binary: it carries the note
    /// `hyperlight_rt::tests!` puts there, or libtest. Only the loaded parts are read.
    pub fn of(elf: &Path) -> Option<Protocol> {
        let file = GuestFile::open(elf).ok()?;
        let front = file.front();
        if crate::elf::find_note(front, NOTE_NAME, NOTE_TYPE).is_some() {
            return Some(Protocol::Runtime);
        }
        // Every run of a guest that is no test binary pays for this search: memchr's is
        // vectorized (a plain window compare costs about 1 ms per MB).
        memchr::memmem::find(front, LIBTEST_INVOKE.as_bytes()).map(|_| Protocol::Libtest)
    }
}

/// The part of libtest's command line a guest test binary understands.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    terse: bool,
    /// `--ignored`: only the ignored tests; `--include-ignored`: all of them.
    ignored: bool,
    include_ignored: bool,
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
                "--ignored" => options.ignored = true,
                "--include-ignored" => options.include_ignored = true,
                "-q" | "--quiet" | "--show-output" | "--test" | "--bench" => {}
                other if other.starts_with('-') => {
                    return Err(format!("unsupported test option `{other}`"))
                }
                _ => options.filters.push(arg),
            }
        }
        Ok(options)
    }

    /// Whether the test is run, or counted as ignored, rather than filtered out.
    fn selects(&self, test: &Test) -> bool {
        self.matches(&test.name) && (!self.ignored || test.ignored)
    }

    /// Whether an ignored test is run all the same.
    fn runs_ignored(&self) -> bool {
        self.ignored || self.include_ignored
    }

    fn matches(&self, name: &str) -> bool {
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

/// A test as its binary lists it.
#[derive(Debug)]
struct Test {
    name: String,
    ignored: bool,
}

/// How one test ended, with what it printed.
struct TestResult {
    name: String,
    passed: bool,
    output: Vec<u8>,
}

/// Runs the tests of the test binary `elf` as libtest would and returns the exit code.
pub fn run(elf: &Path, protocol: Protocol, args: &[OsString], config: &Config) -> i32 {
    // `hyperlight_rt::test_runner`'s tests are never ignored, so there `--ignored` selects
    // none, as libtest's does in a binary without ignored tests.
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("hyperlight-run: error: {message}");
            return crate::exit_code::RUNNER_FAILED;
        }
    };
    let started = Instant::now();
    let all = match list(elf, protocol, config) {
        Ok(names) => names,
        Err(message) => {
            eprintln!(
                "hyperlight-run: error: cannot list the tests of {}: {message}",
                elf.display()
            );
            return TESTS_FAILED;
        }
    };
    let selected: Vec<&Test> = all.iter().filter(|test| options.selects(test)).collect();
    let mut stdout = std::io::stdout().lock();
    if options.list {
        for test in &selected {
            let _ = writeln!(stdout, "{}: test", test.name);
        }
        if !options.terse {
            let _ = writeln!(stdout, "\n{}, 0 benchmarks", count(selected.len(), "test"));
        }
        return 0;
    }

    let _ = writeln!(stdout, "\nrunning {}", count(selected.len(), "test"));
    let (to_run, ignored): (Vec<&Test>, Vec<&Test>) = selected
        .iter()
        .partition(|test| !test.ignored || options.runs_ignored());
    for test in &ignored {
        let _ = writeln!(stdout, "test {} ... ignored", test.name);
    }
    let _ = stdout.flush();
    let selected = to_run;
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
                while let Some(test) = selected.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = run_one(elf, protocol, &test.name, config, options.nocapture);
                    let _ = sender.send(result);
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
        "\ntest result: {verdict}. {} passed; {} failed; {} ignored; 0 measured; {} filtered out; finished in {:.2}s\n\n",
        results.len() - failed.len(),
        failed.len(),
        ignored.len(),
        all.len() - selected.len() - ignored.len(),
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

/// The binary's tests, in the order it lists them.
fn list(elf: &Path, protocol: Protocol, config: &Config) -> Result<Vec<Test>, String> {
    match protocol {
        Protocol::Runtime => Ok(list_lines(elf, &[LIST], config)?
            .lines()
            .map(|name| Test {
                name: name.to_owned(),
                ignored: false,
            })
            .collect()),
        Protocol::Libtest => {
            const LIST_TERSE: [&str; 3] = ["--list", "--format", "terse"];
            let ignored: Vec<String> = libtest_names(&list_lines(
                elf,
                &[&LIST_TERSE[..], &["--ignored"]].concat(),
                config,
            )?);
            Ok(libtest_names(&list_lines(elf, &LIST_TERSE, config)?)
                .into_iter()
                .map(|name| Test {
                    ignored: ignored.contains(&name),
                    name,
                })
                .collect())
        }
    }
}

/// The tests of libtest's terse list (`NAME: test` lines; benchmarks are not run).
fn libtest_names(lines: &str) -> Vec<String> {
    lines
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// What the binary prints when booted with `args`, if it exits 0.
fn list_lines(elf: &Path, args: &[&str], config: &Config) -> Result<String, String> {
    let mut output = Captured::default();
    let mut argv = vec![elf.as_os_str().to_owned()];
    argv.extend(args.iter().map(OsString::from));
    match crate::run(elf, &argv, config, &mut output) {
        Ok(report) if matches!(report.outcome, Outcome::Exited(0)) => {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Ok(report) => Err(describe(&report.outcome, &output)),
        Err(err) => Err(err.to_string()),
    }
}

fn run_one(
    elf: &Path,
    protocol: Protocol,
    name: &str,
    config: &Config,
    nocapture: bool,
) -> TestResult {
    let mut args = vec![elf.as_os_str().to_owned()];
    let mut env = config.env.clone();
    let passed_code = match protocol {
        Protocol::Runtime => {
            args.extend([RUN.into(), OsStr::new(name).to_owned()]);
            0
        }
        Protocol::Libtest => {
            env.push(format!("{LIBTEST_INVOKE}={name}").into());
            LIBTEST_PASSED
        }
    };
    let config = Config {
        env,
        ..config.clone()
    };
    let mut captured = Captured::default();
    let mut host = HostStdio::new();
    let output: &mut dyn Output = if nocapture { &mut host } else { &mut captured };
    let result = crate::run(elf, &args, &config, output);
    let mut text = interleaved(&captured);
    let passed = match result {
        Ok(report) => {
            let passed = matches!(report.outcome, Outcome::Exited(code) if code == passed_code);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        Options::parse(&args.iter().map(OsString::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn selects_like_libtest() {
        let options = parse(&["add"]);
        assert!(options.matches("tests::adds") && !options.matches("tests::panics"));
        let exact = parse(&["--exact", "tests::adds"]);
        assert!(exact.matches("tests::adds") && !exact.matches("tests::adds_more"));
        let skip = parse(&["--skip", "panic", "--skip=fault"]);
        assert!(
            skip.matches("tests::adds")
                && !skip.matches("tests::panics")
                && !skip.matches("tests::faults")
        );
        assert!(parse(&[]).matches("anything"));
        let test = |name: &str, ignored| Test {
            name: name.to_owned(),
            ignored,
        };
        let only_ignored = parse(&["--ignored"]);
        assert!(
            only_ignored.selects(&test("slow", true))
                && !only_ignored.selects(&test("fast", false))
        );
        assert!(parse(&[]).selects(&test("slow", true)) && !parse(&[]).runs_ignored());
        assert!(parse(&["--include-ignored"]).runs_ignored());
    }

    #[test]
    fn reads_libtests_terse_list() {
        let listed = "tests::adds: test\ntests::slow: test\nbench::fast: bench\n";
        assert_eq!(libtest_names(listed), ["tests::adds", "tests::slow"]);
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
