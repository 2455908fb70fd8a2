//! Dereferences an unmapped address: the runner reports a page fault naming this function
//! and line, and exits 134.
#![no_std]
#![no_main]

hyperlight_rt::main!(main);

/// An address far beyond the guest's memory, so never mapped.
const UNMAPPED: usize = 0x7f00_dead_b000;

#[inline(never)]
fn read_unmapped() -> u64 {
    let pointer = core::hint::black_box(UNMAPPED) as *const u64;
    // SAFETY: not safe at all; crashing is the point of this example.
    unsafe { *pointer }
}

fn main() {
    hyperlight_rt::println!("reading {UNMAPPED:#x}");
    let value = read_unmapped();
    hyperlight_rt::println!("read {value}, which should not happen");
}
