//! `--core-dump DIR`: an ELF core file of a guest that crashed, panicked or timed out, which
//! `gdb GUEST CORE` opens like a Linux process's: the registers (NT_PRSTATUS, NT_FPREGSET), the
//! load address (NT_AUXV's AT_ENTRY and AT_PHDR, from which gdb relocates the static PIE) and
//! the guest's memory, as PT_LOAD segments of the pages the guest can reach and that hold
//! data: never the untouched rest of `--memory`.

use std::fs;
use std::io::Write;
use std::mem::size_of;
use std::path::{Path, PathBuf};

use kvm_bindings::kvm_regs;
use object::elf::{self, FileHeader64, ProgramHeader64};
use object::endian::{LittleEndian as LE, U16, U32, U64};
use object::pod::bytes_of;

use crate::elf::{Image, PAGE};
use crate::fault::{Crash, Signal};
use crate::layout::{guest_page, MemoryMap, Protection};
use crate::machine::{self, TRAP_FLAG};
use crate::memory::GuestMemory;
use crate::vcpu::{kvm_error, Stop, Vm};
use crate::KvmError;

/// What a core dump is written for, and with which signal: a crash, a panic, a timeout.
pub fn signal_for(stop: &Stop) -> Option<Signal> {
    match stop {
        Stop::Crashed(crash) => Some(crash.signal()),
        Stop::Exited(crate::exit_code::PANIC) => Some(Signal::Abrt),
        Stop::TimedOut => Some(Signal::Alrm),
        _ => None,
    }
}

/// The guest's file name, as a process's core names its program.
fn program(guest: &Path) -> std::borrow::Cow<'_, str> {
    guest
        .file_name()
        .map_or_else(|| "guest".into(), |name| name.to_string_lossy())
}

/// Why no core file was written.
#[derive(Debug, thiserror::Error)]
pub enum CoreDumpError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kvm(#[from] KvmError),
    #[error("cannot tell which guest pages are in use: {0}")]
    TouchedPages(std::io::Error),
}

/// `core.GUEST.PID`, or `core.GUEST.PID.LABEL`.
pub fn file_name(guest: &Path, label: Option<&str>) -> String {
    let name = program(guest);
    let pid = std::process::id();
    match label {
        Some(label) => format!("core.{name}.{pid}.{label}"),
        None => format!("core.{name}.{pid}"),
    }
}

/// Writes the core file `path` for a guest that ended with `stop`, atomically (a temporary
/// file beside it renamed into place), creating its directory if need be.
pub fn write(
    path: &Path,
    guest: &Path,
    stop: &Stop,
    signal: Signal,
    vm: &mut Vm,
    image: &Image<'_>,
    map: &MemoryMap,
) -> Result<PathBuf, CoreDumpError> {
    let failed = |source: std::io::Error| CoreDumpError::Write {
        path: path.to_path_buf(),
        source,
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(failed(std::io::ErrorKind::InvalidInput.into()));
    };
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(".tmp");
    let temporary = dir.join(temporary_name);

    let core = build(&program(guest), stop, signal, vm, image, map)?;
    fs::create_dir_all(dir).map_err(failed)?;
    let written = fs::File::create_new(&temporary).and_then(|mut file| {
        file.write_all(&core)?;
        file.sync_all()
    });
    if let Err(err) = written.and_then(|()| fs::rename(&temporary, path)) {
        let _ = fs::remove_file(&temporary);
        return Err(failed(err));
    }
    Ok(path.to_path_buf())
}

/// The guest's registers at the stop: for an exception, as the faulting instruction left them
/// (the stub changed only RIP, RSP, RFLAGS and the segments, which its frame holds).
fn guest_registers(
    stop: &Stop,
    vm: &mut Vm,
) -> Result<(kvm_regs, kvm_bindings::kvm_sregs), KvmError> {
    let (vcpu, _) = vm.parts();
    let mut regs = vcpu.sync_regs().regs;
    let mut sregs = vcpu.get_sregs().map_err(kvm_error("KVM_GET_SREGS"))?;
    if let Stop::Crashed(Crash::Exception { frame, .. }) = stop {
        regs.rip = frame.rip;
        regs.rsp = frame.rsp;
        regs.rflags = frame.rflags & !TRAP_FLAG;
        machine::return_to_guest(&mut sregs);
    }
    Ok((regs, sregs))
}

