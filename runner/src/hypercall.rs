//! Hypercalls: the guest's `out` instructions, decoded from its registers.
//!
//! Every pointer and length comes from the guest and is checked against guest memory before
//! use; a bad one ends the guest with a message, never a host access outside guest memory.

use std::io;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyperlight_rt::abi::{clock, port, stream, MAX_RANDOM_BYTES};
use kvm_bindings::kvm_regs;

use crate::layout::is_stub_address;
use crate::memory::GuestMemory;
use crate::output::{Output, Stream};

/// A CPU exception as the runner's stub reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionFrame {
    pub vector: u8,
    pub error_code: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    /// Untouched by the stub, so still the guest's (unwinding may need it).
    pub rbp: u64,
}

/// What the run loop does after a hypercall.
#[derive(Debug)]
pub enum Action {
    Resume,
    Exit(i32),
    Exception(ExceptionFrame),
    /// The guest broke the ABI; the message says how.
    Invalid(String),
    /// The consumer of the guest's output went away (EPIPE).
    OutputClosed,
    HostError(io::Error),
}

pub struct Context<'a> {
    pub memory: &'a mut GuestMemory,
    pub output: &'a mut dyn Output,
    pub started: Instant,
}

/// Handles an `out` to `port`, reading arguments from (and writing results to) `regs`.
pub fn handle(port: u16, regs: &mut kvm_regs, context: &mut Context<'_>) -> Action {
    match port {
        port::EXIT => exit(regs.rdi as u32 as i32, context),
        port::WRITE => write(regs, context),
        port::CLOCK => match read_clock(regs.rdi, context.started) {
            Some(nanos) => {
                regs.rax = nanos;
                Action::Resume
            }
            None => Action::Invalid(format!(
                "clock hypercall with unknown clock id {}",
                regs.rdi
            )),
        },
        port::RANDOM => random(regs, context.memory),
        port::EXCEPTION => exception(regs, context.memory),
        other => Action::Invalid(format!(
            "unknown hypercall port {other:#x} at rip {:#x}",
            regs.rip
        )),
    }
}

/// The runtime leaves stdout's last bytes in the buffer for the runner to write, which saves
/// the guest a VM exit.
fn exit(code: i32, context: &mut Context<'_>) -> Action {
    let pending = crate::boot::pending_stdout(context.memory);
    after_output(
        context.output.write(Stream::Stdout, pending),
        Action::Exit(code),
    )
}

/// `then` once output went out; a reader that went away (EPIPE) ends the run quietly.
fn after_output(written: io::Result<()>, then: Action) -> Action {
    match written {
        Ok(()) => then,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Action::OutputClosed,
        Err(err) => Action::HostError(err),
    }
}

fn write(regs: &mut kvm_regs, context: &mut Context<'_>) -> Action {
    let (fd, addr, len) = (regs.rdi, regs.rsi, regs.rdx);
    let stream = match fd {
        stream::STDOUT => Stream::Stdout,
        stream::STDERR => Stream::Stderr,
        other => return Action::Invalid(format!("write hypercall to unknown stream {other}")),
    };
    let Some(bytes) = guest_bytes(context.memory, addr, len) else {
        return Action::Invalid(format!(
            "write hypercall with a buffer outside guest memory (address {addr:#x}, length {len:#x})"
        ));
    };
    regs.rax = len;
    after_output(context.output.write(stream, bytes), Action::Resume)
}

fn random(regs: &mut kvm_regs, memory: &mut GuestMemory) -> Action {
    let (addr, len) = (regs.rdi, regs.rsi);
    if len > MAX_RANDOM_BYTES {
        return Action::Invalid(format!(
            "random hypercall for {len} bytes (at most {MAX_RANDOM_BYTES} per call)"
        ));
    }
    let buffer = match memory.slice_mut(addr, len) {
        Some(buffer) if addr >= crate::elf::PAGE || len == 0 => buffer,
        _ => {
            return Action::Invalid(format!(
                "random hypercall with a buffer outside guest memory (address {addr:#x}, length {len:#x})"
            ))
        }
    };
    crate::getrandom(buffer);
    regs.rax = len;
    Action::Resume
}

/// Guest bytes a hypercall may read: inside guest memory and not in the null page.
fn guest_bytes(memory: &GuestMemory, addr: u64, len: u64) -> Option<&[u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if addr < crate::elf::PAGE {
        return None;
    }
    memory.slice(addr, len)
}

fn read_clock(id: u64, started: Instant) -> Option<u64> {
    match id {
        // Offset by one second so a guest never sees 0 and "since boot" stays meaningful.
        clock::MONOTONIC => Some(1_000_000_000 + started.elapsed().as_nanos() as u64),
        clock::REALTIME => Some(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64),
        ),
        _ => None,
    }
}

/// Decodes the frame the exception stub leaves on the fault stack.
fn exception(regs: &kvm_regs, memory: &GuestMemory) -> Action {
    if !is_stub_address(regs.rip) {
        return Action::Invalid(format!(
            "the guest used the runner's exception port at rip {:#x}",
            regs.rip
        ));
    }
    let word = |index: u64| memory.read_u64(regs.rsp.wrapping_add(index * 8));
    match (word(0), word(1), word(2), word(4), word(5)) {
        (Some(vector), Some(error_code), Some(rip), Some(rflags), Some(rsp)) => {
            Action::Exception(ExceptionFrame {
                vector: vector as u8,
                error_code,
                rip,
                rsp,
                rflags,
                rbp: regs.rbp,
            })
        }
        _ => Action::Invalid("exception frame outside guest memory".into()),
    }
}
