//! Ending the guest.

/// Ends the guest; the runner writes out what stdout still buffers and exits with
/// `code & 0xff`.
pub fn exit(code: i32) -> ! {
    crate::hypercall::exit(code)
}

/// Ends the guest like a native program killed by SIGABRT would (exit status 134).
pub fn abort() -> ! {
    exit(134)
}
