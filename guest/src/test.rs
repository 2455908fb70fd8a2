//! `cargo test` inside micro-VMs: the test runner behind
//! `#![test_runner(hyperlight_rt::test_runner)]`, and what `#[hyperlight_rt::test]` expands to.
//!
//! A test binary boots once per test. `hyperlight-run` recognises it by the note
//! [`crate::tests!`] or [`crate::main!`] put into test builds, asks it for its tests, then
//! boots a fresh VM for each selected test, so a test that panics or crashes fails alone
//! ([`crate::abi::test`] has the protocol). The runner judges each test (`#[should_panic]`
//! included) and prints libtest's report; the guest only lists and runs.

use core::time::Duration;

use crate::abi::test::{ListLine, LIST, RUN};
use crate::{print, println};

pub use crate::abi::test::{Ignore, ShouldPanic};

/// What `#[hyperlight_rt::test]` says about a test beside its name.
pub type Attributes = crate::abi::test::Attributes<&'static str>;

/// Exit code of a test binary asked to run a test it does not have.
const NO_SUCH_TEST: i32 = 2;

/// A test: a `#[test_case]` (any function without arguments) or a [`Test`].
pub trait Testable {
    /// The path libtest would print, `module::test` (without the crate's name).
    fn name(&self) -> &'static str;
    /// What the test's attributes say; a `#[test_case]` has none.
    fn attributes(&self) -> Attributes {
        Attributes::default()
    }
    fn run(&self);
}

impl<T: Fn()> Testable for T {
    fn name(&self) -> &'static str {
        without_crate(core::any::type_name::<T>())
    }

    fn run(&self) {
        self()
    }
}

/// A test declared with `#[hyperlight_rt::test]`, which writes this.
#[derive(Debug)]
pub struct Test {
    /// `module_path!()` and the function's name: `crate::module::test`.
    pub path: &'static str,
    /// Calls the test function and turns what it returns into an exit code, as for `main`.
    pub run: fn() -> i32,
    pub attributes: Attributes,
}

impl Testable for Test {
    fn name(&self) -> &'static str {
        without_crate(self.path)
    }

    fn attributes(&self) -> Attributes {
        self.attributes
    }

    fn run(&self) {
        let code = (self.run)();
        if code != 0 {
            crate::process::exit(code);
        }
    }
}

/// A test's time limit, `#[hyperlight_rt::test(timeout = "500ms")]`. Evaluated when the test
/// compiles, so a malformed one is a compile error.
#[doc(hidden)]
pub const fn timeout(text: &str) -> Duration {
    match crate::abi::duration::parse(text) {
        Some(limit) => limit,
        None => panic!("timeout: not a duration like 500ms, 10s or 2m"),
    }
}

fn without_crate(path: &'static str) -> &'static str {
    path.split_once("::").map_or(path, |(_crate, rest)| rest)
}

/// The `test_runner` of a guest's test build: lists the tests or runs one of them, as the
/// runner asks. Run by hand (no runner protocol), it runs in this one VM every test that can
/// pass in it: neither ignored nor expected to panic.
pub fn test_runner(tests: &[&dyn Testable]) {
    let mut args = crate::env::args();
    let _program = args.next();
    match args.next() {
        Some(LIST) => {
            for test in tests {
                let attributes = test.attributes();
                let name = test.name();
                println!(
                    "{}",
                    ListLine {
                        name,
                        attributes: &attributes
                    }
                );
            }
        }
        Some(RUN) => {
            let wanted = args.next().unwrap_or_default();
            match tests.iter().find(|test| test.name() == wanted) {
                Some(test) => test.run(),
                None => {
                    crate::eprintln!("no test named `{wanted}` in this binary");
                    crate::process::exit(NO_SUCH_TEST);
                }
            }
        }
        _ => {
            println!("running {} tests in one VM", tests.len());
            for test in tests {
                let attributes = test.attributes();
                print!("test {} ... ", test.name());
                if attributes.ignore != Ignore::No {
                    println!("ignored");
                } else if attributes.should_panic != ShouldPanic::No {
                    println!("skipped (should panic: needs a VM of its own)");
                } else {
                    test.run();
                    println!("ok");
                }
            }
        }
    }
}

/// The note that marks a test binary ([`crate::abi::test::NOTE_NAME`], type 1, no
/// description). The linker never discards notes, so an otherwise unreferenced static is
/// enough.
#[doc(hidden)]
#[macro_export]
macro_rules! __test_note {
    () => {
        #[used]
        #[unsafe(link_section = ".note.hyperlight-rt-tests")]
        static __HYPERLIGHT_RT_TESTS: [u8; 28] =
            *b"\x0e\0\0\0\0\0\0\0\x01\0\0\0hyperlight-rt\0\0\0";
    };
}

/// The entry point of an integration test (`tests/*.rs`) of a guest crate, and of a library
/// crate's unit tests (in `src/lib.rs`, under `#[cfg(test)]`):
///
/// ```ignore
/// #![no_std]
/// #![no_main]
/// #![feature(custom_test_frameworks)]
/// #![test_runner(hyperlight_rt::test_runner)]
/// #![reexport_test_harness_main = "test_main"]
/// hyperlight_rt::tests!();
/// ```
#[macro_export]
macro_rules! tests {
    () => {
        $crate::__test_note!();

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "Rust" fn __hyperlight_main() -> i32 {
            test_main();
            0
        }
    };
}
