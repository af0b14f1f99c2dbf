//! Signed extrinsics: what a hotkey asks the chain to do.
//!
//! An [`ExtrinsicBody`] `{netuid, signer, nonce, call}` is signed by the signer over
//! `SCALE("tally/extrinsic/v1") ‖ SHA-256(body)`. The chain accepts it only with the signer's
//! next nonce, so a captured extrinsic cannot be replayed.
//!
//! An axon (the HTTP address a neuron serves) is an IP address and a port and nothing else:
//! [`parse_axon`] is the one rule, applied when a register or serve call is built, decoded or
//! signed (so the chain refuses any other axon), and by every client before it connects. An
//! empty axon means "not serving".

use crate::types::ChainError;
use parity_scale_codec::{Decode, Encode};
use std::net::{IpAddr, SocketAddr};
use tally_core::signed::{Signable, Signed};
use tally_core::{BoundedBytes, BoundedVec, CoreError, Hotkey, Keypair};
use thiserror::Error;

/// Most weights in one call.
pub const MAX_WEIGHTS: usize = 4_096;
/// Largest commitment a call can carry (the subnet's limit is usually lower).
pub const MAX_COMMITMENT: usize = 1_024;

/// What the signer asks for.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Call {
    /// Register the signer on the subnet (no stake, no permit), serving `axon` and `peer`.
    #[codec(index = 0)]
    Register {
        axon: BoundedBytes<128>,
        peer: BoundedBytes<256>,
    },
    /// Update the signer's advertised addresses.
    #[codec(index = 1)]
    Serve {
        axon: BoundedBytes<128>,
        peer: BoundedBytes<256>,
    },
    /// Post a commitment.
    #[codec(index = 2)]
    Commit { data: BoundedBytes<MAX_COMMITMENT> },
    /// Set weights `(uid, weight)`.
    #[codec(index = 3)]
    SetWeights {
        weights: BoundedVec<(u16, u16), MAX_WEIGHTS>,
    },
}

/// The signed part of an extrinsic.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ExtrinsicBody {
    /// The subnet.
    pub netuid: u16,
    /// The signing hotkey.
    pub signer: Hotkey,
    /// The signer's next nonce.
    pub nonce: u64,
    /// The call.
    pub call: Call,
}

impl Signable for ExtrinsicBody {
    const TAG: &'static [u8] = b"tally/extrinsic/v1";
    const MAX_BODY_BYTES: usize = 2 + 32 + 8 + 1 + 5 + MAX_WEIGHTS * 4 + 512;
    const WHAT: &'static str = "extrinsic";
    fn signer(&self) -> &Hotkey {
        &self.signer
    }
    fn check(&self) -> Result<(), CoreError> {
        match &self.call {
            Call::Register { axon, .. } | Call::Serve { axon, .. } => check_axon_bytes(axon)
                .map_err(|e| CoreError::Invalid {
                    what: "extrinsic",
                    reason: e.to_string(),
                }),
            _ => Ok(()),
        }
    }
}

/// Why an advertised axon is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("axon {axon:?} refused: {why} (an axon is IP:port, e.g. 203.0.113.7:8091 or [2001:db8::1]:8091)")]
pub struct AxonError {
    /// The text refused (lossy UTF-8, at most 128 bytes as the call bounds it).
    pub axon: String,
    /// The rule it broke.
    pub why: &'static str,
}

/// Parses an axon strictly: an IPv4 or IPv6 address and a port, in the canonical form Rust
/// prints (`203.0.113.7:8091`, `[2001:db8::1]:8091`), with a non-zero port and an address one
/// can connect to (not unspecified, multicast or broadcast, no IPv6 scope). Host names, paths,
/// user info, schemes, queries and anything else are refused.
pub fn parse_axon(axon: &str) -> Result<SocketAddr, AxonError> {
    let refuse = |why| AxonError {
        axon: axon.chars().take(128).collect(),
        why,
    };
    let addr: SocketAddr = axon
        .parse()
        .map_err(|_| refuse("not an IP address and a port"))?;
    if addr.to_string() != axon {
        return Err(refuse("not in canonical form"));
    }
    if addr.port() == 0 {
        return Err(refuse("port 0"));
    }
    if let SocketAddr::V6(v6) = addr {
        if v6.scope_id() != 0 || v6.flowinfo() != 0 {
            return Err(refuse("an IPv6 scope or flow label"));
        }
    }
    let ip = addr.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err(refuse("an address no peer can connect to"));
    }
    Ok(addr)
}

