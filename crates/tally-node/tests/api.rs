//! The validator API over a real socket on 127.0.0.1: every 4xx, the 425 rule, the signed
//! views, requests bound to their target node, the future-skew bound, and one key flooding
//! without taking anything from another.

use std::sync::Arc;
use tally_core::codec::signing_payload;
use tally_core::{FamilyId, Hotkey, Keypair, ReportBody, Score, ScoreReport, Signature};
use tally_node::api::{self, ApiState, Timing, DIVERGENCE_TAG};
use tally_node::auth::{self, sign_request, NonceLimits};
use tally_node::store::NodeStore;
use tally_protocol::{ChainTime, EpochClock, PhaseWindows};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct Server {
    addr: std::net::SocketAddr,
    node: Keypair,
    caller: Keypair,
    _dir: tempfile::TempDir,
    state: Arc<ApiState>,
}

async fn server() -> Server {
    server_with(node_key(), NonceLimits::new(1000)).await
}

fn node_key() -> Keypair {
    Keypair::from_seed(&[1; 32])
}

async fn server_with(node: Keypair, limits: NonceLimits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(NodeStore::open(&dir.path().join("n.redb")).unwrap());
    let caller = Keypair::from_seed(&[2; 32]);
    let mut wires = Vec::new();
    for run in [3u64, 4] {
        let body = ReportBody::new(
            1,
            run,
            FamilyId::new("synthetic").unwrap(),
            node.hotkey(),
            vec![(Hotkey([9; 32]), Score::from_units(5).unwrap())],
        )
        .unwrap();
        let r = ScoreReport::sign(body, [run as u8; 32], &node).unwrap();
        store.put_own_report(run, &r.to_bytes(), b"").unwrap();
        wires.push((run, r.to_bytes()));
    }
    let state = Arc::new(ApiState::with_nonce_limits(
        store,
        node.clone(),
        limits,
        Arc::new(now),
    ));
    // what the validator's machine asked the API to serve; run 4's window has not opened, so
    // the API still answers 425 for it
    for (run, w) in wires {
        state.serve(run, w);
    }
    state.known.write().unwrap().insert(caller.hotkey());
    // head at block 40 of 10-block epochs: epoch 4 just started, so run 3's reveal window is
    // open and run 4's is not
    *state.timing.write().unwrap() = Some(Timing {
        clock: EpochClock {
            length: 10,
            offset: 0,
        },
        windows: PhaseWindows::default(),
        time: ChainTime {
            block: 40,
            at_ms: now(),
            block_ms: 1_000_000,
        },
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api::serve(state.clone(), listener));
    Server {
        addr,
        node,
        caller,
        _dir: dir,
        state,
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET `path` with `headers`, and an optional body; returns status and body text.
fn get(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    let resp = match body {
        None => {
            let mut r = agent().get(&url);
            for (k, v) in headers {
                r = r.header(*k, v);
            }
            r.call()
        }
        Some(b) => {
            let mut r = agent().post(&url);
            for (k, v) in headers {
                r = r.header(*k, v);
            }
            r.send(&b[..])
        }
    };
    let mut resp = resp.unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// Headers of a request signed by `key` for the test node.
fn signed(
    key: &Keypair,
    method: &str,
    path: &str,
    body: &[u8],
    ts: u64,
) -> Vec<(&'static str, String)> {
    signed_for(key, &node_key().hotkey(), method, path, body, ts)
}

/// Headers of a request signed by `key` for the node `to`.
fn signed_for(
    key: &Keypair,
    to: &Hotkey,
    method: &str,
    path: &str,
    body: &[u8],
    ts: u64,
) -> Vec<(&'static str, String)> {
    sign_request(key, to, method, path, body, ts, auth::fresh_nonce()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_and_the_reveal_window() {
    let s = server().await;
    let a = s.addr;
    let k = s.caller.clone();
    tokio::task::spawn_blocking(move || {
        let p = "/v1/consensus/scores/3";
        // ok
        let (st, body) = get(a, p, &signed(&k, "GET", p, b"", now()), None);
        assert_eq!(st, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let wire = hex::decode(v["wire"].as_str().unwrap()).unwrap();
        ScoreReport::from_bytes(&wire).unwrap().verify().unwrap();
        // 425 before the reveal window
        let p4 = "/v1/consensus/scores/4";
        let (st, body) = get(a, p4, &signed(&k, "GET", p4, b"", now()), None);
        assert_eq!(st, 425, "{body}");
        // 401: missing header, malformed header, stale timestamp, unknown hotkey, bad signature
        let (st, body) = get(a, p, &[], None);
        assert_eq!((st, body.contains("missing header")), (401, true), "{body}");
        let mut h = signed(&k, "GET", p, b"", now());
        assert_eq!(h[2].0, auth::H_TIMESTAMP);
        h[2].1 = "yesterday".into();
        let (st, body) = get(a, p, &h, None);
        assert_eq!(
            (st, body.contains("malformed header")),
            (401, true),
            "{body}"
        );
        let (st, body) = get(a, p, &signed(&k, "GET", p, b"", now() - 61_000), None);
        assert_eq!(
            (st, body.contains("stale timestamp")),
            (401, true),
            "{body}"
        );
        let stranger = Keypair::from_seed(&[7; 32]);
        let (st, body) = get(a, p, &signed(&stranger, "GET", p, b"", now()), None);
        assert_eq!((st, body.contains("unknown hotkey")), (401, true), "{body}");
        let (st, body) = get(
            a,
            p,
            &signed(&k, "GET", "/v1/consensus/scores/2", b"", now()),
            None,
        );
        assert_eq!((st, body.contains("bad signature")), (401, true), "{body}");
        // 409: the same signed request twice
        let h = signed(&k, "GET", p, b"", now());
        assert_eq!(get(a, p, &h, None).0, 200);
        let (st, body) = get(a, p, &h, None);
        assert_eq!((st, body.contains("replayed nonce")), (409, true), "{body}");
        // 413: a body over 64 KiB is refused before anything else
        let big = vec![0u8; 70 * 1024];
        let (st, _) = get(a, p, &signed(&k, "POST", p, &big, now()), Some(big.clone()));
        assert_eq!(st, 413);
        // open routes
        assert_eq!(get(a, "/healthz", &[], None).0, 200);
        let (st, m) = get(a, "/metrics", &[], None);
        assert_eq!(st, 200);
        assert!(
            m.contains("tally_auth_rejections_total{reason=\"replayed_nonce\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("tally_auth_rejections_total{reason=\"stale_timestamp\"} 1"),
            "{m}"
        );
        let (st, o) = get(a, "/openapi.json", &[], None);
        assert_eq!(st, 200);
        let o: serde_json::Value = serde_json::from_str(&o).unwrap();
        assert!(o["paths"]["/v1/consensus/scores/{run}"]["get"]["responses"]["425"].is_object());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_evidence_and_signed_divergence() {
    let s = server().await;
    let (a, k, node) = (s.addr, s.caller.clone(), s.node.hotkey());
    s.state
        .store
        .finish_run(3, br#"{"run":3,"winner":null}"#, b"")
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let p = "/v1/runs/3";
        let (st, body) = get(a, p, &signed(&k, "GET", p, b"", now()), None);
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("\"run\":3"));
        let p = "/v1/runs/9";
        assert_eq!(get(a, p, &signed(&k, "GET", p, b"", now()), None).0, 404);
        let p = "/v1/evidence";
        let (st, body) = get(a, p, &signed(&k, "GET", p, b"", now()), None);
        assert_eq!(
            (st, body.contains("\"evidence\":[]")),
            (200, true),
            "{body}"
        );
        let p = "/v1/consensus/divergence";
        let (st, body) = get(a, p, &signed(&k, "GET", p, b"", now()), None);
        assert_eq!(st, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let window = hex::decode(v["window_hex"].as_str().unwrap()).unwrap();
        let sig = Signature::from_hex(v["signature"].as_str().unwrap()).unwrap();
        assert!(node.verify(&signing_payload(DIVERGENCE_TAG, &window), &sig));
        assert_eq!(v["signer"], node.to_ss58());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_signed_for_one_node_is_refused_by_another() {
    let a = server().await;
    let b = server_with(Keypair::from_seed(&[3; 32]), NonceLimits::new(1000)).await;
    let (aa, ba, k, a_key) = (a.addr, b.addr, a.caller.clone(), a.node.hotkey());
    tokio::task::spawn_blocking(move || {
        let p = "/v1/consensus/scores/3";
        let h = signed_for(&k, &a_key, "GET", p, b"", now());
        // B first, so A's nonce cache has not seen it: B refuses it by its target...
        let (st, body) = get(ba, p, &h, None);
        assert_eq!((st, body.contains("wrong target")), (401, true), "{body}");
        // ...and with the target header rewritten to name B, by the signature, which covers A
        let mut moved = h.clone();
        assert_eq!(moved[1].0, auth::H_TARGET);
        moved[1].1 = Keypair::from_seed(&[3; 32]).hotkey().to_ss58();
        let (st, body) = get(ba, p, &moved, None);
        assert_eq!((st, body.contains("bad signature")), (401, true), "{body}");
        // A, the target, serves it
        let (st, body) = get(aa, p, &h, None);
        assert_eq!(st, 200, "{body}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_more_than_a_few_seconds_ahead_are_refused() {
    let s = server().await;
    let (a, k) = (s.addr, s.caller.clone());
    tokio::task::spawn_blocking(move || {
        let p = "/v1/evidence";
        for ahead in [59_000, 30_000, 6_000] {
            let (st, body) = get(a, p, &signed(&k, "GET", p, b"", now() + ahead), None);
            assert_eq!(
                (st, body.contains("stale timestamp")),
                (401, true),
                "+{ahead} ms: {body}"
            );
        }
        // a small skew (within 5 s) still passes, and so does 59 s in the past
        let (st, body) = get(a, p, &signed(&k, "GET", p, b"", now() + 3_000), None);
        assert_eq!(st, 200, "{body}");
        let (st, body) = get(a, p, &signed(&k, "GET", p, b"", now() - 59_000), None);
        assert_eq!(st, 200, "{body}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_flooding_takes_nothing_from_another() {
    // a cache of 100 live nonces, 20 per key, bursts of 40 at 1/s: one key sending 150
    // requests would fill an unpartitioned cache and lock every other key out with 503
    let limits = NonceLimits {
        capacity: 100,
        per_key: 20,
        max_keys: 16,
        rate_per_s: 1,
        burst: 40,
    };
    let s = server_with(node_key(), limits).await;
    let flood = Keypair::from_seed(&[8; 32]);
    s.state.known.write().unwrap().insert(flood.hotkey());
    let (a, honest) = (s.addr, s.caller.clone());
    tokio::task::spawn_blocking(move || {
        let p = "/v1/evidence";
        let first = signed(&honest, "GET", p, b"", now());
        assert_eq!(get(a, p, &first, None).0, 200);
        let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
        for _ in 0..150 {
            let (st, _) = get(a, p, &signed(&flood, "GET", p, b"", now()), None);
            *statuses.entry(st).or_default() += 1;
        }
        assert_eq!(statuses.get(&200), Some(&20), "{statuses:?}");
        assert_eq!(statuses.get(&429), Some(&130), "{statuses:?}");
        // the honest key's nonce was not evicted (its replay is still refused) and it is served
        let (st, body) = get(a, p, &first, None);
        assert_eq!((st, body.contains("replayed nonce")), (409, true), "{body}");
        for _ in 0..10 {
            let (st, body) = get(a, p, &signed(&honest, "GET", p, b"", now()), None);
            assert_eq!(st, 200, "{body}");
        }
        let (_, m) = get(a, "/metrics", &[], None);
        assert!(
            m.contains("tally_auth_rejections_total{reason=\"key_quota\"} 130"),
            "{m}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_lists_digests_and_hands_over_only_unknown_reports() {
    // a validator that showed its report to some peers only is caught at the exchange; the
    // digests-first exchange keeps that from costing every peer every report every run
    let s = server().await;
    let report = |signer: u8, units: u32| {
        let k = Keypair::from_seed(&[signer; 32]);
        let body = ReportBody::new(
            1,
            3,
            FamilyId::new("synthetic").unwrap(),
            k.hotkey(),
            vec![(Hotkey([9; 32]), Score::from_units(units).unwrap())],
        )
        .unwrap();
        let wire = ScoreReport::sign(body, [signer; 32], &k)
            .unwrap()
            .to_bytes();
        tally_validator::HeldReport {
            validator: k.hotkey(),
            digest: tally_core::sha256(&wire),
            wire,
        }
    };
    let (a, b) = (report(20, 5), report(21, 6));
    let proof = vec![1u8, 2, 3];
    s.state
        .serve_held(3, &[a.clone(), b.clone()], std::slice::from_ref(&proof));
    let (addr, node, caller) = (s.addr, s.node.hotkey(), s.caller.clone());
    tokio::task::spawn_blocking(move || {
        let client = tally_node::peer::PeerClient::new(
            caller.clone(),
            std::time::Duration::from_secs(3),
            tally_net::system_clock(),
        );
        let at = addr.to_string();
        let fetch = |run, me: &Hotkey, known: &[[u8; 32]]| {
            tally_node::validator::fetch_held(&client, &node, &at, run, Some((me, known)))
                .map(|h| (h.proofs, h.relayed))
        };
        // a knows its own report is skipped, b's unknown one is handed over, with the proofs
        let mut known = vec![];
        let proofs = vec![proof.clone()];
        assert_eq!(
            fetch(3, &a.validator, &known),
            Some((proofs.clone(), vec![b.wire.clone()]))
        );
        // what the asker knows already costs one small list and nothing else
        known = vec![a.digest, b.digest];
        known.sort();
        assert_eq!(
            fetch(3, &caller.hotkey(), &known),
            Some((proofs.clone(), vec![]))
        );
        // a collect round asks for the proofs only
        let only = tally_node::validator::fetch_held(&client, &node, &at, 3, None).unwrap();
        assert_eq!((only.proofs, only.relayed.len()), (proofs, 0));
        // a run not held, and one whose reveal window has not opened: not reached
        assert_eq!(fetch(4, &caller.hotkey(), &[]), None);
        // one report by digest; a malformed or unknown digest is a clear refusal
        let p = format!("/v1/runs/3/held/{}", hex::encode(b.digest));
        let (st, body) = get(addr, &p, &signed(&caller, "GET", &p, b"", now()), None);
        assert_eq!(st, 200, "{body}");
        assert!(body.contains(&hex::encode(&b.wire)));
        let p = "/v1/runs/3/held/zz";
        let (st, body) = get(addr, p, &signed(&caller, "GET", p, b"", now()), None);
        assert_eq!(st, 400, "{body}");
        let p = format!("/v1/runs/3/held/{}", hex::encode([7u8; 32]));
        assert_eq!(
            get(addr, &p, &signed(&caller, "GET", &p, b"", now()), None).0,
            404
        );
    })
    .await
    .unwrap();
}
