//! The VM: KVM handles, the vCPU's initial state, and the run loop.
//!
//! Costs matter here (each vCPU ioctl is several microseconds on this machine): the initial
//! special and general registers travel through `kvm_run`'s sync-regs area with the first
//! KVM_RUN instead of KVM_SET_SREGS/SET_REGS, exits read the general registers from there too,
//! and the guest batches its output.

use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_enable_cap, kvm_userspace_memory_region, KVM_CAP_SPLIT_IRQCHIP};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuExit, VcpuFd, VmFd};

use crate::fault::Crash;
use crate::hypercall::{self, Action, Context};
use crate::layout::MemoryMap;
use crate::machine;
use crate::memory::GuestMemory;
use crate::output::Output;
use crate::KvmError;

/// How a run ended.
#[derive(Debug)]
pub enum Stop {
    Exited(i32),
    Crashed(Crash),
    TimedOut,
    /// [`Interrupter::interrupt`] stopped the vCPU (a debugger's Ctrl-C).
    Interrupted,
    /// A debugger ended the guest (gdb's `kill`).
    Killed,
    OutputClosed,
    /// Writing the guest's output failed.
    HostError(std::io::Error),
    /// KVM_RUN itself failed (the vCPU state was refused, or KVM ran out of memory).
    KvmError(KvmError),
}

/// Opens the KVM device and checks the API the runner relies on. Errors say what to do.
pub fn open_kvm(device: &Path) -> Result<Kvm, KvmError> {
    let path = CString::new(device.as_os_str().as_bytes())
        .map_err(|_| KvmError::InvalidPath(device.to_path_buf()))?;
    let kvm = Kvm::new_with_path(&path).map_err(|source| match source.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => KvmError::Missing(device.to_path_buf()),
        libc::EACCES | libc::EPERM => KvmError::PermissionDenied(device.to_path_buf()),
        _ => KvmError::Open {
            device: device.to_path_buf(),
            source,
        },
    })?;
    let version = kvm.get_api_version();
    if version != 12 {
        return Err(KvmError::ApiVersion(version));
    }
    for (cap, name) in [
        (Cap::SyncRegs, "KVM_CAP_SYNC_REGS"),
        (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::SplitIrqchip, "KVM_CAP_SPLIT_IRQCHIP"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(KvmError::MissingCapability(name));
        }
    }
    Ok(kvm)
}

thread_local! {
    static OPENED_KVM: std::cell::RefCell<Option<(PathBuf, Rc<Kvm>)>> =
        const { std::cell::RefCell::new(None) };
}

/// [`open_kvm`], once per thread and device: a thread that runs guest after guest (`cargo
/// test`, `--repeat`) checks the device and its API once.
pub fn kvm_for_this_thread(device: &Path) -> Result<Rc<Kvm>, KvmError> {
    OPENED_KVM.with(|opened| {
        let mut opened = opened.borrow_mut();
        if let Some((path, kvm)) = opened.as_ref() {
            if path == device {
                return Ok(Rc::clone(kvm));
            }
        }
        let kvm = Rc::new(open_kvm(device)?);
        *opened = Some((device.to_path_buf(), Rc::clone(&kvm)));
        Ok(kvm)
    })
}

pub struct Vm {
    // Field order is drop order: the vCPU before the VM, both before the memory they use.
    vcpu: VcpuFd,
    _vm: VmFd,
    memory: GuestMemory,
}

/// A VM that ran, without its memory; dropping it tears it down.
pub struct Retired {
    // Field order is drop order: the vCPU before the VM.
    _vcpu: VcpuFd,
    _vm: VmFd,
}

pub(crate) fn kvm_error(ioctl: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
    move |source| KvmError::Ioctl { ioctl, source }
}

