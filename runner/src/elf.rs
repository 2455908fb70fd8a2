//! Loading the static-PIE ELF files x86_64-hyperlight-none produces.
//!
//! [`Image::parse`] validates everything up front without touching guest memory and without
//! allocating from unchecked header values (every count is bounded by the file's size, which
//! `object` checks for us); [`Image::load`] then copies the segments and applies the
//! `R_X86_64_RELATIVE` relocations. Anything else is rejected with one clear message.

use object::elf::{self, FileHeader64, ProgramHeader64};
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian as LE;

use crate::memory::GuestMemory;

/// The guest ABI's page size.
pub const PAGE: u64 = hyperlight_rt::abi::PAGE_SIZE;

/// More PT_LOAD segments than any linker emits for a guest; a bound on work and page tables.
const MAX_LOAD_SEGMENTS: usize = 64;

/// Why an ELF file was rejected. The message completes "cannot load GUEST: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("truncated ELF header")]
    TruncatedHeader,
    #[error("32-bit ELF; guests must be 64-bit x86_64")]
    Class32,
    #[error("unknown ELF class {0}")]
    UnknownClass(u8),
    #[error("big-endian ELF; guests must be little-endian x86_64")]
    BigEndian,
    #[error("unknown ELF data encoding {0}")]
    UnknownEncoding(u8),
    #[error("malformed ELF header ({0})")]
    MalformedHeader(object::read::Error),
    #[error("ELF machine {0} is not x86_64 (62)")]
    Machine(u16),
    #[error(
        "an AArch64 guest (aarch64-hyperlight-none); hyperlight-run boots x86-64 guests only, \
         on an x86-64 host"
    )]
    AArch64,
    #[error("not a position-independent executable (ET_EXEC); build for x86_64-hyperlight-none")]
    NotPositionIndependent,
    #[error("ELF type {0} is not an executable")]
    NotExecutable(u16),
    #[error("malformed program headers ({0})")]
    MalformedProgramHeaders(object::read::Error),
    #[error("no program headers")]
    NoProgramHeaders,
    #[error("more than {MAX_LOAD_SEGMENTS} loadable segments")]
    TooManySegments,
    #[error("no loadable segments")]
    NoLoadableSegments,
    #[error("segment at {0:#x} is out of range")]
    SegmentOutOfRange(u64),
    #[error(
        "segment at {vaddr:#x} has more file bytes ({file_size}) than memory bytes ({mem_size})"
    )]
    FileBytesBeyondMemory {
        vaddr: u64,
        file_size: u64,
        mem_size: u64,
    },
    #[error("truncated file: segment at {vaddr:#x} needs bytes {start:#x}..{end:#x}, the file has {len:#x}")]
    TruncatedSegment {
        vaddr: u64,
        start: u64,
        end: u64,
        len: usize,
    },
    #[error("segments at {0:#x} and {1:#x} overlap")]
    OverlappingSegments(u64, u64),
    #[error("RELRO segment out of range")]
    RelroOutOfRange,
    #[error("dynamically linked (has an interpreter); guests must be static")]
    Interpreter,
    #[error("entry point {0:#x} is outside executable memory")]
    EntryOutsideCode(u64),
    #[error(
        "thread-local storage of {mem_size} bytes ({file_size} initialised); at most \
         {MAX_TLS_SIZE} are supported"
    )]
    TlsTooLarge { mem_size: u64, file_size: u64 },
    #[error("thread-local storage aligned to {0}; at most a page is supported")]
    TlsAlignment(u64),
    #[error("thread-local data at {0:#x} is out of range")]
    TlsOutOfRange(u64),
    #[error("thread-local data at {0:#x} is outside the loaded segments")]
    TlsOutsideSegments(u64),
    #[error("truncated file: dynamic section out of range")]
    DynamicOutOfRange,
    #[error("misaligned dynamic section")]
    MisalignedDynamic,
    #[error("needs a shared library; guests must be static")]
    SharedLibrary,
    #[error("unsupported relocation format ({0}); only RELA is supported")]
    RelocationFormat(&'static str),
    #[error("has PLT relocations; guests must be static")]
    PltRelocations,
    #[error("unsupported RELA entry size {0}")]
    RelaEntrySize(u64),
    #[error("relocation table out of range")]
    RelocationTableOutOfRange,
    #[error(
        "unsupported relocation type {kind} at {offset:#x}; only R_X86_64_RELATIVE is supported"
    )]
    RelocationType { kind: u32, offset: u64 },
    #[error("relocation at {0:#x} is outside the loaded segments")]
    RelocationOutsideSegments(u64),
    #[error("segment does not fit in guest memory")]
    SegmentBeyondMemory,
    #[error("relocation outside guest memory")]
    RelocationBeyondMemory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One PT_LOAD segment, in link-time addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: usize,
    pub file_size: usize,
    pub permissions: Permissions,
}

