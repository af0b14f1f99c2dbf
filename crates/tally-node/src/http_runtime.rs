//! The `http` runtime: a miner-hosted endpoint, called with signed requests.
//!
//! The validator POSTs the task input to `/v1/run` at the miner's endpoint (an IP address and a
//! port, parsed strictly) with the signed-request headers of [`crate::auth`], signed for the
//! miner's hotkey (so the miner can check who asks, refuse replays, and refuse a request meant
//! for another miner), waits at most the timeout, and records the latency. A refusal, a timeout or an oversized answer becomes a
//! failure with its reason, scored 0 like any other. There is no fuel here: the family scores
//! the answer's accuracy, and the latency is reported.

use crate::peer::{PeerClient, PeerError, PeerPath};
use std::time::Instant;
use tally_core::Hotkey;
use tally_exec::runtime::{Failure, RunResult};

/// Calls miner-hosted endpoints.
pub struct HttpRuntime {
    peers: PeerClient,
    max_output: usize,
}

impl HttpRuntime {
    /// A runtime signing with `peers`' key, accepting answers up to `max_output` bytes.
    pub fn new(peers: PeerClient, max_output: usize) -> Self {
        HttpRuntime { peers, max_output }
    }

    /// Runs one task on `miner`'s endpoint (`IP:port`).
    pub fn run(&self, miner: &Hotkey, endpoint: &str, input: &[u8]) -> RunResult {
        let start = Instant::now();
        let output = match self
            .peers
            .post(miner, endpoint, &PeerPath::miner_run(), input)
        {
            Err(PeerError::Timeout { .. }) => Err(Failure::Timeout),
            Err(e) => Err(Failure::Trap(format!("endpoint unreachable: {e}"))),
            Ok((200, body)) if body.len() <= self.max_output => Ok(body),
            Ok((200, body)) => Err(Failure::MalformedOutput(format!(
                "{} bytes is over the {}-byte cap",
                body.len(),
                self.max_output
            ))),
            Ok((status, _)) => Err(Failure::Trap(format!("endpoint answered HTTP {status}"))),
        };
        RunResult {
            output,
            fuel: 0,
            wall: start.elapsed(),
            tool_calls: Vec::new(),
        }
    }
}