/// Note types and layouts of Linux's x86-64 core files (include/uapi/linux/elfcore.h).
const PRSTATUS_SIZE: usize = 336;
const PRSTATUS_CURSIG: usize = 12;
const PRSTATUS_PID: usize = 32;
const PRSTATUS_REGS: usize = 112;
const PRPSINFO_SIZE: usize = 136;
const PRPSINFO_STATE_NAME: usize = 1;
const PRPSINFO_PID: usize = 24;
const PRPSINFO_FNAME: usize = 40;
const PRPSINFO_FNAME_LEN: usize = 16;
const PRPSINFO_ARGS: usize = 56;
const PRPSINFO_ARGS_LEN: usize = 80;
/// FXSAVE's 512 bytes.
const FPREGSET_SIZE: usize = 512;
/// The auxiliary vector entries gdb reads.
const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_ENTRY: u64 = 9;
/// The guest is one process; gdb shows it as this one.
const GUEST_PID: i32 = 1;

fn build(
    name: &str,
    stop: &Stop,
    signal: Signal,
    vm: &mut Vm,
    image: &Image<'_>,
    map: &MemoryMap,
) -> Result<Vec<u8>, CoreDumpError> {
    let (regs, sregs) = guest_registers(stop, vm)?;
    let (vcpu, memory) = vm.parts();
    let xsave = vcpu.get_xsave().map_err(kvm_error("KVM_GET_XSAVE"))?;
    let fxsave: Vec<u8> = xsave.region[..FPREGSET_SIZE / 4]
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect();

    let mut notes = Vec::new();
    note(
        &mut notes,
        elf::NT_PRSTATUS,
        &prstatus(signal, &regs, &sregs),
    );
    note(&mut notes, elf::NT_PRPSINFO, &prpsinfo(name));
    note(&mut notes, elf::NT_AUXV, &auxv(image, map));
    note(&mut notes, elf::NT_FPREGSET, &fxsave);

    let segments = segments(memory)?;
    let headers =
        size_of::<FileHeader64<LE>>() + (1 + segments.len()) * size_of::<ProgramHeader64<LE>>();
    let notes_offset = headers as u64;
    // Page-aligned contents, as in a kernel's core file (file offset = address modulo a page).
    let mut offset = (notes_offset + notes.len() as u64).next_multiple_of(PAGE);
    let mut program_headers = vec![program_header(
        elf::PT_NOTE,
        0,
        notes_offset,
        0,
        notes.len() as u64,
        1,
    )];
    for segment in &segments {
        let len = segment.end - segment.start;
        let flags = elf::PF_R
            | if segment.protection.write {
                elf::PF_W
            } else {
                0
            }
            | if segment.protection.execute {
                elf::PF_X
            } else {
                0
            };
        program_headers.push(program_header(
            elf::PT_LOAD,
            flags,
            offset,
            segment.start,
            len,
            PAGE,
        ));
        offset += len;
    }

    let mut core = Vec::with_capacity(offset as usize);
    core.extend_from_slice(bytes_of(&file_header(program_headers.len())));
    for header in &program_headers {
        core.extend_from_slice(bytes_of(header));
    }
    core.extend_from_slice(&notes);
    core.resize(
        (notes_offset as usize + notes.len()).next_multiple_of(PAGE as usize),
        0,
    );
    for segment in &segments {
        let bytes = memory
            .slice(segment.start, segment.end - segment.start)
            .expect("segments lie in guest memory");
        core.extend_from_slice(bytes);
    }
    Ok(core)
}

/// A run of pages with one protection.
struct Segment {
    start: u64,
    end: u64,
    protection: Protection,
}