impl Segment {
    fn end(&self) -> u64 {
        self.vaddr + self.mem_size
    }

    /// The pages the segment occupies: `[first, end)`.
    pub fn page_range(&self) -> (u64, u64) {
        (align_down(self.vaddr), align_up(self.end()))
    }
}

pub fn align_down(value: u64) -> u64 {
    value & !(PAGE - 1)
}

/// Rounds up to a page; callers only pass values already checked to be far below u64::MAX.
pub fn align_up(value: u64) -> u64 {
    value.div_ceil(PAGE) * PAGE
}

/// The PT_TLS segment: the initial contents of the guest's thread-local storage (its one
/// thread's). Guests built with std for x86_64-hyperlight-hermit have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsTemplate {
    /// Link-time address of the initialised part (.tdata), inside a loaded segment.
    pub vaddr: u64,
    pub file_size: u64,
    /// The whole block: .tdata and the zeroed .tbss after it.
    pub mem_size: u64,
    /// A power of two, at most a page.
    pub align: u64,
}

/// More thread-local storage than any guest needs; a bound on what the loader sets aside.
const MAX_TLS_SIZE: u64 = 1 << 20;

/// A validated guest image: what to copy where, and which words to relocate.
pub struct Image<'data> {
    data: &'data [u8],
    pub segments: Vec<Segment>,
    pub entry: u64,
    /// Link-time address of each word to relocate, and its addend.
    relocations: Vec<(u64, u64)>,
    /// The PT_GNU_RELRO range: read-only once relocated.
    pub relro: Option<(u64, u64)>,
    /// End of the highest segment page (link-time), i.e. the image's size from 0.
    pub span: u64,
    /// Whether the file carries a `.note.hyperlight-version` (an official Hyperlight guest).
    pub hyperlight_version_note: Option<String>,
    pub tls: Option<TlsTemplate>,
    /// File offset and number of the program headers (a core dump tells gdb where they are).
    pub program_headers: (u64, u16),
}

/// What the program headers describe, before the segments are checked against each other.
struct Program<'data> {
    segments: Vec<Segment>,
    dynamic: Option<&'data ProgramHeader64<LE>>,
    relro: Option<(u64, u64)>,
    tls: Option<TlsTemplate>,
}

impl<'data> Program<'data> {
    fn read(
        program_headers: &'data [ProgramHeader64<LE>],
        data: &[u8],
    ) -> Result<Program<'data>, ElfError> {
        let endian = LE;
        let mut segments = Vec::new();
        let mut dynamic = None;
        let mut relro = None;
        let mut tls = None;
        for ph in program_headers {
            match ph.p_type(endian) {
                elf::PT_LOAD => {
                    if segments.len() == MAX_LOAD_SEGMENTS {
                        return Err(ElfError::TooManySegments);
                    }
                    segments.push(load_segment(ph, data)?);
                }
                elf::PT_DYNAMIC => dynamic = Some(ph),
                elf::PT_GNU_RELRO => {
                    let start = ph.p_vaddr(endian);
                    let end = start
                        .checked_add(ph.p_memsz(endian))
                        .filter(|end| *end <= MAX_ADDRESS)
                        .ok_or(ElfError::RelroOutOfRange)?;
                    relro = Some((start, end));
                }
                elf::PT_INTERP => return Err(ElfError::Interpreter),
                elf::PT_TLS => tls = Some(tls_template(ph)?),
                _ => {}
            }
        }
        Ok(Program {
            segments,
            dynamic,
            relro,
            tls,
        })
    }
}

