//! `hyperlight-run` as a library: boot an x86_64-hyperlight-none (or x86_64-hyperlight-hermit)
//! guest ELF in a fresh KVM micro-VM and run it to completion.
//!
//! The modules follow the order of a run: [`guest_file`] reads the part of the ELF a boot
//! needs, [`elf`] validates and describes the image, [`layout`] decides the memory map and
//! writes page tables and descriptor tables, [`boot`] writes what the guest finds at
//! `entrypoint`, [`vcpu`] creates the VM and runs it, [`hypercall`] serves the guest's
//! requests, and [`fault`] explains crashes. docs/abi.md describes the guest-visible contract.

mod backtrace;
mod boot;
mod core_dump;
pub mod elf;
mod error;
pub mod fault;
pub mod gdb;
pub mod guest_file;
pub mod harness;
pub mod hypercall;
pub mod layout;
mod machine;
pub mod memory;
mod output;
mod seccomp;
mod test_hook;
pub mod vcpu;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use core_dump::CoreDumpError;
pub use error::{Error, KvmError, LoadError, SetupError};
pub use guest_file::GuestFile;
pub use output::{Captured, Discard, HostStdio, Output, Stream};

/// Process exit codes of `hyperlight-run` (the guest's own code passes through otherwise).
pub mod exit_code {
    /// The guest panicked (the runtime exits 101 itself, like std).
    pub const PANIC: i32 = 101;
    /// `--timeout` expired.
    pub const TIMEOUT: i32 = 124;
    /// The runner failed: KVM unavailable, ELF rejected, bad memory layout, I/O error.
    pub const RUNNER_FAILED: i32 = 125;
    /// An official Hyperlight guest (it carries `.note.hyperlight-version`): it needs the
    /// Hyperlight host of that version, so the runner refuses it instead of booting it.
    pub const OFFICIAL_GUEST: i32 = 126;
    /// The guest crashed (CPU exception, triple fault) or broke the hypercall ABI.
    pub const CRASHED: i32 = 134;
    /// The debugger killed the guest (128 + SIGKILL, what a shell shows for a killed process).
    pub const KILLED: i32 = 137;
    /// The reader of the guest's output went away (like a process killed by SIGPIPE).
    pub const OUTPUT_CLOSED: i32 = 141;
    /// The runner made a system call its seccomp filter refuses (128 + SIGSYS, what a shell
    /// shows for a process SIGSYS killed).
    pub const SECCOMP: i32 = 159;
}

pub const DEFAULT_MEMORY: u64 = 64 << 20;
pub const DEFAULT_STACK: u64 = 1 << 20;
pub const MAX_MEMORY: u64 = 64 << 30;
const MIN_MEMORY: u64 = 4 << 20;

/// How to run a guest.
#[derive(Clone, Debug)]
pub struct Config {
    /// Guest memory in bytes (rounded down to a page).
    pub memory: u64,
    /// Stack size in bytes (rounded up to a page), with a guard page below.
    pub stack: u64,
    pub timeout: Option<Duration>,
    /// `KEY=VALUE` entries the guest sees as its environment.
    pub env: Vec<OsString>,
    /// The KVM device, normally /dev/kvm.
    pub kvm_device: PathBuf,
    /// Tell the guest its stdout is a terminal (it then flushes at each newline).
    pub stdout_is_tty: bool,
    /// Confine this process with the run loop's seccomp filter once the VM is built (the CLI
    /// does, unless `--no-seccomp`), except with `gdb` or `core_dump_dir`. Irreversible: only
    /// for a process that runs one guest.
    pub seccomp: bool,
    /// Run the guest under a debugger that connects to this address (`--gdb`); `timeout` is
    /// then ignored, as a debugger's pauses would count.
    pub gdb: Option<std::net::SocketAddr>,
    /// Write an ELF core file into this directory when the guest crashes, panics or times out
    /// (`--core-dump`).
    pub core_dump_dir: Option<PathBuf>,
    /// Added to the core file's name: `core.GUEST.PID.LABEL` (the harness names the test).
    pub core_dump_label: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            memory: DEFAULT_MEMORY,
            stack: DEFAULT_STACK,
            timeout: None,
            env: Vec::new(),
            kvm_device: PathBuf::from("/dev/kvm"),
            stdout_is_tty: std::io::stdout().is_terminal(),
            seccomp: false,
            gdb: None,
            core_dump_dir: None,
            core_dump_label: None,
        }
    }
}

