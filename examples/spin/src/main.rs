//! Loops forever: try `cargo run -- ` with `hyperlight-run --timeout 200ms`.
#![no_std]
#![no_main]

hyperlight_rt::main!(main);

fn main() {
    hyperlight_rt::println!("spinning forever");
    hyperlight_rt::io::flush_stdout();
    loop {
        core::hint::spin_loop();
    }
}
