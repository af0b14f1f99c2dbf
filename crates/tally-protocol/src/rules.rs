//! Protocol rules that more than one component applies, each defined once here: the validator,
//! the simulator's invariant checks and `tally audit` all call these.
//!
//! * [`is_eligible`]: which validators' reports count (permit and minimum stake).
//! * [`commitment_data`] / [`decode_commitment`]: the bytes a validator posts on chain for a run.
//! * [`counting_commitment`]: which of a hotkey's commitments counts for a run: the first one
//!   naming the run, included in a block inside the run's commit window and strictly before the
//!   block at which its reveal window opens (the chain's block number decides; no skew). A later
//!   one never replaces it. No honest node serves or publishes a report before that block, so no
//!   report can be copied into a commitment that counts.
//! * [`reveal_open_block`] / [`reveal_close_block`]: the first block at which a run's reveal
//!   window is open, and the first at which it has closed (aggregation starts there).
//! * [`metagraph_block`] / [`incumbent_block`]: the blocks a run reads the chain at: eligible
//!   validators, stakes and miners as of the run's first block; the incumbent as of the block its
//!   reveal window opens. Every honest validator and `tally audit` read the same values, whatever
//!   weights byzantine validators set later.

use crate::clock::{EpochClock, PhaseWindows, Window};
use parity_scale_codec::{Decode, Encode};
use tally_core::hash::Hash32;

/// Whether a validator with `permit` and `stake` is eligible when the subnet asks for
/// `min_stake`.
pub fn is_eligible(permit: bool, stake: u64, min_stake: u64) -> bool {
    permit && stake >= min_stake && stake > 0
}

/// The bytes posted on chain to commit to a report for `run`: `SCALE((run, commitment))`.
pub fn commitment_data(run: u64, commitment: &Hash32) -> Vec<u8> {
    (run, *commitment).encode()
}

/// The run and commitment of posted bytes, if they are exactly `SCALE((u64, [u8; 32]))`.
pub fn decode_commitment(data: &[u8]) -> Option<(u64, Hash32)> {
    if data.len() != 40 {
        return None;
    }
    <(u64, Hash32)>::decode(&mut &data[..]).ok()
}

impl Window {
    /// The first block at or after the window's start for a record of `epoch`.
    pub fn first_block(&self, clock: &EpochClock, epoch: u64) -> u64 {
        let (start, _) = self.bounds_mb(clock, epoch);
        ceil_block(start)
    }
    /// The first block at or after the window's end: the window is closed from there on.
    pub fn end_block(&self, clock: &EpochClock, epoch: u64) -> u64 {
        let (_, end) = self.bounds_mb(clock, epoch);
        ceil_block(end)
    }
}

/// The first block at which `window` of a record of `epoch` has closed for everyone: its end
/// plus the skew allowance `skew_mb`. From there on no node stores a record of that window, so
/// what a node reads is final: hosters fall back to the seed's input when no challenge was found
/// by the challenge window's close, validators snapshot hoster commits at the commit window's
/// close and read reveals at the reveal window's close.
pub fn window_closed_block(window: &Window, clock: &EpochClock, skew_mb: u64, epoch: u64) -> u64 {
    let (_, end) = window.bounds_mb(clock, epoch);
    ceil_block(end + skew_mb as u128)
}

fn ceil_block(mb: u128) -> u64 {
    mb.div_ceil(1000).min(u64::MAX as u128) as u64
}

/// The first block at which `run`'s reveal window is open.
pub fn reveal_open_block(clock: &EpochClock, windows: &PhaseWindows, run: u64) -> u64 {
    windows.validator_reveal.first_block(clock, run)
}

/// The first block at which `run`'s reveal window has closed: aggregation starts there.
pub fn reveal_close_block(clock: &EpochClock, windows: &PhaseWindows, run: u64) -> u64 {
    windows.validator_reveal.end_block(clock, run)
}

/// The block whose metagraph (eligible validators, stakes, miners) a run uses: its first.
pub fn metagraph_block(clock: &EpochClock, run: u64) -> u64 {
    clock.start_of(run)
}

/// The block as of which a run reads the incumbent: the one at which its reveal window opens
/// (weights included in earlier blocks count, later ones do not).
pub fn incumbent_block(clock: &EpochClock, windows: &PhaseWindows, run: u64) -> u64 {
    reveal_open_block(clock, windows, run)
}

/// The blocks `[from, to)` in which a commitment for `run` can count.
pub fn commitment_blocks(clock: &EpochClock, windows: &PhaseWindows, run: u64) -> (u64, u64) {
    let from = windows.validator_commit.first_block(clock, run);
    let to = reveal_open_block(clock, windows, run);
    (from, to.max(from))
}