/// How the guest ended.
#[derive(Debug)]
pub enum Outcome {
    /// The guest exited with this code (its low 8 bits become the process status).
    Exited(i32),
    /// The guest crashed: a line saying how and where, and the guest's call stack.
    Crashed(fault::CrashReport),
    TimedOut(Duration),
    OutputClosed,
    /// The debugger killed the guest.
    Killed,
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(code) => code & 0xff,
            Outcome::Crashed(_) => exit_code::CRASHED,
            Outcome::TimedOut(_) => exit_code::TIMEOUT,
            Outcome::OutputClosed => exit_code::OUTPUT_CLOSED,
            Outcome::Killed => exit_code::KILLED,
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Report {
    pub outcome: Outcome,
    /// From the start of [`run`] (ELF parsing included) to the guest's last exit, before the
    /// VM is torn down.
    pub boot_to_exit: Duration,
    /// The core file written for this run (`Config::core_dump_dir`), or why none could be.
    pub core_dump: Option<Result<PathBuf, CoreDumpError>>,
}

/// Boots `guest` with `args` (the first being the program name) and runs it to the end,
/// sending its output to `output`.
pub fn run(
    guest: &GuestFile,
    args: &[OsString],
    config: &Config,
    output: &mut dyn Output,
) -> Result<Report, Error> {
    let started = Instant::now();
    let elf_path = guest.path();
    let load_error = |reason: LoadError| Error::Load {
        path: elf_path.to_path_buf(),
        reason,
    };
    let image = elf::Image::parse(guest.front()).map_err(|err| load_error(err.into()))?;
    // Official guests expect the Hyperlight host's memory layout and calling convention (and
    // crash on some KVMs before reaching their code): say what they need instead of booting.
    if let Some(version) = &image.hyperlight_version_note {
        return Err(Error::OfficialGuest {
            path: elf_path.to_path_buf(),
            version: version.clone(),
        });
    }
    let memory_size = config.memory & !(elf::PAGE - 1);
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&memory_size) {
        return Err(SetupError::MemorySize.into());
    }
    let map = layout::MemoryMap::new(&image, memory_size, config.stack)
        .map_err(|err| load_error(err.into()))?;
    let kvm = vcpu::kvm_for_this_thread(&config.kvm_device)?;
    let memory = guest_memory(&image, &map, args, config, elf_path)?;

    let entry = map.load_bias.wrapping_add(image.entry);
    let mut vm = vcpu::Vm::new(&kvm, memory, &map, entry)?;
    // The debugger's socket calls and a core file's writes are not in the filter.
    if config.seccomp && config.gdb.is_none() && config.core_dump_dir.is_none() {
        seccomp::install()?;
    }
    test_hook::after_confinement();
    let stop = match config.gdb {
        None => vm.run(output, started, config.timeout),
        Some(address) => {
            let first_segment = map.load_bias.wrapping_add(image.segments[0].vaddr);
            gdb::debug(&mut vm, address, first_segment, output, started)?
        }
    };
    let boot_to_exit = started.elapsed();
    let core_dump = config.core_dump_dir.as_deref().and_then(|dir| {
        let signal = core_dump::signal_for(&stop)?;
        let name = core_dump::file_name(elf_path, config.core_dump_label.as_deref());
        Some(core_dump::write(
            &dir.join(name),
            elf_path,
            &stop,
            signal,
            &mut vm,
            &image,
            &map,
        ))
    });
    let outcome = outcome(stop, &vm, guest, &map, config, output)?;
    // Tearing a VM down costs more than booting one, and while any VM exists KVM keeps its
    // kernel-wide switches on instead of patching kernel code for each new VM. A thread that
    // runs guest after guest (`cargo test`, `--repeat`) therefore tears each VM down after the
    // next one has run; the last one goes with the thread (or the process). Its memory is
    // scrubbed and reused by the thread's next guest (see `memory`).
    let retired = vm.retire();
    PREVIOUS_VM.with(|previous| drop(previous.replace(Some(retired))));
    Ok(Report {
        outcome,
        boot_to_exit,
        core_dump,
    })
}

