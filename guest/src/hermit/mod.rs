//! The Hermit ABI over hyperlight-run, for `x86_64-hyperlight-hermit`: the `sys_*` functions
//! std's `hermit` platform code calls (through the hermit-abi crate), and the entry point that
//! starts std.
//!
//! `cargo xtask sysroot --target x86_64-hyperlight-hermit` compiles this crate for that target
//! into one object (`hyperlight-hermit.o`, everything but these symbols internal), and the
//! target spec links it into every program (`post-link-objects`), so std programs need no
//! dependency on the runtime. The guest has one thread and no files or network: what needs
//! them fails with `ENOSYS` (see `unsupported`), which std reports as an `io::Error`.

mod unsupported;

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_char;
use core::ptr;

use crate::abi::{clock, stream, BootInfo, BOOT_MAGIC};
use crate::boot::{bytes, slices};
use crate::heap::HEAP;
use crate::hypercall;

/// The errno values of the Hermit ABI this module returns (negated, as the ABI wants).
mod errno {
    pub const EBADF: i32 = 9;
    pub const EAGAIN: i32 = 11;
    pub const EINVAL: i32 = 22;
    pub const ENOSYS: i32 = 38;
    pub const ETIMEDOUT: i32 = 110;
}

/// Hermit's clock ids.
const CLOCK_REALTIME: u64 = 1;
const CLOCK_MONOTONIC: u64 = 4;
/// `sys_futex_wait`'s flag for a timeout relative to now (else absolute, monotonic).
const FUTEX_RELATIVE_TIMEOUT: u32 = 1;
/// std's exit code for a panicking `main`; std ends panics and `process::abort` alike in
/// `sys_abort`, so both exit with it.
const ABORT_EXIT_CODE: i32 = 101;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Hermit's `timespec`.
#[repr(C)]
pub struct Timespec {
    tv_sec: i64,
    tv_nsec: i32,
}

/// Hermit's `iovec`.
#[repr(C)]
pub struct Iovec {
    base: *const u8,
    len: usize,
}

unsafe extern "C" {
    /// std's start for Hermit: initialises args and environment, runs `main`, exits.
    fn runtime_entry(argc: i32, argv: *const *const c_char, env: *const *const c_char) -> !;
}

/// The guest's entry point (the target links with `-eentrypoint`): the runner calls it with
/// the [`BootInfo`] in `rdi`, the thread pointer in FS and a 16-byte aligned stack.
///
/// # Safety
/// Only the runner calls this, once, with a valid `BootInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn entrypoint(boot: *const BootInfo) -> ! {
    // SAFETY: the runner passes a mapped, read-only BootInfo.
    let info = unsafe { &*boot };
    if info.magic != BOOT_MAGIC {
        hypercall::exit(125);
    }
    // SAFETY: the runner hands this range over to the guest exclusively.
    unsafe { crate::heap::init(info.heap_start, info.heap_size) };
    let argv = c_strings(info.args, info.argc);
    let envp = c_strings(info.env, info.envc);
    // SAFETY: NUL-terminated strings in null-terminated arrays, as std expects; never freed.
    unsafe { runtime_entry(info.argc as i32, argv, envp) }
}

/// The boot area's strings as a null-terminated array of C strings on the heap.
fn c_strings(addr: u64, count: u64) -> *const *const c_char {
    let strings = slices(addr, count);
    let array = allocate(Layout::array::<*const c_char>(strings.len() + 1).unwrap())
        .cast::<*const c_char>();
    if array.is_null() {
        hypercall::exit(ABORT_EXIT_CODE);
    }
    for (i, slice) in strings.iter().enumerate() {
        // SAFETY: `array` has room for every string and the terminating null.
        unsafe { array.add(i).write(c_string(bytes(slice))) };
    }
    // SAFETY: likewise.
    unsafe { array.add(strings.len()).write(ptr::null()) };
    array
}

