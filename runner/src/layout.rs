//! The guest's memory map and everything the host writes before the first instruction:
//! page tables, GDT, TSS, IDT and the exception stubs.
//!
//! Guest virtual addresses equal guest physical addresses. The guest runs at CPL 3 (on this
//! machine's PVM KVM, supervisor-mode guest code is emulated instruction by instruction and
//! cannot execute SSE; user-mode code runs natively). Only the runner's exception stubs run
//! at CPL 0, and their pages are supervisor-only.
//!
//! ```text
//! 0x0000_0000  unmapped (null page)
//! 0x0000_1000  GDT + TSS                     supervisor, RW, NX
//! 0x0000_2000  IDT                           supervisor, R,  NX
//! 0x0000_3000  exception stubs               supervisor, RX
//! 0x0000_4000  guard (unmapped)
//! 0x0000_5000  fault stack (IST1), 3 pages   supervisor, RW, NX
//! 0x0001_0000  page tables                   not mapped at all
//! 0x0010_0000  boot info, args, env          user, R, NX
//! 0x001f_0000  stdout buffer (64K)           user, RW, NX
//! 0x0020_0000  guest image (PT_LOAD)         user, per segment: R / RX / RW (RELRO: R)
//!    ...       guard page (unmapped)
//!    ...       stack (--stack)               user, RW, NX
//!    ...       thread-local storage (PT_TLS) user, RW, NX (only if the image has it)
//!    ...       heap, up to --memory          user, RW, NX
//! ```

use hyperlight_rt::abi::{
    port, BOOT_INFO_ADDR, BOOT_INFO_END, IMAGE_BASE, STDOUT_BUFFER_ADDR, STDOUT_BUFFER_SIZE,
};

use crate::elf::{align_up, Image, TlsTemplate, PAGE};
use crate::memory::GuestMemory;

pub const GDT_ADDR: u64 = 0x1000;
pub const TSS_ADDR: u64 = 0x1800;
pub const IDT_ADDR: u64 = 0x2000;
pub const STUBS_ADDR: u64 = 0x3000;
pub const FAULT_STACK_BOTTOM: u64 = 0x5000;
pub const FAULT_STACK_TOP: u64 = 0x8000;
const PAGE_TABLES_START: u64 = 0x1_0000;
const PAGE_TABLES_END: u64 = BOOT_INFO_ADDR;

/// Selectors. User selectors match the host kernel's (__USER_CS 0x33, __USER_DS 0x2b): PVM
/// runs CPL-3 guest code on the host's GDT.
pub const KERNEL_CS: u16 = 0x08;
pub const USER_DS: u16 = 0x2b;
pub const USER_CS: u16 = 0x33;
pub const TSS_SELECTOR: u16 = 0x38;
pub const GDT_LIMIT: u16 = 0x47;
/// The 0x68-byte TSS plus an 8-byte I/O permission bitmap.
pub const TSS_LIMIT: u32 = 0x68 + 8 - 1;
pub const IDT_LIMIT: u16 = 32 * 16 - 1;

/// Vectors 0..32 get a stub; no interrupts are ever enabled.
const EXCEPTION_VECTORS: u64 = 32;
const STUB_SIZE: u64 = 16;
const STUB_COMMON: u64 = STUBS_ADDR + EXCEPTION_VECTORS * STUB_SIZE;

/// Where each part of the guest lives, decided from the image and the options.
#[derive(Clone, Copy, Debug)]
pub struct MemoryMap {
    pub memory_size: u64,
    /// Added (wrapping) to link-time addresses: the image's first page lands at IMAGE_BASE
    /// wherever it was linked.
    pub load_bias: u64,
    pub image_end: u64,
    pub stack_guard: u64,
    pub stack_bottom: u64,
    pub stack_top: u64,
    pub tls: Option<TlsBlock>,
    pub heap_start: u64,
}

/// The guest's thread-local storage, laid out as the x86-64 ELF TLS ABI's variant II: the
/// block ends at the thread pointer (FS base), where a word holds the thread pointer itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsBlock {
    pub start: u64,
    pub thread_pointer: u64,
    /// Page-aligned end of the block and the thread-pointer word.
    pub end: u64,
}

impl TlsBlock {
    fn new(template: &TlsTemplate, start: u64) -> TlsBlock {
        let thread_pointer = start + template.mem_size.next_multiple_of(template.align);
        TlsBlock {
            start: thread_pointer - template.mem_size,
            thread_pointer,
            end: align_up(thread_pointer + 8),
        }
    }
}

