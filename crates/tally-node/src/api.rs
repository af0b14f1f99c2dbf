//! The validator's HTTP API (axum).
//!
//! | route | auth | answers |
//! | --- | --- | --- |
//! | `GET /v1/consensus/scores/{run}` | signed | this node's signed report for `run`, only once the run's reveal window has opened (`425 Too Early` before) |
//! | `GET /v1/consensus/divergence` | signed | the divergence window, signed by the node's hotkey |
//! | `GET /v1/runs/{run}` | signed | the run's outcome: consensus, winner, accepted and rejected reports with reasons |
//! | `GET /v1/evidence` | signed | equivocation proofs, each self-contained |
//! | `GET /healthz`, `/metrics`, `/openapi.json` | open | liveness, Prometheus text, the API description |
//!
//! Signed requests follow [`crate::auth`]: `401` naming the reason (missing/malformed header,
//! a request signed for another node, stale timestamp, unknown hotkey, bad signature), `409` for
//! a replayed nonce, `429` (with `Retry-After`) for a hotkey over its request rate or its share
//! of the nonce cache, `413` for a body over 64 KiB, `503` when the bounded nonce cache is full.
//!
//! [`serve`] runs on `tally_chain::http_server`: connection caps overall and per IP, header-read
//! and request timeouts, and back-off instead of failure when file descriptors run out.

use crate::auth::{self, AuthError, HeaderSource, NonceCache, NonceLimits};
use crate::store::NodeStore;
use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tally_chain::http_server;
use tally_consensus::divergence::DivergenceTracker;
use tally_consensus::equivocation::Equivocation;
use tally_core::codec::signing_payload;
use tally_core::{Hotkey, Keypair, ScoreReport};
use tally_protocol::{ChainTime, EpochClock, PhaseWindows};

/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Runs whose report the API serves.
pub const MAX_SERVED: usize = 64;
/// Domain tag of the signed divergence view.
pub const DIVERGENCE_TAG: &[u8] = b"tally/divergence/v1";

/// What the node knows about time, for the `425` rule.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Epoch clock.
    pub clock: EpochClock,
    /// Phase windows.
    pub windows: PhaseWindows,
    /// Chain time snapshot.
    pub time: ChainTime,
}

/// Counters for `/metrics` (label sets are fixed, so the map stays small).
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
    /// Runs aggregated.
    pub runs: AtomicU64,
    /// Quorum misses.
    pub quorum_misses: AtomicU64,
}

