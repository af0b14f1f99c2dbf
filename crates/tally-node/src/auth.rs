//! Signed HTTP requests.
//!
//! A request carries four headers: `x-tally-hotkey` (SS58), `x-tally-timestamp` (unix ms),
//! `x-tally-nonce` (32 hex digits) and `x-tally-signature` (128 hex digits), the sr25519
//! signature over `SCALE("tally/http-request/v1") ‖ SHA-256(SCALE((method, path with query,
//! SHA-256(body), timestamp, nonce)))`.
//!
//! [`verify`] is pure (time is an argument) and refuses, in order: missing or malformed headers,
//! a timestamp outside ±60 s (`401 stale timestamp`), a hotkey the node does not know
//! (`401 unknown hotkey`), a bad signature (`401 bad signature`), and a nonce already seen
//! within the window (`409 replayed nonce`). The [`NonceCache`] is bounded: entries live only as
//! long as their timestamp could still pass the window, and when it holds `capacity` live
//! entries new requests get `503` rather than evicting live nonces (which would allow replays).

use parity_scale_codec::Encode;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use tally_core::codec::signing_payload;
use tally_core::{sha256, Hotkey, Keypair, Signature};
use thiserror::Error;

/// The acceptance window either side of `now`.
pub const WINDOW_MS: u64 = 60_000;
/// Header names.
pub const H_HOTKEY: &str = "x-tally-hotkey";
/// Header names.
pub const H_TIMESTAMP: &str = "x-tally-timestamp";
/// Header names.
pub const H_NONCE: &str = "x-tally-nonce";
/// Header names.
pub const H_SIGNATURE: &str = "x-tally-signature";
const TAG: &[u8] = b"tally/http-request/v1";

/// Why a request is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// A header is missing.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// A header does not parse.
    #[error("malformed header {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the window.
    #[error("stale timestamp: outside ±60 s of the server's clock")]
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
    /// The nonce cache is full of live entries.
    #[error("nonce cache full: retry shortly")]
    CacheFull,
}

impl AuthError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Replayed => 409,
            AuthError::CacheFull => 503,
            _ => 401,
        }
    }
}

/// The bytes a request signature covers.
pub fn request_payload(
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp_ms: u64,
    nonce: &[u8; 16],
) -> Vec<u8> {
    let inner = (
        method.as_bytes(),
        path_and_query.as_bytes(),
        sha256(body),
        timestamp_ms,
        nonce,
    )
        .encode();
    signing_payload(TAG, &inner)
}