impl MemoryMap {
    /// Lays out the image, the stack and the heap, or says how much memory they need.
    pub fn new(image: &Image<'_>, memory_size: u64, stack_size: u64) -> Result<MemoryMap, String> {
        let first_page = crate::elf::align_down(image.segments[0].vaddr);
        let load_bias = IMAGE_BASE.wrapping_sub(first_page);
        let image_end = IMAGE_BASE + (image.span - first_page);
        let stack_guard = image_end;
        let stack_bottom = stack_guard + PAGE;
        let stack_top = stack_bottom
            .checked_add(align_up(stack_size))
            .ok_or("stack too large")?;
        let tls = image
            .tls
            .map(|template| TlsBlock::new(&template, stack_top));
        let heap_start = tls.map_or(stack_top, |tls| tls.end);
        if heap_start > memory_size {
            return Err(format!(
                "the guest needs at least {} of memory (image {} + stack {}), but --memory is {}",
                human(heap_start),
                human(image.span),
                human(align_up(stack_size)),
                human(memory_size)
            ));
        }
        Ok(MemoryMap {
            memory_size,
            load_bias,
            image_end,
            stack_guard,
            stack_bottom,
            stack_top,
            tls,
            heap_start,
        })
    }

    /// Whether a guest address lies in the loaded image.
    pub fn in_image(&self, address: u64) -> bool {
        (IMAGE_BASE..self.image_end).contains(&address)
    }

    pub fn heap_size(&self) -> u64 {
        self.memory_size - self.heap_start
    }
}

pub fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (unit, suffix) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    for (unit, suffix) in UNITS {
        if bytes >= unit {
            return format!("{:.1}{suffix}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} bytes")
}

/// Page protections, as the guest sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    pub user: bool,
    pub write: bool,
    pub execute: bool,
}

impl Protection {
    const SUPERVISOR_DATA: Protection = Protection {
        user: false,
        write: true,
        execute: false,
    };
    const SUPERVISOR_READ_ONLY: Protection = Protection {
        user: false,
        write: false,
        execute: false,
    };
    const SUPERVISOR_CODE: Protection = Protection {
        user: false,
        write: false,
        execute: true,
    };
    pub const USER_READ_ONLY: Protection = Protection {
        user: true,
        write: false,
        execute: false,
    };
    pub const USER_DATA: Protection = Protection {
        user: true,
        write: true,
        execute: false,
    };
}

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITE: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_ACCESSED: u64 = 1 << 5;
const PTE_DIRTY: u64 = 1 << 6;
const PTE_HUGE: u64 = 1 << 7;
const PTE_NO_EXECUTE: u64 = 1 << 63;
const HUGE_PAGE: u64 = 2 << 20;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Writes 4-level page tables into the page-table area, using 2 MiB pages wherever a whole
/// aligned 2 MiB range shares one protection (the heap, mostly), so setup stays cheap for any
/// `--memory`.
pub struct PageTables<'m> {
    memory: &'m mut GuestMemory,
    next_table: u64,
}

pub const PML4_ADDR: u64 = PAGE_TABLES_START;