/// Guest memory as the guest at `elf_path` finds it at `entrypoint`: the image loaded, the
/// system tables and page tables, the boot information with `args` and `config.env`.
fn guest_memory(
    image: &elf::Image<'_>,
    map: &layout::MemoryMap,
    args: &[OsString],
    config: &Config,
    elf_path: &Path,
) -> Result<memory::GuestMemory, Error> {
    let mut memory =
        memory::GuestMemory::new(map.memory_size).map_err(|source| SetupError::ReserveMemory {
            size: map.memory_size,
            source,
        })?;
    image
        .load(&mut memory, map.load_bias)
        .map_err(|err| Error::Load {
            path: elf_path.to_path_buf(),
            reason: err.into(),
        })?;
    layout::build(&mut memory, map, image).map_err(SetupError::from)?;
    let mut random_seed = [0u8; 32];
    getrandom(&mut random_seed);
    let parameters = boot::BootParameters {
        args,
        env: &config.env,
        stdout_is_tty: config.stdout_is_tty,
        random_seed,
    };
    boot::write(&mut memory, map, &parameters)?;
    test_hook::before_boot(&mut memory);
    Ok(memory)
}

/// What the run's `stop` means for the user: a crash gets its report (and the output the guest
/// had not flushed yet goes out first).
fn outcome(
    stop: vcpu::Stop,
    vm: &vcpu::Vm,
    file: &GuestFile,
    map: &layout::MemoryMap,
    config: &Config,
    output: &mut dyn Output,
) -> Result<Outcome, Error> {
    if matches!(stop, vcpu::Stop::Crashed(_) | vcpu::Stop::TimedOut) {
        let pending = boot::pending_stdout(vm.memory());
        if !pending.is_empty() {
            // Best effort: the run already failed, and the crash report matters more.
            let _ = output.write(Stream::Stdout, pending);
        }
    }
    Ok(match stop {
        vcpu::Stop::Exited(code) => Outcome::Exited(code),
        vcpu::Stop::Crashed(crash) => {
            // Unwinding needs the sections after the loaded ones. Should reading them fail,
            // the report still names the crashing function (addr2line reads by path).
            let everything = file.everything();
            let elf = everything.as_deref().unwrap_or(file.front());
            Outcome::Crashed(fault::report(&crash, map, file.path(), elf, vm.memory()))
        }
        vcpu::Stop::TimedOut => Outcome::TimedOut(config.timeout.unwrap_or_default()),
        vcpu::Stop::OutputClosed => Outcome::OutputClosed,
        // Only a debugger interrupts runs, and it turns them into stops of its own.
        vcpu::Stop::Killed | vcpu::Stop::Interrupted => Outcome::Killed,
        vcpu::Stop::HostError(err) => return Err(Error::Output(err)),
        vcpu::Stop::KvmError(err) => return Err(err.into()),
    })
}

thread_local! {
    static PREVIOUS_VM: std::cell::RefCell<Option<vcpu::Retired>> =
        const { std::cell::RefCell::new(None) };
}

/// Fills `buffer` from the host's random source.
fn getrandom(buffer: &mut [u8]) {
    let mut filled = 0;
    while filled < buffer.len() {
        // SAFETY: writing into our own buffer.
        let n = unsafe {
            libc::getrandom(
                buffer[filled..].as_mut_ptr().cast(),
                buffer.len() - filled,
                0,
            )
        };
        if n <= 0 {
            break;
        }
        filled += n as usize;
    }
}
