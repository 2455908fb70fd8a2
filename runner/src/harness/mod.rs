//! `cargo test` for guests: each test of a guest test binary in its own fresh micro-VM.
//!
//! cargo hands the runner a test binary and libtest's command line. The runner asks the
//! binary for its tests, selects them as libtest would, boots a fresh VM per test on as many
//! threads as libtest would use, and prints libtest's report. A test that panics, crashes or
//! times out fails alone. How a binary lists and runs its tests is its [`Protocol`].

mod list_cache;
mod options;
mod report;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use hyperlight_rt::abi::test::{parse_line, Ignore, ShouldPanic, LIST, NOTE_NAME, NOTE_TYPE, RUN};

use crate::exit_code::PANIC as PANICKED;
use crate::{Captured, Config, GuestFile, HostStdio, Outcome, Output, Stream};
use list_cache::ListCache;
use options::Options;
use report::{Finished, Style};

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
    pub fn of(guest: &GuestFile) -> Option<Protocol> {
        let front = guest.front();
        if crate::elf::find_note(front, NOTE_NAME, NOTE_TYPE).is_some() {
            return Some(Protocol::Runtime);
        }
        // Every run of a guest that is no test binary pays for this search: memchr's is
        // vectorized (a plain window compare costs about 1 ms per MB).
        memchr::memmem::find(front, LIBTEST_INVOKE.as_bytes()).map(|_| Protocol::Libtest)
    }
}

/// A test's attributes as the runner reads them from its binary's list.
type Attributes = hyperlight_rt::abi::test::Attributes<String>;

/// A test as its binary lists it.
#[derive(Debug)]
struct Test {
    name: String,
    attributes: Attributes,
}

impl Test {
    fn is_ignored(&self) -> bool {
        self.attributes.ignore != Ignore::No
    }

    fn should_panic(&self) -> bool {
        self.attributes.should_panic != ShouldPanic::No
    }
}

/// Runs the tests of the test binary `elf` as libtest would and returns the exit code.
/// `config.timeout` is the time limit of every test that sets none of its own.
pub fn run(guest: &GuestFile, protocol: Protocol, args: &[OsString], config: &Config) -> i32 {
    let options = match Options::parse(args)
        .and_then(|options| options.with_environment(|name| std::env::var(name).ok()))
    {
        Ok(options) => options,
        Err(message) => {
            eprintln!("hyperlight-run: error: {message}");
            return crate::exit_code::RUNNER_FAILED;
        }
    };
    let started = Instant::now();
    let all = match list(guest, protocol, config) {
        Ok(tests) => tests,
        Err(message) => {
            eprintln!(
                "hyperlight-run: error: cannot list the tests of {}: {message}",
                guest.path().display()
            );
            return TESTS_FAILED;
        }
    };
    let selected: Vec<&Test> = all.iter().filter(|test| options.selects(test)).collect();
    let mut stdout = std::io::stdout().lock();
    if options.list {
        print_list(&mut stdout, &selected, options.terse);
        return 0;
    }

    let _ = write!(stdout, "{}", report::header(selected.len()));
    let mut style = Style::new(options.terse, selected.len());
    let (to_run, ignored): (Vec<&Test>, Vec<&Test>) = selected
        .iter()
        .partition(|test| !test.is_ignored() || options.runs_ignored());
    for test in &ignored {
        let reason = match &test.attributes.ignore {
            Ignore::Because(reason) => Some(reason.as_str()),
            _ => None,
        };
        let _ = write!(stdout, "{}", style.ignored(&test.name, reason));
    }
    let _ = stdout.flush();
    // Under a debugger each test waits for it on the one port: one test at a time.
    let threads = if config.gdb.is_some() {
        1
    } else {
        threads(options.threads, to_run.len())
    };
    // libtest's own tests say whether they expect a panic only by running (`judge`), so their
    // line waits for the run unless their output goes straight through.
    let name_first = protocol == Protocol::Runtime || options.nocapture;
    let finished = run_all(
        &to_run,
        threads,
        name_first,
        &mut style,
        &mut stdout,
        |test| run_one(guest, protocol, test, config, options.nocapture),
    );
    let summary = report::summary(
        &finished,
        ignored.len(),
        all.len() - selected.len(),
        options.show_output,
        started.elapsed(),
    );
    let _ = stdout.write_all(summary.as_bytes());
    if finished.iter().all(|test| test.passed) {
        0
    } else {
        TESTS_FAILED
    }
}

