//! One guest, many misbehaviours: the first argument picks what to do. Used by
//! runner/tests to check protections, hypercall validation and runtime services.
#![no_std]
#![no_main]

use core::arch::asm;
use core::hint::black_box;

use hyperlight_rt::abi::{port, BootInfo};
use hyperlight_rt::alloc::vec::Vec;
use hyperlight_rt::hypercall::call;
use hyperlight_rt::{env, eprintln, print, println};

hyperlight_rt::main!(main);

static TABLE: [u64; 4] = [1, 2, 3, 4];

const SCRATCH_WORDS: usize = 4096;
static mut SCRATCH: [u64; SCRATCH_WORDS] = [0; SCRATCH_WORDS];

/// Counts the nonzero words of `[start, start + words)`, then sets them all.
unsafe fn count_and_dirty(start: *mut u64, words: usize) -> usize {
    let mut nonzero = 0;
    for i in 0..words {
        let word = start.add(i);
        if word.read_volatile() != 0 {
            nonzero += 1;
        }
        word.write_volatile(u64::MAX);
    }
    nonzero
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let buffer = black_box([depth; 64]);
    recurse(depth + 1) + buffer[3]
}

fn main() -> i32 {
    let case = env::args().nth(1).unwrap_or("");
    // SAFETY (whole match): these are deliberate violations; the runner must contain them.
    unsafe {
        match case {
            "null-read" => println!("{}", black_box(0x18usize as *const u64).read_volatile()),
            "read-system-page" => {
                println!("{}", black_box(0x2000usize as *const u64).read_volatile())
            }
            "read-page-tables" => {
                println!("{}", black_box(0x10000usize as *const u64).read_volatile())
            }
            "write-text" => black_box(main as *const () as *mut u8).write_volatile(0xcc),
            "write-rodata" => black_box(TABLE.as_ptr() as *mut u64).write_volatile(9),
            "write-boot-info" => black_box(0x10_0000usize as *mut u64).write_volatile(9),
            "exec-heap" => {
                let code: Vec<u8> = black_box(Vec::from([0xc3u8]));
                let f: extern "C" fn() = core::mem::transmute(code.as_ptr());
                f();
            }
            "exec-stack" => {
                let code = black_box([0xc3u8; 4]);
                let f: extern "C" fn() = core::mem::transmute(code.as_ptr());
                f();
            }
            "stack-overflow" => println!("{}", recurse(0)),
            "ud2" => asm!("ud2"),
            "divide-error" => {
                asm!("xor ecx, ecx", "div ecx", out("eax") _, out("edx") _, out("ecx") _)
            }
            "privileged" => asm!("mov rax, cr3", out("rax") _),
            "hlt" => asm!("hlt"),
            "write-outside-memory" => {
                call::<{ port::WRITE }>(1, 1 << 40, 16);
            }
            "write-null" => {
                call::<{ port::WRITE }>(1, 0, 16);
            }
            "write-length-overflow" => {
                call::<{ port::WRITE }>(1, TABLE.as_ptr() as u64, u64::MAX);
            }
            "write-straddling-end" => {
                let info_memory = black_box(0x10_0000u64 + 16) as *const u64;
                let memory_size = info_memory.read_volatile();
                call::<{ port::WRITE }>(1, memory_size - 8, 16);
            }
            "random-outside-memory" => {
                call::<{ port::RANDOM }>(u64::MAX - 8, 16, 0);
            }
            "write-bad-stream" => {
                call::<{ port::WRITE }>(7, TABLE.as_ptr() as u64, 8);
            }
            "unknown-port" => {
                call::<0x14>(0, 0, 0);
            }
            "exception-port" => {
                call::<{ port::EXCEPTION }>(0, 0, 0);
            }
            "port-outside-bitmap" => asm!("out 0x80, al", in("al") 0u8),
            "bad-clock" => {
                call::<{ port::CLOCK }>(99, 0, 0);
            }
            "exit" => return env::args().nth(2).and_then(|c| c.parse().ok()).unwrap_or(0),
            "clock" => {
                let start = hyperlight_rt::time::Instant::now();
                let wall = hyperlight_rt::time::since_unix_epoch();
                let later = hyperlight_rt::time::Instant::now();
                println!("monotonic ok: {}", later >= start);
                println!("unix seconds: {}", wall.as_secs());
            }
            "random" => {
                for byte in hyperlight_rt::random::seed() {
                    print!("{byte:02x}");
                }
                println!();
            }
            "leftovers" => {
                // What a fresh VM must show as zero (a .bss array, the heap's last 8 MiB),
                // dirtied afterwards for whichever guest comes next.
                let boot = &*(hyperlight_rt::abi::BOOT_INFO_ADDR as *const BootInfo);
                let heap_words = (8 << 20) / 8;
                let heap = ((boot.heap_start + boot.heap_size) as *mut u64).sub(heap_words);
                let bss = core::ptr::addr_of_mut!(SCRATCH).cast::<u64>();
                println!(
                    "nonzero words: {} in .bss, {} in the heap",
                    count_and_dirty(bss, SCRATCH_WORDS),
                    count_and_dirty(heap, heap_words)
                );
            }
            "out-of-memory" => {
                let huge: Vec<u8> = Vec::with_capacity(black_box(1usize << 40));
                println!("{}", huge.capacity());
            }
            "interleave" => {
                for i in 0..3 {
                    println!("out {i}");
                    eprintln!("err {i}");
                }
            }
            "binary" => hyperlight_rt::io::write_stdout(&[0, 1, 2, 255, b'\n', 0xc3, 0x28]),
            "env" => {
                for (key, value) in env::vars_os() {
                    hyperlight_rt::io::write_stdout(key);
                    print!("=");
                    hyperlight_rt::io::write_stdout(value);
                    println!();
                }
            }
            "result-error" => {
                let failed: Result<(), &str> = Err("it went wrong");
                return hyperlight_rt::Termination::report(failed);
            }
            other => {
                eprintln!("unknown case {other:?}");
                return 2;
            }
        }
    }
    0
}
