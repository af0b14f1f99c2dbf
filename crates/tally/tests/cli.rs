//! End-to-end tests of the `tally` binary: keys, consensus JSON, exit codes and bench output.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tally");
const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tally-core/tests/fixtures/bittensor"
);
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/consensus.json");

fn tally(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn tally_stdin(args: &[&str], input: &str) -> Output {
    let mut c = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn key_new_show_sign_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hk.json");
    let p = path.to_str().unwrap();
    let o = tally(&["key", "new", "--out", p]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ss58 = stdout(&o).trim().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // never overwrites
    let again = tally(&["key", "new", "--out", p]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("never overwritten"));

    let show = stdout(&tally(&["key", "show", "--key", p]));
    assert!(show.contains(&format!("ss58: {ss58}")), "{show}");
    let sig = stdout(&tally(&[
        "key",
        "sign",
        "--key",
        p,
        "--message-hex",
        "0xdeadbeef",
    ]));
    let sig = sig.trim();
    assert_eq!(sig.len(), 128);
    let ok = tally(&[
        "key",
        "verify",
        "--ss58",
        &ss58,
        "--message-hex",
        "deadbeef",
        "--signature",
        sig,
    ]);
    assert_eq!(ok.status.code(), Some(0));
    let bad = tally(&[
        "key",
        "verify",
        "--ss58",
        &ss58,
        "--message-hex",
        "deadbeee",
        "--signature",
        sig,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let malformed = tally(&[
        "key",
        "verify",
        "--ss58",
        "5notanaddress",
        "--message-hex",
        "00",
        "--signature",
        sig,
    ]);
    assert_eq!(malformed.status.code(), Some(2));
    let malformed = tally(&[
        "key",
        "verify",
        "--ss58",
        &ss58,
        "--message-hex",
        "zz",
        "--signature",
        sig,
    ]);
    assert_eq!(malformed.status.code(), Some(2));
    let malformed = tally(&[
        "key",
        "verify",
        "--ss58",
        &ss58,
        "--message-hex",
        "00",
        "--signature",
        "abcd",
    ]);
    assert_eq!(malformed.status.code(), Some(2));
}

#[test]
fn seed_and_bittensor_keyfile() {
    let seed = "0x1111111111111111111111111111111111111111111111111111111111111111";
    let show = stdout(&tally(&["key", "show", "--seed", seed]));
    // the address bittensor-wallet gives this seed (fixtures/bittensor/signatures.json)
    assert!(
        show.contains("5DtDLm5rQHShDqojQpsvcN8tRXHVFaecfDoRet1SU6BFD9Fi"),
        "{show}"
    );
    let hk = format!("{FIX}/hotkey.json");
    let show = stdout(&tally(&["key", "show", "--key", &hk]));
    assert!(
        show.contains("5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV"),
        "{show}"
    );
    let enc = tally(&["key", "show", "--key", &format!("{FIX}/coldkey_encrypted")]);
    assert_eq!(enc.status.code(), Some(2));
    assert!(stderr(&enc).contains("encrypted"), "{}", stderr(&enc));
    let missing = tally(&["key", "show", "--key", "/nonexistent/key"]);
    assert_eq!(missing.status.code(), Some(2));
    let short = tally(&["key", "show", "--seed", "abcd"]);
    assert_eq!(short.status.code(), Some(2));
}

fn consensus(input: &str) -> (Option<i32>, serde_json::Value, String) {
    let o = tally_stdin(&["consensus", "--input", "-"], input);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(serde_json::Value::Null);
    (o.status.code(), v, stderr(&o))
}

#[test]
fn consensus_example_file() {
    let o = tally(&["consensus", "--input", EXAMPLE]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["quorum_met"], true);
    assert_eq!(v["participating_stake"], 0.85);
    // the inflating validator (echo, 1000 of 8500) cannot move the medians
    assert_eq!(v["consensus"]["miner-a"], 0.605);
    assert_eq!(v["consensus"]["miner-b"], 0.705);
    assert_eq!(v["winner"], "miner-b");
    assert_eq!(v["weights"]["miner-b"], 1.0);
}

#[test]
fn consensus_policies_and_quorum() {
    // quorum miss: the incumbent is held
    let (code, v, _) =
        consensus(r#"{"stakes":{"a":50,"b":50},"scores":{"a":{"x":0.9,"y":0.1}},"incumbent":"y"}"#);
    assert_eq!(code, Some(0));
    assert_eq!(v["quorum_met"], false);
    assert_eq!(v["winner"], "y");
    assert_eq!(v["weights"], serde_json::json!({"y": 1.0}));
    // zero vs abstain: b did not score y
    let input = |a: u32, b: u32, missing: &str| {
        format!(
            r#"{{"stakes":{{"a":{a},"b":{b}}},"scores":{{"a":{{"x":0.5,"y":0.8}},"b":{{"x":0.5}}}},"kappa":0.8,"missing":"{missing}"}}"#
        )
    };
    let (_, v, _) = consensus(&input(70, 30, "abstain"));
    assert_eq!(v["consensus"]["y"], 0.8);
    let (_, v, _) = consensus(&input(70, 30, "zero"));
    // zero: 0.8 (70) and 0 (30): stake >= 0.8 is 70 < 80
    assert_eq!(v["consensus"]["y"], 0.0);
    // coverage: y scored by 60 of 100 is below the quorum's 2/3 of the eligible stake
    let (_, v, _) = consensus(&input(60, 40, "abstain"));
    assert_eq!(v["consensus"].get("y"), None);
    assert_eq!(v["consensus"]["x"], 0.5);
    // unscored miners are left out; no winner sends weight to burn
    let (_, v, _) = consensus(
        r#"{"stakes":{"a":30,"b":70},"scores":{"a":{"x":0.9},"b":{}},"burn":"burn-uid"}"#,
    );
    assert_eq!(v["consensus"], serde_json::json!({}));
    assert_eq!(v["winner"], serde_json::Value::Null);
    assert_eq!(v["weights"], serde_json::json!({"burn-uid": 1.0}));
    // proportional
    let (_, v, _) = consensus(
        r#"{"stakes":{"a":1},"scores":{"a":{"x":0.75,"y":0.25}},"policy":"proportional"}"#,
    );
    assert_eq!(v["weights"], serde_json::json!({"x": 0.75, "y": 0.25}));
    // fractional stakes are scaled, not truncated
    let (_, v, _) =
        consensus(r#"{"stakes":{"a":0.6,"b":0.4},"scores":{"a":{"x":0.9},"b":{"x":0.1}}}"#);
    assert_eq!(v["consensus"]["x"], 0.9);
}

#[test]
fn consensus_bad_input_names_the_field() {
    let cases = [
        ("{not json", "JSON"),
        (
            r#"{"stakes":{"v":1},"scores":{"v":{"m":NaN}}}"#,
            "scores.v.m",
        ),
        (
            r#"{"stakes":{"v":1},"scores":{"v":{"m":1.5}}}"#,
            "scores.v.m",
        ),
        (
            r#"{"stakes":{"v":1},"scores":{"v":{"m":-0.1}}}"#,
            "scores.v.m",
        ),
        (
            r#"{"stakes":{"v":1},"scores":{"v":{"m":"high"}}}"#,
            "scores.v.m",
        ),
        (r#"{"stakes":{"v":-3},"scores":{}}"#, "stakes.v"),
        (r#"{"stakes":{"v":1},"scores":{"w":{"m":0.5}}}"#, "scores.w"),
        (r#"{"scores":{}}"#, "stakes"),
        (r#"{"stakes":{}}"#, "scores"),
        (r#"{"stakes":{},"scores":{},"kappa":0}"#, "kappa"),
        (r#"{"stakes":{},"scores":{},"quorum":2}"#, "quorum"),
        (r#"{"stakes":{},"scores":{},"missing":"skip"}"#, "missing"),
        (r#"{"stakes":{},"scores":{},"incumbent":5}"#, "incumbent"),
        (r#"{"stakes":{},"scores":{},"kapa":0.5}"#, "kapa"),
    ];
    for (input, field) in cases {
        let (code, _, err) = consensus(input);
        assert_eq!(code, Some(2), "{input}: {err}");
        assert!(
            err.contains(field),
            "{input}: error {err:?} does not name {field}"
        );
    }
    let o = tally(&["consensus", "--input", "/nonexistent.json"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bench_json_last_line() {
    let o = tally(&[
        "bench",
        "consensus",
        "--validators",
        "8",
        "--miners",
        "16",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let last = stdout(&o).lines().last().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["validators"], 8);
    assert_eq!(v["miners"], 16);
    assert!(v["median_ns"].as_u64().unwrap() > 0);
    let o = tally(&[
        "bench",
        "verify",
        "--reports",
        "4",
        "--miners",
        "8",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(v["reports"], 4);
    let bad = tally(&["bench", "consensus", "--validators", "0"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn miner_build_and_exec_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut scores = std::collections::BTreeMap::new();
    for v in ["faithful", "quantized", "noisy", "lazy", "slow"] {
        let p = dir.path().join(format!("{v}.wasm"));
        let o = tally(&[
            "miner",
            "build",
            "--variant",
            v,
            "--out",
            p.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = tally(&["exec", "run", "--archive", p.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v2: serde_json::Value =
            serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
        assert!(v2["error"].is_null());
        assert!(v2["fuel"].as_u64().unwrap() > 0);
        scores.insert(v, v2["score"].as_f64().unwrap());
    }
    assert!(scores["faithful"] > scores["noisy"] && scores["quantized"] > scores["noisy"]);
    assert!(scores["faithful"] > scores["lazy"] && scores["quantized"] > scores["lazy"]);
    assert!(scores["slow"] < scores["faithful"]);
    assert_eq!(scores["lazy"], 0.0);
    // a broken submission still exits 0, with its error
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let o = tally(&["exec", "run", "--archive", junk.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(v["score"], 0.0);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("not a valid wasm module"));
    // unusable arguments
    assert_eq!(
        tally(&["exec", "run", "--archive", "/nonexistent.wasm"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        tally(&[
            "exec",
            "run",
            "--archive",
            junk.to_str().unwrap(),
            "--family",
            "nope"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        tally(&[
            "miner",
            "build",
            "--variant",
            "clever",
            "--out",
            "/tmp/x.wasm"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn owner_service_and_miner_submit() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let miner_seed = format!("0x{}", "22".repeat(32));
    let show = stdout(&tally(&["key", "show", "--seed", &miner_seed]));
    let miner = show
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("ss58: ")
        .to_string();
    let cfg = dir.path().join("owner.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"listen":"127.0.0.1:0","netuid":1,"owner_seed":"0x{}","miners":["{miner}"]}}"#,
            "11".repeat(32)
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["owner", "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();
    let wasm = dir.path().join("f.wasm");
    assert!(tally(&[
        "miner",
        "build",
        "--variant",
        "faithful",
        "--out",
        wasm.to_str().unwrap()
    ])
    .status
    .success());
    let ok = tally(&[
        "miner",
        "submit",
        "--owner",
        &addr,
        "--archive",
        wasm.to_str().unwrap(),
        "--seed",
        &miner_seed,
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("submission_id"));
    // an unregistered miner is refused
    let other = format!("0x{}", "33".repeat(32));
    let bad = tally(&[
        "miner",
        "submit",
        "--owner",
        &addr,
        "--archive",
        wasm.to_str().unwrap(),
        "--seed",
        &other,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("not a registered miner"),
        "{}",
        stderr(&bad)
    );
    // the owner's pick is computed once per run off the request path, when its chain reaches
    // the run: a request never runs a submission, so with no chain there is none to serve
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(&format!("http://{addr}/v1/weights?run=2"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body = r.body_mut().read_to_string().unwrap();
    assert!(body.contains("no pick for this run"), "{body}");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn exec_run_with_a_safetensors_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    std::fs::write(
        &model,
        tally_exec::safetensors::save_mlp(&tally_exec::inference::Inference::default_mlp(7)),
    )
    .unwrap();
    let wasm = dir.path().join("f.wasm");
    assert!(tally(&[
        "miner",
        "build",
        "--variant",
        "faithful",
        "--out",
        wasm.to_str().unwrap()
    ])
    .status
    .success());
    let o = tally(&[
        "exec",
        "run",
        "--archive",
        wasm.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(v["score"], 1.0);
    // a model with other weights: the same submission is no longer faithful to it
    std::fs::write(
        &model,
        tally_exec::safetensors::save_mlp(&tally_exec::inference::Inference::default_mlp(8)),
    )
    .unwrap();
    let o = tally(&[
        "exec",
        "run",
        "--archive",
        wasm.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert!(v["score"].as_f64().unwrap() < 0.5);
    std::fs::write(&model, b"junk").unwrap();
    let o = tally(&[
        "exec",
        "run",
        "--archive",
        wasm.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn chain_info_reads_a_subnet_and_says_what_to_fix() {
    use tally_chain::{Genesis, SubnetParams};
    use tally_core::Keypair;
    let dir = tempfile::tempdir().unwrap();
    let v = Keypair::from_seed(&[1; 32]).hotkey();
    let m = Keypair::from_seed(&[2; 32]).hotkey();
    let genesis = Genesis {
        timestamp_ms: 0,
        subnets: vec![SubnetParams {
            netuid: 1,
            epoch_length: 20,
            epoch_offset: 0,
            block_ms: 100,
            weights_rate_limit: 1,
            commitment_max_bytes: 64,
            commitment_bytes_per_epoch: 256,
            max_uids: 16,
            min_validator_stake: 1,
            burn_uid: 0,
        }],
        neurons: vec![
            Genesis::neuron(1, v, 5_000, true, "127.0.0.1:9000".into()),
            Genesis::neuron(1, m, 0, false, String::new()),
        ],
    };
    let g = dir.path().join("genesis.json");
    std::fs::write(&g, serde_json::to_vec(&genesis).unwrap()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(BIN)
        .args([
            "chain",
            "serve",
            "--listen",
            &listen,
            "--block-ms",
            "100",
            "--db",
        ])
        .arg(dir.path().join("chain.redb"))
        .arg("--genesis")
        .arg(&g)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let t = std::time::Instant::now();
    let out = loop {
        let o = tally(&["chain", "info", "--url", &url, "--netuid", "1", "--json"]);
        if o.status.code() == Some(0) || t.elapsed() > std::time::Duration::from_secs(20) {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let missing = tally(&["chain", "info", "--url", &url, "--netuid", "9"]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["epoch_length"], 20);
    assert_eq!(j["validators"].as_array().unwrap().len(), 1);
    assert_eq!(j["validators"][0]["hotkey"], v.to_ss58());
    assert_eq!(j["validators"][0]["axon"], "127.0.0.1:9000");
    assert_eq!(j["miners"][0]["hotkey"], m.to_ss58());
    // a subnet that does not exist: the endpoint answered, the answer is no
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("subnet 9 does not exist"),
        "{}",
        stderr(&missing)
    );
    // unusable arguments say what to give instead
    let bad = tally(&["chain", "info", "--url", "ftp://x", "--netuid", "1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("wss://"), "{}", stderr(&bad));
    let bad = tally(&["chain", "info", "--network", "nope", "--netuid", "1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("finney"), "{}", stderr(&bad));
}
