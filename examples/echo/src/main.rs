//! Prints each argument on its own line, then the value of `GREETING`.
#![no_std]
#![no_main]

use hyperlight_rt::{env, println};

hyperlight_rt::main!(main);

fn main() {
    for arg in env::args_os().skip(1) {
        hyperlight_rt::io::write_stdout(arg);
        println!();
    }
    match env::var("GREETING") {
        Ok(greeting) => println!("GREETING={greeting}"),
        Err(err) => println!("GREETING: {err}"),
    }
}
