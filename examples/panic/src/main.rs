//! Panics with a message: exits 101 with std's panic message on stderr.
#![no_std]
#![no_main]

hyperlight_rt::main!(main);

fn main() {
    let answer = 41;
    hyperlight_rt::println!("about to panic");
    panic!("the answer was {answer}, not 42");
}
