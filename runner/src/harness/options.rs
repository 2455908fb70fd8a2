//! The part of libtest's command line a guest test binary understands, and which tests it
//! selects.

use std::ffi::OsString;

use super::Test;

/// A command line or environment libtest would refuse too.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("--test-threads takes a positive number, not `{0}`")]
    Threads(String),
    #[error("RUST_TEST_THREADS is `{0}`, should be a positive integer")]
    ThreadsVariable(String),
    #[error("unsupported test option `{0}`")]
    Unsupported(String),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    pub list: bool,
    /// `--format terse`, or `-q`: the list without its count, the report terse.
    pub terse: bool,
    /// `--ignored`: only the ignored tests; `--include-ignored`: all of them.
    ignored: bool,
    include_ignored: bool,
    /// `--nocapture`: tests write straight to the runner's stdout and stderr.
    pub nocapture: bool,
    /// `--show-output`: passing tests' output too, after the tests.
    pub show_output: bool,
    pub threads: Option<usize>,
}

impl Options {
    /// Parses what cargo passes after the binary (`cargo test -- ARGS` included). Flags that
    /// change nothing here (`--color`, `-q`, ...) are accepted and ignored.
    pub fn parse(args: &[OsString]) -> Result<Options, OptionsError> {
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
                    .ok_or_else(|| OptionsError::MissingValue(name.to_owned()))
            };
            match flag.as_str() {
                "--list" => options.list = true,
                "--exact" => options.exact = true,
                "--nocapture" | "--no-capture" => options.nocapture = true,
                "--show-output" => options.show_output = true,
                "--skip" => options.skip.push(value("--skip")?),
                "--format" => options.terse = value("--format")? == "terse",
                "--test-threads" => {
                    let threads = value("--test-threads")?;
                    let parsed = threads.parse().ok().filter(|&n| n > 0);
                    options.threads = Some(parsed.ok_or(OptionsError::Threads(threads))?);
                }
                "--color" | "-Z" | "--logfile" | "--report-time" => {
                    let _ = value(&flag)?;
                }
                "--ignored" => options.ignored = true,
                "--include-ignored" => options.include_ignored = true,
                "-q" | "--quiet" => options.terse = true,
                "--test" | "--bench" => {}
                other if other.starts_with('-') => {
                    return Err(OptionsError::Unsupported(other.to_owned()))
                }
                _ => options.filters.push(arg),
            }
        }
        Ok(options)
    }

    /// What libtest also reads from the environment, where the command line says nothing:
    /// `RUST_TEST_THREADS` (a positive number) and `RUST_TEST_NOCAPTURE` (any value but `0`).
    pub fn with_environment(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Options, OptionsError> {
        if self.threads.is_none() {
            if let Some(threads) = var("RUST_TEST_THREADS") {
                let parsed = threads.parse().ok().filter(|&n: &usize| n > 0);
                self.threads = Some(parsed.ok_or(OptionsError::ThreadsVariable(threads))?);
            }
        }
        self.nocapture |= var("RUST_TEST_NOCAPTURE").is_some_and(|value| value != "0");
        Ok(self)
    }

    /// Whether the test is run, or counted as ignored, rather than filtered out.
    pub fn selects(&self, test: &Test) -> bool {
        self.matches(&test.name) && (!self.ignored || test.is_ignored())
    }

    /// Whether an ignored test is run all the same.
    pub fn runs_ignored(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use hyperlight_rt::abi::test::{Attributes, Ignore};

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
        let test = |name: &str, ignore| Test {
            name: name.to_owned(),
            attributes: Attributes {
                ignore,
                ..Attributes::default()
            },
        };
        let only_ignored = parse(&["--ignored"]);
        assert!(
            only_ignored.selects(&test("slow", Ignore::Yes))
                && only_ignored.selects(&test("slower", Ignore::Because("why".into())))
                && !only_ignored.selects(&test("fast", Ignore::No))
        );
        assert!(parse(&[]).selects(&test("slow", Ignore::Yes)) && !parse(&[]).runs_ignored());
        assert!(parse(&["--include-ignored"]).runs_ignored());
    }

    #[test]
    fn reads_cargos_flags() {
        let options = parse(&[
            "--list",
            "--format",
            "terse",
            "--test-threads=2",
            "--nocapture",
            "--show-output",
            "-q",
        ]);
        assert!(options.list && options.terse && options.nocapture && options.show_output);
        assert_eq!(options.threads, Some(2));
        assert!(Options::parse(&[OsString::from("--test-threads=0")]).is_err());
        let env = |threads: &'static str, nocapture: &'static str| {
            move |name: &str| match name {
                "RUST_TEST_THREADS" => Some(threads.to_owned()),
                "RUST_TEST_NOCAPTURE" => Some(nocapture.to_owned()),
                _ => None,
            }
        };
        let from_env = parse(&[]).with_environment(env("3", "1")).unwrap();
        assert_eq!((from_env.threads, from_env.nocapture), (Some(3), true));
        // The command line wins; `RUST_TEST_NOCAPTURE=0` means capture.
        let both = parse(&["--test-threads", "1"])
            .with_environment(env("3", "0"))
            .unwrap();
        assert_eq!((both.threads, both.nocapture), (Some(1), false));
        assert!(parse(&[]).with_environment(env("none", "0")).is_err());
        assert!(Options::parse(&[OsString::from("--bogus")]).is_err());
    }
}