/// The pages that hold data and that the guest can reach, merged into runs.
fn segments(memory: &GuestMemory) -> Result<Vec<Segment>, CoreDumpError> {
    let touched = memory.touched().map_err(CoreDumpError::TouchedPages)?;
    let mut segments: Vec<Segment> = Vec::new();
    for range in touched {
        let mut page = range.start & !(PAGE - 1);
        while page < range.end {
            if let Some(protection) = guest_page(memory, page) {
                match segments.last_mut() {
                    Some(last) if last.end == page && last.protection == protection => {
                        last.end = page + PAGE;
                    }
                    _ => segments.push(Segment {
                        start: page,
                        end: page + PAGE,
                        protection,
                    }),
                }
            }
            page += PAGE;
        }
    }
    Ok(segments)
}

fn file_header(program_headers: usize) -> FileHeader64<LE> {
    FileHeader64 {
        e_ident: elf::Ident {
            magic: elf::ELFMAG,
            class: elf::ELFCLASS64,
            data: elf::ELFDATA2LSB,
            version: elf::EV_CURRENT,
            os_abi: elf::ELFOSABI_NONE,
            abi_version: 0,
            padding: [0; 7],
        },
        e_type: U16::new(LE, elf::ET_CORE),
        e_machine: U16::new(LE, elf::EM_X86_64),
        e_version: U32::new(LE, elf::EV_CURRENT.into()),
        e_entry: U64::new(LE, 0),
        e_phoff: U64::new(LE, size_of::<FileHeader64<LE>>() as u64),
        e_shoff: U64::new(LE, 0),
        e_flags: U32::new(LE, 0),
        e_ehsize: U16::new(LE, size_of::<FileHeader64<LE>>() as u16),
        e_phentsize: U16::new(LE, size_of::<ProgramHeader64<LE>>() as u16),
        e_phnum: U16::new(LE, program_headers as u16),
        e_shentsize: U16::new(LE, 0),
        e_shnum: U16::new(LE, 0),
        e_shstrndx: U16::new(LE, 0),
    }
}

fn program_header(
    kind: u32,
    flags: u32,
    offset: u64,
    addr: u64,
    len: u64,
    align: u64,
) -> ProgramHeader64<LE> {
    ProgramHeader64 {
        p_type: U32::new(LE, kind),
        p_flags: U32::new(LE, flags),
        p_offset: U64::new(LE, offset),
        p_vaddr: U64::new(LE, addr),
        p_paddr: U64::new(LE, addr),
        p_filesz: U64::new(LE, len),
        p_memsz: U64::new(LE, len),
        p_align: U64::new(LE, align),
    }
}

/// Appends an ELF note named "CORE", as Linux names its core notes.
fn note(notes: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    const NAME: &[u8] = b"CORE\0";
    for word in [NAME.len() as u32, desc.len() as u32, kind] {
        notes.extend_from_slice(&word.to_le_bytes());
    }
    notes.extend_from_slice(NAME);
    notes.resize(notes.len().next_multiple_of(4), 0);
    notes.extend_from_slice(desc);
    notes.resize(notes.len().next_multiple_of(4), 0);
}

fn put(buffer: &mut [u8], at: usize, bytes: &[u8]) {
    buffer[at..at + bytes.len()].copy_from_slice(bytes);
}

/// `struct elf_prstatus`: the signal, the pid, and `user_regs_struct`.
fn prstatus(signal: Signal, regs: &kvm_regs, sregs: &kvm_bindings::kvm_sregs) -> Vec<u8> {
    let mut status = vec![0; PRSTATUS_SIZE];
    put(&mut status, 0, &signal.number().to_le_bytes());
    put(
        &mut status,
        PRSTATUS_CURSIG,
        &(signal.number() as i16).to_le_bytes(),
    );
    put(&mut status, PRSTATUS_PID, &GUEST_PID.to_le_bytes());
    // `user_regs_struct`'s order; orig_rax -1: not in a system call.
    let user_regs: [u64; 27] = [
        regs.r15,
        regs.r14,
        regs.r13,
        regs.r12,
        regs.rbp,
        regs.rbx,
        regs.r11,
        regs.r10,
        regs.r9,
        regs.r8,
        regs.rax,
        regs.rcx,
        regs.rdx,
        regs.rsi,
        regs.rdi,
        u64::MAX,
        regs.rip,
        sregs.cs.selector.into(),
        regs.rflags,
        regs.rsp,
        sregs.ss.selector.into(),
        sregs.fs.base,
        sregs.gs.base,
        sregs.ds.selector.into(),
        sregs.es.selector.into(),
        sregs.fs.selector.into(),
        sregs.gs.selector.into(),
    ];
    for (index, value) in user_regs.iter().enumerate() {
        put(&mut status, PRSTATUS_REGS + index * 8, &value.to_le_bytes());
    }
    status
}