/// The block by which a validator stops evaluating miners for `run`: the middle of its
/// commitment window, so the second half is left for the commitment's inclusion. Miners not
/// evaluated by then are abstained on (coverage decides whether they are scored at all); a
/// miner whose submission takes long to evaluate can cost itself its score, never the
/// validator its report.
pub fn scoring_deadline_block(clock: &EpochClock, windows: &PhaseWindows, run: u64) -> u64 {
    let (from, to) = commitment_blocks(clock, windows, run);
    from + (to - from) / 2
}

/// The commitment that counts for `run` among one hotkey's `history` of `(inclusion block,
/// posted bytes)` in any order: the earliest inside [`commitment_blocks`] that names `run`
/// (ties in one block go to the first listed).
pub fn counting_commitment<'a>(
    history: impl IntoIterator<Item = (u64, &'a [u8])>,
    run: u64,
    clock: &EpochClock,
    windows: &PhaseWindows,
) -> Option<Hash32> {
    let (from, to) = commitment_blocks(clock, windows, run);
    let mut best: Option<(u64, Hash32)> = None;
    for (block, data) in history {
        if block < from || block >= to {
            continue;
        }
        if let Some((r, h)) = decode_commitment(data) {
            if r == run && best.is_none_or(|(b, _)| block < b) {
                best = Some((block, h));
            }
        }
    }
    best.map(|(_, h)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> EpochClock {
        EpochClock {
            length: 20,
            offset: 0,
        }
    }

    #[test]
    fn a_window_closes_for_everyone_after_the_skew() {
        let w = PhaseWindows::default();
        // hoster commits [3, 10) of a 20-block epoch: closed for everyone from 10.5, block 11
        assert_eq!(w.hoster_commit.end_block(&clock(), 0), 10);
        assert_eq!(
            window_closed_block(&w.hoster_commit, &clock(), w.skew_mb, 0),
            11
        );
        // the challenge window [0, 3): 3.5, block 4; epoch 2 starts at block 40
        assert_eq!(
            window_closed_block(&w.challenge, &clock(), w.skew_mb, 2),
            44
        );
        // no skew: the end block itself
        assert_eq!(window_closed_block(&w.hoster_reveal, &clock(), 0, 0), 12);
        // a whole block of skew on an edge that falls between blocks (10-block epochs: the
        // challenge ends at 1.5) rounds up: 2.5, block 3
        let short = EpochClock {
            length: 10,
            offset: 0,
        };
        assert_eq!(window_closed_block(&w.challenge, &short, 1000, 0), 3);
    }

    #[test]
    fn reveal_blocks_follow_the_windows() {
        let w = PhaseWindows::default();
        assert_eq!(reveal_open_block(&clock(), &w, 3), 80);
        assert_eq!(reveal_close_block(&clock(), &w, 3), 90);
        assert_eq!(commitment_blocks(&clock(), &w, 3), (72, 80));
        // a window edge that falls between blocks rounds up: the window is not open before
        let c = EpochClock {
            length: 7,
            offset: 0,
        };
        assert_eq!(w.validator_commit.first_block(&c, 0), 5); // 4.2 -> 5
        assert_eq!(reveal_close_block(&c, &w, 0), 11); // 7 + 3.5 -> 11
    }

    #[test]
    fn the_first_commitment_inside_the_window_counts() {
        let w = PhaseWindows::default();
        let a = commitment_data(3, &[1; 32]);
        let b = commitment_data(3, &[2; 32]);
        let other = commitment_data(4, &[3; 32]);
        let h = |v: &[(u64, &Vec<u8>)]| {
            counting_commitment(v.iter().map(|(b, d)| (*b, &d[..])), 3, &clock(), &w)
        };
        assert_eq!(h(&[(75, &a), (76, &b)]), Some([1; 32]));
        // order of the list does not matter: the earlier block wins
        assert_eq!(h(&[(76, &b), (75, &a)]), Some([1; 32]));
        // at the reveal-open block it is too late, whatever came before
        assert_eq!(h(&[(80, &a)]), None);
        assert_eq!(h(&[(79, &a), (80, &b)]), Some([1; 32]));
        // before the commit window, or for another run, it does not count
        assert_eq!(h(&[(71, &a)]), None);
        assert_eq!(h(&[(75, &other)]), None);
        assert_eq!(h(&[(75, &vec![0; 39])]), None);
    }

    #[test]
    fn eligibility() {
        assert!(is_eligible(true, 1_000, 1_000));
        assert!(!is_eligible(true, 999, 1_000));
        assert!(!is_eligible(false, 5_000, 1_000));
        assert!(!is_eligible(true, 0, 0));
    }
}
