//! Running the guest between gdb's commands: each resume runs the vCPU until it stops on its
//! own (breakpoint, step, exception, exit) or gdb sends something (Ctrl-C), which a watcher
//! thread turns into an interrupt of the run.

use std::io::{Read, Write};
use std::marker::PhantomData;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use gdbstub::common::Signal;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::SingleThreadStopReason;
use kvm_ioctls::SyncReg;

use super::target::{Debuggee, Held, Resume};
use crate::exit_code;
use crate::fault::{self, Crash};
use crate::hypercall::ExceptionFrame;
use crate::machine::{self, BREAKPOINT, DEBUG, TRAP_FLAG};
use crate::vcpu::{kvm_error, InterruptHandle, Stop};
use crate::KvmError;

type StopReason = SingleThreadStopReason<u64>;
type WaitError = WaitForStopReasonError<KvmError, std::io::Error>;

pub struct Session<'a>(PhantomData<&'a mut ()>);

impl<'a> BlockingEventLoop for Session<'a> {
    type Target = Debuggee<'a>;
    type Connection = TcpStream;
    type StopReason = StopReason;

    fn wait_for_stop_reason(
        target: &mut Debuggee<'a>,
        conn: &mut TcpStream,
    ) -> Result<Event<StopReason>, WaitError> {
        if let Some(reason) = release_held(target) {
            return Ok(Event::TargetStopped(reason));
        }
        match run(target, conn)? {
            Stop::Interrupted => {
                // Stopped outside the stubs, which would have cleared a step's trap flag.
                let (vcpu, _) = target.vm.parts();
                vcpu.sync_regs_mut().regs.rflags &= !TRAP_FLAG;
                vcpu.set_sync_dirty_reg(SyncReg::Register);
                // gdb sent something (normally Ctrl-C, 0x03): gdbstub reads it from here on.
                let mut byte = [0];
                conn.read_exact(&mut byte)
                    .map_err(WaitForStopReasonError::Connection)?;
                Ok(Event::IncomingData(byte[0]))
            }
            stop => stop_reason(target, stop)
                .map(Event::TargetStopped)
                .map_err(WaitForStopReasonError::Target),
        }
    }

    fn on_interrupt(_target: &mut Debuggee<'a>) -> Result<Option<StopReason>, KvmError> {
        Ok(Some(StopReason::Signal(Signal::SIGINT)))
    }
}

/// What resuming a guest that stopped on a fatal exception or a panic does instead of running.
fn release_held(target: &mut Debuggee<'_>) -> Option<StopReason> {
    match target.held.take()? {
        Held::Panicked(code) => {
            target.ended = Some(Stop::Exited(code));
            Some(StopReason::Exited(code as u8))
        }
        // Passing the signal on ends the guest, as it ends a process.
        Held::Fatal { stop, signal } if target.resume_signal == Some(signal) => {
            target.ended = Some(stop);
            Some(StopReason::Terminated(signal))
        }
        // Without it (gdb's `signal 0`, or after fixing the state), the guest goes on.
        Held::Fatal { .. } => None,
    }
}

/// Runs the vCPU until it stops, or until gdb sends data on `conn`.
fn run(target: &mut Debuggee<'_>, conn: &TcpStream) -> Result<Stop, WaitError> {
    if target.resume == Resume::Step {
        let (vcpu, _) = target.vm.parts();
        vcpu.sync_regs_mut().regs.rflags |= TRAP_FLAG;
        vcpu.set_sync_dirty_reg(SyncReg::Register);
    }
    target.interrupter.forget_pending(target.vm);
    let watched = conn
        .try_clone()
        .map_err(WaitForStopReasonError::Connection)?;
    let (mut wake, woken) = UnixStream::pair().map_err(WaitForStopReasonError::Connection)?;
    let interrupt = target.interrupter.handle();
    std::thread::scope(|scope| {
        scope.spawn(move || watch(&watched, &woken, interrupt));
        let stop = target.vm.run(&mut *target.output, target.started, None);
        // The watcher ends either way: a failed write means it already has.
        let _ = wake.write_all(&[1]);
        Ok(stop)
    })
}