/// `struct elf_prpsinfo`: the guest's name, which gdb shows as "Core was generated by".
fn prpsinfo(name: &str) -> Vec<u8> {
    let mut info = vec![0; PRPSINFO_SIZE];
    // "R" (running) as the state's letter.
    info[PRPSINFO_STATE_NAME] = b'R';
    put(&mut info, PRPSINFO_PID, &GUEST_PID.to_le_bytes());
    let name = name.as_bytes();
    put(
        &mut info,
        PRPSINFO_FNAME,
        &name[..name.len().min(PRPSINFO_FNAME_LEN - 1)],
    );
    put(
        &mut info,
        PRPSINFO_ARGS,
        &name[..name.len().min(PRPSINFO_ARGS_LEN - 1)],
    );
    info
}

/// The auxiliary vector a Linux process would have had: gdb finds the PIE's load address in
/// AT_ENTRY and checks it against the program headers at AT_PHDR.
fn auxv(image: &Image<'_>, map: &MemoryMap) -> Vec<u8> {
    let (phoff, phnum) = image.program_headers;
    // The program headers are loaded with the segment whose file range holds them.
    let phdr = image
        .segments
        .iter()
        .find(|segment| {
            (segment.file_offset as u64..(segment.file_offset + segment.file_size) as u64)
                .contains(&phoff)
        })
        .map_or(0, |segment| {
            map.load_bias
                .wrapping_add(segment.vaddr)
                .wrapping_add(phoff - segment.file_offset as u64)
        });
    let entries = [
        (AT_PHDR, phdr),
        (AT_PHENT, size_of::<ProgramHeader64<LE>>() as u64),
        (AT_PHNUM, phnum.into()),
        (AT_PAGESZ, PAGE),
        (AT_ENTRY, map.load_bias.wrapping_add(image.entry)),
        (AT_NULL, 0),
    ];
    entries
        .iter()
        .flat_map(|(key, value)| key.to_le_bytes().into_iter().chain(value.to_le_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_padded_to_words() {
        let mut notes = Vec::new();
        note(&mut notes, elf::NT_AUXV, &[1, 2, 3]);
        // namesz, descsz, type; "CORE\0" padded to 8; 3 bytes padded to 4.
        assert_eq!(notes.len(), 12 + 8 + 4);
        assert_eq!(notes[..12], [5, 0, 0, 0, 3, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(&notes[12..17], b"CORE\0");
        assert_eq!(notes[20..], [1, 2, 3, 0]);
    }

    #[test]
    fn prstatus_holds_the_signal_and_registers_where_linux_puts_them() {
        let regs = kvm_regs {
            r15: 0xf15,
            rip: 0x20_1234,
            rsp: 0x30_0000,
            ..Default::default()
        };
        let status = prstatus(Signal::Segv, &regs, &Default::default());
        assert_eq!(status.len(), PRSTATUS_SIZE);
        assert_eq!(status[..4], 11i32.to_le_bytes());
        assert_eq!(
            status[PRSTATUS_CURSIG..PRSTATUS_CURSIG + 2],
            11i16.to_le_bytes()
        );
        let reg = |index: usize| {
            u64::from_le_bytes(status[PRSTATUS_REGS + index * 8..][..8].try_into().unwrap())
        };
        assert_eq!(
            (reg(0), reg(15), reg(16), reg(19)),
            (0xf15, u64::MAX, 0x20_1234, 0x30_0000)
        );
    }
}