impl Vm {
    /// Creates the VM over `memory` (already filled) and points the vCPU at `entry`.
    pub fn new(
        kvm: &Kvm,
        memory: GuestMemory,
        map: &MemoryMap,
        entry: u64,
    ) -> Result<Vm, KvmError> {
        let vm = kvm.create_vm().map_err(kvm_error("KVM_CREATE_VM"))?;
        // The local APIC is emulated in the kernel (a "split" irqchip, without the PIC and
        // IOAPIC no guest uses): for a vCPU without one, KVM flips a kernel-wide static key
        // on creation and again on destruction, and each flip patches kernel code on every
        // CPU, which costs more than creating the vCPU.
        let split_irqchip = kvm_enable_cap {
            cap: KVM_CAP_SPLIT_IRQCHIP,
            ..Default::default()
        };
        vm.enable_cap(&split_irqchip)
            .map_err(kvm_error("KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)"))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: memory.size(),
            userspace_addr: memory.host_base(),
        };
        // SAFETY: the region is our own mapping, which outlives every run of the vCPU (field
        // order; `retire` hands it on only once the vCPU never runs again).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(kvm_error("KVM_SET_USER_MEMORY_REGION"))?;
        let mut vcpu = vm.create_vcpu(0).map_err(kvm_error("KVM_CREATE_VCPU"))?;

        // Every field is set here, so the vCPU's reset state need not be read first.
        let mut sregs = machine::initial_sregs(map.tls.map_or(0, |tls| tls.thread_pointer));
        crate::test_hook::initial_sregs(&mut sregs);
        // Both register sets travel in `kvm_run` and take effect with the first KVM_RUN: a
        // KVM_SET_SREGS of its own would cost another round of loading the vCPU.
        vcpu.sync_regs_mut().sregs = sregs;
        vcpu.set_sync_dirty_reg(SyncReg::SystemRegister);

        vcpu.set_sync_valid_reg(SyncReg::Register);
        let regs = &mut vcpu.sync_regs_mut().regs;
        *regs = Default::default();
        regs.rip = entry;
        // As if `entrypoint` had been called: 16-byte aligned before the return address.
        regs.rsp = map.stack_top - 8;
        regs.rdi = hyperlight_rt::abi::BOOT_INFO_ADDR;
        regs.rflags = 0x2;
        vcpu.set_sync_dirty_reg(SyncReg::Register);

