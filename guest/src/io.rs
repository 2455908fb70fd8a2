//! Guest stdout and stderr.
//!
//! Every hypercall is a VM exit (microseconds), so output is batched: stdout collects into a
//! buffer flushed when full, before anything goes to stderr (so the two streams keep their
//! relative order) and at each newline when the host's stdout is a terminal; at exit the
//! runner writes what is left. Each `eprint!` is sent as one write at its end.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::abi::stream;
use crate::hypercall;

/// The buffer lives in memory the runner knows about (see [`crate::abi::STDOUT_BUFFER_ADDR`]),
/// so output still pending when the guest ends is written out by the runner.
#[repr(C)]
struct StdoutBuffer {
    len: u64,
    bytes: [u8],
}

struct Stdout {
    buffer: AtomicPtr<u8>,
    capacity: AtomicUsize,
    /// Set while the buffer is borrowed, so a panic inside a `Display` impl being printed
    /// (which prints to stderr and flushes stdout) cannot alias it.
    busy: AtomicBool,
    line_buffered: AtomicBool,
}

static STDOUT: Stdout = Stdout {
    buffer: AtomicPtr::new(core::ptr::null_mut()),
    capacity: AtomicUsize::new(0),
    busy: AtomicBool::new(false),
    line_buffered: AtomicBool::new(false),
};

/// Called once at start with the runner's buffer (header included).
pub(crate) fn init(buffer: u64, size: u64, line_buffered: bool) {
    if size <= 8 {
        return;
    }
    STDOUT
        .capacity
        .store((size - 8) as usize, Ordering::Relaxed);
    STDOUT.buffer.store(buffer as *mut u8, Ordering::Relaxed);
    STDOUT.line_buffered.store(line_buffered, Ordering::Relaxed);
}

/// Runs `f` on the stdout buffer, or returns `None` if there is none yet or it is already in
/// use further up the stack.
fn with_stdout<R>(f: impl FnOnce(&mut StdoutBuffer) -> R) -> Option<R> {
    let base = STDOUT.buffer.load(Ordering::Relaxed);
    if base.is_null() || STDOUT.busy.swap(true, Ordering::Acquire) {
        return None;
    }
    let capacity = STDOUT.capacity.load(Ordering::Relaxed);
    // SAFETY: the runner maps the buffer writable for the whole run; `busy` makes this the
    // only live reference.
    let buffer =
        unsafe { &mut *(core::ptr::slice_from_raw_parts_mut(base, capacity) as *mut StdoutBuffer) };
    let result = f(buffer);
    STDOUT.busy.store(false, Ordering::Release);
    Some(result)
}

impl StdoutBuffer {
    fn flush(&mut self) {
        hypercall::write(stream::STDOUT, &self.bytes[..self.len as usize]);
        self.len = 0;
    }

    fn write(&mut self, bytes: &[u8]) {
        let capacity = self.bytes.len();
        let len = self.len as usize;
        if bytes.len() > capacity - len {
            self.flush();
        }
        if bytes.len() >= capacity {
            hypercall::write(stream::STDOUT, bytes);
        } else {
            let len = self.len as usize;
            self.bytes[len..len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len() as u64;
        }
        if STDOUT.line_buffered.load(Ordering::Relaxed) && bytes.contains(&b'\n') {
            self.flush();
        }
    }
}

/// Writes raw bytes to stdout (buffered). Binary-safe.
pub fn write_stdout(bytes: &[u8]) {
    if with_stdout(|buffer| buffer.write(bytes)).is_none() {
        hypercall::write(stream::STDOUT, bytes);
    }
}

/// Sends whatever stdout has buffered to the host.
pub fn flush_stdout() {
    let _ = with_stdout(StdoutBuffer::flush);
}

/// Writes raw bytes to stderr, after flushing stdout. Binary-safe, unbuffered.
pub fn write_stderr(bytes: &[u8]) {
    flush_stdout();
    hypercall::write(stream::STDERR, bytes);
}

/// A [`fmt::Write`] for stdout; `write!(hyperlight_rt::io::stdout(), ...)` works.
pub struct StdoutWriter;

pub fn stdout() -> StdoutWriter {
    StdoutWriter
}

impl Write for StdoutWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_stdout(s.as_bytes());
        Ok(())
    }
}

/// Collects one formatted stderr message on the stack so it leaves in one hypercall (or a few,
/// for long messages).
pub(crate) struct StderrMessage {
    bytes: [u8; 512],
    len: usize,
}

impl StderrMessage {
    pub(crate) const fn new() -> Self {
        StderrMessage {
            bytes: [0; 512],
            len: 0,
        }
    }

    pub(crate) fn finish(&mut self) {
        write_stderr(&self.bytes[..self.len]);
        self.len = 0;
    }
}

impl Write for StderrMessage {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            if self.len == self.bytes.len() {
                self.finish();
            }
            let n = rest.len().min(self.bytes.len() - self.len);
            self.bytes[self.len..self.len + n].copy_from_slice(&rest[..n]);
            self.len += n;
            rest = &rest[n..];
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _ = StdoutWriter.write_fmt(args);
}

#[doc(hidden)]
pub fn _eprint(args: fmt::Arguments<'_>) {
    let mut message = StderrMessage::new();
    let _ = message.write_fmt(args);
    message.finish();
}

/// Like std's `print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::_print(format_args!($($arg)*)) };
}

/// Like std's `println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::io::write_stdout(b"\n") };
    ($($arg:tt)*) => {{
        $crate::io::_print(format_args!($($arg)*));
        $crate::io::write_stdout(b"\n");
    }};
}

/// Like std's `eprint!`.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::_eprint(format_args!($($arg)*)) };
}

/// Like std's `eprintln!`.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::io::write_stderr(b"\n") };
    ($($arg:tt)*) => { $crate::io::_eprint(format_args!("{}\n", format_args!($($arg)*))) };
}
