//! Any bytes as a guest ELF: read its front, parse, lay out and load into guest memory exactly
//! as `run` does before creating the VM. Must end in an image or an error: no panic, hang or
//! huge allocation.
#![no_main]

use hyperlight_run::elf::Image;
use hyperlight_run::guest_file::read_front;
use hyperlight_run::layout::{self, MemoryMap};
use hyperlight_run::memory::GuestMemory;
use libfuzzer_sys::fuzz_target;

/// Small enough to map per input, large enough for real guests' images (the seeds).
const MEMORY: u64 = 8 << 20;
const STACK: u64 = 64 << 10;

fuzz_target!(|data: &[u8]| {
    // `run` parses only the front of the file; whatever the headers claim, it is a prefix.
    let front = read_front(data.len() as u64, |buffer, offset| {
        let offset = offset as usize;
        buffer.copy_from_slice(&data[offset..offset + buffer.len()]);
        Ok(())
    })
    .expect("reading from memory");
    assert!(data.starts_with(&front));
    let Ok(image) = Image::parse(&front) else {
        return;
    };
    // The front holds everything the loader uses: the whole file describes the same image.
    let whole = Image::parse(data).expect("the whole file parses where its front does");
    assert_eq!(
        (&whole.segments, whole.entry, whole.relro, whole.span),
        (&image.segments, image.entry, image.relro, image.span)
    );
    assert_eq!(whole.hyperlight_version_note, image.hyperlight_version_note);
    let Ok(map) = MemoryMap::new(&image, MEMORY, STACK) else {
        return;
    };
    assert!(map.stack_top <= MEMORY);
    let mut memory = GuestMemory::new(MEMORY).expect("mapping guest memory");
    if image.load(&mut memory, map.load_bias).is_ok() {
        let _ = layout::build(&mut memory, &map, &image);
    }
});
