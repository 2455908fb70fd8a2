//! Any bytes as a guest ELF: parse, lay out and load into guest memory exactly as `run` does
//! before creating the VM. Must end in an image or an error: no panic, hang or huge allocation.
#![no_main]

use hyperlight_run::elf::Image;
use hyperlight_run::layout::{self, MemoryMap};
use hyperlight_run::memory::GuestMemory;
use libfuzzer_sys::fuzz_target;

/// Small enough to map per input, large enough for real guests' images (the seeds).
const MEMORY: u64 = 8 << 20;
const STACK: u64 = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let Ok(image) = Image::parse(data) else {
        return;
    };
    let Ok(map) = MemoryMap::new(&image, MEMORY, STACK) else {
        return;
    };
    assert!(map.stack_top <= MEMORY);
    let mut memory = GuestMemory::new(MEMORY).expect("mapping guest memory");
    if image.load(&mut memory, map.load_bias).is_ok() {
        let _ = layout::build(&mut memory, &map, &image);
    }
});
