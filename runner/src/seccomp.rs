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

use kvm_bindings::kvm_sregs;
use seccompiler::{sock_filter, BpfProgram};

use crate::SetupError;

const KVMIO: u32 = 0xAE;

/// `_IOR`/`_IOW`/`_IO` of the KVM ioctls the run loop makes, computed from the structs' sizes.
fn kvm_ioctl(direction: u32, nr: u32, size: usize) -> u32 {
    (direction << 30) | ((size as u32) << 16) | (KVMIO << 8) | nr
}

/// Registers travel through `kvm_run`'s sync-regs area, so besides KVM_RUN only reading CR2
/// for a page fault's report needs an ioctl.
fn allowed_ioctls() -> [u32; 2] {
    const READ: u32 = 2;
    [
        kvm_ioctl(0, 0x80, 0),                                   // KVM_RUN
        kvm_ioctl(READ, 0x83, std::mem::size_of::<kvm_sregs>()), // KVM_GET_SREGS
    ]
}

/// What an allowed system call's arguments must be. Every argument checked is an `int` or
/// `unsigned int` to the kernel (or, for `prot`, has no meaning above bit 31), so only its low
/// 32 bits are compared: the kernel ignores the rest as well.
enum Arguments {
    Any,
    /// Argument `index` is one of `values`.
    OneOf {
        index: u8,
        values: Vec<u32>,
    },
    /// Argument `index` has none of the bits of `mask`.
    Without {
        index: u8,
        mask: u32,
    },
}

/// The allow list for the run loop.
fn policy() -> Vec<(libc::c_long, Arguments)> {
    use Arguments::*;
    let no_exec = || Without {
        index: 2,
        mask: libc::PROT_EXEC as u32,
    };
    vec![
        // The run loop.
        (
            libc::SYS_ioctl,
            OneOf {
                index: 1,
                values: allowed_ioctls().to_vec(),
            },
        ),
        // Guest output and error messages.
        (
            libc::SYS_write,
            OneOf {
                index: 0,
                values: vec![1, 2],
            },
        ),
        // --timeout: the alarm is armed and disarmed around the run loop.
        (libc::SYS_timer_create, Any),
        (libc::SYS_timer_settime, Any),
        (libc::SYS_timer_delete, Any),
        (libc::SYS_rt_sigaction, Any),
        (libc::SYS_rt_sigprocmask, Any),
        (libc::SYS_rt_sigreturn, Any),
        (libc::SYS_sigaltstack, Any),
        // The allocator; never an executable mapping.
        (libc::SYS_brk, Any),
        (libc::SYS_mmap, no_exec()),
        (libc::SYS_mprotect, no_exec()),
        (libc::SYS_munmap, Any),
        (libc::SYS_mremap, Any),
        (libc::SYS_madvise, Any),
        (libc::SYS_futex, Any),
        // Symbolizing a crash: read-only opens of the guest ELF and its split DWARF.
        (
            libc::SYS_openat,
            OneOf {
                index: 2,
                values: vec![(libc::O_RDONLY | libc::O_CLOEXEC) as u32],
            },
        ),
        (libc::SYS_read, Any),
        (libc::SYS_pread64, Any),
        (libc::SYS_lseek, Any),
        (libc::SYS_fstat, Any),
        (libc::SYS_newfstatat, Any),
        (libc::SYS_statx, Any),
        (libc::SYS_close, Any),
        // std checks an fd is open before closing it (debug builds).
        (
            libc::SYS_fcntl,
            OneOf {
                index: 1,
                values: vec![libc::F_GETFD as u32],
            },
        ),
        (libc::SYS_getrandom, Any),
        (libc::SYS_clock_gettime, Any),
        // Exiting, and aborting on a runner panic (raise(SIGABRT) on ourselves only).
        (libc::SYS_exit, Any),
        (libc::SYS_exit_group, Any),
        (libc::SYS_getpid, Any),
        (libc::SYS_gettid, Any),
        (
            libc::SYS_tgkill,
            OneOf {
                index: 0,
                values: vec![std::process::id()],
            },
        ),
    ]
}

