//! Guests that push on the runner's limits (runner/tests/limits.rs and the limits
//! benchmark): memory, CPU time, output volume, and memory protections the probe guest does
//! not cover. The first argument picks the case.
#![no_std]
#![no_main]

use core::arch::asm;
use core::hint::black_box;

use hyperlight_rt::alloc::vec::Vec;
use hyperlight_rt::{env, eprintln, println};

hyperlight_rt::main!(main);

/// Writable, non-executable data (.data), for "exec-data".
static mut DATA: [u8; 16] = [0xc3; 16];

const PAGE: usize = 4096;

/// Allocates and writes every heap page it can get, largest chunks first, and keeps them:
/// the runner's resident memory then includes all of guest memory that is usable.
fn touch_all() -> usize {
    let mut touched = 0;
    let mut chunk = 16 << 20;
    while chunk >= PAGE {
        let mut block: Vec<u8> = Vec::new();
        if block.try_reserve_exact(chunk).is_err() {
            chunk /= 2;
            continue;
        }
        // SAFETY: the capacity was just reserved; u8 needs no initialization beyond this.
        unsafe { block.set_len(chunk) };
        for page in block.chunks_mut(PAGE) {
            page[0] = 1;
            black_box(&mut page[PAGE / 2..]).fill(0xa5);
        }
        touched += chunk;
        core::mem::forget(block);
    }
    touched
}

fn main() -> i32 {
    let case = env::args().nth(1).unwrap_or("");
    // SAFETY (whole match): these are deliberate; the runner must contain them.
    unsafe {
        match case {
            "touch-all" => println!("touched {} KiB", touch_all() / 1024),
            "exec-data" => {
                let f: extern "C" fn() =
                    core::mem::transmute(black_box(core::ptr::addr_of!(DATA) as *const u8));
                f();
            }
            // Interrupts stay on for CPL 3 code; `cli` itself is refused (#GP).
            "cli" => asm!("cli"),
            "spin-pause" => loop {
                asm!("pause");
            },
            // An `in` on a hypercall port: an exit the runner does not serve.
            "port-in" => {
                let value: u8;
                asm!("in al, 0x10", out("al") value);
                println!("{value}");
            }
            // Exceptions end in the runner's stubs; the hooks in runner/src/test_hook.rs break
            // those to provoke triple faults, emulation failures and a CPL 0 spin.
            "ud2" => asm!("ud2"),
            "flood" => {
                let line = [b'y'; 4096];
                loop {
                    hyperlight_rt::io::write_stdout(&line);
                }
            }
            other => {
                eprintln!("unknown case {other:?}");
                return 2;
            }
        }
    }
    0
}
