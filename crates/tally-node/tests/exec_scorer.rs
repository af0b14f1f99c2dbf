//! Real execution end to end on 127.0.0.1: miners upload built submissions to the owner's
//! registry over HTTP; a validator's ExecScorer fetches the signed roster, verifies it against
//! the pinned owner, fetches and hash-checks the archives, and runs them in the sandbox.

use std::sync::Arc;
use std::time::Duration;
use tally_core::{FamilyId, Keypair};
use tally_exec::archive::ArchiveCache;
use tally_exec::builder::{build, Variant};
use tally_exec::inference::Inference;
use tally_exec::runtime::{Limits, WasmRuntime};
use tally_node::exec_scorer::ExecScorer;
use tally_node::peer::PeerClient;
use tally_node::scorer::Scorer;
use tally_node::submissions::{router, upload, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_runs_the_roster_it_verified() {
    let owner = Keypair::from_seed(&[1; 32]);
    let fam_id = FamilyId::new("inference").unwrap();
    let reg = Arc::new(Registry::in_memory(owner.clone(), 1, fam_id.clone()).unwrap());
    let miners: Vec<(Keypair, Variant)> = [Variant::Faithful, Variant::Noisy, Variant::Lazy]
        .into_iter()
        .enumerate()
        .map(|(i, v)| (Keypair::from_seed(&[10 + i as u8; 32]), v))
        .collect();
    for (k, _) in &miners {
        reg.miners.write().unwrap().insert(k.hotkey());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let served = reg.clone();
    tokio::spawn(async move { axum::serve(listener, router(served)).await });

    let a = addr.clone();
    let (good, wrong_pin) = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mlp = Inference::default_mlp(7);
        for (k, v) in &miners {
            let body = upload(
                k,
                1,
                &FamilyId::new("inference").unwrap(),
                &build(&mlp, *v),
                1,
            )
            .unwrap();
            let r = agent
                .post(&format!("http://{a}/v1/submissions"))
                .send(&body[..])
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
        }
        // the chain reaches run 4: the owner signs its roster once
        reg.freeze(4, 4).unwrap();
        let rt = Arc::new(WasmRuntime::new().unwrap());
        let family = Arc::new(Inference::new(mlp, &rt, Limits::default()).unwrap());
        let validator = Keypair::from_seed(&[5; 32]);
        let scorer = |pin| ExecScorer {
            owner_addr: a.clone(),
            owner: pin,
            netuid: 1,
            family_id: FamilyId::new("inference").unwrap(),
            runtime: rt.clone(),
            family: family.clone(),
            cache: ArchiveCache::new(16 << 20, 4 << 20),
            peers: PeerClient::new(
                validator.clone(),
                Duration::from_secs(5),
                tally_net::system_clock(),
            ),
            tasks: 3,
            ledger: Default::default(),
        };
        let hks: Vec<_> = miners.iter().map(|m| m.0.hotkey()).collect();
        let far = std::time::Instant::now() + Duration::from_secs(3600);
        let good = scorer(owner.hotkey()).score(4, &[9; 32], &validator.hotkey(), &hks, far);
        let wrong = scorer(Keypair::from_seed(&[2; 32]).hotkey()).score(
            4,
            &[9; 32],
            &validator.hotkey(),
            &hks,
            far,
        );
        // past the scoring deadline no miner is started: the validator abstains on all
        let late = scorer(owner.hotkey()).score(
            4,
            &[9; 32],
            &validator.hotkey(),
            &hks,
            std::time::Instant::now(),
        );
        assert!(late.is_empty(), "{late:?}");
        (good, wrong)
    })
    .await
    .unwrap();
    assert_eq!(good.len(), 3);
    let (faithful, noisy, lazy) = (good[0].1.units(), good[1].1.units(), good[2].1.units());
    assert_eq!(faithful, 1_000_000_000);
    assert!(noisy > 0 && noisy < faithful);
    assert_eq!(lazy, 0);
    // a roster signed by a key other than the pinned owner is refused: nothing is scored
    assert!(wrong_pin.is_empty());
}
