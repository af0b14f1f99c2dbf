//! The owner's endpoint for its weight pick (owner and shadow modes).
//!
//! `GET /v1/weights?run=R` answers `{"run": R, "winner": ss58, "scores": {ss58: score}}`; the
//! pick comes from a function the owner configures. Validators use it only in `owner` and
//! `shadow` modes; in `shadow` they also track divergence against it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tally_core::{Hotkey, Score};

/// The owner's pick for a run: a winner and the scores behind it.
pub type Pick = Arc<dyn Fn(u64) -> Option<(Hotkey, Vec<(Hotkey, Score)>)> + Send + Sync>;

#[derive(Deserialize)]
struct RunQuery {
    run: u64,
}

async fn weights(
    State(pick): State<Pick>,
    q: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "query parameter run is required"})),
        )
            .into_response();
    };
    match pick(q.run) {
        Some((w, scores)) => {
            let s: BTreeMap<String, f64> = scores
                .iter()
                .map(|(k, v)| (k.to_ss58(), v.to_f64()))
                .collect();
            Json(json!({"run": q.run, "winner": w.to_ss58(), "scores": s})).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no pick for this run"})),
        )
            .into_response(),
    }
}

/// The owner's routes.
pub fn router(pick: Pick) -> Router {
    Router::new()
        .route("/v1/weights", get(weights))
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .with_state(pick)
}