impl Metrics {
    /// Adds one to `name{labels}`.
    pub fn inc(&self, name: &str, labels: &str) {
        if let Ok(mut c) = self.counters.lock() {
            if c.len() < 1024 {
                *c.entry(format!("{name}{{{labels}}}")).or_default() += 1;
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# TYPE tally_runs_total counter\n");
        out.push_str(&format!(
            "tally_runs_total {}\n",
            self.runs.load(Ordering::Relaxed)
        ));
        out.push_str("# TYPE tally_quorum_misses_total counter\n");
        out.push_str(&format!(
            "tally_quorum_misses_total {}\n",
            self.quorum_misses.load(Ordering::Relaxed)
        ));
        if let Ok(c) = self.counters.lock() {
            let mut last = "";
            for (k, v) in c.iter() {
                let name = k.split('{').next().unwrap_or(k);
                if name != last {
                    out.push_str(&format!("# TYPE {name} counter\n"));
                    last = name;
                }
                out.push_str(&format!("{k} {v}\n"));
            }
        }
        out
    }
}

/// A rendered score response and the digest of the report it shows.
type Rendered = (tally_core::Hash32, Arc<Vec<u8>>);

/// Shared state of the API.
pub struct ApiState {
    /// The node's database.
    pub store: Arc<NodeStore>,
    /// The node's hotkey (signs the divergence view).
    pub key: Keypair,
    /// Hotkeys allowed to call signed routes (the subnet's registered hotkeys plus extras).
    pub known: RwLock<HashSet<Hotkey>>,
    /// Seen nonces.
    pub nonces: Mutex<NonceCache>,
    /// Time, once the node has seen the chain.
    pub timing: RwLock<Option<Timing>>,
    /// The report served per run, as the validator's machine asked (the last
    /// [`MAX_SERVED`] runs).
    pub served: RwLock<BTreeMap<u64, Vec<u8>>>,
    /// The other validators' reports the machine holds per run (the last [`MAX_SERVED`] runs;
    /// one per eligible validator, as the machine bounds them).
    held: RwLock<BTreeMap<u64, Arc<Held>>>,
    /// Counters.
    pub metrics: Metrics,
    /// Rendered score responses by run, with the digest of the report they show (at most 16).
    rendered: Mutex<BTreeMap<u64, Rendered>>,
    /// Unix milliseconds now.
    pub now_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl ApiState {
    /// State with an empty allow list and a nonce cache of `nonce_capacity` (per-key limits of
    /// [`NonceLimits::new`]).
    pub fn new(
        store: Arc<NodeStore>,
        key: Keypair,
        nonce_capacity: usize,
        now_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Self {
        Self::with_nonce_limits(store, key, NonceLimits::new(nonce_capacity), now_ms)
    }

    /// State with an empty allow list and a nonce cache bounded by `limits`.
    pub fn with_nonce_limits(
        store: Arc<NodeStore>,
        key: Keypair,
        limits: NonceLimits,
        now_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Self {
        ApiState {
            store,
            key,
            known: RwLock::new(HashSet::new()),
            nonces: Mutex::new(NonceCache::with_limits(limits)),
            timing: RwLock::new(None),
            served: RwLock::new(BTreeMap::new()),
            held: RwLock::new(BTreeMap::new()),
            metrics: Metrics::default(),
            rendered: Mutex::new(BTreeMap::new()),
            now_ms,
        }
    }

    /// Serves `wire` as this node's report for `run` from now on.
    pub fn serve(&self, run: u64, wire: Vec<u8>) {
        if let Ok(mut s) = self.served.write() {
            s.insert(run, wire);
            while s.len() > MAX_SERVED {
                s.pop_first();
            }
        }
    }

    /// Serves `reports` (other validators' reports, one each) and `proofs` as what this node
    /// holds for `run`: the proofs and the reports' digests at `GET /v1/runs/{run}/held`, each
    /// report by digest below it.
    pub fn serve_held(
        &self,
        run: u64,
        reports: &[tally_validator::HeldReport],
        proofs: &[Vec<u8>],
    ) {
        let list: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| json!({"validator": r.validator.to_ss58(), "digest": hex::encode(r.digest)}))
            .collect();
        let held = Arc::new(Held {
            list: json!({"run": run, "held": list,
                "evidence": proofs.iter().map(hex::encode).collect::<Vec<_>>()})
            .to_string()
            .into_bytes(),
            wires: reports
                .iter()
                .map(|r| {
                    let body = json!({"run": run, "wire": hex::encode(&r.wire)});
                    (r.digest, body.to_string().into_bytes())
                })
                .collect(),
        });
        if let Ok(mut s) = self.held.write() {
            s.insert(run, held);
            while s.len() > MAX_SERVED {
                s.pop_first();
            }
        }
    }

    /// Whether the reveal window of `run` has opened at the chain head the node last saw (by
    /// the head block, never by a wall-clock estimate, so a report is never served early).
    pub fn reveal_open(&self, run: u64) -> bool {
        let Ok(t) = self.timing.read() else {
            return false;
        };
        let Some(t) = *t else { return false };
        let (start, _) = t.windows.validator_reveal.bounds_mb(&t.clock, run);
        t.time.block as u128 * 1000 >= start
    }
}

struct Headers<'a>(&'a HeaderMap);
impl HeaderSource for Headers<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

fn error(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({"error": reason}))).into_response()
}

async fn authenticate(State(s): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            s.metrics
                .inc("tally_auth_rejections_total", "reason=\"too_large\"");
            return error(StatusCode::PAYLOAD_TOO_LARGE, "request body over 64 KiB");
        }
    };
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    // the signature is checked under the allow list's read lock only (no copy of the set);
    // the nonce cache's lock is taken briefly before it (is this caller over its own limits?)
    // and after it (record the nonce), never while the signature is checked
    let now = (s.now_ms)();
    let me = s.key.hotkey();
    let res = match s.known.read() {
        Ok(known) => auth::authenticate(
            &Headers(&parts.headers),
            &me,
            parts.method.as_str(),
            pq,
            &bytes,
            now,
            |h| known.contains(h),
            |h| match s.nonces.lock() {
                Ok(mut cache) => cache.admit(h, now),
                Err(_) => Err(AuthError::CacheFull),
            },
        ),
        Err(_) => Err(AuthError::UnknownHotkey),
    }
    .and_then(|a| match s.nonces.lock() {
        Ok(mut cache) => cache
            .insert(&a.hotkey, &a.nonce, a.timestamp_ms, now)
            .map(|_| a.hotkey),
        Err(_) => Err(AuthError::CacheFull),
    });
    match res {
        Ok(_) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            s.metrics.inc(
                "tally_auth_rejections_total",
                &format!("reason=\"{}\"", e.reason()),
            );
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let mut r = error(status, &e.to_string());
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
            }
            r
        }
    }
}

