//! An integration test: its own binary, booted once per test.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(hyperlight_rt::test_runner)]
#![reexport_test_harness_main = "test_main"]

hyperlight_rt::tests!();

#[hyperlight_rt::test]
fn adds_from_outside() {
    assert_eq!(tested::add(1, 2), 3);
}

#[hyperlight_rt::test]
#[ignore]
fn ignored_outside() {}
