//! Static storage handed out exactly once as `&'static mut`: how the kernel lends its big buffers (dump memory,
//! NIC buffers, socket storage) without a heap.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A `static` value that can be borrowed mutably once.
pub struct TakeOnce<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is only through `take`, which the atomic flag limits to a single caller.
unsafe impl<T: Send> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    pub const fn new(value: T) -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, the first time only.
    #[allow(
        clippy::mut_from_ref,
        reason = "the atomic flag makes the returned borrow unique"
    )]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the swap above returned false exactly once, so this is the only reference ever made.
        Some(unsafe { &mut *self.value.get() })
    }
}
