//! Decoding never reserves memory for elements the body cannot hold.
//!
//! A sequence's `u32` count comes off the wire; before it sized the vector up
//! front, one frame of the maximum size could reserve gigabytes. A reservation
//! that large is only virtual and cannot be seen failing in a test, so this
//! binary installs an allocator that remembers, per thread, the largest single
//! allocation, and the tests check it against the body's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use genericsmr::command::Command;
use genericsmr::wire::{decode_body, Unmarshal, WireError};

/// The system allocator, recording the largest request of each thread.
struct PeakTracking;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the allocator also runs while a thread's locals are torn down.
    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
}

unsafe impl GlobalAlloc for PeakTracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: PeakTracking = PeakTracking;

/// Runs `f` and returns its result with the largest allocation it made.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|p| p.set(0));
    let out = f();
    (out, PEAK.with(|p| p.get()))
}

/// A body: `count`, then `filler` bytes of 0xff.
fn body(count: u32, filler: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + filler);
    b.put_u32_le(count);
    b.put_bytes(0xff, filler);
    b.freeze()
}

#[test]
fn a_count_the_body_cannot_back_reserves_no_more_than_the_body() {
    // 1 MiB of body claiming one command per byte, then as many as could fit at
    // their shortest encoding; the first command is invalid (op 0xff) anyway.
    let filler = 1 << 20;
    for count in [filler, filler / Command::MIN_ENCODED] {
        let b = body(count as u32, filler);
        let (res, peak) = peak_of(|| decode_body::<Vec<Command>>(b.clone()));
        assert!(res.is_err(), "{res:?}");
        assert!(
            peak <= b.len(),
            "count {count}: decoding a {} byte body allocated {peak} bytes at once",
            b.len()
        );
    }
    // An element whose shortest encoding (1 byte, `None`) says nothing about its
    // size in memory: the count passes, the reservation must still be bounded.
    let b = body(filler as u32, filler);
    let (res, peak) = peak_of(|| decode_body::<Vec<Option<Command>>>(b.clone()));
    assert!(res.is_err(), "{res:?}");
    assert!(peak <= b.len(), "Option<Command>: allocated {peak} bytes");
}

#[test]
fn a_huge_count_is_rejected_without_allocating() {
    for count in [u32::MAX, 1 << 24] {
        let b = body(count, 64);
        let (res, peak) = peak_of(|| decode_body::<Vec<Vec<u64>>>(b.clone()));
        assert!(
            matches!(res, Err(WireError::Truncated { .. })),
            "count {count}: {res:?}"
        );
        assert!(peak <= b.len(), "count {count}: allocated {peak} bytes");
    }
}

#[test]
fn nested_counts_reserve_no_more_than_the_body() {
    // Inner vectors each claim all that is left; every one of them fails.
    let filler = 64 << 10;
    let mut b = BytesMut::new();
    b.put_u32_le(4);
    b.put_u32_le(filler as u32 / 8);
    b.put_bytes(0xff, filler);
    let b = b.freeze();
    let (res, peak) = peak_of(|| decode_body::<Vec<Vec<Command>>>(b.clone()));
    assert!(res.is_err());
    assert!(peak <= b.len(), "allocated {peak} bytes");
}