async fn held(State(s): State<Arc<ApiState>>, Path(run): Path<u64>) -> Response {
    if !s.reveal_open(run) {
        return error(
            StatusCode::TOO_EARLY,
            "the reveal window of this run has not opened",
        );
    }
    match s.held.read().ok().and_then(|h| h.get(&run).cloned()) {
        Some(h) => ([("content-type", "application/json")], h.list.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no reports held for this run"),
    }
}

async fn held_report(
    State(s): State<Arc<ApiState>>,
    Path((run, digest)): Path<(u64, String)>,
) -> Response {
    if !s.reveal_open(run) {
        return error(
            StatusCode::TOO_EARLY,
            "the reveal window of this run has not opened",
        );
    }
    let Some(d) = hex::decode(&digest)
        .ok()
        .and_then(|d| tally_core::hash::Hash32::try_from(d).ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "the digest must be 64 hex characters (SHA-256)",
        );
    };
    let body = s
        .held
        .read()
        .ok()
        .and_then(|h| h.get(&run)?.wires.get(&d).cloned());
    match body {
        Some(b) => ([("content-type", "application/json")], b).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no report with this digest held for this run",
        ),
    }
}

/// What a node holds for one run: the rendered list of digests, and each report's rendered body
/// by digest.
struct Held {
    list: Vec<u8>,
    wires: BTreeMap<tally_core::hash::Hash32, Vec<u8>>,
}

async fn scores(State(s): State<Arc<ApiState>>, Path(run): Path<u64>) -> Response {
    if !s.reveal_open(run) {
        return error(
            StatusCode::TOO_EARLY,
            "the reveal window of this run has not opened",
        );
    }
    let wire = s.served.read().ok().and_then(|o| o.get(&run).cloned());
    let Some(wire) = wire else {
        return error(StatusCode::NOT_FOUND, "no report for this run");
    };
    // the body for a given report never changes: render it once
    let digest = tally_core::sha256(&wire);
    if let Some(body) = s.rendered.lock().ok().and_then(|r| {
        r.get(&run)
            .filter(|(d, _)| *d == digest)
            .map(|(_, b)| b.clone())
    }) {
        return (
            [("content-type", "application/json")],
            body.as_ref().clone(),
        )
            .into_response();
    }
    let view = ScoreReport::from_bytes(&wire).ok().map(|r| {
        let scores: BTreeMap<String, f64> = r
            .body()
            .scores
            .iter()
            .map(|(k, v)| (k.to_ss58(), v.to_f64()))
            .collect();
        json!({"validator": r.body().validator.to_ss58(), "family": r.body().family_id.as_str(),
               "commitment": hex::encode(r.commitment()), "scores": scores})
    });
    let body = Arc::new(
        json!({"run": run, "wire": hex::encode(&wire), "view": view})
            .to_string()
            .into_bytes(),
    );
    if let Ok(mut r) = s.rendered.lock() {
        r.insert(run, (digest, body.clone()));
        while r.len() > 16 {
            r.pop_first();
        }
    }
    (
        [("content-type", "application/json")],
        body.as_ref().clone(),
    )
        .into_response()
}

