//! The contract between `hyperlight-run` and a guest, shared by both sides.
//!
//! docs/abi.md explains it in prose; this module is the single definition the runner and the
//! runtime compile against, so the two cannot drift apart. Everything here is plain data and
//! builds for the host too.

/// Guest virtual addresses equal guest physical addresses; the first page is never mapped so
/// null dereferences fault.
pub const PAGE_SIZE: u64 = 0x1000;

/// Where the runner places the boot information handed to `entrypoint` in `rdi`, followed by
/// the argument and environment strings. Read-only for the guest.
pub const BOOT_INFO_ADDR: u64 = 0x10_0000;
/// End (exclusive) of the boot information area: arguments and environment must fit below.
pub const BOOT_INFO_END: u64 = 0x1f_0000;
/// The guest's stdout buffer, writable by the guest: a little-endian `u64` count of pending
/// bytes followed by the bytes. The runtime flushes it with [`port::WRITE`]; when the guest
/// ends (exits, crashes or times out), the runner writes out what is pending.
pub const STDOUT_BUFFER_ADDR: u64 = 0x1f_0000;
pub const STDOUT_BUFFER_SIZE: u64 = 0x1_0000;
/// Load address of the guest image (its lowest PT_LOAD segment's page).
pub const IMAGE_BASE: u64 = 0x20_0000;

/// "HLBOOT01" little-endian: lets the runtime check it was started by a compatible runner.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"HLBOOT01");

/// Hypercalls are `out` instructions to these ports; arguments in `rdi`, `rsi`, `rdx`,
/// result (if any) in `rax`.
pub mod port {
    /// Ends the guest. `rdi` = exit code (the low 8 bits are the process exit status). The
    /// runner first writes out the bytes pending in the stdout buffer.
    pub const EXIT: u16 = 0x10;
    /// Writes `rdx` bytes at guest address `rsi` to stream `rdi` (1 = stdout, 2 = stderr).
    /// Returns the number of bytes written (always all of them) in `rax`.
    pub const WRITE: u16 = 0x11;
    /// Reads clock `rdi` (see [`super::clock`]) into `rax` as nanoseconds.
    pub const CLOCK: u16 = 0x12;
    /// Fills `rsi` bytes at guest address `rdi` with bytes from the host's random source, at
    /// most [`super::MAX_RANDOM_BYTES`] per call. Returns the number of bytes written in `rax`.
    pub const RANDOM: u16 = 0x13;
    /// Used only by the runner's own exception stubs to report a CPU exception.
    pub const EXCEPTION: u16 = 0x1f;
}

/// The most bytes one [`port::RANDOM`] call fills.
pub const MAX_RANDOM_BYTES: u64 = 0x1000;

/// Stream numbers for [`port::WRITE`].
pub mod stream {
    pub const STDOUT: u64 = 1;
    pub const STDERR: u64 = 2;
}

/// Clock ids for [`port::CLOCK`].
pub mod clock {
    /// Nanoseconds since an arbitrary point before the guest started; never goes backwards.
    pub const MONOTONIC: u64 = 0;
    /// Nanoseconds since the Unix epoch (the host's wall clock).
    pub const REALTIME: u64 = 1;
}

/// Bits of [`BootInfo::flags`].
pub mod flags {
    /// Host stdout is a terminal: the runtime flushes stdout at each newline.
    pub const STDOUT_IS_TTY: u32 = 1 << 0;
}

/// A byte string in guest memory (no terminating NUL, not necessarily UTF-8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestSlice {
    pub addr: u64,
    pub len: u64,
}

/// What the runner hands to `entrypoint` (pointer in `rdi`). All addresses are guest addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// Size of this struct as the runner knows it, for forward compatibility.
    pub size: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// Total guest memory in bytes.
    pub memory_size: u64,
    /// Free memory the guest may use as its heap: `[heap_start, heap_start + heap_size)`.
    pub heap_start: u64,
    pub heap_size: u64,
    /// The initial stack: `[stack_top - stack_size, stack_top)`, with an unmapped guard page
    /// below it.
    pub stack_top: u64,
    pub stack_size: u64,
    /// `argc` [`GuestSlice`]s, the first being the program name.
    pub args: u64,
    pub argc: u64,
    /// `envc` [`GuestSlice`]s of the form `KEY=VALUE`, only those given with `-e`.
    pub env: u64,
    pub envc: u64,
    /// 32 bytes from the host's random source, different on every run.
    pub random_seed: [u8; 32],
    /// [`STDOUT_BUFFER_ADDR`] and [`STDOUT_BUFFER_SIZE`].
    pub stdout_buffer: u64,
    pub stdout_buffer_size: u64,
}

/// `cargo test` in micro-VMs: how the runner lists and runs a guest's tests.
pub mod test;

/// Durations as the runner's `--timeout` and `#[hyperlight_rt::test(timeout = ...)]` write them.
pub mod duration;
