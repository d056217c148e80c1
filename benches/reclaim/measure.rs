//! What the reclaim benchmark measures with: a counting global allocator (the heap's high-water mark of one
//! call), thread and process CPU clocks, and the units its JSON reports.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

// ----- Heap accounting ---------------------------------------------------------------------------------------

/// `System`, counting the bytes currently allocated and their high-water mark.
struct CountingAllocator;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Counting costs a few atomic operations per allocation; it is switched off (for good) before anything is timed.
pub(crate) static COUNTING: AtomicBool = AtomicBool::new(true);

fn resized(grown: usize, shrunk: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let now = CURRENT.fetch_add(grown, Ordering::Relaxed) + grown;
        PEAK.fetch_max(now, Ordering::Relaxed);
        CURRENT.fetch_sub(shrunk, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counters never affect what is returned.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            resized(layout.size(), 0);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        resized(0, layout.size());
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

pub(crate) fn heap_now() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Heap used by one call: the live heap when it started (what the caller holds) and the high-water mark.
#[derive(Clone, Copy)]
pub(crate) struct HeapUse {
    pub(crate) before: usize,
    pub(crate) peak: usize,
}

impl HeapUse {
    pub(crate) fn of(call: impl FnOnce()) -> HeapUse {
        let before = heap_now();
        PEAK.store(before, Ordering::Relaxed);
        call();
        HeapUse {
            before,
            peak: PEAK.load(Ordering::Relaxed),
        }
    }
}

// ----- Clocks and numbers --------------------------------------------------------------------------------------

/// CPU time of the calling thread, or of the whole process (the in-process simulator included).
pub(crate) fn cpu_time(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock ids are ones Linux always provides.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

pub(crate) fn thread_cpu() -> Duration {
    cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
}

pub(crate) fn process_cpu() -> Duration {
    cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID)
}

pub(crate) fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}
