//! [`HttpChain`]: the [`Chain`] trait against a chain served by [`crate::server`].
//!
//! Blocking (ureq) with a timeout on every call; errors raised by the chain come back as the
//! same [`ChainError`], transport failures as [`ChainError::Transport`] naming the URL.

use crate::types::*;
use crate::Chain;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tally_core::Hotkey;

/// Largest response body read.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// A chain reached over HTTP.
pub struct HttpChain {
    base: String,
    agent: ureq::Agent,
}

impl HttpChain {
    /// A client for the chain at `base` (e.g. `http://127.0.0.1:9944`), with `timeout` per call.
    pub fn new(base: &str, timeout: Duration) -> HttpChain {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        HttpChain {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ChainError> {
        let mut resp = r.map_err(|e| ChainError::Transport(format!("{url}: {e}")))?;
        let ok = resp.status().is_success();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| ChainError::Transport(format!("{url}: {e}")))?;
        if ok {
            serde_json::from_slice(&body)
                .map_err(|e| ChainError::Transport(format!("{url}: bad response: {e}")))
        } else {
            Err(
                serde_json::from_slice::<ChainError>(&body).unwrap_or_else(|_| {
                    ChainError::Transport(format!(
                        "{url}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ))
                }),
            )
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ChainError> {
        let url = format!("{}{path}", self.base);
        self.decode(&url, self.agent.get(&url).call())
    }
}

impl Chain for HttpChain {
    fn head(&self) -> Result<BlockInfo, ChainError> {
        self.get("/chain/v1/head")
    }
    fn block(&self, number: u64) -> Result<Option<BlockInfo>, ChainError> {
        self.get(&format!("/chain/v1/blocks/{number}"))
    }
    fn params(&self, netuid: u16) -> Result<SubnetParams, ChainError> {
        self.get(&format!("/chain/v1/subnets/{netuid}/params"))
    }
    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        self.get(&format!("/chain/v1/subnets/{netuid}/metagraph"))
    }
    fn nonce(&self, hotkey: &Hotkey) -> Result<u64, ChainError> {
        self.get(&format!("/chain/v1/nonces/{hotkey}"))
    }
    fn submit(&self, extrinsic: &[u8]) -> Result<u64, ChainError> {
        let url = format!("{}/chain/v1/submit", self.base);
        let r = self
            .agent
            .post(&url)
            .header("content-type", "application/octet-stream")
            .send(extrinsic);
        self.decode(&url, r)
    }
    fn commitments(&self, netuid: u16, hotkey: &Hotkey) -> Result<Vec<Commitment>, ChainError> {
        self.get(&format!("/chain/v1/subnets/{netuid}/commitments/{hotkey}"))
    }
    fn commitments_in(
        &self,
        netuid: u16,
        from: u64,
        to: u64,
    ) -> Result<Vec<(Hotkey, Commitment)>, ChainError> {
        self.get(&format!(
            "/chain/v1/subnets/{netuid}/commitments?from={from}&to={to}"
        ))
    }
    fn weights(&self, netuid: u16) -> Result<Vec<WeightsSet>, ChainError> {
        self.get(&format!("/chain/v1/subnets/{netuid}/weights"))
    }
    fn weights_history(&self, netuid: u16, hotkey: &Hotkey) -> Result<Vec<WeightsSet>, ChainError> {
        self.get(&format!("/chain/v1/subnets/{netuid}/weights/{hotkey}"))
    }
    fn winner(&self, netuid: u16) -> Result<Option<u16>, ChainError> {
        self.get(&format!("/chain/v1/subnets/{netuid}/winner"))
    }
    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError> {
        self.get(&format!("/chain/v1/subnets/{netuid}/metagraph?at={block}"))
    }
    fn winner_at(&self, netuid: u16, block: u64) -> Result<Option<u16>, ChainError> {
        self.get(&format!("/chain/v1/subnets/{netuid}/winner?at={block}"))
    }
}
