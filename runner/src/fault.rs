//! Describing how a guest crashed: the exception, the faulting address, and where in the
//! guest's source it happened (function name from the symbol table, file:line from DWARF
//! when the ELF has debug info).

use std::path::Path;

use crate::backtrace::{self, StartRegisters};
use crate::hypercall::ExceptionFrame;
use crate::layout::MemoryMap;
use crate::machine::PAGE_FAULT;
use crate::memory::GuestMemory;

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

/// The Unix signal a process would get for what stopped the guest: what a debugger and a
/// core dump report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Segv,
    Ill,
    Fpe,
    Bus,
    Trap,
    Abrt,
    Sys,
    Alrm,
    Kill,
}

impl Signal {
    /// As Linux sends them for CPU exceptions.
    pub fn of_exception(vector: u8) -> Signal {
        use x86_64::structures::idt::ExceptionVector as V;
        const FPE: [V; 3] = [V::Division, V::X87FloatingPoint, V::SimdFloatingPoint];
        const ILL: [V; 2] = [V::InvalidOpcode, V::DeviceNotAvailable];
        const BUS: [V; 2] = [V::AlignmentCheck, V::MachineCheck];
        const TRAP: [V; 2] = [V::Debug, V::Breakpoint];
        let is = |vectors: &[V]| vectors.iter().any(|&v| v as u8 == vector);
        if is(&FPE) {
            Signal::Fpe
        } else if is(&ILL) {
            Signal::Ill
        } else if is(&BUS) {
            Signal::Bus
        } else if is(&TRAP) {
            Signal::Trap
        } else {
            Signal::Segv
        }
    }

    /// Linux's number for it.
    pub fn number(self) -> i32 {
        match self {
            Signal::Segv => libc::SIGSEGV,
            Signal::Ill => libc::SIGILL,
            Signal::Fpe => libc::SIGFPE,
            Signal::Bus => libc::SIGBUS,
            Signal::Trap => libc::SIGTRAP,
            Signal::Abrt => libc::SIGABRT,
            Signal::Sys => libc::SIGSYS,
            Signal::Alrm => libc::SIGALRM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

impl Crash {
    pub fn signal(&self) -> Signal {
        match self {
            Crash::Exception { frame, .. } => Signal::of_exception(frame.vector),
            Crash::TripleFault { .. } => Signal::Segv,
            Crash::Internal { .. } => Signal::Ill,
            Crash::BadHypercall(_) => Signal::Sys,
            Crash::EntryFailure { .. } | Crash::UnexpectedExit { .. } => Signal::Kill,
        }
    }
}

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

/// What the runner tells the user about a crash: one summary line (printed as the error) and
/// the guest's call stack, innermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashReport {
    pub summary: String,
    pub backtrace: Vec<String>,
}

/// Describes `crash`, symbolized against the guest ELF (`elf` holds its bytes) and unwound
/// through the guest's stack in `memory`.
pub fn report(
    crash: &Crash,
    map: &MemoryMap,
    elf_path: &Path,
    elf: &[u8],
    memory: &GuestMemory,
) -> CrashReport {
    let Crash::Exception { frame, cr2 } = crash else {
        return CrashReport {
            summary: describe_other(crash),
            backtrace: Vec::new(),
        };
    };
    let mut summary = format!("guest crashed: {}", exception_name(frame.vector));
    if frame.vector == PAGE_FAULT {
        summary += &format!(
            " at address {cr2:#x} ({})",
            page_fault_access(frame.error_code, *cr2, map)
        );
    } else if frame.error_code != 0 {
        summary += &format!(" (error code {:#x})", frame.error_code);
    }
    summary += &format!(", rip {:#x}", frame.rip);

    let addresses = backtrace::walk(
        elf,
        map,
        memory,
        StartRegisters {
            rip: frame.rip,
            rsp: frame.rsp,
            rbp: frame.rbp,
        },
    );
    let frames = symbolize_stack(&addresses, map, elf_path);
    // Name the innermost frame in the guest's own code rather than a std helper it called.
    let own_code = frames
        .iter()
        .find(|frame| {
            frame
                .location
                .as_deref()
                .is_some_and(|l| !l.starts_with("/rustc/"))
        })
        .or(frames.first());
    if let Some(frame) = own_code {
        summary += &format!(" in {}", frame.describe());
    }
    CrashReport {
        summary,
        backtrace: backtrace_lines(&frames),
    }
}

/// The frames of the return addresses in the image, innermost first, inlined ones included.
fn symbolize_stack(addresses: &[u64], map: &MemoryMap, elf_path: &Path) -> Vec<Frame> {
    let loader = addr2line::Loader::new(elf_path).ok();
    let mut frames = Vec::new();
    for (depth, &address) in addresses.iter().enumerate() {
        if !map.in_image(address) {
            continue;
        }
        // A return address points after its call instruction.
        let probe = address.wrapping_sub(map.load_bias) - u64::from(depth > 0);
        let symbolized = loader
            .as_ref()
            .map(|loader| symbolize(loader, probe))
            .unwrap_or_default();
        if symbolized.is_empty() {
            frames.push(Frame {
                address,
                function: "??".into(),
                location: None,
            });
        }
        frames.extend(symbolized.into_iter().map(|(function, location)| Frame {
            address,
            function,
            location,
        }));
    }
    frames
}

/// One numbered line per frame, a run of identical frames (deep recursion, a stack overflow)
/// folded into one line saying how many more.
fn backtrace_lines(frames: &[Frame]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut index = 0;
    while index < frames.len() {
        let line = format!("{:#x} {}", frames[index].address, frames[index].describe());
        let repeats = frames[index + 1..]
            .iter()
            .take_while(|frame| format!("{:#x} {}", frame.address, frame.describe()) == line)
            .count();
        lines.push(format!("{index:>4}: {line}"));
        if repeats > 0 {
            lines.push(format!("      ... the same frame {repeats} more times"));
        }
        index += 1 + repeats;
    }
    lines
}

struct Frame {
    address: u64,
    function: String,
    location: Option<String>,
}

impl Frame {
    fn describe(&self) -> String {
        match &self.location {
            Some(location) => format!("{} at {location}", self.function),
            None => self.function.clone(),
        }
    }
}

fn describe_other(crash: &Crash) -> String {
    match crash {
        Crash::Exception { .. } => unreachable!("handled by report"),
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

/// The functions at `probe` (a link-time address), innermost inlined frame first, each with
/// file:line:column when the ELF has debug info; the symbol table's name otherwise.
fn symbolize(loader: &addr2line::Loader, probe: u64) -> Vec<(String, Option<String>)> {
    let mut frames = Vec::new();
    if let Ok(mut iter) = loader.find_frames(probe) {
        while let Ok(Some(frame)) = iter.next() {
            let name = frame
                .function
                .as_ref()
                .and_then(|function| function.raw_name().ok())
                .map(|raw| demangle(&raw))
                .unwrap_or_else(|| "??".into());
            let location = frame.location.as_ref().and_then(|location| {
                let file = location.file?;
                Some(match (location.line, location.column) {
                    (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
                    (Some(line), None) => format!("{file}:{line}"),
                    _ => file.to_string(),
                })
            });
            frames.push((name, location));
        }
    }
    if frames.is_empty() {
        if let Some(name) = loader.find_symbol(probe) {
            frames.push((demangle(name), None));
        }
    }
    frames
}

/// A Rust symbol without its hash, or the name unchanged.
fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}