/// The chain's rule for a call's axon bytes: empty (not serving) or a valid [`parse_axon`].
pub fn check_axon_bytes(axon: &[u8]) -> Result<(), AxonError> {
    if axon.is_empty() {
        return Ok(());
    }
    let text = std::str::from_utf8(axon).map_err(|_| AxonError {
        axon: String::from_utf8_lossy(axon).into_owned(),
        why: "not UTF-8",
    })?;
    parse_axon(text).map(|_| ())
}

/// Signs `call` as `key` with `nonce`; returns the wire bytes.
pub fn sign(key: &Keypair, netuid: u16, nonce: u64, call: Call) -> Result<Vec<u8>, ChainError> {
    let body = ExtrinsicBody {
        netuid,
        signer: key.hotkey(),
        nonce,
        call,
    };
    Signed::sign(body, key)
        .map(|s| s.to_bytes())
        .map_err(|e| ChainError::Malformed(e.to_string()))
}

/// Decodes and verifies wire bytes.
pub fn open(bytes: &[u8]) -> Result<ExtrinsicBody, ChainError> {
    let s = Signed::<ExtrinsicBody>::from_bytes(bytes)
        .map_err(|e| ChainError::Malformed(e.to_string()))?;
    s.verify().map_err(|_| ChainError::BadSignature)?;
    Ok(s.body().clone())
}

/// A register call; `axon` is empty or IP:port ([`parse_axon`]).
pub fn register(axon: &str, peer: &str) -> Result<Call, ChainError> {
    check_axon_bytes(axon.as_bytes()).map_err(|e| ChainError::Malformed(e.to_string()))?;
    Ok(Call::Register {
        axon: bytes(axon)?,
        peer: bytes(peer)?,
    })
}

/// A serve call; `axon` is empty or IP:port ([`parse_axon`]).
pub fn serve(axon: &str, peer: &str) -> Result<Call, ChainError> {
    check_axon_bytes(axon.as_bytes()).map_err(|e| ChainError::Malformed(e.to_string()))?;
    Ok(Call::Serve {
        axon: bytes(axon)?,
        peer: bytes(peer)?,
    })
}

/// A commit call.
pub fn commit(data: Vec<u8>) -> Result<Call, ChainError> {
    Ok(Call::Commit {
        data: BoundedBytes::new(data).map_err(|e| ChainError::Malformed(e.to_string()))?,
    })
}

/// A set-weights call.
pub fn set_weights(weights: Vec<(u16, u16)>) -> Result<Call, ChainError> {
    Ok(Call::SetWeights {
        weights: BoundedVec::new(weights).map_err(|e| ChainError::Malformed(e.to_string()))?,
    })
}

fn bytes<const N: usize>(s: &str) -> Result<BoundedBytes<N>, ChainError> {
    BoundedBytes::new(s.as_bytes().to_vec()).map_err(|e| ChainError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axons_are_ip_and_port_only() {
        for ok in [
            "127.0.0.1:8091",
            "203.0.113.7:1",
            "[2001:db8::1]:8091",
            "[::1]:9",
        ] {
            assert_eq!(parse_axon(ok).unwrap().to_string(), ok);
        }
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:0",
            "0.0.0.0:80",
            "[::]:80",
            "255.255.255.255:80",
            "224.0.0.1:80",
            "localhost:80",
            "example.com:80",
            "127.0.0.1:80/evil",
            "127.0.0.1:80/v1/weights?run=1#",
            "user@127.0.0.1:80",
            "evil.example@127.0.0.1:80",
            "127.0.0.1:80@evil.example",
            "http://127.0.0.1:80",
            "127.0.0.1:80?x=1",
            " 127.0.0.1:80",
            "127.0.0.1:80 ",
            "127.0.0.1:080",
            "2001:db8::1:80",
            "[2001:DB8::1]:80",
            "[fe80::1%2]:80",
            "127.1:80",
        ] {
            assert!(parse_axon(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
