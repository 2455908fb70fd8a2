//! The global allocator over the heap range the runner hands over.
//!
//! Segregated free lists by power-of-two size class on top of a bump pointer: a handful of
//! instructions per allocation, no dependencies, and freed blocks are reused by later
//! allocations of the same class. The guest is single-threaded, so no locking.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

const MIN_CLASS_SHIFT: u32 = 4;
const CLASS_COUNT: usize = 48;

struct State {
    next: usize,
    end: usize,
    free: [*mut FreeBlock; CLASS_COUNT],
}

struct FreeBlock {
    next: *mut FreeBlock,
}

pub(crate) struct Heap(UnsafeCell<State>);

// SAFETY: one vCPU, no threads, and no allocation from exception context.
unsafe impl Sync for Heap {}

/// The allocator of no_std guests; on x86_64-hyperlight-hermit, std's allocator reaches it
/// through `sys_malloc` and friends.
#[cfg_attr(target_os = "none", global_allocator)]
pub(crate) static HEAP: Heap = Heap(UnsafeCell::new(State {
    next: 0,
    end: 0,
    free: [ptr::null_mut(); CLASS_COUNT],
}));

/// Hands `[start, start + size)` to the allocator.
///
/// # Safety
/// Called once, before any allocation, with memory nothing else uses.
pub(crate) unsafe fn init(start: u64, size: u64) {
    // SAFETY: no allocation is in progress during start-up.
    let state = unsafe { &mut *HEAP.0.get() };
    state.next = start as usize;
    state.end = start.saturating_add(size) as usize;
}

/// The size class of a layout: its index, and the block size it stands for.
fn class_of(layout: Layout) -> (usize, usize) {
    let size = layout
        .size()
        .max(layout.align())
        .max(1 << MIN_CLASS_SHIFT)
        .next_power_of_two();
    ((size.trailing_zeros() - MIN_CLASS_SHIFT) as usize, size)
}

unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded; no other reference to the state is live.
        let state = unsafe { &mut *self.0.get() };
        let (class, size) = class_of(layout);
        if class >= CLASS_COUNT {
            return ptr::null_mut();
        }
        let head = state.free[class];
        if !head.is_null() {
            // SAFETY: blocks on a free list were allocated by us with this class's size
            // (hence at least the requested alignment, which is part of the class).
            state.free[class] = unsafe { (*head).next };
            if (head as usize).is_multiple_of(layout.align()) {
                return head.cast();
            }
            // Same size but an over-aligned request: give it back, carve a fresh block.
            unsafe { (*head).next = state.free[class] };
            state.free[class] = head;
        }
        let align = layout.align().max(1 << MIN_CLASS_SHIFT);
        let Some(start) = state.next.checked_next_multiple_of(align) else {
            return ptr::null_mut();
        };
        match start.checked_add(size) {
            Some(end) if end <= state.end => {
                state.next = end;
                start as *mut u8
            }
            _ => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: single-threaded; no other reference to the state is live.
        let state = unsafe { &mut *self.0.get() };
        let (class, _) = class_of(layout);
        let block = block.cast::<FreeBlock>();
        // SAFETY: the block is at least 16 bytes, 16-aligned, and no longer in use.
        unsafe { (*block).next = state.free[class] };
        state.free[class] = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: new_size rounded to align does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if class_of(new_layout).0 == class_of(layout).0 {
            return block;
        }
        // SAFETY: forwarding the caller's guarantees.
        unsafe {
            let new_block = self.alloc(new_layout);
            if !new_block.is_null() {
                ptr::copy_nonoverlapping(block, new_block, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
            new_block
        }
    }
}
