//! The owner's endpoint for its weight pick (owner and shadow modes).
//!
//! `GET /v1/weights?run=R` answers `{"run": R, "winner": ss58, "scores": {ss58: score}}` from a
//! [`PickBook`]: the owner computes its pick once per run, off the request path (the owner
//! service does it when the chain reaches the run), so no request runs a submission and two
//! requests cannot block the server. A run with no pick yet is a 404. Validators use the pick
//! only in `owner` and `shadow` modes; in `shadow` they also track divergence against it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tally_core::{Hotkey, Score};

/// A pick: the winner and the scores behind it.
pub type PickOf = (Hotkey, Vec<(Hotkey, Score)>);

/// How the owner computes its pick for a run.
pub type Pick = Arc<dyn Fn(u64) -> Option<PickOf> + Send + Sync>;

/// Picks kept.
pub const KEEP_PICKS: usize = 64;

/// The owner's computed picks, by run (the last [`KEEP_PICKS`]).
#[derive(Default)]
pub struct PickBook {
    picks: Mutex<BTreeMap<u64, PickOf>>,
}

impl PickBook {
    /// Records the pick of `run` (the first one recorded for a run stays).
    pub fn insert(&self, run: u64, winner: Hotkey, scores: Vec<(Hotkey, Score)>) {
        if let Ok(mut p) = self.picks.lock() {
            p.entry(run).or_insert((winner, scores));
            while p.len() > KEEP_PICKS {
                p.pop_first();
            }
        }
    }

    /// The pick of `run`, if computed.
    pub fn get(&self, run: u64) -> Option<PickOf> {
        self.picks.lock().ok()?.get(&run).cloned()
    }

    /// Whether `run` has a pick.
    pub fn has(&self, run: u64) -> bool {
        self.picks
            .lock()
            .map(|p| p.contains_key(&run))
            .unwrap_or(false)
    }
}

#[derive(Deserialize)]
struct RunQuery {
    run: u64,
}

async fn weights(
    State(book): State<Arc<PickBook>>,
    q: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "query parameter run is required"})),
        )
            .into_response();
    };
    match book.get(q.run) {
        Some((w, scores)) => {
            let s: BTreeMap<String, f64> = scores
                .iter()
                .map(|(k, v)| (k.to_ss58(), v.to_f64()))
                .collect();
            Json(json!({"run": q.run, "winner": w.to_ss58(), "scores": s})).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no pick for this run (computed once the chain reaches it)"})),
        )
            .into_response(),
    }
}

/// The owner's routes.
pub fn router(book: Arc<PickBook>) -> Router {
    Router::new()
        .route("/v1/weights", get(weights))
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .with_state(book)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_keeps_the_first_pick_of_a_run_and_is_bounded() {
        let b = PickBook::default();
        let (x, y) = (Hotkey([1; 32]), Hotkey([2; 32]));
        b.insert(3, x, vec![(x, Score::ONE)]);
        b.insert(3, y, vec![]);
        assert_eq!(b.get(3).unwrap().0, x);
        for r in 10..10 + KEEP_PICKS as u64 {
            b.insert(r, y, vec![]);
        }
        assert!(!b.has(3));
        assert!(b.has(10 + KEEP_PICKS as u64 - 1));
    }
}
