//! `hyperlight-run`: cargo's runner for x86_64-hyperlight-none guests.

mod cli;
mod doctor;
mod heal;
mod scaffold;
mod target;
mod toolchain;

fn main() {
    std::process::exit(cli::main());
}
