//! Signed HTTP calls to other nodes (blocking, with a timeout; call from `spawn_blocking`).

use crate::auth::{fresh_nonce, sign_request};
use std::time::Duration;
use tally_core::Keypair;

/// Largest response read from a peer.
pub const MAX_RESPONSE: u64 = 8 * 1024 * 1024;

/// A client that signs every request with the node's hotkey.
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
            .build()
            .into();
        PeerClient { agent, key, now_ms }
    }

    /// `POST http://{addr}{path}` with `body`, signed; returns the status and body.
    pub fn post(&self, addr: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let url = format!("http://{addr}{path}");
        let mut req = self.agent.post(&url);
        for (k, v) in sign_request(
            &self.key,
            "POST",
            path,
            body,
            (self.now_ms)(),
            fresh_nonce(),
        ) {
            req = req.header(k, v);
        }
        finish(&url, req.send(body))
    }

    /// `GET http://{addr}{path}`, signed; returns the status and body.
    pub fn get(&self, addr: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
        let url = format!("http://{addr}{path}");
        let mut req = self.agent.get(&url);
        for (k, v) in sign_request(&self.key, "GET", path, b"", (self.now_ms)(), fresh_nonce()) {
            req = req.header(k, v);
        }
        finish(&url, req.call())
    }
}

/// The status and (bounded) body of a response.
fn finish(
    url: &str,
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, Vec<u8>), String> {
    let mut resp = r.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(|e| format!("{url}: {e}"))?;
    Ok((status, body))
}