        Ok(Vm {
            vcpu,
            _vm: vm,
            memory,
        })
    }

    /// Runs the guest until it exits, crashes, or `timeout` passes.
    pub fn run(
        &mut self,
        output: &mut dyn Output,
        started: Instant,
        timeout: Option<Duration>,
    ) -> Stop {
        let _alarm = timeout.map(|timeout| Alarm::arm(&mut self.vcpu, timeout));
        loop {
            match STOP_REQUEST.get() {
                Request::None => {}
                Request::TimedOut => return Stop::TimedOut,
                Request::Interrupt => {
                    STOP_REQUEST.set(Request::None);
                    self.vcpu.set_kvm_immediate_exit(0);
                    return Stop::Interrupted;
                }
            }
            // Only the exit's kind leaves this match: the exit borrows the vCPU.
            let abnormal = match self.vcpu.run() {
                Ok(VcpuExit::IoOut(port, _)) => Ok(port),
                Ok(VcpuExit::Shutdown) => Err(Abnormal::TripleFault),
                Ok(VcpuExit::InternalError) => Err(Abnormal::Internal),
                Ok(VcpuExit::FailEntry(reason, _)) => Err(Abnormal::EntryFailure(reason)),
                Ok(other) => Err(Abnormal::Other(format!("{other:?}"))),
                Err(err) if err.errno() == libc::EINTR => continue,
                Err(err) => return Stop::KvmError(kvm_error("KVM_RUN")(err)),
            };
            let port = match abnormal {
                Ok(port) => port,
                Err(abnormal) => return Stop::Crashed(self.crash(abnormal)),
            };
            let mut context = Context {
                memory: &mut self.memory,
                output: &mut *output,
                started,
            };
            let regs = &mut self.vcpu.sync_regs_mut().regs;
            let rax = regs.rax;
            let action = hypercall::handle(port, regs, &mut context);
            let changed = regs.rax != rax;
            match action {
                Action::Resume => {
                    if changed {
                        self.vcpu.set_sync_dirty_reg(SyncReg::Register);
                    }
                }
                Action::Exit(code) => return Stop::Exited(code),
                Action::Exception(frame) => {
                    // CR2 only matters for page faults; reading it costs an ioctl.
                    let cr2 = if frame.vector == machine::PAGE_FAULT {
                        self.vcpu.get_sregs().map_or(0, |sregs| sregs.cr2)
                    } else {
                        0
                    };
                    return Stop::Crashed(Crash::Exception { frame, cr2 });
                }
                Action::Invalid(message) => return Stop::Crashed(Crash::BadHypercall(message)),
                Action::OutputClosed => return Stop::OutputClosed,
                Action::HostError(err) => return Stop::HostError(err),
            }
        }
    }

    pub fn memory(&self) -> &GuestMemory {
        &self.memory
    }

    /// Applies the initial special registers now rather than with the first run, so that
    /// KVM_GET_SREGS reads them (a debugger looks before the guest's first instruction).
    pub fn apply_initial_sregs(&mut self) -> Result<(), KvmError> {
        let sregs = self.vcpu.sync_regs().sregs;
        self.vcpu
            .set_sregs(&sregs)
            .map_err(kvm_error("KVM_SET_SREGS"))?;
        self.vcpu.get_kvm_run().kvm_dirty_regs &= !u64::from(kvm_bindings::KVM_SYNC_X86_SREGS);
        Ok(())
    }

    /// The vCPU and guest memory for a debugger, between runs.
    pub fn parts(&mut self) -> (&mut VcpuFd, &mut GuestMemory) {
        (&mut self.vcpu, &mut self.memory)
    }

    /// Hands guest memory on to this thread's next guest (which gets it scrubbed) and keeps
    /// only the never again run vCPU and VM, whose teardown can then wait (see `run`'s end).
    /// KVM touches this guest's memory only while its vCPU runs, so the memory is free now.
    pub fn retire(self) -> Retired {
        let Vm { vcpu, _vm, memory } = self;
        memory.recycle();
        Retired { _vcpu: vcpu, _vm }
    }

    fn crash(&self, abnormal: Abnormal) -> Crash {
        let rip = self.vcpu.sync_regs().regs.rip;
        match abnormal {
            Abnormal::TripleFault => Crash::TripleFault { rip },
            Abnormal::Internal => Crash::Internal { rip },
            Abnormal::EntryFailure(reason) => Crash::EntryFailure { reason },
            Abnormal::Other(what) => Crash::UnexpectedExit {
                what: format!("VM exit {what}"),
                rip,
            },
        }
    }
}

/// A VM exit other than a hypercall.
enum Abnormal {
    TripleFault,
    Internal,
    EntryFailure(u64),
    Other(String),
}

/// Why a signal handler asked this thread's run loop to stop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Request {
    None,
    TimedOut,
    Interrupt,
}