fn c_string(text: &[u8]) -> *const c_char {
    let copy = allocate(Layout::array::<u8>(text.len() + 1).unwrap());
    if copy.is_null() {
        hypercall::exit(ABORT_EXIT_CODE);
    }
    // SAFETY: `copy` has room for the text and its NUL.
    unsafe {
        ptr::copy_nonoverlapping(text.as_ptr(), copy, text.len());
        copy.add(text.len()).write(0);
    }
    copy.cast()
}

fn allocate(layout: Layout) -> *mut u8 {
    // SAFETY: every layout here has a non-zero size.
    unsafe { HEAP.alloc(layout) }
}

fn layout(size: usize, align: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1), align).ok()
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_malloc(size: usize, align: usize) -> *mut u8 {
    layout(size, align).map_or(ptr::null_mut(), allocate)
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_alloc(size: usize, align: usize) -> *mut u8 {
    sys_malloc(size, align)
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    let block = sys_malloc(size, align);
    if !block.is_null() {
        // SAFETY: a fresh block of at least `size` bytes (freed blocks are reused dirty).
        unsafe { ptr::write_bytes(block, 0, size) };
    }
    block
}

/// # Safety
/// `block` came from `sys_malloc` with `size` and `align`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_realloc(
    block: *mut u8,
    size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    match layout(size, align) {
        // SAFETY: the caller's guarantees, forwarded.
        Some(layout) => unsafe { HEAP.realloc(block, layout, new_size.max(1)) },
        None => ptr::null_mut(),
    }
}

/// # Safety
/// `block` came from `sys_malloc` with `size` and `align`, and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_free(block: *mut u8, size: usize, align: usize) {
    if let Some(layout) = layout(size, align) {
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { HEAP.dealloc(block, layout) }
    }
}

/// # Safety
/// As [`sys_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_dealloc(block: *mut u8, size: usize, align: usize) {
    // SAFETY: the caller's guarantees, forwarded.
    unsafe { sys_free(block, size, align) }
}

/// # Safety
/// `buffer` holds `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_write(fd: i32, buffer: *const u8, len: usize) -> isize {
    let stream = match fd {
        1 => stream::STDOUT,
        2 => stream::STDERR,
        _ => return -errno::EBADF as isize,
    };
    if len > isize::MAX as usize {
        return -errno::EINVAL as isize;
    }
    if len > 0 {
        // SAFETY: the caller's guarantee.
        hypercall::write(stream, unsafe { core::slice::from_raw_parts(buffer, len) });
    }
    len as isize
}

/// # Safety
/// `iov` holds `count` entries, each describing readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_writev(fd: i32, iov: *const Iovec, count: usize) -> isize {
    let mut total = 0isize;
    for i in 0..count {
        // SAFETY: the caller's guarantee.
        let entry = unsafe { &*iov.add(i) };
        // SAFETY: likewise.
        let written = unsafe { sys_write(fd, entry.base, entry.len) };
        if written < 0 {
            return written;
        }
        total = total.saturating_add(written);
    }
    total
}