impl<'data> Image<'data> {
    pub fn parse(data: &'data [u8]) -> Result<Image<'data>, ElfError> {
        check_ident(data)?;
        let header = FileHeader64::<LE>::parse(data).map_err(ElfError::MalformedHeader)?;
        let endian = LE;
        match header.e_machine(endian) {
            elf::EM_X86_64 => {}
            elf::EM_AARCH64 => return Err(ElfError::AArch64),
            other => return Err(ElfError::Machine(other)),
        }
        match header.e_type(endian) {
            elf::ET_DYN => {}
            elf::ET_EXEC => return Err(ElfError::NotPositionIndependent),
            other => return Err(ElfError::NotExecutable(other)),
        }
        let program_headers = header
            .program_headers(endian, data)
            .map_err(ElfError::MalformedProgramHeaders)?;
        if program_headers.is_empty() {
            return Err(ElfError::NoProgramHeaders);
        }

        let Program {
            mut segments,
            dynamic,
            relro,
            tls,
        } = Program::read(program_headers, data)?;
        if segments.is_empty() {
            return Err(ElfError::NoLoadableSegments);
        }
        segments.sort_by_key(|segment| segment.vaddr);
        for pair in segments.windows(2) {
            if pair[0].page_range().1 > pair[1].page_range().0 {
                return Err(ElfError::OverlappingSegments(pair[0].vaddr, pair[1].vaddr));
            }
        }
        let span = segments.last().unwrap().page_range().1;

        let entry = header.e_entry(endian);
        let entry_ok = segments.iter().any(|segment| {
            segment.permissions.execute && segment.vaddr <= entry && entry < segment.end()
        });
        if !entry_ok {
            return Err(ElfError::EntryOutsideCode(entry));
        }

        let relocations = match dynamic {
            Some(ph) => relocations(ph, data, &segments)?,
            None => Vec::new(),
        };
        let hyperlight_version_note = hyperlight_note(program_headers, data);
        if let Some(tls) = &tls {
            let loaded = segments.iter().any(|segment| {
                segment.vaddr <= tls.vaddr && tls.vaddr + tls.file_size <= segment.end()
            });
            if !loaded {
                return Err(ElfError::TlsOutsideSegments(tls.vaddr));
            }
        }

        Ok(Image {
            data,
            segments,
            entry,
            relocations,
            relro,
            span,
            hyperlight_version_note,
            tls,
            program_headers: (header.e_phoff(endian), header.e_phnum(endian)),
        })
    }

    /// Copies the segments to `bias + vaddr` and applies the relocations. The caller has
    /// checked that `bias + span` fits in guest memory; every write is bounds-checked anyway.
    pub fn load(&self, memory: &mut GuestMemory, bias: u64) -> Result<(), ElfError> {
        for segment in &self.segments {
            let bytes = &self.data[segment.file_offset..segment.file_offset + segment.file_size];
            memory
                .write(bias.wrapping_add(segment.vaddr), bytes)
                .ok_or(ElfError::SegmentBeyondMemory)?;
            // The rest (bss) is already zero: guest memory starts zeroed.
        }
        for &(offset, addend) in &self.relocations {
            memory
                .write_u64(bias.wrapping_add(offset), bias.wrapping_add(addend))
                .ok_or(ElfError::RelocationBeyondMemory)?;
        }
        Ok(())
    }
}

/// How many bytes from the start of the file [`Image::parse`] needs, judged from `front`, the
/// file's first bytes: through the program header table and everything its PT_LOAD,
/// PT_DYNAMIC and PT_NOTE entries describe. If `front` ends inside the table, the table's end.
/// Headers too broken to tell are left for `parse` to reject: then `front.len()`.
pub fn bytes_needed(front: &[u8]) -> u64 {
    let endian = LE;
    let have = front.len() as u64;
    let Ok(header) = FileHeader64::<LE>::parse(front) else {
        return have;
    };
    let table_end = u64::from(header.e_phnum(endian))
        .checked_mul(u64::from(header.e_phentsize(endian)))
        .and_then(|size| size.checked_add(header.e_phoff(endian)));
    let Some(table_end) = table_end else {
        return have;
    };
    if table_end > have {
        return table_end;
    }
    let Ok(program_headers) = header.program_headers(endian, front) else {
        return have;
    };
    program_headers
        .iter()
        .filter(|ph| {
            matches!(
                ph.p_type(endian),
                elf::PT_LOAD | elf::PT_DYNAMIC | elf::PT_NOTE
            )
        })
        .map(|ph| ph.p_offset(endian).saturating_add(ph.p_filesz(endian)))
        .fold(table_end, u64::max)
}

/// DT_RELRSZ and DT_RELR (packed relative relocations), which `object` does not name.
const DT_RELRSZ: u32 = 35;
const DT_RELR: u32 = 36;

/// Addresses beyond this are absurd for a guest (and keep all later arithmetic overflow-free).
const MAX_ADDRESS: u64 = 1 << 46;

fn check_ident(data: &[u8]) -> Result<(), ElfError> {
    if data.len() < 4 || data[..4] != elf::ELFMAG {
        return Err(ElfError::NotElf);
    }
    if data.len() < 16 {
        return Err(ElfError::TruncatedHeader);
    }
    match data[4] {
        elf::ELFCLASS64 => {}
        elf::ELFCLASS32 => return Err(ElfError::Class32),
        other => return Err(ElfError::UnknownClass(other)),
    }
    match data[5] {
        elf::ELFDATA2LSB => {}
        elf::ELFDATA2MSB => return Err(ElfError::BigEndian),
        other => return Err(ElfError::UnknownEncoding(other)),
    }
    if data.len() < std::mem::size_of::<FileHeader64<LE>>() {
        return Err(ElfError::TruncatedHeader);
    }
    Ok(())
}

fn load_segment(ph: &ProgramHeader64<LE>, data: &[u8]) -> Result<Segment, ElfError> {
    let endian = LE;
    let vaddr = ph.p_vaddr(endian);
    let mem_size = ph.p_memsz(endian);
    let file_offset = ph.p_offset(endian);
    let file_size = ph.p_filesz(endian);
    let flags = ph.p_flags(endian);
    if vaddr
        .checked_add(mem_size)
        .is_none_or(|end| end > MAX_ADDRESS)
    {
        return Err(ElfError::SegmentOutOfRange(vaddr));
    }
    if file_size > mem_size {
        return Err(ElfError::FileBytesBeyondMemory {
            vaddr,
            file_size,
            mem_size,
        });
    }
    let file_end = file_offset
        .checked_add(file_size)
        .filter(|end| *end <= data.len() as u64);
    if file_end.is_none() {
        return Err(ElfError::TruncatedSegment {
            vaddr,
            start: file_offset,
            end: file_offset.saturating_add(file_size),
            len: data.len(),
        });
    }
    Ok(Segment {
        vaddr,
        mem_size,
        file_offset: file_offset as usize,
        file_size: file_size as usize,
        permissions: Permissions {
            read: flags & elf::PF_R != 0,
            write: flags & elf::PF_W != 0,
            execute: flags & elf::PF_X != 0,
        },
    })
}

fn tls_template(ph: &ProgramHeader64<LE>) -> Result<TlsTemplate, ElfError> {
    let endian = LE;
    let template = TlsTemplate {
        vaddr: ph.p_vaddr(endian),
        file_size: ph.p_filesz(endian),
        mem_size: ph.p_memsz(endian),
        align: ph.p_align(endian).max(1),
    };
    if template.mem_size > MAX_TLS_SIZE || template.file_size > template.mem_size {
        return Err(ElfError::TlsTooLarge {
            mem_size: template.mem_size,
            file_size: template.file_size,
        });
    }
    if !template.align.is_power_of_two() || template.align > PAGE {
        return Err(ElfError::TlsAlignment(template.align));
    }
    if template.vaddr > MAX_ADDRESS {
        return Err(ElfError::TlsOutOfRange(template.vaddr));
    }
    Ok(template)
}

/// The file bytes backing link-time range `[vaddr, vaddr + len)`, if one segment holds them.
fn file_bytes<'a>(data: &'a [u8], segments: &[Segment], vaddr: u64, len: u64) -> Option<&'a [u8]> {
    let segment = segments.iter().find(|segment| {
        segment.vaddr <= vaddr
            && vaddr
                .checked_add(len)
                .is_some_and(|end| end <= segment.vaddr + segment.file_size as u64)
    })?;
    let start = segment.file_offset + (vaddr - segment.vaddr) as usize;
    data.get(start..start + len as usize)
}