thread_local! {
    /// Set by this thread's alarm or interrupter.
    static STOP_REQUEST: Cell<Request> = const { Cell::new(Request::None) };
    /// `kvm_run.immediate_exit` of the vCPU this thread is timing, so the alarm also stops a
    /// vCPU that is just about to enter the guest.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

/// Runs on the thread whose alarm it is. The thread-locals are const-initialized without
/// destructors, so touching them here allocates and registers nothing.
extern "C" fn on_alarm(_: libc::c_int) {
    request_stop(Request::TimedOut);
}

extern "C" fn on_interrupt(_: libc::c_int) {
    // A timeout already under way wins.
    if STOP_REQUEST.get() == Request::None {
        request_stop(Request::Interrupt);
    }
}

fn request_stop(request: Request) {
    STOP_REQUEST.set(request);
    let immediate_exit = IMMEDIATE_EXIT.get();
    if !immediate_exit.is_null() {
        // SAFETY: points into the vCPU's kvm_run mapping, alive while the alarm is armed.
        unsafe { immediate_exit.write_volatile(1) };
    }
}

/// `--timeout`, or a test's own limit: a POSIX timer that sends SIGALRM (handled without
/// SA_RESTART) to this very thread, interrupting its KVM_RUN with EINTR. Per thread, so that
/// `cargo test`'s threads each time their own guest.
struct Alarm {
    /// The kernel's timer id (raw system calls: glibc and musl wrap these differently).
    timer: libc::c_int,
}

impl Alarm {
    fn arm(vcpu: &mut VcpuFd, timeout: Duration) -> Alarm {
        STOP_REQUEST.set(Request::None);
        IMMEDIATE_EXIT.set(&mut vcpu.get_kvm_run().immediate_exit);
        let mut timer: libc::c_int = -1;
        // SAFETY: installing a handler that only touches this thread's cells and a live
        // kvm_run byte; creating and setting a timer with valid structs.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_alarm as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGALRM, &action, std::ptr::null_mut());
            let mut event: libc::sigevent = std::mem::zeroed();
            event.sigev_notify = libc::SIGEV_THREAD_ID;
            event.sigev_signo = libc::SIGALRM;
            event.sigev_notify_thread_id = libc::syscall(libc::SYS_gettid) as libc::c_int;
            libc::syscall(
                libc::SYS_timer_create,
                libc::CLOCK_MONOTONIC,
                &mut event,
                &mut timer,
            );
            // A zero value would disarm; a nanosecond is as good as immediate.
            let after = timeout.max(Duration::from_nanos(1));
            let setting = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                // `as _`: the field types differ between glibc and musl (the release build).
                it_value: libc::timespec {
                    tv_sec: after.as_secs() as _,
                    tv_nsec: after.subsec_nanos() as _,
                },
            };
            libc::syscall(
                libc::SYS_timer_settime,
                timer,
                0,
                &setting,
                std::ptr::null_mut::<libc::itimerspec>(),
            );
        }
        Alarm { timer }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        // SAFETY: deleting (and so disarming) our own timer.
        unsafe { libc::syscall(libc::SYS_timer_delete, self.timer) };
        IMMEDIATE_EXIT.set(std::ptr::null_mut());
        STOP_REQUEST.set(Request::None);
    }
}

/// The signal an [`Interrupter`] sends; its handler runs on the vCPU's thread.
const INTERRUPT_SIGNAL: libc::c_int = libc::SIGUSR1;

/// Lets another thread stop [`Vm::run`] on this thread, which then returns
/// [`Stop::Interrupted`] (a debugger's Ctrl-C). While one exists, this thread's vCPU must not
/// also be timed by an alarm.
pub struct Interrupter {
    process: libc::pid_t,
    thread: libc::pid_t,
}

impl Interrupter {
    /// Sets up interrupting `vm`'s runs on this thread, the one that runs it.
    pub fn new(vm: &mut Vm) -> Interrupter {
        STOP_REQUEST.set(Request::None);
        IMMEDIATE_EXIT.set(&mut vm.vcpu.get_kvm_run().immediate_exit);
        // SAFETY: a handler that only touches this thread's cells and a live kvm_run byte
        // (reset in Drop before the vCPU can go away).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_interrupt as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(INTERRUPT_SIGNAL, &action, std::ptr::null_mut());
        }
        Interrupter {
            // SAFETY: plain queries.
            process: unsafe { libc::getpid() },
            thread: unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t },
        }
    }

    /// Drops an interrupt that came after the last run had stopped anyway.
    pub fn forget_pending(&self, vm: &mut Vm) {
        STOP_REQUEST.set(Request::None);
        vm.vcpu.set_kvm_immediate_exit(0);
    }

    /// A handle other threads can interrupt with.
    pub fn handle(&self) -> InterruptHandle {
        InterruptHandle {
            process: self.process,
            thread: self.thread,
        }
    }
}

impl Drop for Interrupter {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.set(std::ptr::null_mut());
        STOP_REQUEST.set(Request::None);
    }
}

/// Sends the interrupt to the vCPU's thread.
#[derive(Clone, Copy)]
pub struct InterruptHandle {
    process: libc::pid_t,
    thread: libc::pid_t,
}

impl InterruptHandle {
    pub fn interrupt(&self) {
        // SAFETY: signals our own process's thread, whose handler is installed.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                self.process,
                self.thread,
                INTERRUPT_SIGNAL,
            )
        };
    }
}
