//! An integration test of a guest crate: its own binary, booted once per test.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(hyperlight_rt::test_runner)]
#![reexport_test_harness_main = "test_main"]

hyperlight_rt::tests!();

#[test_case]
fn sees_alloc() {
    let words: hyperlight_rt::alloc::vec::Vec<&str> = "a b c".split(' ').collect();
    assert_eq!(words.len(), 3);
}
