//! Decoding arbitrary bytes as a record never panics and never allocates past the input's
//! size (plus a constant): length prefixes are checked before anything is reserved. Measured
//! with a counting global allocator, per thread.

use parity_scale_codec::{Compact, Encode};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tally_protocol::{Kind, SignedRecord};

struct Counting;
thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; it only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(l.size())));
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn largest_during(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    f();
    LARGEST.with(|l| l.get())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn record_decoding_is_bounded(kind in 0u8..6, netuid in any::<u16>(), epoch in any::<u64>(),
                                  claimed in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        // a record header whose payload claims `claimed` bytes, followed by arbitrary bytes
        let mut bytes = vec![kind];
        bytes.extend(netuid.encode());
        bytes.extend(epoch.encode());
        bytes.extend([7u8; 32]);
        bytes.extend(Compact(claimed).encode());
        bytes.extend(&tail);
        let input_len = bytes.len();
        let peak = largest_during(|| { let _ = SignedRecord::from_bytes(&bytes); });
        prop_assert!(peak <= input_len + 1024, "allocated {} for {} input bytes", peak, input_len);
    }

    #[test]
    fn arbitrary_bytes_are_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let input_len = bytes.len();
        let peak = largest_during(|| { let _ = SignedRecord::from_bytes(&bytes); });
        prop_assert!(peak <= input_len + 1024);
    }
}

#[test]
fn every_kind_cap_is_enforced_before_decoding() {
    for k in Kind::ALL {
        let mut bytes = vec![k as u8];
        bytes.resize(k.max_bytes() + 1, 0);
        assert!(SignedRecord::from_bytes(&bytes).is_err());
    }
}