const LOAD_WORD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JUMP_IF_EQUAL: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JUMP_IF_AT_LEAST: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JUMP_IF_ANY_BIT: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets into `struct seccomp_data`; an argument's low half comes first (little endian).
const NR: u32 = 0;
const ARCH: u32 = 4;
fn argument(index: u8) -> u32 {
    16 + 8 * u32::from(index)
}
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// Where a conditional jump goes: over the next `n` instructions, or to the final verdicts.
#[derive(Clone, Copy)]
enum To {
    Skip(usize),
    Allow,
    Trap,
}

/// An instruction before its jumps are resolved: code, constant, where to go if true, if false.
type Instruction = (u16, u32, To, To);

fn statement(code: u16, k: u32) -> Instruction {
    (code, k, To::Skip(0), To::Skip(0))
}

/// Compiles `policy` to classic BPF: a binary search over the allowed system call numbers,
/// then the argument checks.
///
/// Installing a filter costs the kernel a walk of the program for every system call number
/// (to find those it may allow without running the filter), so the cost grows with the
/// length of the path a number takes. seccompiler's compiler tests the numbers one after
/// another, up to 66 instructions for this list; the binary search walks at most 10, which
/// halves what the filter adds to a process here (from about 0.2 ms to 0.1 ms).
fn compile(policy: &[(libc::c_long, Arguments)]) -> BpfProgram {
    let mut calls: Vec<(u32, &Arguments)> = policy
        .iter()
        .map(|(nr, arguments)| {
            let nr = u32::try_from(*nr).expect("x86_64 system call numbers fit");
            (nr, arguments)
        })
        .collect();
    calls.sort_by_key(|(nr, _)| *nr);
    let mut code = vec![
        statement(LOAD_WORD, ARCH),
        (JUMP_IF_EQUAL, AUDIT_ARCH_X86_64, To::Skip(1), To::Skip(0)),
        statement(RETURN, libc::SECCOMP_RET_KILL_PROCESS),
        statement(LOAD_WORD, NR),
    ];
    code.extend(search(&calls));
    code.push(statement(RETURN, libc::SECCOMP_RET_TRAP));
    code.push(statement(RETURN, libc::SECCOMP_RET_ALLOW));

    let (trap, allow) = (code.len() - 2, code.len() - 1);
    let offset = |at: usize, to: To| -> u8 {
        let skip = match to {
            To::Skip(n) => n,
            To::Allow => allow - at - 1,
            To::Trap => trap - at - 1,
        };
        u8::try_from(skip).expect("a jump within 255 instructions")
    };
    code.iter()
        .enumerate()
        .map(|(at, &(code, k, jt, jf))| sock_filter {
            code,
            jt: offset(at, jt),
            jf: offset(at, jf),
            k,
        })
        .collect()
}

/// The search over `calls`, sorted by number, with the accumulator holding the number: halves
/// down to a few calls, each then compared in turn and its arguments checked.
fn search(calls: &[(u32, &Arguments)]) -> Vec<Instruction> {
    const COMPARED_IN_TURN: usize = 3;
    if calls.len() > COMPARED_IN_TURN {
        let (low, high) = calls.split_at(calls.len() / 2);
        let low = search(low);
        let mut code = vec![(
            JUMP_IF_AT_LEAST,
            high[0].0,
            To::Skip(low.len()),
            To::Skip(0),
        )];
        code.extend(low);
        code.extend(search(high));
        return code;
    }
    let mut code = Vec::new();
    for (i, (nr, arguments)) in calls.iter().enumerate() {
        let check = argument_check(arguments);
        let matched = if check.is_empty() {
            To::Allow
        } else {
            To::Skip(0)
        };
        let other = if i + 1 == calls.len() {
            To::Trap
        } else {
            To::Skip(check.len())
        };
        code.push((JUMP_IF_EQUAL, *nr, matched, other));
        code.extend(check);
    }
    code
}

