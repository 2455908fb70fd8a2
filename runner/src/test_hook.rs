//! Hidden hooks for the runner's own tests: states no well-behaved guest can reach (a broken
//! IDT, an exception stub KVM cannot emulate or that never returns, a vCPU state KVM refuses, a
//! forbidden system call after confinement) are provoked on purpose, to check the runner still
//! ends cleanly with the documented message and exit code. Off unless
//! `HYPERLIGHT_RUN_TEST_HOOK` is set; not part of the user interface. Only debug builds (what
//! `cargo test` runs) have them: in a release build every hook is an empty function.

#[cfg(not(debug_assertions))]
pub use release::*;

#[cfg(not(debug_assertions))]
mod release {
    use crate::memory::GuestMemory;

    pub fn before_boot(_memory: &mut GuestMemory) {}
    pub fn initial_sregs(_sregs: &mut kvm_bindings::kvm_sregs) {}
    pub fn after_confinement() {}
}

#[cfg(debug_assertions)]
pub use debug::*;

#[cfg(debug_assertions)]
mod debug {
    use crate::layout::{IDT_ADDR, STUBS_ADDR};
    use crate::machine::{EXCEPTION_VECTORS, IDT_LIMIT, STUB_SIZE};
    use crate::memory::GuestMemory;

    pub const VAR: &str = "HYPERLIGHT_RUN_TEST_HOOK";

    /// Read once per process: a thread booting guest after guest asks for it several times a boot.
    fn hook() -> Option<&'static str> {
        static HOOK: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        HOOK.get_or_init(|| std::env::var(VAR).ok()).as_deref()
    }

    /// Just before the VM is created: guest memory is complete.
    pub fn before_boot(memory: &mut GuestMemory) {
        let Some(hook) = hook() else {
            return;
        };
        let stub_code: &[u8] = match hook {
            // No exception can be delivered: the first one becomes a triple fault.
            "break-idt" => {
                let _ = memory.write(IDT_ADDR, &[0; IDT_LIMIT as usize + 1]);
                return;
            }
            // `mov rax, cr0; mov cr0, rax; addps xmm0, xmm0; jmp $` at CPL 0: after a privileged
            // instruction PVM emulates the following ones too and has no SSE arithmetic (NOTES.md).
            // A KVM that can run it spins instead, which --timeout then ends.
            "unemulable-stub" => &[
                0x0f, 0x20, 0xc0, 0x0f, 0x22, 0xc0, 0x0f, 0x58, 0xc0, 0xeb, 0xfe,
            ],
            // `jmp $` at CPL 0 with interrupts off (the IDT gates clear IF).
            "spin-in-stub" => &[0xeb, 0xfe],
            _ => return,
        };
        // Every vector's stub gets the code.
        for vector in 0..u64::from(EXCEPTION_VECTORS) {
            let _ = memory.write(STUBS_ADDR + vector * STUB_SIZE, stub_code);
        }
    }

    /// The vCPU's special registers, before they go to KVM with the first KVM_RUN.
    pub fn initial_sregs(sregs: &mut kvm_bindings::kvm_sregs) {
        if hook() == Some("refused-sregs") {
            // Paging without protected mode: KVM refuses the state, so KVM_RUN fails.
            sregs.cr0 = 0x8000_0000;
        }
    }

    /// Right after the seccomp filter is installed (or would be, with `--no-seccomp`).
    pub fn after_confinement() {
        match hook() {
            Some("seccomp-status") => {
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let line = status
                    .lines()
                    .find(|line| line.starts_with("Seccomp:"))
                    .unwrap_or("Seccomp: unknown");
                eprintln!("test hook: {line}");
            }
            Some("forbidden-syscall") => {
                // SAFETY: creating (and closing) a socket has no effect on our memory.
                let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
                eprintln!("test hook: socket() returned {fd}");
                if fd >= 0 {
                    // SAFETY: closing the fd we just created.
                    unsafe { libc::close(fd) };
                }
            }
            _ => {}
        }
    }
}