/// libtest's `--list`: a line per test, and a count unless `terse`.
fn print_list(out: &mut impl std::io::Write, tests: &[&Test], terse: bool) {
    for test in tests {
        let _ = writeln!(out, "{}: test", test.name);
    }
    if !terse {
        let _ = writeln!(
            out,
            "\n{}, 0 benchmarks",
            report::count(tests.len(), "test")
        );
    }
}

/// How many threads run `tests` tests: as asked, else one per core, never more than tests.
fn threads(asked: Option<usize>, tests: usize) -> usize {
    match (asked, tests) {
        // cargo-nextest runs one test per process: no need to ask the host for its cores.
        (_, 0 | 1) => 1,
        (Some(threads), tests) => threads.min(tests),
        (None, tests) => std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(tests),
    }
}

/// Runs `tests` on `threads` threads, showing each one's result in `style` as it ends; one at
/// a time and with `name_first`, a test is named before it runs, as libtest does.
fn run_all(
    tests: &[&Test],
    threads: usize,
    name_first: bool,
    style: &mut Style,
    out: &mut impl std::io::Write,
    run: impl Fn(&Test) -> Finished + Sync,
) -> Vec<Finished> {
    if threads == 1 && name_first {
        return tests
            .iter()
            .map(|test| {
                let _ = write!(out, "{}", style.started(&test.name, test.should_panic()));
                let _ = out.flush();
                let finished = run(test);
                let _ = write!(out, "{}", style.ended(&finished, true));
                let _ = out.flush();
                finished
            })
            .collect();
    }
    let next = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel();
    let mut finished = Vec::with_capacity(tests.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (sender, next, run) = (sender.clone(), &next, &run);
            scope.spawn(move || {
                while let Some(test) = tests.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let _ = sender.send(run(test));
                }
            });
        }
        drop(sender);
        for test in receiver {
            let _ = write!(out, "{}", style.ended(&test, false));
            let _ = out.flush();
            finished.push(test);
        }
    });
    finished
}

/// Why a test binary's tests could not be listed.
#[derive(Debug, thiserror::Error)]
enum ListError {
    #[error("cannot read `{field}` in the line {line:?}")]
    Line { field: String, line: String },
    #[error("exited with code {code}: {stderr}")]
    Exited { code: i32, stderr: String },
    #[error("{}", describe(.0))]
    Ended(Outcome),
    #[error(transparent)]
    Run(#[from] crate::Error),
}

/// The binary's tests, sorted by name as libtest sorts them.
fn list(guest: &GuestFile, protocol: Protocol, config: &Config) -> Result<Vec<Test>, ListError> {
    let mut tests = match protocol {
        Protocol::Runtime => list_lines(guest, &[LIST], config)?
            .lines()
            .map(|line| match parse_line(line) {
                Ok((name, attributes)) => Ok(Test {
                    name: name.to_owned(),
                    attributes,
                }),
                Err(field) => Err(ListError::Line {
                    field: field.to_owned(),
                    line: line.to_owned(),
                }),
            })
            .collect::<Result<Vec<Test>, ListError>>()?,
        Protocol::Libtest => {
            const LIST_TERSE: [&str; 3] = ["--list", "--format", "terse"];
            let ignored: Vec<String> = libtest_names(&list_lines(
                guest,
                &[&LIST_TERSE[..], &["--ignored"]].concat(),
                config,
            )?);
            libtest_names(&list_lines(guest, &LIST_TERSE, config)?)
                .into_iter()
                .map(|name| Test {
                    attributes: Attributes {
                        ignore: if ignored.contains(&name) {
                            Ignore::Yes
                        } else {
                            Ignore::No
                        },
                        ..Attributes::default()
                    },
                    name,
                })
                .collect()
        }
    };
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tests)
}

