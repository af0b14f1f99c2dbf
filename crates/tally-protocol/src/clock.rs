//! The epoch clock and phase windows.
//!
//! Epoch `e` covers blocks `[e·L + offset, (e+1)·L + offset)`. Wall-clock time enters through
//! [`ChainTime`], a snapshot `(block, observed at, block time)` that the node refreshes from the
//! chain on its own schedule; positions are computed in milli-blocks so a window edge falls
//! between blocks as precisely as the block time allows.
//!
//! A [`Window`] is `[start, end)` as fractions of an epoch, in the record's own epoch
//! (`epoch_delta = 0`) or the next one (`1`, for validator reveals). [`PhaseWindows::default`]
//! holds DESIGN.md's table.

use crate::Kind;
use tally_core::Fraction;

/// Epoch length and offset in blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochClock {
    /// Blocks per epoch (at least 1).
    pub length: u64,
    /// The block at which epoch 0 starts.
    pub offset: u64,
}

impl EpochClock {
    /// The epoch containing `block`, or `None` before the offset.
    pub fn epoch_of(&self, block: u64) -> Option<u64> {
        block
            .checked_sub(self.offset)
            .map(|b| b / self.length.max(1))
    }
    /// The first block of `epoch`.
    pub fn start_of(&self, epoch: u64) -> u64 {
        epoch
            .saturating_mul(self.length.max(1))
            .saturating_add(self.offset)
    }
    /// The fraction of its epoch that has elapsed at `block`.
    pub fn progress(&self, block: u64) -> Option<Fraction> {
        let e = self.epoch_of(block)?;
        let into = block - self.start_of(e);
        Fraction::ratio(into as u128, self.length.max(1) as u128)
    }
}

/// A chain-time snapshot: `block` was the head at unix time `at_ms`, blocks come every
/// `block_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainTime {
    /// Head block when observed.
    pub block: u64,
    /// Unix milliseconds of the observation.
    pub at_ms: u64,
    /// Milliseconds per block (at least 1).
    pub block_ms: u64,
}

impl ChainTime {
    /// The chain position at `now_ms`, in milli-blocks (never before the observed block).
    pub fn position_mb(&self, now_ms: u64) -> u128 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as u128;
        self.block as u128 * 1000 + elapsed * 1000 / self.block_ms.max(1) as u128
    }
    /// The estimated head block at `now_ms`.
    pub fn block_at(&self, now_ms: u64) -> u64 {
        (self.position_mb(now_ms) / 1000).min(u64::MAX as u128) as u64
    }
}

/// A phase window: `[start, end)` of epoch `record epoch + epoch_delta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Start, as a fraction of the epoch.
    pub start: Fraction,
    /// End (exclusive), as a fraction of the epoch; `Fraction::ONE` is the epoch's end.
    pub end: Fraction,
    /// 0: the record's own epoch; 1: the next one.
    pub epoch_delta: u64,
}

impl Window {
    fn new(start: u32, end: u32, epoch_delta: u64) -> Window {
        Window {
            start: Fraction::saturating_from_units(start as u64),
            end: Fraction::saturating_from_units(end as u64),
            epoch_delta,
        }
    }

    /// The window of a record of `epoch` in milli-blocks, `[start, end)`.
    pub fn bounds_mb(&self, clock: &EpochClock, epoch: u64) -> (u128, u128) {
        let e = epoch.saturating_add(self.epoch_delta);
        let base = clock.start_of(e) as u128 * 1000;
        let len = clock.length.max(1) as u128 * 1000;
        let at = |f: Fraction| base + len * f.units() as u128 / 1_000_000_000;
        (at(self.start), at(self.end))
    }
}

/// The window of every kind but heartbeats, and the skew allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseWindows {
    /// `challenge`: e, [0, 0.15).
    pub challenge: Window,
    /// `hoster-commit`: e, [0.15, 0.50).
    pub hoster_commit: Window,
    /// `hoster-reveal`: e, [0.50, 0.60).
    pub hoster_reveal: Window,
    /// `validator-commit`: e, [0.60, 1.00).
    pub validator_commit: Window,
    /// `validator-reveal`: e+1, [0, 0.50).
    pub validator_reveal: Window,
    /// Allowance either side of a window edge, in milli-blocks (default 500: half a block).
    pub skew_mb: u64,
}

impl Default for PhaseWindows {
    fn default() -> Self {
        PhaseWindows {
            challenge: Window::new(0, 150_000_000, 0),
            hoster_commit: Window::new(150_000_000, 500_000_000, 0),
            hoster_reveal: Window::new(500_000_000, 600_000_000, 0),
            validator_commit: Window::new(600_000_000, 1_000_000_000, 0),
            validator_reveal: Window::new(0, 500_000_000, 1),
            skew_mb: 500,
        }
    }
}

impl PhaseWindows {
    /// The window of `kind`; heartbeats have none.
    pub fn of(&self, kind: Kind) -> Option<Window> {
        match kind {
            Kind::Heartbeat => None,
            Kind::Challenge => Some(self.challenge),
            Kind::HosterCommit => Some(self.hoster_commit),
            Kind::HosterReveal => Some(self.hoster_reveal),
            Kind::ValidatorCommit => Some(self.validator_commit),
            Kind::ValidatorReveal => Some(self.validator_reveal),
        }
    }

    /// Checks the windows are well formed: start <= end, and each within one epoch.
    pub fn validate(&self) -> Result<(), String> {
        for k in Kind::ALL {
            if let Some(w) = self.of(k) {
                if w.start > w.end {
                    return Err(format!("{} window starts after it ends", k.name()));
                }
                if w.epoch_delta > 1 {
                    return Err(format!("{} window is more than one epoch ahead", k.name()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_and_progress() {
        let c = EpochClock {
            length: 100,
            offset: 10,
        };
        assert_eq!(c.epoch_of(9), None);
        assert_eq!(c.epoch_of(10), Some(0));
        assert_eq!(c.epoch_of(109), Some(0));
        assert_eq!(c.epoch_of(110), Some(1));
        assert_eq!(c.start_of(3), 310);
        assert_eq!(c.progress(160).unwrap().units(), 500_000_000);
        assert_eq!(c.progress(110).unwrap().units(), 0);
    }

    #[test]
    fn chain_time_positions() {
        let t = ChainTime {
            block: 50,
            at_ms: 1_000,
            block_ms: 12_000,
        };
        assert_eq!(t.position_mb(1_000), 50_000);
        assert_eq!(t.position_mb(7_000), 50_500);
        assert_eq!(t.block_at(13_000), 51);
        assert_eq!(t.position_mb(0), 50_000); // never before the observation
    }

    #[test]
    fn window_bounds() {
        let c = EpochClock {
            length: 100,
            offset: 0,
        };
        let w = PhaseWindows::default();
        assert_eq!(w.hoster_commit.bounds_mb(&c, 2), (215_000, 250_000));
        assert_eq!(w.validator_reveal.bounds_mb(&c, 2), (300_000, 350_000));
        assert!(w.validate().is_ok());
        let mut bad = w;
        bad.challenge.start = Fraction::ONE;
        assert!(bad.validate().is_err());
    }
}
