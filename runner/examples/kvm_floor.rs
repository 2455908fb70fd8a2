//! What a boot costs in KVM alone, for `cargo xtask bench`: the runner's own VM set-up
//! (`vcpu::Vm`, default memory size) and run loop, booting a guest whose only instructions are
//! the exit hypercall. The guest's memory is prepared before the clock starts, so the figure is
//! creating the VM, its memory slot and its vCPU, and the one KVM_RUN to the exit.
//!
//! Usage: `kvm_floor COUNT`; prints `kvm floor median N ns`.

use std::path::Path;
use std::time::{Duration, Instant};

use hyperlight_run::elf::{Image, PAGE};
use hyperlight_run::layout::{self, MemoryMap};
use hyperlight_run::memory::GuestMemory;
use hyperlight_run::vcpu::{self, Stop, Vm};
use hyperlight_run::{Discard, DEFAULT_MEMORY};

/// A static-PIE ELF with one read+execute segment holding `xor edi, edi; out 0x10, al`:
/// exit(0).
fn exit_only_guest() -> Vec<u8> {
    const HEADER: usize = 64;
    const PROGRAM_HEADER: usize = 56;
    const CODE: [u8; 4] = [0x31, 0xff, 0xe6, 0x10];
    let size = (HEADER + PROGRAM_HEADER + CODE.len()) as u64;
    let entry = (HEADER + PROGRAM_HEADER) as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    elf.extend_from_slice(&entry.to_le_bytes());
    elf.extend_from_slice(&(HEADER as u64).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [HEADER, PROGRAM_HEADER, 1, 64, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        elf.extend_from_slice(&(half as u16).to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    for word in [0, 0, 0, size, size, PAGE] {
        // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(&CODE);
    elf
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|count| count.parse().ok())
        .ok_or("usage: kvm_floor COUNT")?;
    let elf = exit_only_guest();
    let image = Image::parse(&elf)?;
    let map = MemoryMap::new(&image, DEFAULT_MEMORY, PAGE)?;
    let kvm = vcpu::kvm_for_this_thread(Path::new("/dev/kvm"))?;
    let mut samples = Vec::with_capacity(count);
    // Like `hyperlight_run::run`: each VM is torn down after the next one has run.
    let mut previous = None;
    for _ in 0..count.max(1) {
        let mut memory = GuestMemory::new(DEFAULT_MEMORY)?;
        image.load(&mut memory, map.load_bias)?;
        layout::build(&mut memory, &map, &image)?;

        let started = Instant::now();
        let mut vm = Vm::new(&kvm, memory, &map, map.load_bias + image.entry)?;
        let stop = vm.run(&mut Discard, started, None);
        samples.push(started.elapsed());
        if !matches!(stop, Stop::Exited(0)) {
            return Err(format!("the exit-only guest did not exit 0: {stop:?}").into());
        }
        previous = Some(vm.retire());
    }
    drop(previous);
    samples.sort();
    let median: Duration = samples[samples.len() / 2];
    println!("kvm floor median {} ns", median.as_nanos());
    Ok(())
}
