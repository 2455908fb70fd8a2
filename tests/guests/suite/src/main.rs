//! A guest whose tests pass, panic and fault: `cargo test` must run each in its own VM and
//! report 1 passed, 2 failed.
#![no_std]
#![no_main]
#![cfg_attr(test, feature(custom_test_frameworks), test_runner(hyperlight_rt::test_runner), reexport_test_harness_main = "test_main")]

use hyperlight_rt::println;

hyperlight_rt::main!(main);

fn main() {
    println!("the suite guest, not under test: 2 + 2 = {}", add(2, 2));
}

fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[cfg(test)]
mod tests {
    use hyperlight_rt::println;

    #[test_case]
    fn adds() {
        println!("output of a passing test is not shown");
        assert_eq!(super::add(2, 2), 4);
    }

    #[test_case]
    fn panics() {
        println!("output of a failing test is shown");
        assert_eq!(super::add(2, 2), 5, "two and two");
    }

    #[test_case]
    fn faults() {
        // SAFETY: not safe at all: the test is that this address is unmapped.
        let value = unsafe { core::ptr::read_volatile(0x10 as *const u64) };
        println!("unreachable: {value}");
    }
}
