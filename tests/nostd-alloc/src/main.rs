#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A bump allocator over a static arena: enough for a program that never frees much.
struct Arena {
    memory: UnsafeCell<[u8; 1 << 20]>,
    used: AtomicUsize,
}

unsafe impl Sync for Arena {}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.memory.get() as usize;
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let start = (base + used).next_multiple_of(layout.align()) - base;
            let end = match start.checked_add(layout.size()) {
                Some(end) if end <= 1 << 20 => end,
                _ => return core::ptr::null_mut(),
            };
            // A compare-exchange loop, which every toolchain since 1.95 has under one name.
            match self
                .used
                .compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[global_allocator]
static ARENA: Arena = Arena {
    memory: UnsafeCell::new([0; 1 << 20]),
    used: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Word frequencies of a generated text, so every collection does real work.
fn word_counts(words: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let vocabulary: Vec<String> = (0..17).map(|i| format!("word{i}")).collect();
    for i in 0..words {
        *counts
            .entry(vocabulary[i * 7 % vocabulary.len()].clone())
            .or_insert(0) += 1;
    }
    counts
}

#[no_mangle]
pub extern "C" fn entrypoint() -> ! {
    core::hint::black_box(word_counts(1000));
    loop {}
}
