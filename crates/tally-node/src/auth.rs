//! Signed HTTP requests.
//!
//! A request carries five headers: `x-tally-hotkey` (the caller, SS58), `x-tally-target` (the
//! node it is meant for, SS58), `x-tally-timestamp` (unix ms), `x-tally-nonce` (32 hex digits)
//! and `x-tally-signature` (128 hex digits), the sr25519 signature over
//! `SCALE("tally/http-request/v2") ‖ SHA-256(SCALE((target, method, path with query,
//! SHA-256(body), timestamp, nonce)))`. The target's hotkey is inside the signed bytes, so a
//! request signed for one node is refused by every other: the server checks the signature with
//! its own hotkey as the target, whatever the target header says.
//!
//! [`verify`] is pure (time is an argument) and refuses, in order: missing or malformed headers,
//! another target (`401 wrong target`), a timestamp more than 60 s in the past or more than 5 s in
//! the future (`401 stale timestamp`), a hotkey the node does not know (`401 unknown hotkey`), a
//! caller over its per-key limits (`429`), a bad signature (`401 bad signature`), and a nonce
//! already seen within the window (`409 replayed nonce`).
//!
//! The [`NonceCache`] is bounded overall and per key ([`NonceLimits`]): entries live only as long
//! as their timestamp could still pass the window; live nonces are never evicted (that would
//! allow replays); each key holds at most `per_key` live nonces and spends a token bucket of
//! `rate_per_s` (burst `burst`), so one key flooding is refused with `429` and takes nothing
//! from the others; only a full cache (`capacity` live entries, or `max_keys` keys tracked)
//! answers `503`. The per-key check runs before the signature (reading only the caller's own
//! state, so nobody can exhaust another key's quota with forged requests) and is charged after
//! it.

use parity_scale_codec::Encode;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use tally_core::codec::signing_payload;
use tally_core::{sha256, Hotkey, Keypair, Signature};
use thiserror::Error;

/// The acceptance window into the past.
pub const WINDOW_MS: u64 = 60_000;
/// The acceptance window into the future (clock skew between honest nodes).
pub const FUTURE_SKEW_MS: u64 = 5_000;
/// Header names.
pub const H_HOTKEY: &str = "x-tally-hotkey";
/// Header names.
pub const H_TARGET: &str = "x-tally-target";
/// Header names.
pub const H_TIMESTAMP: &str = "x-tally-timestamp";
/// Header names.
pub const H_NONCE: &str = "x-tally-nonce";
/// Header names.
pub const H_SIGNATURE: &str = "x-tally-signature";
const TAG: &[u8] = b"tally/http-request/v2";

/// Why a request is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// A header is missing.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// A header does not parse.
    #[error("malformed header {0}")]
    Malformed(&'static str),
    /// The request names another node as its target.
    #[error("wrong target: the request is signed for another node")]
    WrongTarget,
    /// The timestamp is outside the window.
    #[error("stale timestamp: more than 60 s behind or 5 s ahead of the server's clock")]
    Stale,
    /// The hotkey is not one this node serves.
    #[error("unknown hotkey: not registered on the subnet nor allowed")]
    UnknownHotkey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The nonce was already used within the window.
    #[error("replayed nonce")]
    Replayed,
    /// The caller is over its request rate.
    #[error("rate limited: too many requests from this hotkey, retry shortly")]
    RateLimited,
    /// The caller holds its whole share of the nonce cache.
    #[error("rate limited: this hotkey's share of the nonce cache is full, retry shortly")]
    KeyFull,
    /// The nonce cache is full of live entries (or tracks its most keys).
    #[error("nonce cache full: retry shortly")]
    CacheFull,
}

impl AuthError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Replayed => 409,
            AuthError::RateLimited | AuthError::KeyFull => 429,
            AuthError::CacheFull => 503,
            _ => 401,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing(_) => "missing_header",
            AuthError::Malformed(_) => "malformed_header",
            AuthError::WrongTarget => "wrong_target",
            AuthError::Stale => "stale_timestamp",
            AuthError::UnknownHotkey => "unknown_hotkey",
            AuthError::BadSignature => "bad_signature",
            AuthError::Replayed => "replayed_nonce",
            AuthError::RateLimited => "rate_limited",
            AuthError::KeyFull => "key_quota",
            AuthError::CacheFull => "cache_full",
        }
    }
}