/// The four headers for a request signed by `key`.
pub fn sign_request(
    key: &Keypair,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp_ms: u64,
    nonce: [u8; 16],
) -> [(&'static str, String); 4] {
    let sig = key.sign(&request_payload(
        method,
        path_and_query,
        body,
        timestamp_ms,
        &nonce,
    ));
    [
        (H_HOTKEY, key.hotkey().to_ss58()),
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

/// Recently seen `(hotkey, nonce)` pairs, bounded.
pub struct NonceCache {
    hasher: std::collections::hash_map::RandomState,
    seen: HashSet<u64>,
    /// `(timestamp second, ids)` in arrival order of seconds, for expiry.
    buckets: VecDeque<(u64, Vec<u64>)>,
    capacity: usize,
}

impl NonceCache {
    /// A cache holding at most `capacity` live entries.
    pub fn new(capacity: usize) -> Self {
        NonceCache {
            hasher: Default::default(),
            seen: HashSet::new(),
            buckets: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn expire(&mut self, now_ms: u64) {
        // an entry can be dropped once its timestamp is out of the window for good
        let horizon = now_ms.saturating_sub(WINDOW_MS) / 1000;
        while let Some((sec, _)) = self.buckets.front() {
            if *sec + 1 >= horizon {
                break;
            }
            if let Some((_, ids)) = self.buckets.pop_front() {
                for id in ids {
                    self.seen.remove(&id);
                }
            }
        }
        if self.seen.capacity() > 4 * self.seen.len().max(1024) {
            self.seen.shrink_to_fit();
        }
    }

    /// Records `(hotkey, nonce)` seen with `timestamp_ms`; refuses a replay or a full cache.
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
        if self.seen.len() >= self.capacity {
            return Err(AuthError::CacheFull);
        }
        self.seen.insert(id);
        let sec = timestamp_ms / 1000;
        match self.buckets.iter_mut().rev().find(|(s, _)| *s == sec) {
            Some((_, ids)) => ids.push(id),
            None => {
                // keep buckets ordered by second; timestamps arrive roughly in order
                let pos = self
                    .buckets
                    .iter()
                    .rposition(|(s, _)| *s < sec)
                    .map(|p| p + 1)
                    .unwrap_or(0);
                self.buckets.insert(pos, (sec, vec![id]));
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

/// Verifies a signed request; returns the caller's hotkey.
pub fn verify(
    headers: &impl HeaderSource,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_ms: u64,
    known: impl Fn(&Hotkey) -> bool,
    cache: &mut NonceCache,
) -> Result<Hotkey, AuthError> {
    let a = authenticate(headers, method, path_and_query, body, now_ms, known)?;
    cache.insert(&a.hotkey, &a.nonce, a.timestamp_ms, now_ms)?;
    Ok(a.hotkey)
}

/// A request whose headers, window, hotkey and signature checked out; its nonce still has to
/// be recorded ([`NonceCache::insert`]) before it is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The caller.
    pub hotkey: Hotkey,
    /// The request's nonce.
    pub nonce: [u8; 16],
    /// The request's timestamp.
    pub timestamp_ms: u64,
}

/// Every check of [`verify`] but the nonce cache: callers that share one cache between
/// threads check the signature (the expensive part) without holding the cache's lock.
pub fn authenticate(
    headers: &impl HeaderSource,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_ms: u64,
    known: impl Fn(&Hotkey) -> bool,
) -> Result<Authenticated, AuthError> {
    let get = |n: &'static str| headers.header(n).ok_or(AuthError::Missing(n));
    let hotkey: Hotkey = get(H_HOTKEY)?
        .parse()
        .map_err(|_| AuthError::Malformed(H_HOTKEY))?;
    let ts: u64 = get(H_TIMESTAMP)?
        .parse()
        .map_err(|_| AuthError::Malformed(H_TIMESTAMP))?;
    let nonce: [u8; 16] = tally_core::keys::parse_hex_array(get(H_NONCE)?, "nonce")
        .map_err(|_| AuthError::Malformed(H_NONCE))?;
    let sig =
        Signature::from_hex(get(H_SIGNATURE)?).map_err(|_| AuthError::Malformed(H_SIGNATURE))?;
    if ts.abs_diff(now_ms) > WINDOW_MS {
        return Err(AuthError::Stale);
    }
    if !known(&hotkey) {
        return Err(AuthError::UnknownHotkey);
    }
    if !hotkey.verify(
        &request_payload(method, path_and_query, body, ts, &nonce),
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

    fn signed(key: &Keypair, path: &str, body: &[u8], ts: u64, nonce: u8) -> H {
        H(sign_request(key, "GET", path, body, ts, [nonce; 16])
            .into_iter()
            .collect())
    }

    #[test]
    fn every_refusal() {
        let k = Keypair::from_seed(&[1; 32]);
        let known = |h: &Hotkey| *h == Keypair::from_seed(&[1; 32]).hotkey();
        let mut c = NonceCache::new(10);
        let now = 1_000_000;
        let h = signed(&k, "/v1/x?y=1", b"", now, 1);
        assert_eq!(
            verify(&h, "GET", "/v1/x?y=1", b"", now, known, &mut c),
            Ok(k.hotkey())
        );
        assert_eq!(
            verify(&h, "GET", "/v1/x?y=1", b"", now, known, &mut c),
            Err(AuthError::Replayed)
        );
        // the query is covered by the signature, and so are the method and body
        let h = signed(&k, "/v1/x?y=1", b"", now, 2);
        assert_eq!(
            verify(&h, "GET", "/v1/x?y=2", b"", now, known, &mut c),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&h, "POST", "/v1/x?y=1", b"", now, known, &mut c),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&h, "GET", "/v1/x?y=1", b"x", now, known, &mut c),
            Err(AuthError::BadSignature)
        );
        // window edges
        let h = signed(&k, "/", b"", now - WINDOW_MS, 3);
        assert!(verify(&h, "GET", "/", b"", now, known, &mut c).is_ok());
        let h = signed(&k, "/", b"", now - WINDOW_MS - 1, 4);
        assert_eq!(
            verify(&h, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::Stale)
        );
        let h = signed(&k, "/", b"", now + WINDOW_MS + 1, 5);
        assert_eq!(
            verify(&h, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::Stale)
        );
        // unknown hotkey
        let other = Keypair::from_seed(&[2; 32]);
        let h = signed(&other, "/", b"", now, 6);
        assert_eq!(
            verify(&h, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::UnknownHotkey)
        );
        // missing and malformed
        let mut h = signed(&k, "/", b"", now, 7);
        h.0.remove(H_NONCE);
        assert_eq!(
            verify(&h, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::Missing(H_NONCE))
        );
        let mut h = signed(&k, "/", b"", now, 7);
        h.0.insert(H_TIMESTAMP, "soon".into());
        assert_eq!(
            verify(&h, "GET", "/", b"", now, known, &mut c),
            Err(AuthError::Malformed(H_TIMESTAMP))
        );
        assert_eq!(AuthError::Replayed.status(), 409);
        assert_eq!(AuthError::Stale.status(), 401);
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let k = Hotkey([1; 32]);
        let mut c = NonceCache::new(3);
        let now = 10_000_000;
        for i in 0..3u8 {
            c.insert(&k, &[i; 16], now, now).unwrap();
        }
        assert_eq!(c.insert(&k, &[9; 16], now, now), Err(AuthError::CacheFull));
        // after the window the old entries are gone and there is room again
        let later = now + 2 * WINDOW_MS + 2_000;
        c.insert(&k, &[9; 16], later, later).unwrap();
        assert_eq!(c.len(), 1);
        // and a replay of an expired nonce is refused by the timestamp window instead
        assert_eq!(
            c.insert(&k, &[9; 16], later, later),
            Err(AuthError::Replayed)
        );
    }
}
