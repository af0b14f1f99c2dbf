//! The predicate that decides every inbound DHT store and every value read back.
//!
//! `check(key, bytes, now_ms, view, existing, mode)` applies DESIGN.md's six rules in order:
//!
//! 1. bounded decode (the kind's size cap), the key equals the derived key, the signature is
//!    valid;
//! 2. the publisher is registered on the view's netuid, with a validator permit and the minimum
//!    stake for validator kinds, and is the elected validator for a challenge;
//! 3. the epoch rule and the phase window, with the view's skew allowance: in [`Mode::Store`] the
//!    chain position must lie inside the kind's window for the record's epoch (so commits,
//!    challenges and hoster reveals name the current epoch and validator reveals the previous
//!    one); in [`Mode::Read`] the window must have opened (nothing from the future);
//!    heartbeats carry the current epoch, give or take one;
//! 4. the expiry is in the future and no further than the kind's cap;
//! 5. the payload passes its schema ([`crate::payload::parse`]);
//! 6. write-once: with a record already in the slot, an identical copy is accepted
//!    (replication), a newer heartbeat replaces an older one, and any other difference is
//!    refused as [`Reject::Conflict`]; both records are signed by the publisher, so the caller
//!    keeps the pair as equivocation evidence.
//!
//! Order: the write-once conflict is decided right after decoding (with the signature checked
//! for it), so a replaced commit is caught as evidence even outside its window; the other cheap
//! rules run before the signature check, so junk costs microseconds. Whether a record is
//! accepted does not depend on the order, only which reason a doubly-bad record gets.
//! Pure: no clock, no chain, no I/O.

use crate::payload::{parse, Payload};
use crate::record::SignedRecord;
use crate::view::ChainView;
use crate::Kind;

/// Why a record was refused. Every reason has a stable name for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// Over the kind's size cap.
    Oversize,
    /// Bytes that do not decode as a record.
    Malformed,
    /// Stored under a key other than the one derived from its contents.
    KeyMismatch,
    /// The signature does not verify for the publisher.
    BadSignature,
    /// For another subnet.
    WrongNetuid,
    /// The publisher is not registered.
    UnknownPublisher,
    /// A validator kind from a hotkey without a validator permit.
    NotValidator,
    /// A validator kind from a validator below the minimum stake.
    InsufficientStake,
    /// A challenge from a validator other than the elected one.
    NotElected,
    /// A challenge for an epoch whose seed the node does not know yet.
    SeedUnknown,
    /// Names an epoch other than the one the rule requires now.
    WrongEpoch,
    /// The right epoch, but outside the kind's phase window.
    OutsideWindow,
    /// Already expired.
    Expired,
    /// Expires further ahead than the kind allows.
    ExpiryTooFar,
    /// The payload fails its schema.
    BadPayload,
    /// A different record already holds this write-once slot.
    Conflict,
    /// A heartbeat no newer than the one held.
    Stale,
}

impl Reject {
    /// Every reason, for metrics.
    pub const ALL: [Reject; 17] = [
        Reject::Oversize,
        Reject::Malformed,
        Reject::KeyMismatch,
        Reject::BadSignature,
        Reject::WrongNetuid,
        Reject::UnknownPublisher,
        Reject::NotValidator,
        Reject::InsufficientStake,
        Reject::NotElected,
        Reject::SeedUnknown,
        Reject::WrongEpoch,
        Reject::OutsideWindow,
        Reject::Expired,
        Reject::ExpiryTooFar,
        Reject::BadPayload,
        Reject::Conflict,
        Reject::Stale,
    ];

    /// A stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Oversize => "oversize",
            Reject::Malformed => "malformed",
            Reject::KeyMismatch => "key_mismatch",
            Reject::BadSignature => "bad_signature",
            Reject::WrongNetuid => "wrong_netuid",
            Reject::UnknownPublisher => "unknown_publisher",
            Reject::NotValidator => "not_validator",
            Reject::InsufficientStake => "insufficient_stake",
            Reject::NotElected => "not_elected",
            Reject::SeedUnknown => "seed_unknown",
            Reject::WrongEpoch => "wrong_epoch",
            Reject::OutsideWindow => "outside_window",
            Reject::Expired => "expired",
            Reject::ExpiryTooFar => "expiry_too_far",
            Reject::BadPayload => "bad_payload",
            Reject::Conflict => "conflict",
            Reject::Stale => "stale",
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a record is arriving to be stored or being read back from the DHT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An inbound put (or our own publish).
    Store,
    /// A value returned by a get.
    Read,
}

/// An accepted record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The record.
    pub record: SignedRecord,
    /// Its checked payload.
    pub payload: Payload,
    /// True when an identical copy was already held (replication).
    pub replica: bool,
}

