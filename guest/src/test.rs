//! `cargo test` inside micro-VMs: the test runner behind
//! `#![test_runner(hyperlight_rt::test_runner)]`.
//!
//! A test binary boots once per test. `hyperlight-run` recognises it by the note
//! [`crate::tests!`] or [`crate::main!`] put into test builds, asks it for its tests, then
//! boots a fresh VM for each selected test, so a test that panics or crashes fails alone
//! ([`crate::abi::test`] has the protocol). The runner prints libtest's report; the guest only
//! lists and runs.

use crate::abi::test::{LIST, RUN};
use crate::{print, println};

/// Exit code of a test binary asked to run a test it does not have.
const NO_SUCH_TEST: i32 = 2;

/// A `#[test_case]`: any function without arguments.
pub trait Testable {
    /// The path libtest would print, `module::test` (without the crate's name).
    fn name(&self) -> &'static str;
    fn run(&self);
}

impl<T: Fn()> Testable for T {
    fn name(&self) -> &'static str {
        let path = core::any::type_name::<T>();
        path.split_once("::").map_or(path, |(_crate, rest)| rest)
    }

    fn run(&self) {
        self()
    }
}

/// The `test_runner` of a guest's test build: lists the tests or runs one of them, as the
/// runner asks. Run by hand (no runner protocol), it runs them all in this one VM.
pub fn test_runner(tests: &[&dyn Testable]) {
    let mut args = crate::env::args();
    let _program = args.next();
    match args.next() {
        Some(LIST) => {
            for test in tests {
                println!("{}", test.name());
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
                print!("test {} ... ", test.name());
                test.run();
                println!("ok");
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

/// The entry point of an integration test (`tests/*.rs`) of a guest crate:
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