async fn divergence(State(s): State<Arc<ApiState>>) -> Response {
    let bytes = match s.store.meta("divergence") {
        Ok(Some(b)) => b,
        Ok(None) => DivergenceTracker::new(100)
            .map(|t| t.to_bytes())
            .unwrap_or_default(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let sig = s.key.sign(&signing_payload(DIVERGENCE_TAG, &bytes));
    let (entries, summary) = match DivergenceTracker::from_bytes(&bytes) {
        Ok(t) => {
            let sm = t.summary();
            let entries: Vec<_> = t.entries().iter().map(|e| json!({"run": e.run, "top1_agree": e.top1_agree,
                "spearman": e.spearman_ppb.map(|x| x as f64 / 1e9), "topk_overlap": e.topk_overlap.to_f64()})).collect();
            (
                entries,
                json!({"runs": sm.runs, "top1_agreement_rate": sm.top1_agreement_rate.to_f64(),
                "mean_spearman": sm.mean_spearman, "mean_topk_overlap": sm.mean_topk_overlap.to_f64()}),
            )
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    Json(json!({"signer": s.key.hotkey().to_ss58(), "window_hex": hex::encode(&bytes), "signature": sig.to_hex(),
                "summary": summary, "entries": entries})).into_response()
}

async fn run_outcome(State(s): State<Arc<ApiState>>, Path(run): Path<u64>) -> Response {
    match s.store.outcome(run) {
        Ok(Some(b)) => match serde_json::from_slice::<serde_json::Value>(&b) {
            Ok(v) => Json(v).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        Ok(None) => error(StatusCode::NOT_FOUND, "no outcome for this run yet"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn evidence(State(s): State<Arc<ApiState>>) -> Response {
    match s.store.evidence() {
        Ok(items) => {
            let v: Vec<_> = items
                .iter()
                .map(|(id, b)| {
                    let e = Equivocation::from_bytes(b).ok();
                    json!({"id": hex::encode(id), "kind": "equivocation",
                       "validator": e.as_ref().map(|e| e.validator().to_ss58()),
                       "run": e.as_ref().map(|e| e.first.body().run), "proof_hex": hex::encode(b)})
                })
                .collect();
            Json(json!({"evidence": v})).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn metrics(State(s): State<Arc<ApiState>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

fn openapi() -> serde_json::Value {
    let signed = json!([{"tallySignature": []}]);
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Tally validator API", "version": "1"},
        "components": {"securitySchemes": {"tallySignature": {"type": "apiKey", "in": "header", "name": auth::H_SIGNATURE,
            "description": "sr25519 over the target node's hotkey, method, path with query, body hash, timestamp and nonce; see x-tally-hotkey, x-tally-target, x-tally-timestamp, x-tally-nonce"}}},
        "paths": {
            "/v1/consensus/scores/{run}": {"get": {"security": signed, "parameters": [{"name": "run", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "the signed report (wire hex) and a decoded view"}, "401": {"description": "authentication failed"}, "404": {"description": "no report"}, "409": {"description": "replayed nonce"}, "425": {"description": "reveal window not open"}, "429": {"description": "this hotkey is over its rate or its share of the nonce cache"}}}},
            "/v1/consensus/divergence": {"get": {"security": signed, "responses": {"200": {"description": "the signed divergence window"}}}},
            "/v1/runs/{run}": {"get": {"security": signed, "parameters": [{"name": "run", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "outcome with accepted and rejected reports"}, "404": {"description": "no outcome yet"}}}},
            "/v1/evidence": {"get": {"security": signed, "responses": {"200": {"description": "equivocation proofs"}}}},
            "/healthz": {"get": {"responses": {"200": {"description": "alive"}}}},
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text format"}}}},
            "/openapi.json": {"get": {"responses": {"200": {"description": "this document"}}}}
        }
    })
}

/// The API's routes over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    let signed = Router::new()
        .route("/v1/consensus/scores/{run}", get(scores))
        .route("/v1/consensus/divergence", get(divergence))
        .route("/v1/runs/{run}", get(run_outcome))
        .route("/v1/runs/{run}/held", get(held))
        .route("/v1/runs/{run}/held/{digest}", get(held_report))
        .route("/v1/evidence", get(evidence))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .merge(signed)
        .with_state(state)
}

/// The API server's limits: `tally_chain::http_server`'s defaults, bodies up to [`MAX_BODY`].
pub fn limits() -> http_server::Limits {
    http_server::Limits::default().with_max_body(MAX_BODY)
}

/// Serves the API on `listener` under [`limits`].
pub async fn serve(state: Arc<ApiState>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    http_server::serve(listener, router(state), limits()).await
}

/// Serves the API on `listener` under `limits`, counting into `stats`.
pub async fn serve_with(
    state: Arc<ApiState>,
    listener: tokio::net::TcpListener,
    limits: http_server::Limits,
    stats: Arc<http_server::Stats>,
) -> std::io::Result<()> {
    http_server::serve_with_stats(listener, router(state), limits, stats).await
}
