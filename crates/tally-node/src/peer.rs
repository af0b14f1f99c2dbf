//! Signed HTTP calls to other nodes (blocking, with a timeout; call from `spawn_blocking`).
//!
//! Every call names its target twice over: the hotkey of the node it is meant for, which is
//! signed into the request ([`crate::auth`]) so no other node accepts it, and that node's axon,
//! parsed strictly as an IP address and a port (`tally_chain::extrinsic::parse_axon`: no host
//! names, paths, user info or anything else). The path comes only from the fixed templates of
//! [`PeerPath`], whose parameters are numbers or hex. So a peer's advertised axon can choose
//! where a request goes, never what it asks for. Redirects are not followed and no proxy is
//! used.

use crate::auth::{fresh_nonce, sign_request};
use std::net::SocketAddr;
use std::time::Duration;
use tally_chain::extrinsic::{parse_axon, AxonError};
use tally_core::{Hotkey, Keypair};
use thiserror::Error;

/// Largest response read from a peer.
pub const MAX_RESPONSE: u64 = 8 * 1024 * 1024;

/// Why a call to a peer failed.
#[derive(Debug, Error)]
pub enum PeerError {
    /// The axon is not an IP address and a port.
    #[error(transparent)]
    Axon(#[from] AxonError),
    /// A path parameter that is not what its template allows.
    #[error("path parameter {0:?} refused: only hex digits are allowed")]
    Param(String),
    /// No answer within the client's timeout.
    #[error("{addr}{path}: timed out")]
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
    },
    /// The connection or the response failed.
    #[error("{addr}{path}: {reason}")]
    Transport {
        /// The peer.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
        /// What failed.
        reason: String,
    },
}

/// A request path built from one of the fixed templates of the Tally APIs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPath(String);

impl PeerPath {
    /// `/v1/consensus/scores/{run}`: a validator's signed report.
    pub fn scores(run: u64) -> Self {
        PeerPath(format!("/v1/consensus/scores/{run}"))
    }
    /// `/v1/consensus/divergence`: a validator's signed divergence window.
    pub fn divergence() -> Self {
        PeerPath("/v1/consensus/divergence".into())
    }
    /// `/v1/runs/{run}`: a validator's outcome of a run.
    pub fn outcome(run: u64) -> Self {
        PeerPath(format!("/v1/runs/{run}"))
    }
    /// `/v1/runs/{run}/held`: the digests of the other validators' reports a validator holds
    /// for a run.
    pub fn held(run: u64) -> Self {
        PeerPath(format!("/v1/runs/{run}/held"))
    }
    /// `/v1/runs/{run}/held/{digest}`: one held report, by the hex of its SHA-256.
    pub fn held_report(run: u64, digest: &tally_core::hash::Hash32) -> Self {
        PeerPath(format!("/v1/runs/{run}/held/{}", hex::encode(digest)))
    }
    /// `/v1/evidence`: a validator's equivocation proofs.
    pub fn evidence() -> Self {
        PeerPath("/v1/evidence".into())
    }
    /// `/healthz`.
    pub fn healthz() -> Self {
        PeerPath("/healthz".into())
    }
    /// `/v1/weights?run={run}`: the owner's pick.
    pub fn owner_pick(run: u64) -> Self {
        PeerPath(format!("/v1/weights?run={run}"))
    }
    /// `/v1/runs/{run}/roster`: the owner's signed roster.
    pub fn roster(run: u64) -> Self {
        PeerPath(format!("/v1/runs/{run}/roster"))
    }
    /// `/v1/submissions/{id}/archive`: an archive from the owner; `id` is 1 to 64 hex digits.
    pub fn archive(id: &str) -> Result<Self, PeerError> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PeerError::Param(id.chars().take(80).collect()));
        }
        Ok(PeerPath(format!("/v1/submissions/{id}/archive")))
    }
    /// `/v1/submissions`: a miner's upload to the owner.
    pub fn submissions() -> Self {
        PeerPath("/v1/submissions".into())
    }
    /// `/v1/run`: a task for a miner-hosted endpoint.
    pub fn miner_run() -> Self {
        PeerPath("/v1/run".into())
    }
    /// The path (with its query).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PeerPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client that signs every request with the node's hotkey, for one named target.
