//! Hypercall decoding with any register values against any guest memory contents: the
//! runner must read only inside guest memory, and pass on exactly the bytes the guest named
//! (for EXIT, the ones its stdout buffer says are pending).
#![no_main]

use std::time::Instant;

use hyperlight_rt::abi::{port, MAX_RANDOM_BYTES, STDOUT_BUFFER_ADDR, STDOUT_BUFFER_SIZE};
use hyperlight_run::hypercall::{self, Action, Context};
use hyperlight_run::layout::STUBS_ADDR;
use hyperlight_run::memory::GuestMemory;
use hyperlight_run::Captured;
use kvm_bindings::kvm_regs;
use libfuzzer_sys::fuzz_target;

/// Covers the runner's system pages (the exception stubs and fault stack) and the stdout
/// buffer, the last thing below the image.
const MEMORY: u64 = STDOUT_BUFFER_ADDR + STDOUT_BUFFER_SIZE;

fn word(data: &[u8], index: usize) -> u64 {
    let mut bytes = [0u8; 8];
    if let Some(chunk) = data.get(1 + index * 8..) {
        let n = chunk.len().min(8);
        bytes[..n].copy_from_slice(&chunk[..n]);
    }
    u64::from_le_bytes(bytes)
}

fuzz_target!(|data: &[u8]| {
    let Some(&selector) = data.first() else {
        return;
    };
    let port = match selector % 6 {
        0 => port::EXIT,
        1 => port::WRITE,
        2 => port::CLOCK,
        3 => port::EXCEPTION,
        4 => port::RANDOM,
        _ => word(data, 5) as u16,
    };
    let mut regs = kvm_regs {
        rdi: word(data, 0),
        rsi: word(data, 1),
        rdx: word(data, 2),
        rsp: word(data, 3),
        rip: word(data, 4),
        ..Default::default()
    };
    // Half the inputs come from inside the stub page, where the exception port is legitimate.
    if selector & 0x80 != 0 {
        regs.rip = STUBS_ADDR + (regs.rip & 0xfff);
    }
    let mut memory = GuestMemory::new(MEMORY).expect("mapping guest memory");
    let image = data.get(49..).unwrap_or_default();
    let image = &image[..image.len().min(STDOUT_BUFFER_SIZE as usize)];
    // The same bytes low in memory and in the stdout buffer (its pending count first).
    memory.write(0, image).unwrap();
    memory.write(STDOUT_BUFFER_ADDR, image).unwrap();

    let mut output = Captured::default();
    let (addr, len) = (regs.rsi, regs.rdx);
    let (random_addr, random_len) = (regs.rdi, regs.rsi);
    let action = hypercall::handle(
        port,
        &mut regs,
        &mut Context {
            memory: &mut memory,
            output: &mut output,
            started: Instant::now(),
        },
    );
    if port == port::WRITE {
        let written = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
        match &action {
            Action::Resume => {
                assert_eq!(regs.rax, len);
                if len != 0 {
                    assert!(addr >= 0x1000 && addr + len <= MEMORY);
                    assert_eq!(written, memory.slice(addr, len).unwrap());
                }
            }
            _ => assert!(written.is_empty()),
        }
    }
    if port == port::RANDOM {
        let (addr, len) = (random_addr, random_len);
        let inside = addr.checked_add(len).is_some_and(|end| end <= MEMORY);
        let fillable = len <= MAX_RANDOM_BYTES && inside && (addr >= 0x1000 || len == 0);
        match action {
            Action::Resume => assert!(regs.rax == len && fillable),
            _ => assert!(!fillable),
        }
    }
    if port == port::EXIT {
        assert!(matches!(action, Action::Exit(code) if code == regs.rdi as u32 as i32));
        let pending = memory.read_u64(STDOUT_BUFFER_ADDR).unwrap();
        let expected = if pending <= STDOUT_BUFFER_SIZE - 8 {
            memory.slice(STDOUT_BUFFER_ADDR + 8, pending).unwrap()
        } else {
            &[]
        };
        assert_eq!(output.stdout, expected);
        assert!(output.stderr.is_empty());
    }
});