/// The bytes a request signature covers: `target` is the hotkey of the node the request is for.
pub fn request_payload(
    target: &Hotkey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp_ms: u64,
    nonce: &[u8; 16],
) -> Vec<u8> {
    let inner = (
        target.0,
        method.as_bytes(),
        path_and_query.as_bytes(),
        sha256(body),
        timestamp_ms,
        nonce,
    )
        .encode();
    signing_payload(TAG, &inner)
}

/// The five headers for a request to `target` signed by `key`.
pub fn sign_request(
    key: &Keypair,
    target: &Hotkey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp_ms: u64,
    nonce: [u8; 16],
) -> [(&'static str, String); 5] {
    let sig = key.sign(&request_payload(
        target,
        method,
        path_and_query,
        body,
        timestamp_ms,
        &nonce,
    ));
    [
        (H_HOTKEY, key.hotkey().to_ss58()),
        (H_TARGET, target.to_ss58()),
        (H_TIMESTAMP, timestamp_ms.to_string()),
        (H_NONCE, hex::encode(nonce)),
        (H_SIGNATURE, sig.to_hex()),
    ]
}

/// A fresh random nonce.
pub fn fresh_nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    // without OS randomness the nonce is still unique per process by the counter below
    if getrandom::getrandom(&mut n).is_err() {
        static C: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let c = C.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        n[..8].copy_from_slice(&c.to_le_bytes());
    }
    n
}

/// The bounds of a [`NonceCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceLimits {
    /// Live entries overall.
    pub capacity: usize,
    /// Live entries of one key.
    pub per_key: usize,
    /// Keys tracked at once.
    pub max_keys: usize,
    /// Requests per second one key may make, sustained.
    pub rate_per_s: u32,
    /// Requests one key may make at once.
    pub burst: u32,
}

impl NonceLimits {
    /// Limits for `capacity` live entries: each key gets `capacity / 256` of them (so 256 keys
    /// flooding at once still leave room), 4,096 keys, 50 requests per second with bursts of
    /// 500 per key.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        NonceLimits {
            capacity,
            per_key: (capacity / 256).max(16).min(capacity),
            max_keys: 4_096,
            rate_per_s: 50,
            burst: 500,
        }
    }
}

/// One key's place in the cache: its live entries and its token bucket.
#[derive(Clone, Copy, Debug)]
struct KeySlot {
    hotkey: Hotkey,
    live: u32,
    /// Tokens in thousandths.
    milli_tokens: u64,
    last_ms: u64,
}

impl KeySlot {
    fn tokens_at(&self, limits: &NonceLimits, now_ms: u64) -> u64 {
        let full = limits.burst.max(1) as u64 * 1000;
        let refill = now_ms
            .saturating_sub(self.last_ms)
            .saturating_mul(limits.rate_per_s as u64);
        self.milli_tokens.saturating_add(refill).min(full)
    }
}

/// Recently seen `(hotkey, nonce)` pairs, bounded overall and per key.
pub struct NonceCache {
    hasher: std::collections::hash_map::RandomState,
    seen: HashSet<u64>,
    /// `(timestamp second, (id, key slot))` in order of seconds, for expiry.
    buckets: VecDeque<(u64, Vec<(u64, u32)>)>,
    keys: HashMap<Hotkey, u32>,
    slots: Vec<KeySlot>,
    free: Vec<u32>,
    limits: NonceLimits,
}