/// The guest has no stdin: reading it gives end of file.
#[unsafe(no_mangle)]
pub extern "C" fn sys_read(fd: i32, _buffer: *mut u8, _len: usize) -> isize {
    if fd == 0 {
        0
    } else {
        -errno::EBADF as isize
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_readv(fd: i32, _iov: *const Iovec, _count: usize) -> isize {
    sys_read(fd, ptr::null_mut(), 0)
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_close(fd: i32) -> i32 {
    if (0..=2).contains(&fd) {
        0
    } else {
        -errno::EBADF
    }
}

/// Reads a Hermit clock in nanoseconds.
fn now(clock_id: u64) -> Option<u64> {
    match clock_id {
        CLOCK_REALTIME => Some(hypercall::clock(clock::REALTIME)),
        CLOCK_MONOTONIC => Some(hypercall::clock(clock::MONOTONIC)),
        _ => None,
    }
}

/// # Safety
/// `time` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_clock_gettime(clock_id: u32, time: *mut Timespec) -> i32 {
    let Some(nanos) = now(u64::from(clock_id)) else {
        return -errno::EINVAL;
    };
    // SAFETY: the caller's guarantee.
    unsafe {
        time.write(Timespec {
            tv_sec: (nanos / NANOS_PER_SECOND) as i64,
            tv_nsec: (nanos % NANOS_PER_SECOND) as i32,
        })
    };
    0
}

/// Busy-waits until the monotonic clock reaches `deadline` (the guest cannot halt: it runs at
/// CPL 3, and with one thread there is nothing else to run).
fn wait_until(deadline: u64) {
    while hypercall::clock(clock::MONOTONIC) < deadline {
        core::hint::spin_loop();
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_usleep(micros: u64) {
    let start = hypercall::clock(clock::MONOTONIC);
    wait_until(start.saturating_add(micros.saturating_mul(1000)));
}

/// # Safety
/// `duration` is readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_nanosleep(duration: *const Timespec) -> i32 {
    // SAFETY: the caller's guarantee.
    let Some(nanos) = (unsafe { timespec_nanos(&*duration) }) else {
        return -errno::EINVAL;
    };
    let start = hypercall::clock(clock::MONOTONIC);
    wait_until(start.saturating_add(nanos));
    0
}

fn timespec_nanos(time: &Timespec) -> Option<u64> {
    let seconds = u64::try_from(time.tv_sec).ok()?;
    let nanos = u64::try_from(time.tv_nsec).ok()?;
    Some(
        seconds
            .saturating_mul(NANOS_PER_SECOND)
            .saturating_add(nanos),
    )
}

/// With one thread nobody can change `*address` or wake us: a wait whose value still matches
/// can only time out, and one without a timeout would never return.
///
/// # Safety
/// `address` is readable; `timeout` is null or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_futex_wait(
    address: *mut u32,
    expected: u32,
    timeout: *const Timespec,
    flags: u32,
) -> i32 {
    // SAFETY: the caller's guarantee.
    if unsafe { address.read_volatile() } != expected {
        return -errno::EAGAIN;
    }
    if timeout.is_null() {
        crate::hypercall::write(
            stream::STDERR,
            b"fatal: the guest's only thread waits for a lock it holds or a wake-up nobody can send (deadlock)\n",
        );
        hypercall::exit(ABORT_EXIT_CODE);
    }
    // SAFETY: the caller's guarantee.
    let Some(nanos) = (unsafe { timespec_nanos(&*timeout) }) else {
        return -errno::EINVAL;
    };
    let deadline = if flags & FUTEX_RELATIVE_TIMEOUT != 0 {
        hypercall::clock(clock::MONOTONIC).saturating_add(nanos)
    } else {
        nanos
    };
    wait_until(deadline);
    -errno::ETIMEDOUT
}

/// No thread ever waits (see [`sys_futex_wait`]), so none is woken.
#[unsafe(no_mangle)]
pub extern "C" fn sys_futex_wake(_address: *mut u32, _count: i32) -> i32 {
    0
}

/// # Safety
/// `buffer` holds `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_read_entropy(buffer: *mut u8, len: usize, _flags: u32) -> isize {
    if len > isize::MAX as usize {
        return -errno::EINVAL as isize;
    }
    if len > 0 {
        // SAFETY: the caller's guarantee.
        hypercall::random(unsafe { core::slice::from_raw_parts_mut(buffer, len) });
    }
    len as isize
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_exit(code: i32) -> ! {
    hypercall::exit(code)
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_abort() -> ! {
    hypercall::exit(ABORT_EXIT_CODE)
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_getpagesize() -> i32 {
    crate::abi::PAGE_SIZE as i32
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_available_parallelism() -> usize {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_get_processor_count() -> usize {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_getpid() -> u32 {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_yield() {}

/// This ABI reports errors as return values, so there is never an errno to read.
#[unsafe(no_mangle)]
pub extern "C" fn sys_get_errno() -> i32 {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn sys_errno() -> i32 {
    0
}
