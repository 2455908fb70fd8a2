//! The runner recognises a test binary by a note (name [`NOTE_NAME`], type [`NOTE_TYPE`], empty
//! description) and boots it once with [`LIST`] to learn its tests, one [`ListLine`] each, then
//! once per test with [`RUN`] and the test's name as arguments.

use core::fmt;
use core::time::Duration;

pub const NOTE_NAME: &[u8] = b"hyperlight-rt";
pub const NOTE_TYPE: u32 = 1;
/// First argument asking a test binary to print its tests, one [`ListLine`] each.
pub const LIST: &str = "--hyperlight-list-tests";
/// First argument asking a test binary to run the test named by the second argument.
pub const RUN: &str = "--hyperlight-run-test";

/// Separates a listed test's name from its attributes, and the attributes from each other.
pub const SEPARATOR: char = '\t';
const IGNORE: &str = "ignore";
const SHOULD_PANIC: &str = "should_panic";
const TIMEOUT: &str = "timeout";
const LOCATION: &str = "location";

/// What `#[hyperlight_rt::test]` says about a test beside its name: libtest's `#[ignore]` and
/// `#[should_panic]`, and a time limit. `S` is the string type (`&'static str` in the guest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attributes<S> {
    pub ignore: Ignore<S>,
    pub should_panic: ShouldPanic<S>,
    /// The test's own time limit; without one the runner's `--timeout` applies.
    pub timeout: Option<Duration>,
    /// Where the test function is, `FILE:LINE:COLUMN` as libtest reports it.
    pub location: Option<S>,
}

/// `#[ignore]`: the test runs only when asked (`--ignored`, `--include-ignored`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ignore<S> {
    #[default]
    No,
    Yes,
    /// `#[ignore = "reason"]`.
    Because(S),
}

/// `#[should_panic]`: the test passes only if it panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShouldPanic<S> {
    #[default]
    No,
    Yes,
    /// `#[should_panic(expected = "...")]`: and only if the panic message contains this.
    Expected(S),
}

/// One line of a test binary's answer to [`LIST`]: the test's name (`module::test`, as libtest
/// names tests), then each attribute that is not at its default, after a [`SEPARATOR`]:
/// `ignore` or `ignore=REASON`, `should_panic` or `should_panic=EXPECTED`, `timeout=NANOSns`,
/// `location=FILE:LINE:COLUMN`.
/// In values, `\`, tab, newline and carriage return are written `\\`, `\t`, `\n`, `\r`.
/// A line without attributes is just the name, as runtimes before attributes listed every test.
pub struct ListLine<'a, S> {
    pub name: &'a str,
    pub attributes: &'a Attributes<S>,
}

impl<S: AsRef<str>> fmt::Display for ListLine<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        let field = |f: &mut fmt::Formatter<'_>, key: &str, value: Option<&str>| {
            write!(f, "{SEPARATOR}{key}")?;
            match value {
                Some(value) => write!(f, "={}", Escaped(value)),
                None => Ok(()),
            }
        };
        match &self.attributes.ignore {
            Ignore::No => {}
            Ignore::Yes => field(f, IGNORE, None)?,
            Ignore::Because(reason) => field(f, IGNORE, Some(reason.as_ref()))?,
        }
        match &self.attributes.should_panic {
            ShouldPanic::No => {}
            ShouldPanic::Yes => field(f, SHOULD_PANIC, None)?,
            ShouldPanic::Expected(expected) => field(f, SHOULD_PANIC, Some(expected.as_ref()))?,
        }
        if let Some(timeout) = self.attributes.timeout {
            write!(f, "{SEPARATOR}{TIMEOUT}={}ns", timeout.as_nanos())?;
        }
        if let Some(location) = &self.attributes.location {
            field(f, LOCATION, Some(location.as_ref()))?;
        }
        Ok(())
    }
}

/// Reads a [`ListLine`]: the test's name and its attributes. Keys it does not know are skipped,
/// so that later runtimes may add some; a known key with a malformed value is an error naming
/// that field.
pub fn parse_line<S: FromIterator<char>>(line: &str) -> Result<(&str, Attributes<S>), &str> {
    let mut fields = line.split(SEPARATOR);
    let name = fields.next().unwrap_or_default();
    let mut attributes = Attributes {
        ignore: Ignore::No,
        should_panic: ShouldPanic::No,
        timeout: None,
        location: None,
    };
    for field in fields {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (field, None),
        };
        let text = |value| {
            let chars = unescaped(value);
            match chars.clone().all(|c| c.is_some()) {
                true => Ok(chars.flatten().collect()),
                false => Err(field),
            }
        };
        match (key, value) {
            (IGNORE, None) => attributes.ignore = Ignore::Yes,
            (IGNORE, Some(reason)) => attributes.ignore = Ignore::Because(text(reason)?),
            (SHOULD_PANIC, None) => attributes.should_panic = ShouldPanic::Yes,
            (SHOULD_PANIC, Some(expected)) => {
                attributes.should_panic = ShouldPanic::Expected(text(expected)?)
            }
            (TIMEOUT, Some(nanos)) => {
                let nanos = nanos.strip_suffix("ns").and_then(|n| n.parse().ok());
                attributes.timeout = Some(Duration::from_nanos(nanos.ok_or(field)?));
            }
            (TIMEOUT, None) => return Err(field),
            (LOCATION, Some(location)) => attributes.location = Some(text(location)?),
            _ => {}
        }
    }
    Ok((name, attributes))
}

/// A value as [`ListLine`] writes it.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\t' => f.write_str("\\t")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

/// The characters an escaped value stands for, `None` for each malformed escape.
fn unescaped(value: &str) -> impl Iterator<Item = Option<char>> + Clone + '_ {
    let mut chars = value.chars();
    core::iter::from_fn(move || {
        let c = chars.next()?;
        Some(match c {
            '\\' => match chars.next() {
                Some('\\') => Some('\\'),
                Some('t') => Some('\t'),
                Some('n') => Some('\n'),
                Some('r') => Some('\r'),
                _ => None,
            },
            c => Some(c),
        })
    })
}
