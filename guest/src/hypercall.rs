//! Raw hypercalls: an `out` to the call's port with arguments in `rdi`, `rsi`, `rdx`.
//!
//! The guest runs at CPL 3; the runner (through KVM) sees the `out` as a port I/O exit and
//! reads the registers, so no privileged instruction is ever executed by the guest.

use core::arch::asm;

use crate::abi::port;

/// Performs hypercall `PORT` with three arguments and returns `rax`.
///
/// # Safety
/// Pointer arguments must describe guest memory the call may read; the runner checks them
/// and ends the guest on a bad one, so the worst outcome of a wrong value is termination.
#[inline(always)]
pub unsafe fn call<const PORT: u16>(a0: u64, a1: u64, a2: u64) -> u64 {
    let ret: u64;
    // SAFETY: `out` to these ports exits to the runner, which only reads guest memory.
    unsafe {
        asm!(
            "out {port}, al",
            port = const PORT,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            inout("rax") 0u64 => ret,
            options(nostack, preserves_flags),
        );
    }
    ret
}

/// Writes `bytes` to stream `fd` (see [`crate::abi::stream`]).
pub fn write(fd: u64, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: the slice is valid guest memory.
    unsafe { call::<{ port::WRITE }>(fd, bytes.as_ptr() as u64, bytes.len() as u64) };
}

/// Ends the guest with `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: no pointers involved.
    unsafe { call::<{ port::EXIT }>(code as u32 as u64, 0, 0) };
    // The runner never resumes a guest that exited.
    loop {
        core::hint::spin_loop();
    }
}

/// Reads a clock (see [`crate::abi::clock`]) in nanoseconds.
pub fn clock(id: u64) -> u64 {
    // SAFETY: no pointers involved.
    unsafe { call::<{ port::CLOCK }>(id, 0, 0) }
}

/// Fills `buffer` from the host's random source (one call per [`crate::abi::MAX_RANDOM_BYTES`]).
#[cfg(target_os = "hermit")]
pub fn random(buffer: &mut [u8]) {
    for chunk in buffer.chunks_mut(crate::abi::MAX_RANDOM_BYTES as usize) {
        // SAFETY: the chunk is writable guest memory the runner fills.
        unsafe {
            call::<{ port::RANDOM }>(chunk.as_mut_ptr() as u64, chunk.len() as u64, 0);
        }
    }
}
