//! Hoster strategies of miner-hosted mode: each wraps an honest [`Hoster`] and changes what it
//! computes or publishes, using only the hoster's own vocabulary of inputs and effects, so the
//! same adversary runs in the simulator and in the devnet (`tally devnet --hosters`).
//!
//! | strategy | what it does | who gains | expected outcome |
//! | --- | --- | --- | --- |
//! | `honest` | runs the reference model faithfully | — | scores 1.0 |
//! | `noisy` | runs a perturbed model (every output off by about 1 %) | a hoster saving work | scores what its accuracy earns (about 0.46 on the inference family's curve) |
//! | `lazy` | commits and reveals zeros | a hoster doing no work | 0 (`inaccurate`) |
//! | `copycat` | commits nothing, reads the others' reveals once they appear and publishes a commit and a reveal of the first one it finds | a hoster copying another's output | its late commit is refused; its reveal counts for nothing (`no_commit`) |
//! | `no-reveal` | commits, never reveals | a hoster hiding a bad output | 0 (`no_reveal`) |
//! | `mismatch` | reveals another salt than it committed to | a hoster changing its output after seeing others | 0 (`mismatch`) |
//! | `late` | holds its reveal until the reveal window has closed, then sends it to peers anyway | a hoster revealing after seeing others | refused by every store; 0 (`late_reveal` where the refusal was seen, else `no_reveal`) |

use tally_core::Hotkey;
use tally_protocol::payload::{HosterReveal, Tensor};
use tally_protocol::rules::window_closed_block;
use tally_protocol::Kind;
use tally_validator::hoster::{Hoster, HosterActor, HosterEffect, HosterInput};
use tally_validator::Head;

/// A hoster's strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HosterStrategy {
    /// The reference model, faithfully.
    Honest,
    /// A perturbed model.
    Noisy,
    /// Zeros.
    Lazy,
    /// Copies another hoster's revealed output.
    Copycat,
    /// Commits, never reveals.
    NoReveal,
    /// Reveals something other than it committed to.
    Mismatch,
    /// Reveals after the window.
    Late,
}

impl HosterStrategy {
    /// Every strategy, in the devnet's default order.
    pub const ALL: [HosterStrategy; 7] = [
        HosterStrategy::Honest,
        HosterStrategy::Noisy,
        HosterStrategy::Lazy,
        HosterStrategy::Copycat,
        HosterStrategy::NoReveal,
        HosterStrategy::Mismatch,
        HosterStrategy::Late,
    ];

    /// The strategy's name.
    pub fn name(self) -> &'static str {
        match self {
            HosterStrategy::Honest => "honest",
            HosterStrategy::Noisy => "noisy",
            HosterStrategy::Lazy => "lazy",
            HosterStrategy::Copycat => "copycat",
            HosterStrategy::NoReveal => "no-reveal",
            HosterStrategy::Mismatch => "mismatch",
            HosterStrategy::Late => "late",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<HosterStrategy> {
        HosterStrategy::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Whether a hoster with this strategy must score 0 from every honest validator.
    pub fn scores_zero(self) -> bool {
        !matches!(self, HosterStrategy::Honest | HosterStrategy::Noisy)
    }
}

impl std::str::FromStr for HosterStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        HosterStrategy::parse(s).ok_or_else(|| {
            format!(
                "unknown hoster strategy {s:?}: use {}",
                HosterStrategy::ALL.map(|x| x.name()).join(", ")
            )
        })
    }
}

/// A hoster running `strategy` around an honest [`Hoster`].
pub struct ByzantineHoster {
    inner: Hoster,
    strategy: HosterStrategy,
    /// `late`: reveals held back, `(epoch, payload, expiry)`.
    held: Vec<(u64, Vec<u8>, u64)>,
    /// `copycat`: epochs it has published a copy for.
    copied: std::collections::BTreeSet<u64>,
    /// `copycat`: an outstanding read of the reveals.
    reading: bool,
}