#[derive(Clone)]
pub struct PeerClient {
    agent: ureq::Agent,
    key: Keypair,
    now_ms: std::sync::Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl PeerClient {
    /// A client with `timeout` per request.
    pub fn new(
        key: Keypair,
        timeout: Duration,
        now_ms: std::sync::Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build()
            .into();
        PeerClient { agent, key, now_ms }
    }

    /// The hotkey requests are signed with.
    pub fn hotkey(&self) -> Hotkey {
        self.key.hotkey()
    }

    /// `POST` `body` to `path` at `axon`, signed for `to`; returns the status and body.
    pub fn post(
        &self,
        to: &Hotkey,
        axon: &str,
        path: &PeerPath,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), PeerError> {
        let addr = parse_axon(axon)?;
        let url = format!("http://{addr}{path}");
        let mut req = self.agent.post(&url);
        for (k, v) in sign_request(
            &self.key,
            to,
            "POST",
            path.as_str(),
            body,
            (self.now_ms)(),
            fresh_nonce(),
        ) {
            req = req.header(k, v);
        }
        finish(addr, path, req.send(body))
    }

    /// `GET` `path` at `axon`, signed for `to`; returns the status and body.
    pub fn get(
        &self,
        to: &Hotkey,
        axon: &str,
        path: &PeerPath,
    ) -> Result<(u16, Vec<u8>), PeerError> {
        let addr = parse_axon(axon)?;
        let url = format!("http://{addr}{path}");
        let mut req = self.agent.get(&url);
        for (k, v) in sign_request(
            &self.key,
            to,
            "GET",
            path.as_str(),
            b"",
            (self.now_ms)(),
            fresh_nonce(),
        ) {
            req = req.header(k, v);
        }
        finish(addr, path, req.call())
    }
}

/// The status and (bounded) body of a response.
fn finish(
    addr: SocketAddr,
    path: &PeerPath,
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, Vec<u8>), PeerError> {
    let fail = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => PeerError::Timeout {
            addr,
            path: path.to_string(),
        },
        e => PeerError::Transport {
            addr,
            path: path.to_string(),
            reason: e.to_string(),
        },
    };
    let mut resp = r.map_err(fail)?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(fail)?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;

    #[test]
    fn paths_come_from_fixed_templates() {
        assert_eq!(PeerPath::scores(7).as_str(), "/v1/consensus/scores/7");
        assert_eq!(PeerPath::owner_pick(3).as_str(), "/v1/weights?run=3");
        assert_eq!(
            PeerPath::archive("00ff").unwrap().as_str(),
            "/v1/submissions/00ff/archive"
        );
        for bad in ["", "../x", "ab/cd", "ab?c=1", "ab#", "zz", &"a".repeat(65)] {
            assert!(PeerPath::archive(bad).is_err(), "{bad:?}");
        }
    }

    /// A listener that records whether anything connected.
    fn listener() -> (std::net::TcpListener, SocketAddr) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    #[test]
    fn axons_with_anything_but_ip_and_port_are_refused_before_connecting() {
        let (l, addr) = listener();
        let c = PeerClient::new(
            Keypair::from_seed(&[1; 32]),
            Duration::from_secs(2),
            Arc::new(|| 1_000),
        );
        let to = Hotkey([2; 32]);
        for axon in [
            format!("{addr}/v1/evidence?"),
            format!("{addr}/admin#"),
            format!("user@{addr}"),
            format!("evil.example@{addr}"),
            format!("{addr}@evil.example"),
            format!("localhost:{}", addr.port()),
            format!("http://{addr}"),
            String::new(),
        ] {
            let err = c.get(&to, &axon, &PeerPath::evidence()).unwrap_err();
            assert!(matches!(err, PeerError::Axon(_)), "{axon}: {err}");
            let err = c.post(&to, &axon, &PeerPath::submissions(), b"x");
            assert!(matches!(err, Err(PeerError::Axon(_))), "{axon}");
        }
        // nothing ever reached the listener
        assert!(l.accept().is_err());
    }

    #[test]
    fn the_request_goes_to_the_template_path_signed_for_the_target() {
        let (l, addr) = listener();
        l.set_nonblocking(false).unwrap();
        let seen = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let key = Keypair::from_seed(&[1; 32]);
        let c = PeerClient::new(key.clone(), Duration::from_secs(5), Arc::new(|| 1_000));
        let to = Hotkey([2; 32]);
        let r = c.get(&to, &addr.to_string(), &PeerPath::scores(9)).unwrap();
        assert_eq!(r, (200, b"ok".to_vec()));
        let head = seen.join().unwrap();
        assert!(
            head.starts_with("GET /v1/consensus/scores/9 HTTP/1.1\r\n"),
            "{head}"
        );
        let header = |n: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{n}: ")).map(str::to_string))
                .unwrap()
        };
        assert_eq!(header(crate::auth::H_TARGET), to.to_ss58());
        let sig = tally_core::Signature::from_hex(&header(crate::auth::H_SIGNATURE)).unwrap();
        let nonce: [u8; 16] =
            tally_core::keys::parse_hex_array(&header(crate::auth::H_NONCE), "nonce").unwrap();
        let signed_for = |t: &Hotkey| {
            crate::auth::request_payload(t, "GET", "/v1/consensus/scores/9", b"", 1_000, &nonce)
        };
        assert!(key.hotkey().verify(&signed_for(&to), &sig));
        assert!(!key.hotkey().verify(&signed_for(&Hotkey([3; 32])), &sig));
    }
}
