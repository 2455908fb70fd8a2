//! Describing how a guest crashed: the exception, the faulting address, and where in the
//! guest's source it happened (function name from the symbol table, file:line from DWARF
//! when the ELF has debug info).

use std::path::Path;

use crate::hypercall::ExceptionFrame;
use crate::layout::MemoryMap;

/// Why the guest was stopped abnormally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crash {
    /// A CPU exception, reported by the runner's stub; `cr2` is the faulting address for
    /// page faults.
    Exception { frame: ExceptionFrame, cr2: u64 },
    /// The CPU could not even deliver an exception (KVM_EXIT_SHUTDOWN).
    TripleFault { rip: u64 },
    /// KVM could not run or emulate an instruction (KVM_EXIT_INTERNAL_ERROR).
    Internal { rip: u64 },
    /// KVM refused to enter the guest (KVM_EXIT_FAIL_ENTRY).
    EntryFailure { reason: u64 },
    /// Another exit the runner does not expect from a guest (e.g. MMIO, `in`).
    UnexpectedExit { what: String, rip: u64 },
    /// The guest broke the hypercall ABI (a bad pointer, an unknown port, ...).
    BadHypercall(String),
}

const PAGE_FAULT: u8 = 14;

fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug exception (#DB)",
        2 => "non-maskable interrupt",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack-segment fault (#SS)",
        13 => "general protection fault (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating-point exception (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating-point exception (#XM)",
        _ => "CPU exception",
    }
}

/// What a page fault's error code says was attempted.
fn page_fault_access(error_code: u64, cr2: u64, map: &MemoryMap) -> String {
    let access = if error_code & (1 << 4) != 0 {
        "executing"
    } else if error_code & (1 << 1) != 0 {
        "writing"
    } else {
        "reading"
    };
    let what = if cr2 < crate::elf::PAGE {
        "the null page"
    } else if (map.stack_guard..map.stack_bottom).contains(&cr2) {
        "the stack guard page: stack overflow"
    } else if error_code & 1 != 0 {
        "a protected page"
    } else {
        "unmapped memory"
    };
    format!("{access} {what}")
}

/// One line describing `crash`, symbolized against the guest ELF at `elf`.
pub fn describe(crash: &Crash, map: &MemoryMap, elf: &Path) -> String {
    match crash {
        Crash::Exception { frame, cr2 } => {
            let mut line = format!("guest crashed: {}", exception_name(frame.vector));
            if frame.vector == PAGE_FAULT {
                line += &format!(
                    " at address {cr2:#x} ({})",
                    page_fault_access(frame.error_code, *cr2, map)
                );
            } else if frame.error_code != 0 {
                line += &format!(" (error code {:#x})", frame.error_code);
            }
            line += &format!(", rip {:#x}", frame.rip);
            if let Some(place) = symbolize(elf, frame.rip, map) {
                line += &format!(" in {place}");
            }
            line
        }
        Crash::TripleFault { rip } => format!(
            "guest crashed: triple fault (the CPU could not deliver an exception), rip {rip:#x}"
        ),
        Crash::Internal { rip } => format!(
            "guest stopped: KVM could not execute the instruction at rip {rip:#x} (internal error)"
        ),
        Crash::EntryFailure { reason } => {
            format!("KVM refused to enter the guest (hardware entry failure reason {reason:#x})")
        }
        Crash::UnexpectedExit { what, rip } => {
            format!("guest stopped: unexpected {what} at rip {rip:#x}")
        }
        Crash::BadHypercall(message) => format!("guest stopped: invalid hypercall: {message}"),
    }
}

/// "function at file:line:column", innermost inlined frame first, or just the function name
/// without debug info; `None` if `rip` is not in the image.
fn symbolize(elf: &Path, rip: u64, map: &MemoryMap) -> Option<String> {
    if rip < map.load_bias || rip >= map.image_end {
        return None;
    }
    let probe = rip - map.load_bias;
    let loader = addr2line::Loader::new(elf).ok()?;
    let mut frames_text = Vec::new();
    if let Ok(mut frames) = loader.find_frames(probe) {
        while let Ok(Some(frame)) = frames.next() {
            let name = frame
                .function
                .as_ref()
                .and_then(|function| function.raw_name().ok())
                .map(|raw| demangle(&raw))
                .unwrap_or_else(|| "??".into());
            let place = frame.location.as_ref().and_then(|location| {
                let file = location.file?;
                Some(match (location.line, location.column) {
                    (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
                    (Some(line), None) => format!("{file}:{line}"),
                    _ => file.to_string(),
                })
            });
            frames_text.push(match place {
                Some(place) => format!("{name} at {place}"),
                None => name,
            });
        }
    }
    if frames_text.is_empty() {
        return loader.find_symbol(probe).map(demangle);
    }
    Some(frames_text.join(", inlined into "))
}

/// A Rust symbol without its hash, or the name unchanged.
fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}
