//! Ending the guest.

/// Flushes stdout and ends the guest; the runner exits with `code & 0xff`.
pub fn exit(code: i32) -> ! {
    crate::io::flush_stdout();
    crate::hypercall::exit(code)
}

/// Ends the guest like a native program killed by SIGABRT would (exit status 134).
pub fn abort() -> ! {
    exit(134)
}
