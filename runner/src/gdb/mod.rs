//! `--gdb [HOST:]PORT`: the guest under a debugger. The runner waits for gdb (or lldb) on a TCP
//! port before the guest's first instruction and serves the gdb remote protocol through the
//! gdbstub crate.
//!
//! This machine's KVM (kvm_pvm) accepts KVM_SET_GUEST_DEBUG but ignores it (docs/abi.md), so
//! breakpoints and single steps go through the guest's own exceptions: an `int3` and the trap
//! flag end in the runner's #BP and #DB stubs like any fault, and the runner then returns from
//! the stub itself. Nothing here runs without `--gdb`.

mod arch;
mod event_loop;
mod target;

/// The register block of gdb's `g` and `G` packets, the one part of the protocol parsed here
/// rather than by gdbstub (fuzzed: fuzz/fuzz_targets/gdb_registers.rs).
pub use arch::GuestRegs;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use gdbstub::stub::{DisconnectReason, GdbStub};

use crate::output::Output;
use crate::vcpu::{Stop, Vm};
use crate::KvmError;
use event_loop::Session;
use target::{Debuggee, Held};

/// Why no debugger could be served.
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("cannot listen for gdb on {address}: {source}; pick another port (0: any free one)")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("waiting for gdb on {address} failed: {source}")]
    Accept {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kvm(#[from] KvmError),
}

/// Waits for a debugger on `address`, then runs the guest under it until the guest ends or the
/// debugger kills it. A debugger that detaches (or whose connection fails) leaves the guest to
/// run on to its end unwatched.
pub fn debug(
    vm: &mut Vm,
    address: SocketAddr,
    first_segment: u64,
    output: &mut dyn Output,
    started: Instant,
) -> Result<Stop, DebugError> {
    let listen_error = |source| DebugError::Listen { address, source };
    let listener = TcpListener::bind(address).map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    let _ = writeln!(
        std::io::stderr(),
        "hyperlight-run: waiting for gdb on {local}"
    );
    let (stream, _) = listener.accept().map_err(|source| DebugError::Accept {
        address: local,
        source,
    })?;
    // One debugger: later connections are refused.
    drop(listener);
    let _ = stream.set_nodelay(true);
    vm.apply_initial_sregs()?;

    let mut target = Debuggee::new(vm, output, started, first_segment);
    let result = GdbStub::new(stream).run_blocking::<Session<'_>>(&mut target);
    if let Some(ended) = target.ended.take() {
        return Ok(ended);
    }
    match result {
        Ok(DisconnectReason::Kill) => return Ok(Stop::Killed),
        Ok(_) => {}
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "hyperlight-run: warning: the gdb connection failed ({err}); the guest runs on"
            );
        }
    }
    match target.held.take() {
        Some(Held::Panicked(code)) => return Ok(Stop::Exited(code)),
        Some(Held::Fatal { stop, .. }) => return Ok(stop),
        None => {}
    }
    target.remove_all_breakpoints();
    let Debuggee {
        vm,
        output,
        interrupter,
        ..
    } = target;
    drop(interrupter);
    Ok(vm.run(output, started, None))
}
