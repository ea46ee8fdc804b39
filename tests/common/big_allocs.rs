//! A counting allocator for the tests that measure memory: the bytes one
//! thread newly takes in large blocks (a new block, or a block grown) while a
//! measured future runs. Its test binary installs it as the global allocator;
//! everything else passes straight through to the system allocator.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Blocks at least this large are counted: a copy of a photo or a voice note
/// is one, the HTTP client's and the parser's buffers are not.
pub const LARGE: usize = 1 << 20;

/// The system allocator, counting large blocks on threads being measured.
pub struct Counting;

thread_local! {
    /// Bytes taken in large blocks on this thread; `None` when not measuring.
    static TAKEN: Cell<Option<usize>> = const { Cell::new(None) };
}

fn count(bytes: usize) {
    // `try_with`: an allocation during the thread's teardown is not counted.
    let _ = TAKEN.try_with(|taken| {
        if let Some(n) = taken.get() {
            taken.set(Some(n + bytes));
        }
    });
}

// SAFETY: every call goes to `System` with the caller's arguments unchanged;
// the counting only reads sizes and touches a const-initialised thread local,
// which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            count(layout.size());
        }
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            count(layout.size());
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Growing a block takes only the difference: the old block is given
        // back within the call, whether it is extended in place or moved.
        if new_size >= LARGE && new_size > layout.size() {
            count(new_size - layout.size());
        }
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `work` on this thread and gives its output with the bytes this thread
/// took in large blocks meanwhile. Tasks it spawns run on other threads of a
/// multi-threaded runtime and are not counted.
pub async fn measure<F: std::future::Future>(work: F) -> (F::Output, usize) {
    TAKEN.with(|taken| taken.set(Some(0)));
    let out = work.await;
    let taken = TAKEN.with(|taken| taken.replace(None)).unwrap_or(0);
    (out, taken)
}
