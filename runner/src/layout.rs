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
    BOOT_INFO_ADDR, BOOT_INFO_END, IMAGE_BASE, STDOUT_BUFFER_ADDR, STDOUT_BUFFER_SIZE,
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

/// Why the guest's memory cannot be laid out or its tables written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("stack too large")]
    StackTooLarge,
    #[error(
        "the guest needs at least {} of memory (image {} + stack {}), but --memory is {}",
        human(*needed),
        human(*image),
        human(*stack),
        human(*memory)
    )]
    TooLittleMemory {
        needed: u64,
        image: u64,
        stack: u64,
        memory: u64,
    },
    #[error("guest memory layout needs too many page tables")]
    TooManyPageTables,
    /// What the runner writes at boot does not fit in guest memory (a bug: the map is checked).
    #[error("{0} outside guest memory")]
    OutsideMemory(&'static str),
}

/// The page tables lie in the first megabytes, inside the smallest guest memory allowed.
const TABLES_OUTSIDE: LayoutError = LayoutError::OutsideMemory("the page tables");

impl MemoryMap {
    /// Lays out the image, the stack and the heap, or says how much memory they need.
    pub fn new(
        image: &Image<'_>,
        memory_size: u64,
        stack_size: u64,
    ) -> Result<MemoryMap, LayoutError> {
        let first_page = crate::elf::align_down(image.segments[0].vaddr);
        let load_bias = IMAGE_BASE.wrapping_sub(first_page);
        let image_end = IMAGE_BASE + (image.span - first_page);
        let stack_guard = image_end;
        let stack_bottom = stack_guard + PAGE;
        let stack_top = stack_bottom
            .checked_add(align_up(stack_size))
            .ok_or(LayoutError::StackTooLarge)?;
        let tls = image
            .tls
            .map(|template| TlsBlock::new(&template, stack_top));
        let heap_start = tls.map_or(stack_top, |tls| tls.end);
        if heap_start > memory_size {
            return Err(LayoutError::TooLittleMemory {
                needed: heap_start,
                image: image.span,
                stack: align_up(stack_size),
                memory: memory_size,
            });
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

    fn allocate_table(&mut self) -> Result<u64, LayoutError> {
        if self.next_table >= PAGE_TABLES_END {
            return Err(LayoutError::TooManyPageTables);
        }
        let table = self.next_table;
        self.next_table += PAGE;
        Ok(table)
    }

    /// The table the entry at `entry_addr` points to, created if absent.
    fn child_table(&mut self, entry_addr: u64) -> Result<u64, LayoutError> {
        let entry = self.memory.read_u64(entry_addr).ok_or(TABLES_OUTSIDE)?;
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
            .ok_or(TABLES_OUTSIDE)?;
        Ok(table)
    }

    /// Maps `[start, end)` (page-aligned) identity with `protection`.
    pub fn map(&mut self, start: u64, end: u64, protection: Protection) -> Result<(), LayoutError> {
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
                let existing = self.memory.read_u64(pde).ok_or(TABLES_OUTSIDE)?;
                if existing & PTE_PRESENT == 0 {
                    self.memory
                        .write_u64(pde, addr | flags | PTE_HUGE)
                        .ok_or(TABLES_OUTSIDE)?;
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
                .ok_or(TABLES_OUTSIDE)?;
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
pub fn build(
    memory: &mut GuestMemory,
    map: &MemoryMap,
    image: &Image<'_>,
) -> Result<(), LayoutError> {
    crate::machine::write_system_tables(memory)?;

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
) -> Result<(), LayoutError> {
    let initialised = memory
        .slice(
            map.load_bias.wrapping_add(template.vaddr),
            template.file_size,
        )
        .ok_or(LayoutError::OutsideMemory("thread-local data"))?
        .to_vec();
    memory
        .write(block.start, &initialised)
        .ok_or(LayoutError::OutsideMemory("thread-local storage"))?;
    memory
        .write_u64(block.thread_pointer, block.thread_pointer)
        .ok_or(LayoutError::OutsideMemory("thread pointer"))
}

/// How the page tables map the page of `addr` for the guest (user mode), if they do: what a
/// debugger may read and write and a core dump holds. Never the null page, a guard page, the
/// page tables, nor the runner's supervisor-only tables and stubs.
pub fn guest_page(memory: &GuestMemory, addr: u64) -> Option<Protection> {
    // Identity mapping covers the lower half of the address space only.
    if addr >> 47 != 0 {
        return None;
    }
    let mut table = PML4_ADDR;
    for shift in [39, 30, 21, 12] {
        let entry = memory.read_u64(table + ((addr >> shift) & 0x1ff) * 8)?;
        if entry & PTE_PRESENT == 0 || entry & PTE_USER == 0 {
            return None;
        }
        // Upper levels allow everything; the leaf entry decides.
        if shift == 12 || (shift == 21 && entry & PTE_HUGE != 0) {
            return Some(Protection {
                user: true,
                write: entry & PTE_WRITE != 0,
                execute: entry & PTE_NO_EXECUTE == 0,
            });
        }
        table = entry & ADDRESS_MASK;
    }
    unreachable!("the walk ends at the page table")
}

pub fn is_guest_page(memory: &GuestMemory, addr: u64) -> bool {
    guest_page(memory, addr).is_some()
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
