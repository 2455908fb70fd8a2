//! The panic handler: std's message format and exit code, without unwinding.

use core::fmt::Write;
use core::panic::PanicInfo;

use crate::io::StderrMessage;

/// std's exit code for a panicking `main`.
const PANIC_EXIT_CODE: i32 = 101;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut message = StderrMessage::new();
    let _ = match info.location() {
        Some(location) => write!(
            message,
            "panicked at {}:{}:{}:\n{}\n",
            location.file(),
            location.line(),
            location.column(),
            info.message()
        ),
        None => write!(message, "panicked:\n{}\n", info.message()),
    };
    message.finish();
    crate::process::exit(PANIC_EXIT_CODE)
}