impl<'m> PageTables<'m> {
    pub fn new(memory: &'m mut GuestMemory) -> PageTables<'m> {
        PageTables {
            memory,
            next_table: PML4_ADDR + PAGE,
        }
    }

    fn allocate_table(&mut self) -> Result<u64, String> {
        if self.next_table >= PAGE_TABLES_END {
            return Err("guest memory layout needs too many page tables".into());
        }
        let table = self.next_table;
        self.next_table += PAGE;
        Ok(table)
    }

    /// The table the entry at `entry_addr` points to, created if absent.
    fn child_table(&mut self, entry_addr: u64) -> Result<u64, String> {
        let entry = self.memory.read_u64(entry_addr).unwrap();
        if entry & PTE_PRESENT != 0 {
            return Ok(entry & ADDRESS_MASK);
        }
        let table = self.allocate_table()?;
        // Upper levels allow everything; the leaf entry decides.
        self.memory
            .write_u64(
                entry_addr,
                table | PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED,
            )
            .unwrap();
        Ok(table)
    }

    /// Maps `[start, end)` (page-aligned) identity with `protection`.
    pub fn map(&mut self, start: u64, end: u64, protection: Protection) -> Result<(), String> {
        // Accessed and dirty preset: with shadow paging KVM would otherwise take an extra fault
        // on a page's first read and again on its first write just to set them.
        let mut flags = PTE_PRESENT | PTE_ACCESSED | PTE_DIRTY;
        if protection.user {
            flags |= PTE_USER;
        }
        if protection.write {
            flags |= PTE_WRITE;
        }
        if !protection.execute {
            flags |= PTE_NO_EXECUTE;
        }
        let mut addr = start;
        while addr < end {
            let pml4e = PML4_ADDR + ((addr >> 39) & 0x1ff) * 8;
            let pdpt = self.child_table(pml4e)?;
            let pdpte = pdpt + ((addr >> 30) & 0x1ff) * 8;
            let pd = self.child_table(pdpte)?;
            let pde = pd + ((addr >> 21) & 0x1ff) * 8;
            if addr.is_multiple_of(HUGE_PAGE) && end - addr >= HUGE_PAGE {
                let existing = self.memory.read_u64(pde).unwrap();
                if existing & PTE_PRESENT == 0 {
                    self.memory.write_u64(pde, addr | flags | PTE_HUGE).unwrap();
                    addr += HUGE_PAGE;
                    continue;
                }
            }
            // The rest of this 2 MiB range in one go: its entries are consecutive in one table.
            let pt = self.child_table(pde)?;
            let run_end = end.min((addr | (HUGE_PAGE - 1)) + 1);
            let entries = self
                .memory
                .slice_mut(pt + ((addr >> 12) & 0x1ff) * 8, (run_end - addr) / PAGE * 8)
                .unwrap();
            for entry in entries.as_chunks_mut::<8>().0 {
                entry.copy_from_slice(&(addr | flags).to_le_bytes());
                addr += PAGE;
            }
        }
        Ok(())
    }
}

/// Writes GDT, TSS, IDT, exception stubs and page tables for `map`, and maps the image's
/// segments with their permissions. Guest memory must be freshly zeroed.
pub fn build(memory: &mut GuestMemory, map: &MemoryMap, image: &Image<'_>) -> Result<(), String> {
    write_gdt_and_tss(memory);
    write_idt_and_stubs(memory);

    let mut tables = PageTables::new(memory);
    tables.map(GDT_ADDR, GDT_ADDR + PAGE, Protection::SUPERVISOR_DATA)?;
    tables.map(IDT_ADDR, IDT_ADDR + PAGE, Protection::SUPERVISOR_READ_ONLY)?;
    tables.map(STUBS_ADDR, STUBS_ADDR + PAGE, Protection::SUPERVISOR_CODE)?;
    tables.map(
        FAULT_STACK_BOTTOM,
        FAULT_STACK_TOP,
        Protection::SUPERVISOR_DATA,
    )?;
    tables.map(BOOT_INFO_ADDR, BOOT_INFO_END, Protection::USER_READ_ONLY)?;
    tables.map(
        STDOUT_BUFFER_ADDR,
        STDOUT_BUFFER_ADDR + STDOUT_BUFFER_SIZE,
        Protection::USER_DATA,
    )?;
    for segment in &image.segments {
        let (first, end) = segment.page_range();
        let mut ranges = vec![(first, end, segment.permissions.write)];
        // RELRO pages become read-only once relocated (the relocations are applied by the
        // host before the guest runs, so the guest never needs to write them).
        if let Some((relro_start, relro_end)) = image.relro {
            let relro_first = crate::elf::align_up(relro_start).max(first);
            let relro_last = crate::elf::align_down(relro_end).min(end);
            if segment.permissions.write && relro_first < relro_last {
                ranges = vec![
                    (first, relro_first, true),
                    (relro_first, relro_last, false),
                    (relro_last, end, true),
                ];
            }
        }
        for (start, end, write) in ranges {
            if start < end {
                let protection = Protection {
                    user: true,
                    write,
                    execute: segment.permissions.execute,
                };
                tables.map(
                    map.load_bias.wrapping_add(start),
                    map.load_bias.wrapping_add(end),
                    protection,
                )?;
            }
        }
    }
    tables.map(map.stack_bottom, map.stack_top, Protection::USER_DATA)?;
    if let Some(block) = map.tls {
        let first = crate::elf::align_down(block.start);
        tables.map(first, block.end, Protection::USER_DATA)?;
    }
    if map.heap_start < map.memory_size {
        tables.map(
            map.heap_start,
            crate::elf::align_down(map.memory_size),
            Protection::USER_DATA,
        )?;
    }
    if let (Some(block), Some(template)) = (map.tls, image.tls) {
        write_tls(memory, map, &block, &template)?;
    }
    Ok(())
}

/// Fills the TLS block from the loaded (already relocated) template and stores the thread
/// pointer at the thread pointer; the rest of the block (.tbss) is still zero.
fn write_tls(
    memory: &mut GuestMemory,
    map: &MemoryMap,
    block: &TlsBlock,
    template: &TlsTemplate,
) -> Result<(), String> {
    let initialised = memory
        .slice(
            map.load_bias.wrapping_add(template.vaddr),
            template.file_size,
        )
        .ok_or("thread-local data outside guest memory")?
        .to_vec();
    memory
        .write(block.start, &initialised)
        .ok_or("thread-local storage outside guest memory")?;
    memory
        .write_u64(block.thread_pointer, block.thread_pointer)
        .ok_or_else(|| "thread pointer outside guest memory".to_owned())
}

fn write_gdt_and_tss(memory: &mut GuestMemory) {
    let descriptors: [(u64, u64); 6] = [
        (0x00, 0),
        (0x08, 0x00af_9b00_0000_ffff), // kernel code, 64-bit, DPL 0 (exception stubs)
        (0x10, 0x00cf_9300_0000_ffff), // kernel data
        (0x20, 0x00cf_fb00_0000_ffff), // user code, 32-bit (unused; keeps host layout)
        (0x28, 0x00cf_f300_0000_ffff), // user data, DPL 3
        (0x30, 0x00af_fb00_0000_ffff), // user code, 64-bit, DPL 3
    ];
    for (offset, descriptor) in descriptors {
        memory.write_u64(GDT_ADDR + offset, descriptor).unwrap();
    }
    // 64-bit TSS descriptor (16 bytes): base TSS_ADDR, limit 0x67, type 0x9 (available).
    let base = TSS_ADDR;
    let limit = u64::from(TSS_LIMIT);
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89u64 << 40)
        | (((base >> 24) & 0xff) << 56);
    memory
        .write_u64(GDT_ADDR + u64::from(TSS_SELECTOR), low)
        .unwrap();
    memory
        .write_u64(GDT_ADDR + u64::from(TSS_SELECTOR) + 8, base >> 32)
        .unwrap();
    // TSS.IST1: exceptions always switch to the fault stack, so even a guest whose stack
    // pointer is garbage (stack overflow into the guard page) gets its fault reported.
    memory.write_u64(TSS_ADDR + 0x24, FAULT_STACK_TOP).unwrap();
    // The I/O permission bitmap right after the TSS: ports 0..32 (the hypercall ports) are
    // allowed at CPL 3, everything else (and anything past the limit) faults.
    memory
        .write(TSS_ADDR + 0x66, &0x68u16.to_le_bytes())
        .unwrap();
    memory
        .write(TSS_ADDR + 0x68, &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
}

/// Vectors for which the CPU pushes an error code.
fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Each stub pushes a dummy error code (if the CPU did not), then the vector, and jumps to
/// the common tail, which reports through `out` and never returns. The host reads the frame
/// at RSP: vector, error code, RIP, CS, RFLAGS, RSP, SS.
fn write_idt_and_stubs(memory: &mut GuestMemory) {
    for vector in 0..EXCEPTION_VECTORS {
        let stub = STUBS_ADDR + vector * STUB_SIZE;
        let mut code = Vec::with_capacity(STUB_SIZE as usize);
        if !has_error_code(vector) {
            code.extend_from_slice(&[0x6a, 0x00]); // push 0
        }
        code.extend_from_slice(&[0x6a, vector as u8]); // push vector
        let next = stub + code.len() as u64 + 5;
        let relative = (STUB_COMMON as i64 - next as i64) as i32;
        code.push(0xe9); // jmp rel32
        code.extend_from_slice(&relative.to_le_bytes());
        memory.write(stub, &code).unwrap();

        // 64-bit interrupt gate: selector KERNEL_CS, IST 1, type 0xE, DPL 0, present.
        let gate_low = (stub & 0xffff)
            | (u64::from(KERNEL_CS) << 16)
            | (1u64 << 32)
            | (0x8eu64 << 40)
            | (((stub >> 16) & 0xffff) << 48);
        memory.write_u64(IDT_ADDR + vector * 16, gate_low).unwrap();
        memory
            .write_u64(IDT_ADDR + vector * 16 + 8, stub >> 32)
            .unwrap();
    }
    let common = [
        0xe6,
        port::EXCEPTION as u8, // out EXCEPTION, al
        0xeb,
        0xfe, // jmp . (the host never resumes)
    ];
    memory.write(STUB_COMMON, &common).unwrap();
}

/// Whether `rip` is inside the runner's exception stubs (so an EXCEPTION exit is genuine).
pub fn is_stub_address(rip: u64) -> bool {
    (STUBS_ADDR..STUBS_ADDR + PAGE).contains(&rip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_block_ends_at_an_aligned_thread_pointer_with_room_for_its_word() {
        let template = |mem_size, align| TlsTemplate {
            vaddr: 0x1000,
            file_size: 0,
            mem_size,
            align,
        };
        let stack_top = 0x40_0000;
        let block = TlsBlock::new(&template(0x28, 16), stack_top);
        assert_eq!(block.thread_pointer, stack_top + 0x30);
        assert_eq!(block.start, block.thread_pointer - 0x28);
        assert_eq!(block.end, stack_top + PAGE);
        // A block filling its page pushes the thread pointer's word onto the next one.
        let full = TlsBlock::new(&template(PAGE, 8), stack_top);
        assert_eq!(
            (full.start, full.thread_pointer),
            (stack_top, stack_top + PAGE)
        );
        assert_eq!(full.end, stack_top + 2 * PAGE);
    }
}
