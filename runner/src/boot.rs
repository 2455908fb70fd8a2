//! The boot information block, arguments and environment the guest finds at `rdi`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use hyperlight_rt::abi::{
    flags, BootInfo, GuestSlice, BOOT_INFO_ADDR, BOOT_INFO_END, BOOT_MAGIC, STDOUT_BUFFER_ADDR,
    STDOUT_BUFFER_SIZE,
};

use crate::layout::MemoryMap;
use crate::memory::GuestMemory;
use crate::SetupError;

/// How many bytes the boot block, arguments and environment together may take.
pub const ARGUMENTS_LIMIT: u64 = BOOT_INFO_END - BOOT_INFO_ADDR;

/// Everything the guest is told at start.
pub struct BootParameters<'a> {
    pub args: &'a [OsString],
    pub env: &'a [OsString],
    pub stdout_is_tty: bool,
    pub random_seed: [u8; 32],
}

/// Writes the boot block at BOOT_INFO_ADDR: the struct, then the two slice arrays, then the
/// strings. Fails if it does not fit in the boot area.
pub fn write(
    memory: &mut GuestMemory,
    map: &MemoryMap,
    parameters: &BootParameters<'_>,
) -> Result<(), SetupError> {
    let slice_size = std::mem::size_of::<GuestSlice>() as u64;
    let info_size = std::mem::size_of::<BootInfo>() as u64;
    let args_at = BOOT_INFO_ADDR + info_size.next_multiple_of(16);
    let env_at = args_at + slice_size * parameters.args.len() as u64;
    let mut strings_at = env_at + slice_size * parameters.env.len() as u64;

    let too_large = || SetupError::ArgumentsTooLarge;
    if strings_at > BOOT_INFO_END {
        return Err(too_large());
    }
    let mut place = |memory: &mut GuestMemory, slot: u64, value: &OsString| {
        let bytes = value.as_bytes();
        let end = strings_at
            .checked_add(bytes.len() as u64)
            .filter(|end| *end <= BOOT_INFO_END)
            .ok_or_else(too_large)?;
        memory.write(strings_at, bytes).ok_or_else(too_large)?;
        memory.write_u64(slot, strings_at).ok_or_else(too_large)?;
        memory
            .write_u64(slot + 8, bytes.len() as u64)
            .ok_or_else(too_large)?;
        strings_at = end;
        Ok::<(), SetupError>(())
    };
    for (i, arg) in parameters.args.iter().enumerate() {
        place(memory, args_at + i as u64 * slice_size, arg)?;
    }
    for (i, var) in parameters.env.iter().enumerate() {
        place(memory, env_at + i as u64 * slice_size, var)?;
    }

    let info = BootInfo {
        magic: BOOT_MAGIC,
        size: info_size as u32,
        flags: if parameters.stdout_is_tty {
            flags::STDOUT_IS_TTY
        } else {
            0
        },
        memory_size: map.memory_size,
        heap_start: map.heap_start,
        heap_size: map.heap_size(),
        stack_top: map.stack_top,
        stack_size: map.stack_top - map.stack_bottom,
        args: args_at,
        argc: parameters.args.len() as u64,
        env: env_at,
        envc: parameters.env.len() as u64,
        random_seed: parameters.random_seed,
        stdout_buffer: STDOUT_BUFFER_ADDR,
        stdout_buffer_size: STDOUT_BUFFER_SIZE,
    };
    // SAFETY: BootInfo is repr(C) plain data without padding-sensitive invariants; viewing
    // it as bytes to copy it out is sound.
    let bytes = unsafe {
        std::slice::from_raw_parts((&info as *const BootInfo).cast::<u8>(), info_size as usize)
    };
    memory.write(BOOT_INFO_ADDR, bytes).ok_or_else(too_large)?;
    // Nothing pending yet. Writing it also gives the page real memory now: a guest whose first
    // touch is a read would map the shared zero page and fault once more on its first write.
    memory
        .write_u64(STDOUT_BUFFER_ADDR, 0)
        .ok_or_else(too_large)?;
    Ok(())
}

/// Output the guest buffered but never flushed (it crashed or timed out): the bytes the
/// stdout buffer's header says are pending, if that count is sane.
pub fn pending_stdout(memory: &GuestMemory) -> &[u8] {
    let capacity = STDOUT_BUFFER_SIZE - 8;
    match memory.read_u64(STDOUT_BUFFER_ADDR) {
        Some(len) if len <= capacity => memory.slice(STDOUT_BUFFER_ADDR + 8, len).unwrap_or(&[]),
        _ => &[],
    }
}