/// Allows or traps on the call's arguments; loading one overwrites the number, which is fine
/// once the call is decided.
fn argument_check(arguments: &Arguments) -> Vec<Instruction> {
    match arguments {
        Arguments::Any => Vec::new(),
        Arguments::OneOf { index, values } => {
            let mut code = vec![statement(LOAD_WORD, argument(*index))];
            for (i, value) in values.iter().enumerate() {
                let other = if i + 1 == values.len() {
                    To::Trap
                } else {
                    To::Skip(0)
                };
                code.push((JUMP_IF_EQUAL, *value, To::Allow, other));
            }
            code
        }
        Arguments::Without { index, mask } => vec![
            statement(LOAD_WORD, argument(*index)),
            (JUMP_IF_ANY_BIT, *mask, To::Trap, To::Allow),
        ],
    }
}

/// Installs the SIGSYS reporter and the filter. From here on, the process can only do what
/// [`policy`] lists.
pub fn install() -> Result<(), SetupError> {
    let program = compile(&policy());
    install_reporter();
    seccompiler::apply_filter(&program).map_err(SetupError::Seccomp)
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
    use std::collections::BTreeMap;

    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    use super::*;

    /// Runs a seccomp filter over one system call as the kernel does (`struct seccomp_data`:
    /// the number, the architecture, the instruction pointer and six arguments), and counts
    /// the instructions it executes. Without arguments it stops at the first argument load,
    /// as the kernel's own walk does when it installs a filter and looks for the calls it can
    /// allow without running it; there is no verdict then.
    fn run(
        program: &[sock_filter],
        nr: u32,
        arch: u32,
        args: Option<[u64; 6]>,
    ) -> (Option<u32>, usize) {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&nr.to_le_bytes());
        data.extend_from_slice(&arch.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        for arg in args.unwrap_or_default() {
            data.extend_from_slice(&arg.to_le_bytes());
        }
        let (mut pc, mut a) = (0, 0u32);
        for steps in 1.. {
            let insn = &program[pc];
            pc += 1;
            let k = insn.k;
            let jump = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
            let code = u32::from(insn.code);
            match code {
                _ if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    if args.is_none() && k >= argument(0) {
                        return (None, steps);
                    }
                    a = u32::from_le_bytes(data[k as usize..][..4].try_into().unwrap());
                }
                _ if code == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= k,
                _ if code == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
                _ if code == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += jump(a == k),
                _ if code == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => pc += jump(a > k),
                _ if code == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += jump(a >= k),
                _ if code == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => {
                    pc += jump(a & k != 0);
                }
                _ if code == libc::BPF_RET | libc::BPF_K => return (Some(k), steps),
                _ => panic!("instruction {code:#x} is not one a filter here uses"),
            }
        }
        unreachable!()
    }

    fn verdict(program: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        run(program, nr, arch, Some(args)).0.unwrap()
    }

    /// The same policy compiled by seccompiler, the reference.
    fn seccompiler_program(policy: &[(libc::c_long, Arguments)]) -> BpfProgram {
        let condition = |index: u8, op, value: u32| {
            SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, u64::from(value)).unwrap()
        };
        let rules: BTreeMap<i64, Vec<SeccompRule>> = policy
            .iter()
            .map(|(nr, arguments)| {
                let rules = match arguments {
                    Arguments::Any => Vec::new(),
                    Arguments::OneOf { index, values } => values
                        .iter()
                        .map(|v| SeccompRule::new(vec![condition(*index, SeccompCmpOp::Eq, *v)]))
                        .collect::<Result<_, _>>()
                        .unwrap(),
                    Arguments::Without { index, mask } => vec![SeccompRule::new(vec![condition(
                        *index,
                        SeccompCmpOp::MaskedEq(u64::from(*mask)),
                        0,
                    )])
                    .unwrap()],
                };
                (*nr, rules)
            })
            .collect();
        SeccompFilter::new(
            rules,
            SeccompAction::Trap,
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .unwrap()
        .try_into()
        .unwrap()
    }

    const I386: u32 = 0x4000_0003;
    /// x32 system calls: the same kernel functions under numbers with this bit set, which no
    /// allowed number has.
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        // From linux/kvm.h on x86_64.
        assert_eq!(allowed_ioctls(), [0xAE80, 0x8138_AE83]);
    }

    #[test]
    fn the_filter_decides_every_call_as_seccompilers_build_of_the_same_policy() {
        let policy = policy();
        let ours = compile(&policy);
        let reference = seccompiler_program(&policy);
        // The kernel's walk when installing the filter: its cost.
        let longest_walk = |program: &[sock_filter]| {
            (0..460)
                .map(|nr| run(program, nr, AUDIT_ARCH_X86_64, None).1)
                .max()
                .unwrap()
        };
        assert!(
            longest_walk(&ours) * 5 < longest_walk(&reference),
            "{} vs {}",
            longest_walk(&ours),
            longest_walk(&reference)
        );

        let pid = std::process::id();
        // Every value the policy names, each with garbage in the upper half (which the kernel
        // ignores for these arguments), and values it must refuse.
        let mut values: Vec<u64> = policy
            .iter()
            .flat_map(|(_, arguments)| match arguments {
                Arguments::Any => Vec::new(),
                Arguments::OneOf { values, .. } => values.clone(),
                Arguments::Without { mask, .. } => vec![*mask],
            })
            .map(u64::from)
            .collect();
        values.extend([0, 3, 0xAE01, 0x4020_AE46, u64::from(pid) + 1]);
        values.extend(
            [
                libc::PROT_READ | libc::PROT_WRITE,
                libc::PROT_READ | libc::PROT_EXEC,
            ]
            .map(|prot| prot as u64),
        );
        values.extend(
            [
                libc::O_RDONLY,
                libc::O_WRONLY | libc::O_CLOEXEC,
                libc::F_SETFD,
            ]
            .map(|flag| flag as u64),
        );
        let values: Vec<u64> = values
            .iter()
            .flat_map(|&value| [value, value | 1 << 32])
            .collect();

        let mut checked = 0;
        for nr in (0..460).chain([libc::SYS_write as u32 | X32_SYSCALL_BIT]) {
            for arch in [AUDIT_ARCH_X86_64, I386] {
                for index in 0..3 {
                    for &value in &values {
                        let mut args = [0; 6];
                        args[index] = value;
                        assert_eq!(
                            verdict(&ours, nr, arch, args),
                            verdict(&reference, nr, arch, args),
                            "system call {nr}, architecture {arch:#x}, arguments {args:x?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 50_000);
    }

    #[test]
    fn the_filter_allows_the_run_loop_and_refuses_the_rest() {
        let program = compile(&policy());
        let (allow, trap) = (libc::SECCOMP_RET_ALLOW, libc::SECCOMP_RET_TRAP);
        let prot = |prot: i32| [0, 4096, prot as u64, 0, 0, 0];
        let (read_write, read_exec) = (
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_READ | libc::PROT_EXEC,
        );
        let flags = |flags: i32| [0, 0, (flags | libc::O_CLOEXEC) as u64, 0, 0, 0];
        let x32_write = libc::SYS_write | libc::c_long::from(X32_SYSCALL_BIT);
        let cases = [
            (libc::SYS_ioctl, [3, 0xAE80, 0, 0, 0, 0], allow), // KVM_RUN
            (libc::SYS_ioctl, [3, 0xAE01, 0, 0, 0, 0], trap),  // KVM_CREATE_VM
            (libc::SYS_write, [2, 0, 5, 0, 0, 0], allow),
            (libc::SYS_write, [3, 0, 5, 0, 0, 0], trap),
            (libc::SYS_mmap, prot(read_write), allow),
            (libc::SYS_mmap, prot(read_exec), trap),
            (libc::SYS_mprotect, prot(libc::PROT_EXEC), trap),
            (libc::SYS_openat, flags(libc::O_RDONLY), allow),
            (libc::SYS_openat, flags(libc::O_WRONLY), trap),
            (libc::SYS_execve, [0; 6], trap),
            (libc::SYS_socket, [0; 6], trap),
            (x32_write, [1, 0, 5, 0, 0, 0], trap),
        ];
        for (nr, args, expected) in cases {
            let got = verdict(&program, nr as u32, AUDIT_ARCH_X86_64, args);
            assert_eq!(got, expected, "system call {nr:#x}, arguments {args:x?}");
        }
        assert_eq!(
            verdict(&program, libc::SYS_write as u32, I386, [1, 0, 5, 0, 0, 0]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }
}
