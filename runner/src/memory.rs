//! Guest memory: one anonymous host mapping, and bounds-checked access to it.
//!
//! The mapping uses MAP_NORESERVE and is never zeroed or touched up front: the kernel hands
//! out zero pages on first touch, so a large `--memory` costs nothing until the guest uses it.
//! Every access the runner makes on the guest's behalf goes through [`GuestMemory::slice`],
//! which checks the whole range (overflow-safe) against the guest's memory.

use std::io;
use std::ptr::NonNull;

pub struct GuestMemory {
    base: NonNull<u8>,
    size: u64,
}

impl GuestMemory {
    pub fn new(size: u64) -> io::Result<GuestMemory> {
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
