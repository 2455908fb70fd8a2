//! A guest whose unit tests end in every way a test can: `cargo test` and `cargo nextest run`
//! must run each in its own VM and judge it as libtest would.
#![no_std]
#![no_main]
#![cfg_attr(test, feature(custom_test_frameworks), test_runner(hyperlight_rt::test_runner), reexport_test_harness_main = "test_main")]

use hyperlight_rt::println;

hyperlight_rt::main!(main);

fn main() {
    println!("2 + 2 = {}", tested::add(2, 2));
}

/// Spins for a minute: much longer than any time limit the tests set, yet a run without one
/// still ends.
#[cfg(test)]
fn spin() {
    let started = hyperlight_rt::time::Instant::now();
    while started.elapsed().as_secs() < 60 {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use hyperlight_rt::println;

    #[hyperlight_rt::test]
    fn passes() {
        println!("output of a passing test");
        hyperlight_rt::eprintln!("its stderr");
    }

    #[hyperlight_rt::test]
    fn fails() {
        println!("output of a failing test");
        assert_eq!(tested::add(2, 2), 5, "two and two");
    }

    #[hyperlight_rt::test]
    fn returns_an_error() -> Result<(), &'static str> {
        Err("no luck")
    }

    #[hyperlight_rt::test]
    #[ignore]
    fn ignored() {}

    #[hyperlight_rt::test]
    #[ignore = "needs a slow device"]
    fn ignored_with_a_reason() {}

    #[hyperlight_rt::test]
    #[should_panic]
    fn panics() {
        panic!("boom");
    }

    #[hyperlight_rt::test]
    #[should_panic(expected = "out of range")]
    fn panics_with_the_expected_message() {
        panic!("index {} out of range", 7);
    }

    #[hyperlight_rt::test]
    #[should_panic(expected = "out of range")]
    fn panics_with_another_message() {
        println!("output before the panic");
        panic!("division by zero");
    }

    #[hyperlight_rt::test]
    #[should_panic]
    fn does_not_panic() {}

    #[hyperlight_rt::test]
    fn crashes() {
        // SAFETY: not safe at all: the test is that this address is unmapped.
        let value = unsafe { core::ptr::read_volatile(0x10 as *const u64) };
        println!("unreachable: {value}");
    }

    #[hyperlight_rt::test(timeout = "300ms")]
    fn hangs() {
        println!("output before hanging");
        super::spin();
    }

    /// Run with `--ignored` and a `--timeout` in the runner's config.
    #[hyperlight_rt::test]
    #[ignore = "hangs until the runner's --timeout stops it"]
    fn hangs_without_a_limit_of_its_own() {
        super::spin();
    }

    #[test_case]
    fn a_plain_test_case() {
        assert_eq!(tested::add(1, 1), 2);
    }
}
