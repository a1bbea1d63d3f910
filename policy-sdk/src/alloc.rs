//! [`DecisionAllocator`]: a global allocator for policies, built for the host's one-decision
//! instances.
//!
//! The host runs every decision in a fresh instance and throws the instance away afterwards, so a
//! policy's heap never outlives one decision. A general-purpose allocator (Rust's default on
//! `wasm32-unknown-unknown` is dlmalloc) spends its time keeping free lists for reuse that will
//! never come. This one bumps a pointer: an allocation is a few instructions; freeing the most
//! recent allocation gives its bytes back (so a `Vec` or `String` growing at the end of the heap,
//! as serde's buffers do, is extended in place); any other free is a no-op. The host's memory
//! limit still bounds the total: a policy that allocates without end gets a memory-limit hold.
//!
//! Opt in from a policy crate (the built-in policies do):
//!
//! ```ignore
//! #[cfg(target_arch = "wasm32")]
//! #[global_allocator]
//! static ALLOCATOR: policy_sdk::alloc::DecisionAllocator = policy_sdk::alloc::DecisionAllocator::new();
//! ```
//!
//! Keep dlmalloc (do nothing) for a policy that allocates and frees a great deal within one
//! decision: it reuses freed memory, this allocator does not.
//!
//! On other targets the type exists (so the same crate compiles natively for tests) but is only
//! meant for `wasm32`, where the heap grows with `memory.grow`.

use core::cell::Cell;

/// A bump allocator for one-decision wasm instances. See the [module docs](self).
#[derive(Debug)]
// Read only by the wasm32 `GlobalAlloc` impl.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub struct DecisionAllocator {
    /// First free byte of the heap (0 before the first allocation).
    next: Cell<usize>,
    /// End of the memory the heap may use (the current size of linear memory).
    end: Cell<usize>,
}

// SAFETY: wasm32-unknown-unknown without the `atomics` feature has a single thread, so the
// `Cell`s are never accessed concurrently. The impl is needed only for `#[global_allocator]`'s
// `static`; on native targets (tests) the allocator is constructed but never installed.
#[allow(unsafe_code)]
unsafe impl Sync for DecisionAllocator {}

impl DecisionAllocator {
    /// An allocator whose heap starts at the end of the module's initial memory.
    pub const fn new() -> DecisionAllocator {
        DecisionAllocator {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }
}

impl Default for DecisionAllocator {
    fn default() -> Self {
        DecisionAllocator::new()
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::DecisionAllocator;
    use core::alloc::{GlobalAlloc, Layout};
    use core::arch::wasm32;

    const PAGE: usize = 65536;

    impl DecisionAllocator {
        /// `size` bytes aligned to `align`, growing memory when needed; null when memory cannot
        /// grow (the host's limit) or the address space is exhausted.
        fn bump(&self, size: usize, align: usize) -> *mut u8 {
            if self.end.get() == 0 {
                // The heap starts where the linker put `__heap_base`: past the stack and the
                // static data. What is left of the initial memory is used before growing it.
                extern "C" {
                    static __heap_base: u8;
                }
                // SAFETY: only the address of the linker-defined symbol is taken, never read.
                #[allow(unsafe_code)]
                let base = unsafe { core::ptr::addr_of!(__heap_base) } as usize;
                self.next.set(base);
                self.end.set(wasm32::memory_size(0) * PAGE);
            }
            let start = match self.next.get().checked_add(align - 1) {
                Some(n) => n & !(align - 1),
                None => return core::ptr::null_mut(),
            };
            let stop = match start.checked_add(size) {
                Some(stop) => stop,
                None => return core::ptr::null_mut(),
            };
            if stop > self.end.get() {
                let missing = stop - self.end.get();
                // Grow by at least 16 pages at a time: fewer calls into the host's limiter.
                let pages = ((missing + PAGE - 1) / PAGE).max(16);
                if wasm32::memory_grow(0, pages) == usize::MAX {
                    return core::ptr::null_mut();
                }
                self.end.set(self.end.get() + pages * PAGE);
            }
            self.next.set(stop);
            start as *mut u8
        }
    }

    // SAFETY: `bump` returns either null or a block of `size` bytes at the requested alignment
    // that no other live allocation overlaps: blocks are handed out in increasing address order
    // from memory above the module's static data, and `next` only moves back in `dealloc` and
    // `realloc` when the block being freed or resized is the last one handed out.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for DecisionAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.bump(layout.size(), layout.align())
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // Only the most recent block can be given back; other frees wait for the instance
            // to be dropped with everything else.
            if ptr as usize + layout.size() == self.next.get() {
                self.next.set(ptr as usize);
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let start = ptr as usize;
            if start + layout.size() == self.next.get() {
                // The last block: grow or shrink it where it is.
                let stop = match start.checked_add(new_size) {
                    Some(stop) => stop,
                    None => return core::ptr::null_mut(),
                };
                if stop <= self.end.get() {
                    self.next.set(stop);
                    return ptr;
                }
                self.next.set(start);
                let moved = self.bump(new_size, layout.align());
                if moved.is_null() {
                    self.next.set(start + layout.size());
                } else if moved != ptr {
                    // SAFETY: both blocks are valid for `layout.size()` bytes; `copy` allows
                    // the overlap that can occur when `moved` starts inside the old block.
                    core::ptr::copy(ptr, moved, layout.size().min(new_size));
                }
                return moved;
            }
            let moved = self.bump(new_size, layout.align());
            if !moved.is_null() {
                // SAFETY: `moved` is a fresh block past `next`, disjoint from the old one.
                core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
            }
            moved
        }
    }
}
