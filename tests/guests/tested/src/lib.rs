//! A library crate with unit tests beside its code, as Rust developers write them: its test
//! build is a guest of its own.
#![no_std]
#![cfg_attr(test, no_main, feature(custom_test_frameworks), test_runner(hyperlight_rt::test_runner), reexport_test_harness_main = "test_main")]

#[cfg(test)]
hyperlight_rt::tests!();

pub fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[cfg(test)]
mod tests {
    #[hyperlight_rt::test]
    fn adds() {
        assert_eq!(super::add(2, 2), 4);
    }

    #[hyperlight_rt::test]
    #[should_panic(expected = "attempt to add with overflow")]
    fn overflows() {
        super::add(u32::MAX, 1);
    }
}