/// Waits until gdb sends data, then interrupts the vCPU; returns early once `woken` is readable
/// (the run ended by itself).
fn watch(conn: &TcpStream, woken: &UnixStream, interrupt: InterruptHandle) {
    let mut fds = [
        libc::pollfd {
            fd: conn.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: woken.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: polling two descriptors that outlive the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break;
    }
    if fds[1].revents == 0 && fds[0].revents != 0 {
        interrupt.interrupt();
    }
}

/// What gdb is told about a stop of the vCPU.
fn stop_reason(target: &mut Debuggee<'_>, stop: Stop) -> Result<StopReason, KvmError> {
    Ok(match stop {
        Stop::Exited(code) if code == exit_code::PANIC => {
            // The panic handler's frames are still on the stack: let gdb show them first.
            target.held = Some(Held::Panicked(code));
            StopReason::Signal(Signal::SIGABRT)
        }
        Stop::Exited(code) => {
            target.ended = Some(Stop::Exited(code));
            StopReason::Exited(code as u8)
        }
        Stop::Crashed(Crash::Exception { frame, cr2 }) => {
            leave_stub(target, &frame)?;
            let stepping = target.resume == Resume::Step;
            let at_breakpoint = frame.rip.wrapping_sub(1);
            match frame.vector {
                DEBUG if stepping => StopReason::DoneStep,
                BREAKPOINT if target.is_breakpoint(at_breakpoint) => {
                    // gdb expects the stop at the breakpoint, not after its `int3`.
                    let (vcpu, _) = target.vm.parts();
                    vcpu.sync_regs_mut().regs.rip = at_breakpoint;
                    vcpu.set_sync_dirty_reg(SyncReg::Register);
                    StopReason::SwBreak(())
                }
                DEBUG | BREAKPOINT => StopReason::Signal(Signal::SIGTRAP),
                vector => {
                    let signal = gdb_signal(fault::Signal::of_exception(vector));
                    target.held = Some(Held::Fatal {
                        stop: Stop::Crashed(Crash::Exception { frame, cr2 }),
                        signal,
                    });
                    StopReason::Signal(signal)
                }
            }
        }
        other => {
            // Nothing to resume: the vCPU cannot go on (or the host side failed).
            let signal = match &other {
                Stop::Crashed(crash) => gdb_signal(crash.signal()),
                Stop::OutputClosed => Signal::SIGPIPE,
                _ => Signal::SIGKILL,
            };
            target.ended = Some(other);
            StopReason::Terminated(signal)
        }
    })
}

/// Returns from the exception stub as its `iretq` would, so the vCPU holds the guest's state
/// at the exception (gdb reads and changes that, and resuming runs the guest from there).
fn leave_stub(target: &mut Debuggee<'_>, frame: &ExceptionFrame) -> Result<(), KvmError> {
    let (vcpu, _) = target.vm.parts();
    let regs = &mut vcpu.sync_regs_mut().regs;
    regs.rip = frame.rip;
    regs.rsp = frame.rsp;
    // Only single steps set the trap flag.
    regs.rflags = frame.rflags & !TRAP_FLAG;
    vcpu.set_sync_dirty_reg(SyncReg::Register);
    let mut sregs = vcpu.get_sregs().map_err(kvm_error("KVM_GET_SREGS"))?;
    machine::return_to_guest(&mut sregs);
    vcpu.set_sregs(&sregs).map_err(kvm_error("KVM_SET_SREGS"))
}

/// gdb's number for `signal`.
fn gdb_signal(signal: fault::Signal) -> Signal {
    match signal {
        fault::Signal::Segv => Signal::SIGSEGV,
        fault::Signal::Ill => Signal::SIGILL,
        fault::Signal::Fpe => Signal::SIGFPE,
        fault::Signal::Bus => Signal::SIGBUS,
        fault::Signal::Trap => Signal::SIGTRAP,
        fault::Signal::Abrt => Signal::SIGABRT,
        fault::Signal::Sys => Signal::SIGSYS,
        fault::Signal::Alrm => Signal::SIGALRM,
        fault::Signal::Kill => Signal::SIGKILL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_as_gdb_signals() {
        let of = |vector| gdb_signal(fault::Signal::of_exception(vector));
        assert_eq!(of(machine::PAGE_FAULT), Signal::SIGSEGV);
        assert_eq!(of(13), Signal::SIGSEGV);
        assert_eq!(of(6), Signal::SIGILL);
        assert_eq!(of(0), Signal::SIGFPE);
        assert_eq!(of(19), Signal::SIGFPE);
        // gdb numbers SIGBUS 10 where Linux says 7.
        assert_eq!(of(17), Signal::SIGBUS);
        assert_eq!(fault::Signal::of_exception(17).number(), 7);
    }
}
