//! Serves a [`Chain`] over HTTP (`tally chain serve`), so several processes share one chain.
//!
//! Routes (JSON unless noted):
//! `GET /chain/v1/head`, `GET /chain/v1/blocks/{number}`, `GET /chain/v1/subnets/{netuid}/params`,
//! `GET /chain/v1/subnets/{netuid}/metagraph`, `GET /chain/v1/subnets/{netuid}/commitments/{ss58}`,
//! `GET /chain/v1/subnets/{netuid}/commitments?from=A&to=B`, `GET /chain/v1/subnets/{netuid}/weights`, `GET /chain/v1/subnets/{netuid}/weights/{ss58}`,
//! `GET /chain/v1/subnets/{netuid}/winner` (`metagraph` and `winner` take `?at=BLOCK` to read
//! as of a block), `GET /chain/v1/nonces/{ss58}`, and
//! `POST /chain/v1/submit` with the extrinsic's wire bytes (`application/octet-stream`, at most
//! 64 KiB). Errors come back as `{"error": kind, "detail": …}` with a 4xx/5xx status.
//!
//! [`serve`] runs on [`crate::http_server`]: connection caps overall and per IP, header-read and
//! request timeouts, and back-off instead of failure when file descriptors run out.

use crate::http_server;
use crate::types::ChainError;
use crate::Chain;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use tally_core::Hotkey;

/// Largest extrinsic accepted.
pub const MAX_SUBMIT_BYTES: usize = 64 * 1024;

type Shared = Arc<dyn Chain>;

#[derive(serde::Deserialize)]
struct At {
    at: Option<u64>,
}

#[derive(serde::Deserialize)]
struct BlockRange {
    from: u64,
    to: u64,
}

struct ApiError(ChainError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            ChainError::UnknownSubnet(_)
            | ChainError::NotRegistered(_)
            | ChainError::UnknownUid(_) => StatusCode::NOT_FOUND,
            ChainError::BadSignature => StatusCode::UNAUTHORIZED,
            ChainError::BadNonce { .. } | ChainError::AlreadyRegistered(_) => StatusCode::CONFLICT,
            ChainError::NotValidator(_) => StatusCode::FORBIDDEN,
            ChainError::RateLimited { .. } | ChainError::CommitmentSpace { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ChainError::CommitmentTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ChainError::SubnetFull(_) | ChainError::Malformed(_) => StatusCode::BAD_REQUEST,
            ChainError::Storage(_) | ChainError::Transport(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0)).into_response()
    }
}

type Reply<T> = Result<Json<T>, ApiError>;

async fn blocking<T: Send + 'static>(
    chain: Shared,
    f: impl FnOnce(&dyn Chain) -> Result<T, ChainError> + Send + 'static,
) -> Reply<T> {
    tokio::task::spawn_blocking(move || f(chain.as_ref()))
        .await
        .map_err(|e| ApiError(ChainError::Storage(e.to_string())))?
        .map(Json)
        .map_err(ApiError)
}

fn hotkey(s: &str) -> Result<Hotkey, ApiError> {
    s.parse()
        .map_err(|e: tally_core::CoreError| ApiError(ChainError::Malformed(e.to_string())))
}

/// The chain's HTTP routes.
pub fn router(chain: Shared) -> Router {
    Router::new()
        .route(
            "/chain/v1/head",
            get(|State(c): State<Shared>| blocking(c, |c| c.head())),
        )
        .route(
            "/chain/v1/blocks/{n}",
            get(|State(c): State<Shared>, Path(n): Path<u64>| blocking(c, move |c| c.block(n))),
        )
        .route(
            "/chain/v1/subnets/{netuid}/params",
            get(|State(c): State<Shared>, Path(n): Path<u16>| blocking(c, move |c| c.params(n))),
        )
        .route(
            "/chain/v1/subnets/{netuid}/metagraph",
            get(
                |State(c): State<Shared>, Path(n): Path<u16>, Query(a): Query<At>| {
                    blocking(c, move |c| match a.at {
                        Some(b) => c.metagraph_at(n, b),
                        None => c.metagraph(n),
                    })
                },
            ),
        )
        .route(
            "/chain/v1/subnets/{netuid}/commitments/{hotkey}",
            get(
                |State(c): State<Shared>, Path((n, h)): Path<(u16, String)>| async move {
                    let h = hotkey(&h)?;
                    blocking(c, move |c| c.commitments(n, &h)).await
                },
            ),
        )
        .route(
            "/chain/v1/subnets/{netuid}/commitments",
            get(
                |State(c): State<Shared>, Path(n): Path<u16>, Query(r): Query<BlockRange>| {
                    blocking(c, move |c| c.commitments_in(n, r.from, r.to))
                },
            ),
        )
        .route(
            "/chain/v1/subnets/{netuid}/weights",
            get(|State(c): State<Shared>, Path(n): Path<u16>| blocking(c, move |c| c.weights(n))),
        )
        .route(
            "/chain/v1/subnets/{netuid}/weights/{hotkey}",
            get(
                |State(c): State<Shared>, Path((n, h)): Path<(u16, String)>| async move {
                    let h = hotkey(&h)?;
                    blocking(c, move |c| c.weights_history(n, &h)).await
                },
            ),
        )
        .route(
            "/chain/v1/subnets/{netuid}/winner",
            get(
                |State(c): State<Shared>, Path(n): Path<u16>, Query(a): Query<At>| {
                    blocking(c, move |c| match a.at {
                        Some(b) => c.winner_at(n, b),
                        None => c.winner(n),
                    })
                },
            ),
        )
        .route(
            "/chain/v1/nonces/{hotkey}",
            get(
                |State(c): State<Shared>, Path(h): Path<String>| async move {
                    let h = hotkey(&h)?;
                    blocking(c, move |c| c.nonce(&h)).await
                },
            ),
        )
        .route(
            "/chain/v1/submit",
            post(|State(c): State<Shared>, body: Bytes| async move {
                blocking(c, move |c| c.submit(&body)).await
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_SUBMIT_BYTES))
        .with_state(chain)
}

/// The chain server's limits: [`http_server::Limits`]'s defaults with bodies up to
/// [`MAX_SUBMIT_BYTES`].
pub fn limits() -> http_server::Limits {
    http_server::Limits::default().with_max_body(MAX_SUBMIT_BYTES)
}

/// Serves `chain` on `listener` under [`limits`] until the task is dropped.
pub async fn serve(chain: Shared, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    http_server::serve(listener, router(chain), limits()).await
}