fn relocations(
    dynamic: &ProgramHeader64<LE>,
    data: &[u8],
    segments: &[Segment],
) -> Result<Vec<(u64, u64)>, ElfError> {
    let endian = LE;
    let table = dynamic
        .data(endian, data)
        .map_err(|_| ElfError::DynamicOutOfRange)?;
    let entries: &[elf::Dyn64<LE>] = object::pod::slice_from_all_bytes(
        &table[..table.len() / std::mem::size_of::<elf::Dyn64<LE>>()
            * std::mem::size_of::<elf::Dyn64<LE>>()],
    )
    .map_err(|()| ElfError::MisalignedDynamic)?;
    let (mut rela, mut rela_size, mut rela_entry) = (None, 0u64, 24u64);
    for entry in entries {
        let value = entry.d_val.get(endian);
        match u32::try_from(entry.d_tag.get(endian)).unwrap_or(u32::MAX) {
            elf::DT_NULL => break,
            elf::DT_RELA => rela = Some(value),
            elf::DT_RELASZ => rela_size = value,
            elf::DT_RELAENT => rela_entry = value,
            elf::DT_NEEDED => return Err(ElfError::SharedLibrary),
            elf::DT_REL | elf::DT_RELSZ if value != 0 => {
                return Err(ElfError::RelocationFormat("REL"))
            }
            DT_RELR | DT_RELRSZ if value != 0 => return Err(ElfError::RelocationFormat("RELR")),
            elf::DT_JMPREL | elf::DT_PLTRELSZ if value != 0 => {
                return Err(ElfError::PltRelocations)
            }
            _ => {}
        }
    }
    let Some(rela) = rela else {
        return Ok(Vec::new());
    };
    if rela_entry != 24 {
        return Err(ElfError::RelaEntrySize(rela_entry));
    }
    let bytes =
        file_bytes(data, segments, rela, rela_size).ok_or(ElfError::RelocationTableOutOfRange)?;
    let mut relocations = Vec::with_capacity(bytes.len() / 24);
    for raw in bytes.as_chunks::<24>().0 {
        let offset = u64::from_le_bytes(raw[0..8].try_into().unwrap());
        let info = u64::from_le_bytes(raw[8..16].try_into().unwrap());
        let addend = u64::from_le_bytes(raw[16..24].try_into().unwrap());
        match (info & 0xffff_ffff) as u32 {
            elf::R_X86_64_NONE => continue,
            elf::R_X86_64_RELATIVE if info >> 32 == 0 => {}
            kind => return Err(ElfError::RelocationType { kind, offset }),
        }
        let inside = segments.iter().any(|segment| {
            segment.vaddr <= offset
                && offset
                    .checked_add(8)
                    .is_some_and(|end| end <= segment.end())
        });
        if !inside {
            return Err(ElfError::RelocationOutsideSegments(offset));
        }
        relocations.push((offset, addend));
    }
    Ok(relocations)
}

