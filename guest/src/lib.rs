//! The guest runtime for `x86_64-hyperlight-none` programs run by `hyperlight-run`.
//!
//! A guest is an ordinary `no_std` binary:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use hyperlight_rt::println;
//!
//! hyperlight_rt::main!(main);
//!
//! fn main() {
//!     println!("hello from the guest");
//! }
//! ```
//!
//! `main` may return `()`, an `i32`/`u8` exit code, or a `Result<T, E: Debug>` (an `Err` is
//! printed to stderr and exits 1, like std). The runtime provides the `entrypoint` symbol the
//! target links against, `print!`/`println!`/`eprint!`/`eprintln!`, [`env::args`],
//! [`env::var`], [`process::exit`], a std-like panic handler (exit code 101), a global
//! allocator over the heap the runner hands over (so `alloc` just works), [`time`] and
//! [`random::seed`]. The guest ABI is documented in docs/abi.md and defined in [`abi`].
//!
//! Built for `x86_64-hyperlight-hermit` instead, the crate is the Hermit ABI std programs for
//! that target are linked with (see the `hermit` module); guests do not depend on it there.
//!
//! Start-up is split so other entry styles can reuse it: `entrypoint` sets up the runtime and
//! calls the Rust function `__hyperlight_main() -> i32`, which [`main!`] defines; a test
//! harness (one test per VM, `cargo test`) can define that function instead.
#![no_std]

/// This runtime's version: `hyperlight-run new` derives the requirement new projects put on the
/// runtime from it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod abi;

#[cfg(any(target_os = "none", target_os = "hermit"))]
mod boot;
#[cfg(any(target_os = "none", target_os = "hermit"))]
mod heap;
#[cfg(target_os = "hermit")]
mod hermit;
#[cfg(any(target_os = "none", target_os = "hermit"))]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod io;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
mod start;
#[cfg(target_os = "none")]
pub mod test;

#[cfg(target_os = "none")]
pub mod env;
#[cfg(target_os = "none")]
pub mod process;
#[cfg(target_os = "none")]
pub mod random;
#[cfg(target_os = "none")]
pub mod time;

/// `#[hyperlight_rt::test]`: a test with libtest's `#[ignore]` and `#[should_panic]`, and an
/// optional time limit (see [`test`](mod@test) and the crate `hyperlight-rt-macros`).
#[cfg(target_os = "none")]
pub use hyperlight_rt_macros::test;
#[cfg(target_os = "none")]
pub use start::Termination;
#[cfg(target_os = "none")]
pub use test::test_runner;

/// Re-exported so guests can use `alloc` collections through the runtime alone.
#[cfg(target_os = "none")]
pub extern crate alloc;

/// Declares the guest's main function: `hyperlight_rt::main!(main);`.
///
/// The function takes no arguments (use [`env::args`]) and returns anything implementing
/// [`Termination`]: `()`, `i32`, `u8`, or `Result<T: Termination, E: Debug>`.
///
/// In a test build (`cargo test`) the binary runs its `#[test_case]`s instead, given this
/// attribute at the top of `main.rs`:
///
/// ```ignore
/// #![cfg_attr(test, feature(custom_test_frameworks), test_runner(hyperlight_rt::test_runner), reexport_test_harness_main = "test_main")]
/// ```
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[cfg(not(test))]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "Rust" fn __hyperlight_main() -> i32 {
            $crate::Termination::report($main())
        }

        // What the `main` shim rustc generates for std programs carries, and a `no_main`
        // guest lacks: a request that gdb load the toolchain's Rust pretty printers (`Vec`,
        // `String`, ...), which `rust-gdb` allows.
        const _: () = {
            #[used]
            #[unsafe(link_section = ".debug_gdb_scripts")]
            static GDB_SCRIPTS: [u8; 34] = *b"\x01gdb_load_rust_pretty_printers.py\0";
        };

        #[cfg(test)]
        $crate::tests!();
        // Tests do not call `main`; this keeps it from being reported as dead code.
        #[cfg(test)]
        const _: () = {
            let _ = $main;
        };
    };
}
