//! The http runtime against a miner endpoint on 127.0.0.1 that checks the validator's signed
//! request: a faithful endpoint scores full accuracy, a slow one times out, an unknown caller and
//! a request signed for another miner are refused by the miner, and an endpoint that is not a
//! bare IP:port is refused by the validator before any connection.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tally_core::Keypair;
use tally_exec::inference::Inference;
use tally_exec::runtime::{Failure, Limits, WasmRuntime};
use tally_exec::Family;
use tally_node::auth::{self, HeaderSource, NonceCache};
use tally_node::http_runtime::HttpRuntime;
use tally_node::peer::PeerClient;

struct H(HeaderMap);
impl HeaderSource for H {
    fn header(&self, n: &str) -> Option<&str> {
        self.0.get(n).and_then(|v| v.to_str().ok())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_calls_latency_and_timeouts() {
    let validator = Keypair::from_seed(&[4; 32]);
    let vk = validator.hotkey();
    let miner = Keypair::from_seed(&[5; 32]).hotkey();
    let mlp = Inference::default_mlp(7);
    let m2 = mlp.clone();
    let cache = Arc::new(Mutex::new(NonceCache::new(1000)));
    let app = axum::Router::new().route(
        "/v1/run",
        post(move |headers: HeaderMap, body: Bytes| {
            let (m2, cache) = (m2.clone(), cache.clone());
            async move {
                let now = tally_net::system_clock()();
                let ok = auth::verify(
                    &H(headers),
                    &miner,
                    "POST",
                    "/v1/run",
                    &body,
                    now,
                    |h| *h == vk,
                    &mut cache.lock().unwrap(),
                );
                if ok.is_err() {
                    return (StatusCode::UNAUTHORIZED, Vec::new());
                }
                let x: Vec<f32> = body
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                (
                    StatusCode::OK,
                    m2.forward(&x)
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                )
            }
        }),
    );
    let slow = axum::Router::new().route(
        "/v1/run",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, slow).await });
    tokio::task::spawn_blocking(move || {
        let rt = WasmRuntime::new().unwrap();
        let fam = Inference::new(mlp, &rt, Limits::default()).unwrap();
        let t = &fam.tasks(&[1; 32], 1)[0];
        let http = HttpRuntime::new(
            PeerClient::new(
                validator.clone(),
                Duration::from_millis(500),
                tally_net::system_clock(),
            ),
            1 << 20,
        );
        let r = http.run(&miner, &addr, &t.input);
        assert!(r.wall > Duration::ZERO);
        let s = fam.score(t, &fam.reference(t), &r);
        assert_eq!(s.accuracy.units(), 1_000_000_000, "{:?}", r.output);
        // a caller the miner does not know is refused: a failure, scored 0
        let stranger = HttpRuntime::new(
            PeerClient::new(
                Keypair::from_seed(&[9; 32]),
                Duration::from_millis(500),
                tally_net::system_clock(),
            ),
            1 << 20,
        );
        let r = stranger.run(&miner, &addr, &t.input);
        assert!(
            matches!(r.output, Err(Failure::Trap(ref m)) if m.contains("401")),
            "{:?}",
            r.output
        );
        assert_eq!(fam.score(t, &fam.reference(t), &r).score.units(), 0);
        // a request signed for another miner is refused by this one
        let r = http.run(&Keypair::from_seed(&[6; 32]).hotkey(), &addr, &t.input);
        assert!(
            matches!(r.output, Err(Failure::Trap(ref m)) if m.contains("401")),
            "{:?}",
            r.output
        );
        // an endpoint with a path is refused before any connection
        let r = http.run(&miner, &format!("{slow_addr}/elsewhere"), &t.input);
        assert!(
            matches!(r.output, Err(Failure::Trap(ref m)) if m.contains("axon")),
            "{:?}",
            r.output
        );
        // a slow endpoint times out
        let r = http.run(&miner, &slow_addr, &t.input);
        assert!(matches!(r.output, Err(Failure::Timeout)), "{:?}", r.output);
        assert!(r.wall < Duration::from_secs(2));
    })
    .await
    .unwrap();
}