/// The version in a `.note.hyperlight-version` note ("Hyperlight", type 1), if any.
fn hyperlight_note(program_headers: &[ProgramHeader64<LE>], data: &[u8]) -> Option<String> {
    let desc = note(program_headers, data, b"Hyperlight", 1)?;
    let text = desc.split(|&b| b == 0).next().unwrap_or_default();
    Some(String::from_utf8_lossy(text).into_owned())
}

/// The description of the first note called `name` of type `kind` in the PT_NOTE segments.
fn note<'data>(
    program_headers: &[ProgramHeader64<LE>],
    data: &'data [u8],
    name: &[u8],
    kind: u32,
) -> Option<&'data [u8]> {
    for ph in program_headers {
        if ph.p_type(LE) != elf::PT_NOTE {
            continue;
        }
        let Ok(Some(mut notes)) = ph.notes(LE, data) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == name && note.n_type(LE) == kind {
                return Some(note.desc());
            }
        }
    }
    None
}

/// [`note`] for a file that is not otherwise parsed: reads only the headers and the notes.
pub fn find_note<'data>(data: &'data [u8], name: &[u8], kind: u32) -> Option<&'data [u8]> {
    let header = FileHeader64::<LE>::parse(data).ok()?;
    note(header.program_headers(LE, data).ok()?, data, name, kind)
}