impl ByzantineHoster {
    /// Wraps `inner`.
    pub fn new(inner: Hoster, strategy: HosterStrategy) -> ByzantineHoster {
        ByzantineHoster {
            inner,
            strategy,
            held: Vec::new(),
            copied: Default::default(),
            reading: false,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> HosterStrategy {
        self.strategy
    }

    /// The honest hoster inside.
    pub fn inner(&self) -> &Hoster {
        &self.inner
    }

    fn rewrite_input(&self, input: HosterInput) -> HosterInput {
        match (self.strategy, input) {
            (
                HosterStrategy::Noisy,
                HosterInput::Inferred {
                    epoch,
                    result: Ok(t),
                },
            ) => HosterInput::Inferred {
                epoch,
                result: perturb(&t, |i, v| v * if i % 2 == 0 { 1.01 } else { 0.99 }),
            },
            (
                HosterStrategy::Lazy,
                HosterInput::Inferred {
                    epoch,
                    result: Ok(t),
                },
            ) => HosterInput::Inferred {
                epoch,
                result: perturb(&t, |_, _| 0.0),
            },
            (_, i) => i,
        }
    }

    fn rewrite_effects(&mut self, effects: Vec<HosterEffect>) -> Vec<HosterEffect> {
        let mut out = Vec::with_capacity(effects.len());
        for e in effects {
            match (self.strategy, e) {
                (
                    HosterStrategy::NoReveal,
                    HosterEffect::Publish {
                        kind: Kind::HosterReveal,
                        ..
                    },
                ) => {}
                (
                    HosterStrategy::Copycat,
                    HosterEffect::Publish {
                        kind: Kind::HosterCommit | Kind::HosterReveal,
                        ..
                    },
                ) => {}
                (
                    HosterStrategy::Mismatch,
                    HosterEffect::Publish {
                        kind: Kind::HosterReveal,
                        epoch,
                        payload,
                        expires_at_ms,
                        raw,
                    },
                ) => {
                    let payload = match decode_reveal(&payload) {
                        Some(mut r) => {
                            r.salt[0] ^= 0xff;
                            parity_scale_codec::Encode::encode(&r)
                        }
                        None => payload,
                    };
                    out.push(HosterEffect::Publish {
                        kind: Kind::HosterReveal,
                        epoch,
                        payload,
                        expires_at_ms,
                        raw,
                    });
                }
                (
                    HosterStrategy::Late,
                    HosterEffect::Publish {
                        kind: Kind::HosterReveal,
                        epoch,
                        payload,
                        expires_at_ms,
                        ..
                    },
                ) => {
                    if self.held.len() < 8 {
                        self.held.push((epoch, payload, expires_at_ms));
                    }
                }
                (_, e) => out.push(e),
            }
        }
        out
    }

    /// What the strategy adds at head `h`: `late` releases held reveals once the window has
    /// closed; `copycat` reads the others' reveals while the reveal window is open.
    fn on_head(&mut self, h: Head, out: &mut Vec<HosterEffect>) {
        let Some(view) = self.inner.view() else {
            return;
        };
        let w = view.windows;
        let clock = view.clock;
        match self.strategy {
            HosterStrategy::Late => {
                let held = std::mem::take(&mut self.held);
                for (epoch, payload, expires_at_ms) in held {
                    if h.number >= window_closed_block(&w.hoster_reveal, &clock, w.skew_mb, epoch) {
                        out.push(HosterEffect::Publish {
                            kind: Kind::HosterReveal,
                            epoch,
                            payload,
                            expires_at_ms,
                            raw: true,
                        });
                    } else {
                        self.held.push((epoch, payload, expires_at_ms));
                    }
                }
            }
            HosterStrategy::Copycat => {
                let Some(epoch) = clock.epoch_of(h.number) else {
                    return;
                };
                let from = window_closed_block(&w.hoster_commit, &clock, w.skew_mb, epoch);
                // until the reveal window has closed for everyone: a copy stored in the skew counts
                let to = window_closed_block(&w.hoster_reveal, &clock, w.skew_mb, epoch);
                if h.number >= from
                    && h.number < to
                    && !self.copied.contains(&epoch)
                    && !self.reading
                {
                    self.reading = true;
                    let me = self.inner.hotkey();
                    let hosters: Vec<Hotkey> = self
                        .inner
                        .hosters()
                        .into_iter()
                        .filter(|k| *k != me)
                        .collect();
                    out.push(HosterEffect::ReadReveals { epoch, hosters });
                }
            }
            _ => {}
        }
    }

    fn on_reveals(&mut self, epoch: u64, reveals: &[(Hotkey, HosterReveal)]) -> Vec<HosterEffect> {
        self.reading = false;
        let Some((_, r)) = reveals.first() else {
            return Vec::new();
        };
        if !self.copied.insert(epoch) {
            return Vec::new();
        }
        while self.copied.len() > 8 {
            self.copied.pop_first();
        }
        let expires = self
            .inner
            .entry(epoch)
            .map_or(u64::MAX / 2, |e| e.reveal_expires_at_ms);
        let commit = tally_protocol::payload::Commit(tally_protocol::payload::hoster_commitment(
            &self.inner.hotkey(),
            epoch,
            &r.salt,
            &r.output,
        ));
        vec![
            // the commit window has closed: sent anyway, every store refuses it
            HosterEffect::Publish {
                kind: Kind::HosterCommit,
                epoch,
                payload: parity_scale_codec::Encode::encode(&commit),
                expires_at_ms: expires,
                raw: true,
            },
            HosterEffect::Publish {
                kind: Kind::HosterReveal,
                epoch,
                payload: parity_scale_codec::Encode::encode(r),
                expires_at_ms: expires,
                raw: false,
            },
        ]
    }
}

fn decode_reveal(b: &[u8]) -> Option<HosterReveal> {
    <HosterReveal as parity_scale_codec::Decode>::decode(&mut &b[..]).ok()
}

/// `t` with each value `v` at index `i` replaced by `f(i, v)`.
fn perturb(t: &Tensor, f: impl Fn(usize, f32) -> f32) -> Result<Tensor, String> {
    let v = t.f32_values().ok_or("not an f32 tensor")?;
    let shape: Vec<u32> = t.shape.to_vec();
    let w: Vec<f32> = v.iter().enumerate().map(|(i, x)| f(i, *x)).collect();
    Tensor::f32(&shape, &w)
}

impl HosterActor for ByzantineHoster {
    fn handle(&mut self, input: HosterInput) -> Vec<HosterEffect> {
        if let HosterInput::Reveals { epoch, reveals } = &input {
            return self.on_reveals(*epoch, reveals);
        }
        let head = match &input {
            HosterInput::Head(h) => Some(*h),
            _ => None,
        };
        let input = self.rewrite_input(input);
        let effects = self.inner.handle(input);
        let mut out = self.rewrite_effects(effects);
        if let Some(h) = head {
            self.on_head(h, &mut out);
        }
        out
    }
    fn take_error(&mut self) -> Option<String> {
        self.inner.take_error()
    }
}
