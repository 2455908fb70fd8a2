//! A guest to run under gdb and lldb (the runner's tests/debugger.rs): a call to step into,
//! locals to print (a `Vec` of `String`s for the pretty printers), a known exit code, and unit
//! tests to debug by name and one after another. The tests find lines
//! by the `// line:` markers.
#![no_std]
#![no_main]
#![cfg_attr(test, feature(custom_test_frameworks), test_runner(hyperlight_rt::test_runner), reexport_test_harness_main = "test_main")]

use hyperlight_rt::alloc::string::String;
use hyperlight_rt::alloc::vec::Vec;

hyperlight_rt::main!(main);

/// Read through memory where it is used, so that a debugger's write to it (in a read-only
/// page) changes what the guest does next.
static FACTOR: u32 = 2;

/// Out of line, so that it has a frame of its own to step into.
#[inline(never)]
fn scale(value: u32, factor: u32) -> u32 {
    let product = value * factor; // line: scale
    product + 1
}

fn main() -> i32 {
    let base = 20; // line: main
    // SAFETY: reading a static.
    let factor = unsafe { core::ptr::read_volatile(&FACTOR) };
    let scaled = scale(base, factor); // line: call
    let words: Vec<String> = ["scaled", "by"].map(String::from).into();
    hyperlight_rt::println!("{} {scaled}", words[0]); // line: print
    scaled as i32 - 38
}

#[cfg(test)]
mod tests {
    #[hyperlight_rt::test]
    fn scales_by_two() {
        let doubled = super::scale(5, 2); // line: test
        assert_eq!(doubled, 11);
    }

    #[hyperlight_rt::test]
    fn scales_by_three() {
        assert_eq!(super::scale(5, 3), 16);
    }
}