/// Applies the six rules to `bytes` stored under `key`, with the signature checked.
pub fn check(
    key: &[u8],
    bytes: &[u8],
    now_ms: u64,
    view: &ChainView,
    existing: Option<&SignedRecord>,
    mode: Mode,
) -> Result<Verdict, Reject> {
    check_inner(key, bytes, now_ms, view, existing, mode, true)
}

/// [`check`] without the record signature (rule 1's last part). For benchmarks, and for
/// re-checking records this node already verified; never for bytes from the network.
pub fn check_without_signature(
    key: &[u8],
    bytes: &[u8],
    now_ms: u64,
    view: &ChainView,
    existing: Option<&SignedRecord>,
    mode: Mode,
) -> Result<Verdict, Reject> {
    check_inner(key, bytes, now_ms, view, existing, mode, false)
}

fn check_inner(
    key: &[u8],
    bytes: &[u8],
    now_ms: u64,
    view: &ChainView,
    existing: Option<&SignedRecord>,
    mode: Mode,
    verify_signature: bool,
) -> Result<Verdict, Reject> {
    // rule 1: bounded decode and key
    let kind = bytes
        .first()
        .and_then(|&b| Kind::from_byte(b))
        .ok_or(Reject::Malformed)?;
    if bytes.len() > kind.max_bytes() {
        return Err(Reject::Oversize);
    }
    let record = SignedRecord::from_bytes(bytes).map_err(|_| Reject::Malformed)?;
    if key != record.key() {
        return Err(Reject::KeyMismatch);
    }
    let body = record.body();

    // rule 6 comes early for write-once slots: a different record in an occupied slot is
    // refused whatever else holds, and when its signature is valid it is equivocation evidence
    // (even after the window has closed: that is when replacing a commit would pay). A
    // byte-identical copy of a record already held (replication) goes through the rules below.
    let replica = existing.is_some_and(|e| e.body_bytes() == record.body_bytes());
    if !replica && existing.is_some() && kind.write_once() {
        if verify_signature && !record.signature_valid() {
            return Err(Reject::BadSignature);
        }
        return Err(Reject::Conflict);
    }

    // rule 2: publisher and role
    if body.netuid != view.netuid {
        return Err(Reject::WrongNetuid);
    }
    let neuron = view
        .metagraph
        .get(&body.publisher)
        .ok_or(Reject::UnknownPublisher)?;
    if kind.validator_only() {
        if !neuron.validator_permit {
            return Err(Reject::NotValidator);
        }
        if neuron.stake < view.min_validator_stake {
            return Err(Reject::InsufficientStake);
        }
    }
    if kind == Kind::Challenge {
        match view.seed(body.epoch) {
            None => return Err(Reject::SeedUnknown),
            Some(_) if view.elected(body.epoch) != Some(body.publisher) => {
                return Err(Reject::NotElected)
            }
            Some(_) => {}
        }
    }

    // rule 3: epoch and window
    let pos = view.time.position_mb(now_ms);
    let skew = view.windows.skew_mb as u128;
    match view.windows.of(kind) {
        None => {
            // heartbeat: the current epoch, give or take one
            let current = view.clock.epoch_of((pos / 1000) as u64).unwrap_or(0);
            if body.epoch.abs_diff(current) > 1 {
                return Err(Reject::WrongEpoch);
            }
        }
        Some(w) => {
            let (start, end) = w.bounds_mb(&view.clock, body.epoch);
            let opened = pos + skew >= start;
            let inside = opened && pos < end + skew;
            let ok = match mode {
                Mode::Store => inside,
                Mode::Read => opened,
            };
            if !ok {
                let current = view.clock.epoch_of((pos / 1000) as u64);
                let expected = current.map(|c| c.saturating_sub(w.epoch_delta));
                return Err(if expected == Some(body.epoch) {
                    Reject::OutsideWindow
                } else {
                    Reject::WrongEpoch
                });
            }
        }
    }

    // rule 4: expiry
    if body.expires_at_ms <= now_ms {
        return Err(Reject::Expired);
    }
    if body.expires_at_ms - now_ms > kind.max_ttl_ms() {
        return Err(Reject::ExpiryTooFar);
    }

    // rule 5: payload schema
    let payload = parse(body).map_err(|_| Reject::BadPayload)?;
    if let (Payload::Heartbeat(new), Some(held)) = (&payload, existing) {
        if !replica {
            if let Ok(Payload::Heartbeat(old)) = parse(held.body()) {
                if new.issued_at_ms <= old.issued_at_ms {
                    return Err(Reject::Stale);
                }
            }
        }
    }

    // rule 1, last part: the signature (skipped for a copy of what we already verified)
    if verify_signature && !replica && !record.signature_valid() {
        return Err(Reject::BadSignature);
    }
    Ok(Verdict {
        record,
        payload,
        replica,
    })
}