/// The tests of libtest's terse list (`NAME: test` lines; benchmarks are not run).
fn libtest_names(lines: &str) -> Vec<String> {
    lines
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// What the binary prints when booted with `args`, if it exits 0: from the binary's
/// [`ListCache`] when it has this file's list.
fn list_lines(guest: &GuestFile, args: &[&str], config: &Config) -> Result<String, ListError> {
    let cache = ListCache::new(guest, args);
    if let Some(list) = cache.as_ref().and_then(ListCache::read) {
        return Ok(list);
    }
    let list = boot_for_list(guest, args, config)?;
    if let Some(cache) = cache {
        cache.write(&list);
    }
    Ok(list)
}

fn boot_for_list(guest: &GuestFile, args: &[&str], config: &Config) -> Result<String, ListError> {
    // A debugger (`HYPERLIGHT_GDB`) and core files are for the tests themselves, not for
    // listing them.
    let config = &Config {
        gdb: None,
        core_dump_dir: None,
        ..config.clone()
    };
    let mut output = Captured::default();
    let mut argv = vec![guest.path().as_os_str().to_owned()];
    argv.extend(args.iter().map(OsString::from));
    match crate::run(guest, &argv, config, &mut output)?.outcome {
        Outcome::Exited(0) => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        Outcome::Exited(code) => Err(ListError::Exited {
            code,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
        other => Err(ListError::Ended(other)),
    }
}

/// Boots a fresh VM for `test` and judges how it ended.
fn run_one(
    guest: &GuestFile,
    protocol: Protocol,
    test: &Test,
    config: &Config,
    nocapture: bool,
) -> Finished {
    let mut args = vec![guest.path().as_os_str().to_owned()];
    let mut env = config.env.clone();
    match protocol {
        Protocol::Runtime => args.extend([RUN.into(), OsStr::new(&test.name).to_owned()]),
        Protocol::Libtest => env.push(format!("{LIBTEST_INVOKE}={}", test.name).into()),
    }
    let config = Config {
        env,
        timeout: test.attributes.timeout.or(config.timeout),
        core_dump_label: Some(test.name.clone()),
        ..config.clone()
    };
    let mut output = TestOutput {
        text: Vec::new(),
        stderr: Vec::new(),
        passthrough: nocapture.then(HostStdio::new),
    };
    let (verdict, core_dump) = match crate::run(guest, &args, &config, &mut output) {
        Ok(report) => (
            judge(protocol, &test.attributes, &report.outcome, &output),
            report.core_dump,
        ),
        Err(err) => (Err(Failure(format!("hyperlight-run: error: {err}"))), None),
    };
    let should_panic = match protocol {
        Protocol::Runtime => test.should_panic(),
        Protocol::Libtest => libtest_should_panic(verdict.is_ok(), &output.stderr),
    };
    let mut text = output.text;
    if let Err(Failure(why)) = &verdict {
        text.extend_from_slice(why.as_bytes());
    }
    if let Some(line) = keep_core_dump(core_dump, verdict.is_ok()) {
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(line.as_bytes());
    }
    Finished {
        name: test.name.clone(),
        should_panic,
        passed: verdict.is_ok(),
        output: text,
    }
}

/// A failed test's core file (named after the test) gets a line in its output; a passing
/// test's (a `#[should_panic]` one's) is removed.
fn keep_core_dump(
    core_dump: Option<Result<std::path::PathBuf, crate::CoreDumpError>>,
    passed: bool,
) -> Option<String> {
    match core_dump? {
        Ok(path) if passed => {
            let _ = std::fs::remove_file(&path);
            None
        }
        Ok(path) => Some(format!("hyperlight-run: core dumped to {}", path.display())),
        Err(_) if passed => None,
        Err(reason) => Some(format!("hyperlight-run: error: no core dump: {reason}")),
    }
}

/// Why a test failed: what to add to its output to say so (nothing when its own output says
/// it, as a panic's does).
struct Failure(String);

/// Whether a test passed.
fn judge(
    protocol: Protocol,
    attributes: &Attributes,
    outcome: &Outcome,
    output: &TestOutput,
) -> Result<(), Failure> {
    let Outcome::Exited(code) = *outcome else {
        return Err(Failure(describe(outcome)));
    };
    let said = || Failure(String::new());
    match (protocol, code, &attributes.should_panic) {
        // libtest judged the test itself, `#[should_panic]` included, and said why it failed.
        (Protocol::Libtest, LIBTEST_PASSED, _) => Ok(()),
        (Protocol::Libtest, _, _) => Err(said()),
        (Protocol::Runtime, 0, ShouldPanic::No) => Ok(()),
        (Protocol::Runtime, 0, _) => Err(Failure(match &attributes.location {
            // libtest's words, where they name the test's place.
            Some(location) => format!("note: test did not panic as expected at {location}"),
            None => "note: test did not panic as expected".to_owned(),
        })),
        (Protocol::Runtime, PANICKED, ShouldPanic::No) => Err(said()),
        (Protocol::Runtime, PANICKED, ShouldPanic::Yes) => Ok(()),
        (Protocol::Runtime, PANICKED, ShouldPanic::Expected(expected)) => {
            let message = panic_message(&output.stderr).unwrap_or_default();
            if message.contains(expected.as_str()) {
                Ok(())
            } else {
                Err(Failure(format!(
                    "note: panic did not contain expected string\n      panic message: \
                     {message:?}\n expected substring: {expected:?}"
                )))
            }
        }
        (Protocol::Runtime, code, _) => {
            Err(Failure(format!("note: the test exited with code {code}")))
        }
    }
}

/// Whether a libtest test was `#[should_panic]`, as its run tells: libtest's child process
/// passes such a test only after std's panic hook printed the panic, and fails one with a note
/// of its own; a plain test passes without a panic and fails without a note.
fn libtest_should_panic(passed: bool, stderr: &[u8]) -> bool {
    let stderr = String::from_utf8_lossy(stderr);
    if passed {
        stderr
            .lines()
            .any(|line| line.starts_with("thread '") && line.contains(" panicked at "))
    } else {
        const NOTES: [&str; 3] = [
            "test did not panic as expected",
            "panic did not contain expected string",
            "expected panic with string value",
        ];
        stderr
            .lines()
            .any(|line| NOTES.iter().any(|note| line.starts_with(note)))
    }
}

/// The message of the panic the runtime reported last on stderr: what follows its line
/// `panicked at FILE:LINE:COL:` (or `panicked:`), without the final newline.
fn panic_message(stderr: &[u8]) -> Option<String> {
    let stderr = String::from_utf8_lossy(stderr);
    let mut message = None;
    let mut offset = 0;
    for line in stderr.split_inclusive('\n') {
        offset += line.len();
        let line = line.trim_end_matches('\n');
        if line == "panicked:" || (line.starts_with("panicked at ") && line.ends_with(':')) {
            message = Some(offset);
        }
    }
    message.map(|start| {
        let rest = &stderr[start..];
        rest.strip_suffix('\n').unwrap_or(rest).to_owned()
    })
}

/// A test's output: in order as one text, as libtest captures a test's stdout and stderr,
/// unless it goes straight to the runner's own (`--nocapture`); and its stderr apart, where
/// the runtime reports a panic's message.
struct TestOutput {
    text: Vec<u8>,
    stderr: Vec<u8>,
    passthrough: Option<HostStdio>,
}

impl Output for TestOutput {
    fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        if stream == Stream::Stderr {
            self.stderr.extend_from_slice(bytes);
        }
        match &mut self.passthrough {
            Some(host) => host.write(stream, bytes),
            None => {
                self.text.extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}

/// How a run that did not exit ended, as the runner reports it.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Exited(code) => format!("exited with code {code}"),
        Outcome::Crashed(report) => {
            let mut text = format!("hyperlight-run: error: {}", report.summary);
            if !report.backtrace.is_empty() {
                let _ = write!(text, "\nguest backtrace:\n{}", report.backtrace.join("\n"));
            }
            text
        }
        Outcome::TimedOut(after) => format!("hyperlight-run: error: timed out after {after:?}"),
        Outcome::OutputClosed => "hyperlight-run: error: the test's output was closed".to_owned(),
        Outcome::Killed => "hyperlight-run: error: the debugger killed the test".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperlight_rt::abi::test::ListLine;

    #[test]
    fn libtests_should_panic_tests_are_told_by_their_run() {
        let panicked =
            b"thread 'main' (1) panicked at src/lib.rs:9:9:\nattempt to divide by zero\n";
        assert!(libtest_should_panic(true, panicked));
        assert!(!libtest_should_panic(true, b"a plain test's own output\n"));
        let wrong = b"panic did not contain expected string\n      panic message: \"overflow\"\n";
        assert!(libtest_should_panic(false, wrong));
        assert!(libtest_should_panic(
            false,
            b"test did not panic as expected at src/lib.rs:3:4\n"
        ));
        assert!(!libtest_should_panic(false, panicked));
    }

    #[test]
    fn reads_libtests_terse_list() {
        let listed = "tests::adds: test\ntests::slow: test\nbench::fast: bench\n";
        assert_eq!(libtest_names(listed), ["tests::adds", "tests::slow"]);
    }

    #[test]
    fn finds_the_panic_message_the_runtime_printed() {
        let stderr = b"panicked at src/main.rs:3:5:\nfirst\npanicked at src/main.rs:9:5:\nindex 7\nout of range\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("index 7\nout of range")
        );
        assert_eq!(panic_message(b"panicked:\nboom\n").as_deref(), Some("boom"));
        assert_eq!(panic_message(b"no panic here\n"), None);
    }

    /// The attributes travel through the list line and back, escapes and all; a plain name (a
    /// runtime from before attributes) has none, and unknown keys are skipped.
    #[test]
    fn list_lines_carry_the_attributes() {
        let attributes = hyperlight_rt::abi::test::Attributes {
            ignore: Ignore::Because("slow\tand\\heavy"),
            should_panic: ShouldPanic::Expected("line one\nline two"),
            timeout: Some(std::time::Duration::from_millis(500)),
            location: Some("tested/src/main.rs:12:8"),
        };
        let line = ListLine {
            name: "tests::slow",
            attributes: &attributes,
        }
        .to_string();
        assert_eq!(
            line,
            "tests::slow\tignore=slow\\tand\\\\heavy\tshould_panic=line one\\nline two\ttimeout=500000000ns\
             \tlocation=tested/src/main.rs:12:8"
        );
        let (name, read) = parse_line::<String>(&line).unwrap();
        assert_eq!(name, "tests::slow");
        assert_eq!(
            read,
            Attributes {
                ignore: Ignore::Because("slow\tand\\heavy".into()),
                should_panic: ShouldPanic::Expected("line one\nline two".into()),
                timeout: attributes.timeout,
                location: Some("tested/src/main.rs:12:8".into()),
            }
        );
        assert_eq!(
            parse_line::<String>("tests::plain").unwrap(),
            ("tests::plain", Attributes::default())
        );
        assert_eq!(
            parse_line::<String>("t\tignore\tshould_panic\tcolor=blue")
                .unwrap()
                .1,
            Attributes {
                ignore: Ignore::Yes,
                should_panic: ShouldPanic::Yes,
                ..Attributes::default()
            }
        );
        assert_eq!(parse_line::<String>("t\ttimeout=soon"), Err("timeout=soon"));
        assert_eq!(parse_line::<String>("t\tignore=a\\qb"), Err("ignore=a\\qb"));
    }
}
