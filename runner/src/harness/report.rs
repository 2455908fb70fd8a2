//! libtest's report, as `cargo test` prints it: `running N tests`, a line per test as it ends,
//! the output of the passing tests on request (`--show-output`), that of the failing ones with
//! why they failed, and the summary.

use std::fmt::Write as _;
use std::time::Duration;

/// How one test ended, with what it printed.
pub struct Finished {
    pub name: String,
    pub should_panic: bool,
    pub passed: bool,
    /// The test's output (empty with `--nocapture`), then, for a failure, why it failed: a
    /// note as libtest writes them (`note: ...`) or the runner's account of a crash.
    pub output: Vec<u8>,
}

/// "running 3 tests".
pub fn header(tests: usize) -> String {
    format!("\nrunning {}\n", count(tests, "test"))
}

/// libtest's terse report (`-q`, `--format terse`) puts the count after this many results.
const TERSE_COLUMNS: usize = 88;

/// How the tests' results are shown as they come: a line each, or libtest's terse report (a
/// character each, a line for each failure, and the count every [`TERSE_COLUMNS`] results).
pub enum Style {
    Lines,
    Terse {
        done: usize,
        column: usize,
        total: usize,
    },
}

impl Style {
    pub fn new(terse: bool, total: usize) -> Style {
        if terse {
            Style::Terse {
                done: 0,
                column: 0,
                total,
            }
        } else {
            Style::Lines
        }
    }

    /// What a test that is not run because it is ignored shows.
    pub fn ignored(&mut self, name: &str, reason: Option<&str>) -> String {
        match self {
            Style::Lines => match reason {
                Some(reason) => format!("test {name} ... ignored, {reason}\n"),
                None => format!("test {name} ... ignored\n"),
            },
            Style::Terse { .. } => self.short("i"),
        }
    }

    /// What shows before a test runs, when tests run one at a time.
    pub fn started(&self, name: &str, should_panic: bool) -> String {
        match self {
            Style::Lines => line_start(name, should_panic),
            Style::Terse { .. } => String::new(),
        }
    }

    /// What shows when `test` ended; `started` says whether [`Style::started`] showed first.
    pub fn ended(&mut self, test: &Finished, started: bool) -> String {
        match self {
            Style::Lines => {
                let start = if started {
                    String::new()
                } else {
                    line_start(&test.name, test.should_panic)
                };
                format!("{start}{}\n", verdict(test.passed))
            }
            Style::Terse { .. } if test.passed => self.short("."),
            Style::Terse {
                done,
                column,
                total,
            } => {
                let mut text = String::new();
                if *column != 0 {
                    let _ = writeln!(text, " {done}/{total}");
                    *column = 0;
                }
                *done += 1;
                let _ = writeln!(text, "{} --- FAILED", test.name);
                text
            }
        }
    }

    fn short(&mut self, result: &str) -> String {
        let Style::Terse {
            done,
            column,
            total,
        } = self
        else {
            unreachable!("only the terse report has short results")
        };
        *done += 1;
        *column += 1;
        if *column % TERSE_COLUMNS == TERSE_COLUMNS - 1 {
            *column = 0;
            format!("{result} {done}/{total}\n")
        } else {
            result.to_owned()
        }
    }
}

/// A test's line up to its verdict: `test NAME ... ` or `test NAME - should panic ... `.
fn line_start(name: &str, should_panic: bool) -> String {
    let kind = if should_panic { " - should panic" } else { "" };
    format!("test {name}{kind} ... ")
}

/// The rest of the line: `ok` or `FAILED`.
fn verdict(passed: bool) -> &'static str {
    if passed {
        "ok"
    } else {
        "FAILED"
    }
}

