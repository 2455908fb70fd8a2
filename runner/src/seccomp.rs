//! Confining the runner with seccomp once the VM is built.
//!
//! Guest code can only reach the host through KVM exits that the run loop serves, so the run
//! loop is the attack surface; after setup it needs very little: KVM_RUN and KVM_GET_SREGS
//! (vCPU ioctls: the VM-level and system-level ones, such as creating VMs or memory slots, are
//! refused), writes to stdout and stderr, the `--timeout` timer and signal, memory
//! management for the allocator, and read-only file access for symbolizing a crash report
//! (the guest ELF and its `.dwp`). Everything else (exec, sockets, opening files for writing,
//! executable mappings, other ioctls) is refused.
//!
//! A refused call raises SIGSYS (SECCOMP_RET_TRAP); the handler prints
//! `hyperlight-run: error: seccomp: blocked system call <nr>` and exits with
//! [`crate::exit_code::SECCOMP`], 159, which is also what a shell reports for a process killed
//! by SIGSYS.

use std::collections::BTreeMap;

use kvm_bindings::kvm_sregs;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

const KVMIO: u64 = 0xAE;

/// `_IOR`/`_IOW`/`_IO` of the KVM ioctls the run loop makes, computed from the structs' sizes.
fn kvm_ioctl(direction: u64, nr: u64, size: usize) -> u64 {
    (direction << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}

/// Registers travel through `kvm_run`'s sync-regs area, so besides KVM_RUN only reading CR2
/// for a page fault's report needs an ioctl.
fn allowed_ioctls() -> [u64; 2] {
    const READ: u64 = 2;
    [
        kvm_ioctl(0, 0x80, 0),                                   // KVM_RUN
        kvm_ioctl(READ, 0x83, std::mem::size_of::<kvm_sregs>()), // KVM_GET_SREGS
    ]
}

fn condition(arg: u8, op: Op, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, Len::Qword, op, value).expect("valid seccomp condition")
}

fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("valid seccomp rule")
}

/// The allow list for the run loop.
fn rules() -> BTreeMap<i64, Vec<SeccompRule>> {
    let always = |nr: libc::c_long| (nr, Vec::new());
    let no_exec = || {
        vec![rule(vec![condition(
            2,
            Op::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )])]
    };
    let pid = std::process::id() as u64;
    [
        // The run loop.
        (
            libc::SYS_ioctl,
            allowed_ioctls()
                .into_iter()
                .map(|request| {
                    // The request is an `unsigned int` in the kernel: compare 32 bits.
                    rule(vec![SeccompCondition::new(1, Len::Dword, Op::Eq, request)
                        .expect("valid seccomp condition")])
                })
                .collect(),
        ),
        // Guest output and error messages.
        (
            libc::SYS_write,
            vec![
                rule(vec![condition(0, Op::Eq, 1)]),
                rule(vec![condition(0, Op::Eq, 2)]),
            ],
        ),
        // --timeout: the alarm is armed and disarmed around the run loop.
        always(libc::SYS_setitimer),
        always(libc::SYS_rt_sigaction),
        always(libc::SYS_rt_sigprocmask),
        always(libc::SYS_rt_sigreturn),
        always(libc::SYS_sigaltstack),
        // The allocator; never an executable mapping.
        always(libc::SYS_brk),
        (libc::SYS_mmap, no_exec()),
        (libc::SYS_mprotect, no_exec()),
        always(libc::SYS_munmap),
        always(libc::SYS_mremap),
        always(libc::SYS_madvise),
        always(libc::SYS_futex),
        // Symbolizing a crash: read-only opens of the guest ELF and its split DWARF.
        (
            libc::SYS_openat,
            vec![rule(vec![condition(
                2,
                Op::Eq,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            )])],
        ),
        always(libc::SYS_read),
        always(libc::SYS_pread64),
        always(libc::SYS_lseek),
        always(libc::SYS_fstat),
        always(libc::SYS_newfstatat),
        always(libc::SYS_statx),
        always(libc::SYS_close),
        // std checks an fd is open before closing it (debug builds).
        (
            libc::SYS_fcntl,
            vec![rule(vec![condition(1, Op::Eq, libc::F_GETFD as u64)])],
        ),
        always(libc::SYS_getrandom),
        always(libc::SYS_clock_gettime),
        // Exiting, and aborting on a runner panic (raise(SIGABRT) on ourselves only).
        always(libc::SYS_exit),
        always(libc::SYS_exit_group),
        always(libc::SYS_getpid),
        always(libc::SYS_gettid),
        (
            libc::SYS_tgkill,
            vec![rule(vec![condition(0, Op::Eq, pid)])],
        ),
    ]
    .into_iter()
    .collect()
}

/// Installs the SIGSYS reporter and the filter. From here on, the process can only do what
/// [`rules`] lists.
pub fn install() -> Result<(), String> {
    let filter = SeccompFilter::new(
        rules(),
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|err| format!("seccomp: building the filter failed: {err}"))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|err| format!("seccomp: compiling the filter failed: {err}"))?;
    install_reporter();
    seccompiler::apply_filter(&program)
        .map_err(|err| format!("seccomp: installing the filter failed: {err}"))?;
    Ok(())
}

fn install_reporter() {
    // SAFETY: installing a handler that only calls async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut());
    }
}

/// Offset of `si_syscall` in a SIGSYS siginfo on x86_64: signo, errno, code (padded to 16
/// bytes), then `_sigsys { void *call_addr; int syscall; unsigned arch; }`. The libc crate
/// does not expose it.
const SI_SYSCALL_OFFSET: usize = 24;

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid SIGSYS siginfo.
    let nr = unsafe {
        info.cast::<u8>()
            .add(SI_SYSCALL_OFFSET)
            .cast::<i32>()
            .read()
    };
    let mut line = [0u8; 128];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        line[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    push(b"hyperlight-run: error: seccomp: blocked system call ");
    let mut digits = [0u8; 12];
    let mut n = nr.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push(&digits[at..]);
    push(b" (a runner bug or an exploit attempt; --no-seccomp disables the filter)\n");
    // SAFETY: write and _exit are async-signal-safe and allowed by the filter.
    unsafe {
        libc::write(2, line.as_ptr().cast(), len);
        libc::_exit(crate::exit_code::SECCOMP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        // From linux/kvm.h on x86_64.
        assert_eq!(allowed_ioctls(), [0xAE80, 0x8138_AE83]);
    }

    #[test]
    fn the_filter_compiles() {
        let filter = SeccompFilter::new(
            rules(),
            SeccompAction::Trap,
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .unwrap();
        let program: BpfProgram = filter.try_into().unwrap();
        assert!(!program.is_empty());
    }
}