impl NonceCache {
    /// A cache holding at most `capacity` live entries, with [`NonceLimits::new`]'s per-key
    /// limits.
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(NonceLimits::new(capacity))
    }

    /// A cache with `limits`.
    pub fn with_limits(limits: NonceLimits) -> Self {
        let limits = NonceLimits {
            capacity: limits.capacity.max(1),
            per_key: limits.per_key.max(1),
            max_keys: limits.max_keys.max(1),
            rate_per_s: limits.rate_per_s,
            burst: limits.burst.max(1),
        };
        NonceCache {
            hasher: Default::default(),
            seen: HashSet::new(),
            buckets: VecDeque::new(),
            keys: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            limits,
        }
    }

    /// The limits.
    pub fn limits(&self) -> NonceLimits {
        self.limits
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Live entries of `hotkey`.
    pub fn live_of(&self, hotkey: &Hotkey) -> usize {
        self.keys
            .get(hotkey)
            .map(|s| self.slots[*s as usize].live as usize)
            .unwrap_or(0)
    }

    /// Keys tracked.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    fn expire(&mut self, now_ms: u64) {
        // an entry can be dropped once its timestamp is out of the window for good
        let horizon = now_ms.saturating_sub(WINDOW_MS) / 1000;
        while let Some((sec, _)) = self.buckets.front() {
            if *sec + 1 >= horizon {
                break;
            }
            if let Some((_, ids)) = self.buckets.pop_front() {
                for (id, slot) in ids {
                    self.seen.remove(&id);
                    if let Some(s) = self.slots.get_mut(slot as usize) {
                        s.live = s.live.saturating_sub(1);
                    }
                }
            }
        }
        if self.seen.capacity() > 4 * self.seen.len().max(1024) {
            self.seen.shrink_to_fit();
        }
    }

    /// Frees the slot of a key with no live entry and a full bucket (nothing is lost: a new
    /// slot starts the same way); true if one was freed.
    fn reclaim(&mut self, now_ms: u64) -> bool {
        let full = self.limits.burst as u64 * 1000;
        let idle = self.keys.iter().find_map(|(k, s)| {
            let slot = &self.slots[*s as usize];
            (slot.live == 0 && slot.tokens_at(&self.limits, now_ms) >= full).then_some((*k, *s))
        });
        match idle {
            Some((k, s)) => {
                self.keys.remove(&k);
                self.free.push(s);
                true
            }
            None => false,
        }
    }

    /// The checks of [`NonceCache::insert`] that need no signature, without recording
    /// anything: a caller over its own limits, or a full cache, is refused before its signature
    /// is checked. Only `hotkey`'s own state is read, so forged requests naming a hotkey cannot
    /// use up its quota.
    pub fn admit(&mut self, hotkey: &Hotkey, now_ms: u64) -> Result<(), AuthError> {
        self.expire(now_ms);
        if self.seen.len() >= self.limits.capacity {
            return Err(AuthError::CacheFull);
        }
        match self.keys.get(hotkey) {
            Some(s) => {
                let slot = &self.slots[*s as usize];
                if slot.tokens_at(&self.limits, now_ms) < 1000 {
                    return Err(AuthError::RateLimited);
                }
                if slot.live as usize >= self.limits.per_key {
                    return Err(AuthError::KeyFull);
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records `(hotkey, nonce)` seen with `timestamp_ms`; refuses a replay, a key over its
    /// rate or its share, or a full cache. Nothing live is ever evicted.
    pub fn insert(
        &mut self,
        hotkey: &Hotkey,
        nonce: &[u8; 16],
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        self.expire(now_ms);
        let id = self.hasher.hash_one((hotkey.0, *nonce));
        if self.seen.contains(&id) {
            return Err(AuthError::Replayed);
        }
        if self.seen.len() >= self.limits.capacity {
            return Err(AuthError::CacheFull);
        }
        let slot = match self.keys.get(hotkey) {
            Some(s) => *s,
            None => {
                if self.keys.len() >= self.limits.max_keys && !self.reclaim(now_ms) {
                    return Err(AuthError::CacheFull);
                }
                let fresh = KeySlot {
                    hotkey: *hotkey,
                    live: 0,
                    milli_tokens: self.limits.burst as u64 * 1000,
                    last_ms: now_ms,
                };
                let s = match self.free.pop() {
                    Some(s) => {
                        self.slots[s as usize] = fresh;
                        s
                    }
                    None => {
                        self.slots.push(fresh);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.keys.insert(*hotkey, s);
                s
            }
        };
        let limits = self.limits;
        let st = &mut self.slots[slot as usize];
        debug_assert_eq!(st.hotkey, *hotkey);
        let tokens = st.tokens_at(&limits, now_ms);
        st.milli_tokens = tokens;
        st.last_ms = st.last_ms.max(now_ms);
        if tokens < 1000 {
            return Err(AuthError::RateLimited);
        }
        if st.live as usize >= limits.per_key {
            return Err(AuthError::KeyFull);
        }
        st.milli_tokens -= 1000;
        st.live += 1;
        self.seen.insert(id);
        let sec = timestamp_ms / 1000;
        match self.buckets.iter_mut().rev().find(|(s, _)| *s == sec) {
            Some((_, ids)) => ids.push((id, slot)),
            None => {
                // keep buckets ordered by second; timestamps arrive roughly in order
                let pos = self
                    .buckets
                    .iter()
                    .rposition(|(s, _)| *s < sec)
                    .map(|p| p + 1)
                    .unwrap_or(0);
                self.buckets.insert(pos, (sec, vec![(id, slot)]));
            }
        }
        Ok(())
    }
}

/// Reads a header by name.
pub trait HeaderSource {
    /// The header's value, if present and text.
    fn header(&self, name: &str) -> Option<&str>;
}

/// Verifies a signed request meant for `me`; returns the caller's hotkey.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    headers: &impl HeaderSource,
    me: &Hotkey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_ms: u64,
    known: impl Fn(&Hotkey) -> bool,
    cache: &mut NonceCache,
) -> Result<Hotkey, AuthError> {
    let a = authenticate(
        headers,
        me,
        method,
        path_and_query,
        body,
        now_ms,
        known,
        |h| cache.admit(h, now_ms),
    )?;
    cache.insert(&a.hotkey, &a.nonce, a.timestamp_ms, now_ms)?;
    Ok(a.hotkey)
}

/// A request whose headers, target, window, hotkey and signature checked out; its nonce still
/// has to be recorded ([`NonceCache::insert`]) before it is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The caller.
    pub hotkey: Hotkey,
    /// The request's nonce.
    pub nonce: [u8; 16],
    /// The request's timestamp.
    pub timestamp_ms: u64,
}

/// Every check of [`verify`] but recording the nonce: callers that share one cache between
/// threads check the signature (the expensive part) without holding the cache's lock. `admit`
/// runs after the cheap checks and before the signature (e.g. [`NonceCache::admit`]).
#[allow(clippy::too_many_arguments)]
pub fn authenticate(
    headers: &impl HeaderSource,
    me: &Hotkey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_ms: u64,
    known: impl Fn(&Hotkey) -> bool,
    admit: impl FnOnce(&Hotkey) -> Result<(), AuthError>,
) -> Result<Authenticated, AuthError> {
    let get = |n: &'static str| headers.header(n).ok_or(AuthError::Missing(n));
    let hotkey: Hotkey = get(H_HOTKEY)?
        .parse()
        .map_err(|_| AuthError::Malformed(H_HOTKEY))?;
    let target: Hotkey = get(H_TARGET)?
        .parse()
        .map_err(|_| AuthError::Malformed(H_TARGET))?;
    let ts: u64 = get(H_TIMESTAMP)?
        .parse()
        .map_err(|_| AuthError::Malformed(H_TIMESTAMP))?;
    let nonce: [u8; 16] = tally_core::keys::parse_hex_array(get(H_NONCE)?, "nonce")
        .map_err(|_| AuthError::Malformed(H_NONCE))?;
    let sig =
        Signature::from_hex(get(H_SIGNATURE)?).map_err(|_| AuthError::Malformed(H_SIGNATURE))?;
    if target != *me {
        return Err(AuthError::WrongTarget);
    }
    if ts < now_ms.saturating_sub(WINDOW_MS) || ts > now_ms.saturating_add(FUTURE_SKEW_MS) {
        return Err(AuthError::Stale);
    }
    if !known(&hotkey) {
        return Err(AuthError::UnknownHotkey);
    }
    admit(&hotkey)?;
    // the signature is checked against this node's own hotkey, never the header's
    if !hotkey.verify(
        &request_payload(me, method, path_and_query, body, ts, &nonce),
        &sig,
    ) {
        return Err(AuthError::BadSignature);
    }
    Ok(Authenticated {
        hotkey,
        nonce,
        timestamp_ms: ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct H(HashMap<&'static str, String>);
    impl HeaderSource for H {
        fn header(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(|s| s.as_str())
        }
    }

    fn me() -> Hotkey {
        Keypair::from_seed(&[7; 32]).hotkey()
    }

    fn signed(key: &Keypair, path: &str, body: &[u8], ts: u64, nonce: u8) -> H {
        signed_for(key, &me(), path, body, ts, nonce)
    }

    fn signed_for(key: &Keypair, to: &Hotkey, path: &str, body: &[u8], ts: u64, n: u8) -> H {
        H(sign_request(key, to, "GET", path, body, ts, [n; 16])
            .into_iter()
            .collect())
    }

    #[test]
    fn every_refusal() {
        let k = Keypair::from_seed(&[1; 32]);
        let known = |h: &Hotkey| *h == Keypair::from_seed(&[1; 32]).hotkey();
        let mut c = NonceCache::new(10_000);
        let now = 1_000_000;
        let me = me();
        let h = signed(&k, "/v1/x?y=1", b"", now, 1);
        assert_eq!(
            verify(&h, &me, "GET", "/v1/x?y=1", b"", now, known, &mut c),
            Ok(k.hotkey())
        );
        assert_eq!(
            verify(&h, &me, "GET", "/v1/x?y=1", b"", now, known, &mut c),
            Err(AuthError::Replayed)
        );
        // the query is covered by the signature, and so are the method and body
        let h = signed(&k, "/v1/x?y=1", b"", now, 2);
        assert_eq!(
            verify(&h, &me, "GET", "/v1/x?y=2", b"", now, known, &mut c),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&h, &me, "POST", "/v1/x?y=1", b"", now, known, &mut c),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&h, &me, "GET", "/v1/x?y=1", b"x", now, known, &mut c),
            Err(AuthError::BadSignature)
        );
        // window edges: 60 s into the past, 5 s into the future
        let h = signed(&k, "/", b"", now - WINDOW_MS, 3);
        assert!(verify(&h, &me, "GET", "/", b"", now, known, &mut c).is_ok());
        let h = signed(&k, "/", b"", now - WINDOW_MS - 1, 4);
        assert_eq!(
            verify(&h, &me, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::Stale)
        );
        let h = signed(&k, "/", b"", now + FUTURE_SKEW_MS, 5);
        assert!(verify(&h, &me, "GET", "/", b"", now, known, &mut c).is_ok());
        for ahead in [FUTURE_SKEW_MS + 1, 59_000, WINDOW_MS + 1] {
            let h = signed(&k, "/", b"", now + ahead, 6);
            assert_eq!(
                verify(&h, &me, "GET", "/", b"", now, known, &mut c),
                Err(AuthError::Stale),
                "{ahead} ms ahead"
            );
        }
        // unknown hotkey
        let other = Keypair::from_seed(&[2; 32]);
        let h = signed(&other, "/", b"", now, 6);
        assert_eq!(
            verify(&h, &me, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::UnknownHotkey)
        );
        // missing and malformed
        let mut h = signed(&k, "/", b"", now, 7);
        h.0.remove(H_NONCE);
        assert_eq!(
            verify(&h, &me, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::Missing(H_NONCE))
        );
        let mut h = signed(&k, "/", b"", now, 7);
        h.0.insert(H_TIMESTAMP, "soon".into());
        assert_eq!(
            verify(&h, &me, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::Malformed(H_TIMESTAMP))
        );
        assert_eq!(AuthError::Replayed.status(), 409);
        assert_eq!(AuthError::Stale.status(), 401);
        assert_eq!(AuthError::RateLimited.status(), 429);
        assert_eq!(AuthError::KeyFull.status(), 429);
    }

    #[test]
    fn a_request_signed_for_one_node_is_refused_by_another() {
        let k = Keypair::from_seed(&[1; 32]);
        let known = |_: &Hotkey| true;
        let (a, b) = (me(), Keypair::from_seed(&[8; 32]).hotkey());
        let now = 5_000_000;
        let for_a = signed_for(&k, &a, "/v1/evidence", b"", now, 1);
        let mut ca = NonceCache::new(100);
        let mut cb = NonceCache::new(100);
        // B refuses it by the target header...
        assert_eq!(
            verify(&for_a, &b, "GET", "/v1/evidence", b"", now, known, &mut cb),
            Err(AuthError::WrongTarget)
        );
        // ...and, with the header rewritten to name B, by the signature, which covers A
        let mut moved = signed_for(&k, &a, "/v1/evidence", b"", now, 1);
        moved.0.insert(H_TARGET, b.to_ss58());
        assert_eq!(
            verify(&moved, &b, "GET", "/v1/evidence", b"", now, known, &mut cb),
            Err(AuthError::BadSignature)
        );
        assert!(cb.is_empty());
        // A accepts it
        assert_eq!(
            verify(&for_a, &a, "GET", "/v1/evidence", b"", now, known, &mut ca),
            Ok(k.hotkey())
        );
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let k = Hotkey([1; 32]);
        let mut c = NonceCache::with_limits(NonceLimits {
            capacity: 3,
            per_key: 3,
            max_keys: 4,
            rate_per_s: 1_000,
            burst: 1_000,
        });
        let now = 10_000_000;
        for i in 0..3u8 {
            c.insert(&k, &[i; 16], now, now).unwrap();
        }
        assert_eq!(c.insert(&k, &[9; 16], now, now), Err(AuthError::CacheFull));
        // after the window the old entries are gone and there is room again
        let later = now + 2 * WINDOW_MS + 2_000;
        c.insert(&k, &[9; 16], later, later).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.live_of(&k), 1);
        // and a replay of an expired nonce is refused by the timestamp window instead
        assert_eq!(
            c.insert(&k, &[9; 16], later, later),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn one_key_flooding_takes_nothing_from_the_others() {
        let limits = NonceLimits::new(10_000);
        assert_eq!(limits.per_key, 39);
        let mut c = NonceCache::with_limits(limits);
        let (flood, honest) = (Hotkey([1; 32]), Hotkey([2; 32]));
        let now = 50_000_000;
        c.insert(&honest, &[0; 16], now, now).unwrap();
        // the flood gets its burst (capped by its share), then 429, and never evicts anything
        let mut accepted = 0;
        for i in 0..10_000u32 {
            let mut n = [0u8; 16];
            n[..4].copy_from_slice(&i.to_le_bytes());
            match c.insert(&flood, &n, now, now) {
                Ok(()) => accepted += 1,
                Err(e) => assert!(
                    matches!(e, AuthError::KeyFull | AuthError::RateLimited),
                    "{e}"
                ),
            }
        }
        assert_eq!(accepted, limits.per_key);
        assert_eq!(c.admit(&flood, now), Err(AuthError::KeyFull));
        // the honest key's nonce is still there (a replay is still refused) and it is served
        assert_eq!(
            c.insert(&honest, &[0; 16], now, now),
            Err(AuthError::Replayed)
        );
        assert_eq!(c.admit(&honest, now), Ok(()));
        c.insert(&honest, &[1; 16], now, now).unwrap();
        assert_eq!(c.live_of(&honest), 2);
    }

    #[test]
    fn the_rate_limit_holds_even_with_fast_expiring_timestamps() {
        let limits = NonceLimits {
            capacity: 1_000_000,
            per_key: 1_000_000,
            max_keys: 16,
            rate_per_s: 10,
            burst: 20,
        };
        let mut c = NonceCache::with_limits(limits);
        let k = Hotkey([3; 32]);
        let mut now = 100_000_000;
        let mut accepted = 0u64;
        // 100 requests a second for 10 s, each stamped 59 s in the past so its nonce expires
        // at once: the bucket is kept, so the rate still holds
        for i in 0..1_000u32 {
            let mut n = [0u8; 16];
            n[..4].copy_from_slice(&i.to_le_bytes());
            if c.insert(&k, &n, now - 59_000, now).is_ok() {
                accepted += 1;
            }
            now += 10;
        }
        assert!(accepted <= 20 + 10 * 10 + 1, "{accepted}");
        assert!(accepted >= 100, "{accepted}");
    }

    #[test]
    fn keys_are_bounded_and_idle_ones_reclaimed() {
        let mut c = NonceCache::with_limits(NonceLimits {
            capacity: 1_000,
            per_key: 100,
            max_keys: 2,
            rate_per_s: 10,
            burst: 10,
        });
        let now = 1_000_000_000;
        c.insert(&Hotkey([1; 32]), &[1; 16], now, now).unwrap();
        c.insert(&Hotkey([2; 32]), &[1; 16], now, now).unwrap();
        assert_eq!(
            c.insert(&Hotkey([3; 32]), &[1; 16], now, now),
            Err(AuthError::CacheFull)
        );
        // once their nonces expired and their buckets refilled, the slots are reused
        let later = now + 2 * WINDOW_MS + 2_000;
        c.insert(&Hotkey([3; 32]), &[1; 16], later, later).unwrap();
        assert!(c.keys() <= 2);
    }
}