/// Everything after the tests' lines: outputs, the failures and `test result: ...`.
pub fn summary(
    finished: &[Finished],
    ignored: usize,
    filtered_out: usize,
    show_output: bool,
    elapsed: Duration,
) -> String {
    let (mut passed, mut failed): (Vec<&Finished>, Vec<&Finished>) =
        finished.iter().partition(|test| test.passed);
    passed.sort_by(|a, b| a.name.cmp(&b.name));
    failed.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    if show_output {
        outputs(&mut text, "successes", &passed);
    }
    if !failed.is_empty() {
        outputs(&mut text, "failures", &failed);
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    let _ = write!(
        text,
        "\ntest result: {verdict}. {} passed; {} failed; {ignored} ignored; 0 measured; \
         {filtered_out} filtered out; finished in {:.2}s\n\n",
        passed.len(),
        failed.len(),
        elapsed.as_secs_f64()
    );
    text
}

/// A section of outputs, `---- NAME stdout ----` each (tests that printed nothing have none),
/// then the section's list of names.
fn outputs(text: &mut String, section: &str, tests: &[&Finished]) {
    let _ = write!(text, "\n{section}:\n");
    let printed: String = tests
        .iter()
        .filter(|test| !test.output.is_empty())
        .map(|test| {
            let output = String::from_utf8_lossy(&test.output);
            format!("---- {} stdout ----\n{output}\n", test.name)
        })
        .collect();
    if !printed.is_empty() {
        text.push('\n');
        text.push_str(&printed);
    }
    let _ = write!(text, "\n{section}:\n");
    for test in tests {
        let _ = writeln!(text, "    {}", test.name);
    }
}

/// "1 test", "2 tests", as libtest counts.
pub fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(name: &str, passed: bool, output: &str) -> Finished {
        Finished {
            name: name.to_owned(),
            should_panic: false,
            passed,
            output: output.as_bytes().to_vec(),
        }
    }

    /// The sections as libtest 1.99 prints them for the same outcomes.
    #[test]
    fn sections_are_libtests() {
        let tests = [
            finished("tests::quiet", true, ""),
            finished("tests::loud", true, "hello\n"),
            finished(
                "tests::fails",
                false,
                "out\npanicked at src/main.rs:1:1:\nboom\n",
            ),
            finished(
                "tests::no_panic",
                false,
                "note: test did not panic as expected",
            ),
        ];
        let elapsed = Duration::from_millis(20);
        assert_eq!(
            summary(&tests, 1, 2, true, elapsed),
            "\nsuccesses:\n\n---- tests::loud stdout ----\nhello\n\n\
             \nsuccesses:\n    tests::loud\n    tests::quiet\n\
             \nfailures:\n\n---- tests::fails stdout ----\nout\npanicked at src/main.rs:1:1:\nboom\n\n\
             ---- tests::no_panic stdout ----\nnote: test did not panic as expected\n\
             \nfailures:\n    tests::fails\n    tests::no_panic\n\
             \ntest result: FAILED. 2 passed; 2 failed; 1 ignored; 0 measured; 2 filtered out; \
             finished in 0.02s\n\n"
        );
        assert_eq!(
            summary(&tests[..1], 0, 0, false, elapsed),
            "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; \
             finished in 0.02s\n\n"
        );
        let mut lines = Style::new(false, 2);
        let should_panic = Finished {
            should_panic: true,
            ..finished("tests::sp", true, "")
        };
        assert_eq!(
            lines.ended(&should_panic, false),
            "test tests::sp - should panic ... ok\n"
        );
        assert_eq!(
            lines.ignored("tests::slow", Some("too slow")),
            "test tests::slow ... ignored, too slow\n"
        );
    }

    /// The results part of `cargo test -q` with libtest 1.99, tests run in order: `t005`
    /// ignored, `t003` and `t090` failing of 95; `t150` failing of 200 (the count after every
    /// 87 results in a row).
    #[test]
    fn the_terse_report_is_libtests() {
        let terse = |total: usize, failing: &[usize], ignored: &[usize]| {
            let mut style = Style::new(true, total);
            let mut text = String::new();
            for n in 0..total {
                let name = format!("tests::t{n:03}");
                if ignored.contains(&n) {
                    text += &style.ignored(&name, None);
                } else {
                    text += &style.ended(&finished(&name, !failing.contains(&n), ""), false);
                }
            }
            text
        };
        assert_eq!(
            terse(95, &[3, 90], &[5]),
            format!(
                "... 3/95\ntests::t003 --- FAILED\n.i{} 90/95\ntests::t090 --- FAILED\n....",
                ".".repeat(84)
            )
        );
        assert_eq!(
            terse(200, &[150], &[]),
            format!(
                "{} 87/200\n{} 150/200\ntests::t150 --- FAILED\n{}",
                ".".repeat(87),
                ".".repeat(63),
                ".".repeat(49)
            )
        );
    }
}
