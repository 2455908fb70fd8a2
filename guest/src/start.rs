//! `entrypoint`: where the runner starts the guest, and how `main`'s result becomes the exit
//! code.

use core::fmt::Debug;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::abi::{flags, BootInfo, BOOT_MAGIC};

static BOOT_INFO: AtomicPtr<BootInfo> = AtomicPtr::new(core::ptr::null_mut());

/// The boot information of this run.
pub(crate) fn boot_info() -> &'static BootInfo {
    // SAFETY: set once by `entrypoint` before any guest code runs; the runner maps it
    // read-only for the whole run.
    unsafe { &*BOOT_INFO.load(Ordering::Relaxed) }
}

unsafe extern "Rust" {
    /// Defined by [`crate::main!`] in the guest binary.
    fn __hyperlight_main() -> i32;
}

/// The guest's entry point (the target links with `-eentrypoint`). The runner calls it with
/// a pointer to the [`BootInfo`] in `rdi` and a 16-byte aligned stack.
///
/// # Safety
/// Only the runner calls this, once, with a valid `BootInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn entrypoint(boot: *const BootInfo) -> ! {
    // SAFETY: the runner passes a mapped, read-only BootInfo.
    let info = unsafe { &*boot };
    if info.magic != BOOT_MAGIC {
        // Not started by a compatible runner: nothing else can be trusted.
        crate::hypercall::exit(125);
    }
    BOOT_INFO.store(boot.cast_mut(), Ordering::Relaxed);
    crate::io::init(
        info.stdout_buffer,
        info.stdout_buffer_size,
        info.flags & flags::STDOUT_IS_TTY != 0,
    );
    // SAFETY: the runner hands this range over to the guest exclusively.
    unsafe { crate::heap::init(info.heap_start, info.heap_size) };
    // SAFETY: the symbol comes from `main!`; a binary without it fails to link.
    let code = unsafe { __hyperlight_main() };
    crate::process::exit(code)
}

/// What `main` may return, like `std::process::Termination`.
pub trait Termination {
    /// The exit code this value stands for.
    fn report(self) -> i32;
}

impl Termination for () {
    fn report(self) -> i32 {
        0
    }
}

impl Termination for i32 {
    fn report(self) -> i32 {
        self
    }
}

impl Termination for u8 {
    fn report(self) -> i32 {
        i32::from(self)
    }
}

impl Termination for core::convert::Infallible {
    fn report(self) -> i32 {
        match self {}
    }
}

impl<T: Termination, E: Debug> Termination for Result<T, E> {
    /// Like std: an error is printed as `Error: {err:?}` and exits 1.
    fn report(self) -> i32 {
        match self {
            Ok(value) => value.report(),
            Err(err) => {
                crate::eprintln!("Error: {err:?}");
                1
            }
        }
    }
}
