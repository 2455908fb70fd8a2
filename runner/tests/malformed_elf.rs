//! A corpus of broken ELF files derived from a real guest: each is rejected with exit code
//! 125 and exactly one `hyperlight-run: error:` line, without a panic or a hang.

mod common;

use std::path::PathBuf;

use common::*;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};

const PHDR_SIZE: usize = 56;

struct Guest {
    bytes: Vec<u8>,
    phoff: usize,
    phnum: usize,
}

impl Guest {
    fn load() -> Guest {
        let bytes = std::fs::read(example("hello")).unwrap();
        let header = object::elf::FileHeader64::<object::LittleEndian>::parse(&*bytes).unwrap();
        let phoff = header.e_phoff(object::LittleEndian) as usize;
        let phnum = header.e_phnum(object::LittleEndian) as usize;
        Guest {
            bytes,
            phoff,
            phnum,
        }
    }

    fn put_u16(&mut self, at: usize, value: u16) {
        self.bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u32(&mut self, at: usize, value: u32) {
        self.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u64(&mut self, at: usize, value: u64) {
        self.bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn get_u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().unwrap())
    }

    /// Offsets of the program headers of type `kind`.
    fn headers(&self, kind: u32) -> Vec<usize> {
        (0..self.phnum)
            .map(|i| self.phoff + i * PHDR_SIZE)
            .filter(|&at| u32::from_le_bytes(self.bytes[at..at + 4].try_into().unwrap()) == kind)
            .collect()
    }

    /// File offset of the first RELA relocation entry.
    fn first_relocation(&self) -> usize {
        let endian = object::LittleEndian;
        let header =
            object::elf::FileHeader64::<object::LittleEndian>::parse(&*self.bytes).unwrap();
        let headers = header.program_headers(endian, &*self.bytes).unwrap();
        let dynamic = headers
            .iter()
            .find(|ph| ph.p_type(endian) == object::elf::PT_DYNAMIC)
            .unwrap();
        let entries = dynamic.dynamic(endian, &*self.bytes).unwrap().unwrap();
        let rela = entries
            .iter()
            .find(|entry| entry.d_tag(endian) == u64::from(object::elf::DT_RELA))
            .unwrap()
            .d_val(endian);
        // The relocation table is in the first segment, which maps file offset = address.
        rela as usize
    }
}

/// Writes `bytes` to a temporary file, runs it, and checks the rejection contract.
fn assert_rejected(name: &str, bytes: &[u8], extra_args: &[&str], expected: &str) {
    let dir = testkit::TempDir::new(&format!("elf-{name}"));
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let (output, _) = run_with_watchdog(runner().args(extra_args).arg(&path));
    assert_eq!(code(&output), 125, "{name}: {}", stderr(&output));
    let line = assert_single_error_line(&output);
    assert!(
        line.contains(expected),
        "{name}: expected {expected:?} in: {line}"
    );
    assert!(stdout(&output).is_empty(), "{name}: the guest ran");
}

#[test]
fn the_unmodified_guest_runs() {
    testkit::require_kvm!();
    let guest = Guest::load();
    let dir = testkit::TempDir::new("elf-ok");
    let path = dir.path().join("hello");
    std::fs::write(&path, &guest.bytes).unwrap();
    let output = run([&path]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

/// Relinks the guest at `shift` above where it was linked: every address in the program
/// headers, the entry point, the dynamic section and the relocations moves.
fn shifted(shift: u64) -> Vec<u8> {
    let mut guest = Guest::load();
    let (phoff, phnum) = (guest.phoff, guest.phnum);
    for at in (0..phnum).map(|i| phoff + i * PHDR_SIZE) {
        for field in [16, 24] {
            let value = guest.get_u64(at + field);
            guest.put_u64(at + field, value + shift);
        }
    }
    let entry = guest.get_u64(24);
    guest.put_u64(24, entry + shift);
    let rela = guest.first_relocation();
    let dynamic = guest.headers(object::elf::PT_DYNAMIC)[0];
    let (start, size) = (
        guest.get_u64(dynamic + 8) as usize,
        guest.get_u64(dynamic + 32) as usize,
    );
    let mut rela_size = 0;
    for entry in (start..start + size).step_by(16) {
        let tag = guest.get_u64(entry);
        if tag == u64::from(object::elf::DT_RELA) {
            let value = guest.get_u64(entry + 8);
            guest.put_u64(entry + 8, value + shift);
        }
        if tag == u64::from(object::elf::DT_RELASZ) {
            rela_size = guest.get_u64(entry + 8) as usize;
        }
    }
    for at in (rela..rela + rela_size).step_by(24) {
        let (offset, addend) = (guest.get_u64(at), guest.get_u64(at + 16));
        guest.put_u64(at, offset + shift);
        guest.put_u64(at + 16, addend + shift);
    }
    guest.bytes
}

#[test]
fn a_guest_linked_at_a_high_address_still_runs() {
    testkit::require_kvm!();
    let dir = testkit::TempDir::new("elf-high");
    let path = dir.path().join("hello-high");
    std::fs::write(&path, shifted(1 << 32)).unwrap();
    let output = run([&path]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "Hello from a Hyperlight micro-VM!\n");
}

/// The runner reads only the front of the file, as far as the program headers reach. Moved to
/// the end of the file, past the debug info, they (and then the segments) are read too.
#[test]
fn program_headers_at_the_end_of_the_file_still_run() {
    testkit::require_kvm!();
    let mut guest = Guest::load();
    let table = guest.bytes[guest.phoff..guest.phoff + guest.phnum * PHDR_SIZE].to_vec();
    let moved = guest.bytes.len().next_multiple_of(8) + (64 << 10);
    assert!(moved > guest.phoff + (16 << 10), "not past the first read");
    guest.bytes.resize(moved, 0);
    guest.bytes.extend_from_slice(&table);
    guest.bytes[guest.phoff..guest.phoff + table.len()].fill(0xff);
    guest.put_u64(32, moved as u64); // e_phoff
    let dir = testkit::TempDir::new("elf-phdrs-last");
    let path = dir.path().join("hello");
    std::fs::write(&path, &guest.bytes).unwrap();
    let output = run([&path]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "Hello from a Hyperlight micro-VM!\n");
}

#[test]
fn not_an_elf() {
    assert_rejected("text", b"#!/bin/sh\necho hi\n", &[], "not an ELF file");
    assert_rejected("empty", b"", &[], "not an ELF file");
}

#[test]
fn wrong_class_endianness_or_machine() {
    let mut guest = Guest::load();
    guest.bytes[4] = 1;
    assert_rejected("class32", &guest.bytes, &[], "32-bit ELF");

    let mut guest = Guest::load();
    guest.bytes[5] = 2;
    assert_rejected("big-endian", &guest.bytes, &[], "big-endian");

    let mut guest = Guest::load();
    guest.put_u16(18, 40); // EM_ARM
    assert_rejected("arm", &guest.bytes, &[], "not x86_64");

    let mut guest = Guest::load();
    guest.put_u16(18, 183); // EM_AARCH64
    assert_rejected(
        "aarch64",
        &guest.bytes,
        &[],
        "aarch64: an AArch64 guest (aarch64-hyperlight-none); hyperlight-run boots x86-64 \
         guests only, on an x86-64 host",
    );

    let mut guest = Guest::load();
    guest.put_u16(16, 2); // ET_EXEC
    assert_rejected("exec", &guest.bytes, &[], "position-independent");
}

#[test]
fn truncated_files() {
    let guest = Guest::load();
    assert_rejected(
        "cut-header",
        &guest.bytes[..40],
        &[],
        "truncated ELF header",
    );
    assert_rejected(
        "cut-phdrs",
        &guest.bytes[..guest.phoff + 10],
        &[],
        "program headers",
    );
    let loads = guest.headers(object::elf::PT_LOAD);
    let last = *loads.last().unwrap();
    let end = guest.get_u64(last + 8) as usize + guest.get_u64(last + 32) as usize;
    assert_rejected(
        "cut-segment",
        &guest.bytes[..end - 1],
        &[],
        "truncated file",
    );
}

#[test]
fn overlapping_and_out_of_range_segments() {
    let mut guest = Guest::load();
    let loads = guest.headers(object::elf::PT_LOAD);
    let first_vaddr = guest.get_u64(loads[0] + 16);
    guest.put_u64(loads[1] + 16, first_vaddr);
    assert_rejected("overlap", &guest.bytes, &[], "overlap");

    let mut guest = Guest::load();
    guest.put_u64(loads[1] + 16, 1 << 60);
    assert_rejected("far-away", &guest.bytes, &[], "out of range");

    let mut guest = Guest::load();
    guest.put_u64(loads[1] + 40, u64::MAX - 10); // memsz
    assert_rejected("memsz-overflow", &guest.bytes, &[], "out of range");

    let mut guest = Guest::load();
    guest.put_u64(loads[1] + 32, guest.get_u64(loads[1] + 40) + 1); // filesz > memsz
    assert_rejected("filesz", &guest.bytes, &[], "more file bytes");

    let mut guest = Guest::load();
    guest.put_u64(loads[1] + 8, u64::MAX - 4); // offset
    assert_rejected("offset", &guest.bytes, &[], "truncated file");

    let mut guest = Guest::load();
    for at in guest.headers(object::elf::PT_LOAD) {
        guest.put_u32(at, object::elf::PT_NULL);
    }
    assert_rejected("no-load", &guest.bytes, &[], "no loadable segments");
}

#[test]
fn unsupported_relocation() {
    let mut guest = Guest::load();
    let at = guest.first_relocation();
    guest.put_u64(at + 8, u64::from(object::elf::R_X86_64_64) | (1 << 32));
    assert_rejected("reloc", &guest.bytes, &[], "unsupported relocation type 1");

    let mut guest = Guest::load();
    guest.put_u64(at, 1 << 40); // relocation target far outside the image
    assert_rejected(
        "reloc-target",
        &guest.bytes,
        &[],
        "outside the loaded segments",
    );
}

#[test]
fn entry_outside_executable_memory() {
    let mut guest = Guest::load();
    guest.put_u64(24, 0x10); // inside the first, read-only segment
    assert_rejected("entry-ro", &guest.bytes, &[], "outside executable memory");
    guest.put_u64(24, u64::MAX);
    assert_rejected("entry-far", &guest.bytes, &[], "outside executable memory");
}

#[test]
fn guest_bigger_than_memory() {
    let guest = Guest::load();
    assert_rejected(
        "big-stack",
        &guest.bytes,
        &["--memory", "4M", "--stack", "8M"],
        "--memory is 4M",
    );
    let mut guest = Guest::load();
    let last = *guest.headers(object::elf::PT_LOAD).last().unwrap();
    guest.put_u64(last + 40, 512 << 20); // a 512M bss
    assert_rejected(
        "big-bss",
        &guest.bytes,
        &["--memory", "64M"],
        "--memory is 64M",
    );
}

#[test]
fn absurd_header_counts_and_sizes() {
    let mut guest = Guest::load();
    guest.put_u16(56, u16::MAX); // e_phnum
    assert_rejected("phnum", &guest.bytes, &[], "program headers");

    let mut guest = Guest::load();
    guest.put_u16(54, 7); // e_phentsize
    assert_rejected("phentsize", &guest.bytes, &[], "program headers");

    let mut guest = Guest::load();
    guest.put_u64(32, u64::MAX - 100); // e_phoff
    assert_rejected("phoff", &guest.bytes, &[], "program headers");

    let mut guest = Guest::load();
    let dynamic = guest.headers(object::elf::PT_DYNAMIC)[0];
    guest.put_u64(dynamic + 32, u64::MAX / 2); // dynamic filesz
    assert_rejected("dynamic-size", &guest.bytes, &[], "dynamic section");
}

#[test]
fn an_interpreter_and_absurd_thread_local_storage_are_refused() {
    let mut guest = Guest::load();
    let note = guest.headers(object::elf::PT_GNU_STACK)[0];
    guest.put_u32(note, object::elf::PT_INTERP);
    assert_rejected("interp", &guest.bytes, &[], "dynamically linked");
    // Thread-local storage is loaded (std guests have it), within bounds.
    guest.put_u32(note, object::elf::PT_TLS);
    guest.put_u64(note + 40, 1 << 30); // p_memsz
    assert_rejected("tls-size", &guest.bytes, &[], "thread-local storage of");
    guest.put_u64(note + 40, 64);
    guest.put_u64(note + 48, 3); // p_align
    assert_rejected(
        "tls-align",
        &guest.bytes,
        &[],
        "thread-local storage aligned to 3",
    );
    guest.put_u64(note + 48, 8);
    guest.put_u64(note + 16, 1 << 40); // p_vaddr
    guest.put_u64(note + 32, 16); // p_filesz
    assert_rejected(
        "tls-outside",
        &guest.bytes,
        &[],
        "outside the loaded segments",
    );
}
