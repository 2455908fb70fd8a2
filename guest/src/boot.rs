//! Reading the strings the runner puts into the boot area (see [`crate::abi::BootInfo`]).

use crate::abi::GuestSlice;

/// The `count` slices at `addr`.
pub(crate) fn slices(addr: u64, count: u64) -> &'static [GuestSlice] {
    if count == 0 {
        return &[];
    }
    // SAFETY: the runner writes `count` slices at `addr` in the read-only boot area.
    unsafe { core::slice::from_raw_parts(addr as *const GuestSlice, count as usize) }
}

/// The bytes a slice describes.
pub(crate) fn bytes(slice: &GuestSlice) -> &'static [u8] {
    if slice.len == 0 {
        return &[];
    }
    // SAFETY: the runner places every string inside the read-only boot area.
    unsafe { core::slice::from_raw_parts(slice.addr as *const u8, slice.len as usize) }
}
