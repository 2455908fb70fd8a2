//! Prints a greeting.
#![no_std]
#![no_main]

use hyperlight_rt::println;

hyperlight_rt::main!(main);

fn main() {
    println!("Hello from a Hyperlight micro-VM!");
}
