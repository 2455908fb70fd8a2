//! Guest memory: one anonymous host mapping, and bounds-checked access to it.
//!
//! The mapping uses MAP_NORESERVE and is never zeroed or touched up front: the kernel hands
//! out zero pages on first touch, so a large `--memory` costs nothing until the guest uses it.
//! Every access the runner makes on the guest's behalf goes through [`GuestMemory::slice`],
//! which checks the whole range (overflow-safe) against the guest's memory.
//!
//! A thread that boots guest after guest (`cargo test`, `--repeat`) reuses the previous
//! guest's mapping, because a first touch costs a host page fault (~3 µs here) and a boot
//! touches dozens of pages. Before the reuse, every page the kernel holds anything for
//! (present or swapped out, as PAGEMAP_SCAN reports them) is zeroed, or given back if it is
//! part of a large range; the pages it does not report read as zero. Where PAGEMAP_SCAN is
//! missing (Linux before 6.7, no /proc), every guest gets a fresh mapping.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::OnceLock;

pub struct GuestMemory {
    base: NonNull<u8>,
    size: u64,
}

thread_local! {
    /// The previous guest's memory, for the next guest on this thread.
    static RECYCLED: Cell<Option<GuestMemory>> = const { Cell::new(None) };
}

impl GuestMemory {
    /// `size` bytes of zeroed guest memory: this thread's recycled memory if it has that size
    /// and can be scrubbed, a fresh mapping otherwise.
    pub fn new(size: u64) -> io::Result<GuestMemory> {
        if let Some(recycled) = RECYCLED.take() {
            if recycled.size == size && recycled.scrub().is_ok() {
                return Ok(recycled);
            }
        }
        GuestMemory::map(size)
    }

    fn map(size: u64) -> io::Result<GuestMemory> {
        let len = usize::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(GuestMemory {
            base: NonNull::new(base.cast()).expect("mmap returned null"),
            size,
        })
    }

    /// Keeps memory no vCPU will use again for the next [`GuestMemory::new`] on this thread
    /// (dropping what was kept before).
    pub fn recycle(self) {
        RECYCLED.set(Some(self));
    }

    /// Zeroes every page that may hold data, page by page for small ranges; ranges of 2 MiB
    /// or more go back to the kernel instead, which is cheaper than writing them.
    fn scrub(&self) -> io::Result<()> {
        self.for_each_held_range(|start, len| {
            let start = start as *mut u8;
            if len >= 2 << 20 {
                // SAFETY: a range of our own private anonymous mapping, which then reads
                // as zero; no reference into guest memory is alive.
                if unsafe { libc::madvise(start.cast(), len, libc::MADV_DONTNEED) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            } else {
                // SAFETY: as above, and the range lies inside the mapping.
                unsafe { std::ptr::write_bytes(start, 0, len) };
            }
            Ok(())
        })
    }

    /// The guest address ranges the kernel holds data for (present or swapped out, not the
    /// shared zero page): what the guest, its loader or a previous guest on this thread
    /// touched. Every other page reads as zero. Needs PAGEMAP_SCAN (Linux 6.7).
    pub fn touched(&self) -> io::Result<Vec<std::ops::Range<u64>>> {
        let base = self.host_base();
        let mut ranges: Vec<std::ops::Range<u64>> = Vec::new();
        self.for_each_held_range(|start, len| {
            let range = start as u64 - base..start as u64 - base + len as u64;
            match ranges.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => ranges.push(range),
            }
            Ok(())
        })?;
        Ok(ranges)
    }

    /// Calls `each(host address, length)` for every range of the mapping the kernel holds
    /// data for, in order.
    fn for_each_held_range(
        &self,
        mut each: impl FnMut(usize, usize) -> io::Result<()>,
    ) -> io::Result<()> {
        let pagemap = pagemap().ok_or(io::ErrorKind::Unsupported)?;
        let end = self.host_base() + self.size;
        let mut regions = [PageRegion::default(); 32];
        let mut next = self.host_base();
        while next < end {
            let mut scan = PagemapScan {
                size: std::mem::size_of::<PagemapScan>() as u64,
                start: next,
                end,
                vec: regions.as_mut_ptr() as u64,
                vec_len: regions.len() as u64,
                category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                return_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO,
                ..PagemapScan::default()
            };
            // SAFETY: the kernel writes at most `vec_len` regions into `regions`.
            let found = unsafe { libc::ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN, &mut scan) };
            let found = usize::try_from(found).map_err(|_| io::Error::last_os_error())?;
            for region in &regions[..found.min(regions.len())] {
                // The shared zero page reads as zero already.
                if region.categories & PAGE_IS_PFNZERO != 0 {
                    continue;
                }
                each(region.start as usize, (region.end - region.start) as usize)?;
            }
            if scan.walk_end <= next {
                return Err(io::Error::other("PAGEMAP_SCAN made no progress"));
            }
            next = scan.walk_end;
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The host address of guest address 0, for KVM's memory slot.
    pub fn host_base(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// The host offset of `[addr, addr + len)` if it lies entirely inside guest memory.
    fn checked_range(&self, addr: u64, len: u64) -> Option<usize> {
        let end = addr.checked_add(len)?;
        (end <= self.size).then_some(addr as usize)
    }

    /// Guest bytes `[addr, addr + len)`, or `None` if any of them is outside guest memory.
    pub fn slice(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let offset = self.checked_range(addr, len)?;
        // SAFETY: the range is inside the mapping, which lives as long as `self`; the vCPU is
        // stopped while the runner looks at guest memory.
        Some(unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(offset), len as usize) })
    }

    pub fn slice_mut(&mut self, addr: u64, len: u64) -> Option<&mut [u8]> {
        let offset = self.checked_range(addr, len)?;
        // SAFETY: as in `slice`, and `&mut self` makes this the only reference.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.base.as_ptr().add(offset), len as usize)
        })
    }

    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        let bytes = self.slice(addr, 8)?;
        Some(u64::from_le_bytes(bytes.try_into().unwrap()))
    }

    pub fn write_u64(&mut self, addr: u64, value: u64) -> Option<()> {
        self.slice_mut(addr, 8)?
            .copy_from_slice(&value.to_le_bytes());
        Some(())
    }

    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> Option<()> {
        self.slice_mut(addr, bytes.len() as u64)?
            .copy_from_slice(bytes);
        Some(())
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; no reference outlives `self`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.size as usize) };
    }
}

/// `/proc/self/pagemap`, opened once per process, if it can be.
fn pagemap() -> Option<&'static File> {
    static PAGEMAP: OnceLock<Option<File>> = OnceLock::new();
    PAGEMAP
        .get_or_init(|| File::open("/proc/self/pagemap").ok())
        .as_ref()
}

// PAGEMAP_SCAN, from Linux's include/uapi/linux/fs.h (Linux 6.7); the libc crate lacks it.
const PAGEMAP_SCAN: libc::Ioctl = 0xc060_6610_u32 as libc::Ioctl; // _IOWR('f', 16, pm_scan_arg)
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
const PAGE_IS_PFNZERO: u64 = 1 << 5;

/// `struct pm_scan_arg`.
#[repr(C)]
#[derive(Default)]
struct PagemapScan {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// `struct page_region`: pages `[start, end)` share `categories`.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}
