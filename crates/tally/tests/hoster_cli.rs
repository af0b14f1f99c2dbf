//! `tally hoster`: settings from a TOML file, overridden by `TALLY_…` variables and then by
//! flags, validated (the model loaded) before anything starts, with errors that name the field
//! and say what to do.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tally");

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hotkey.json");
    let k = tally_core::Keypair::from_seed(&[4; 32]);
    std::fs::write(&key, k.to_keyfile_json().unwrap()).unwrap();
    let cfg = dir.path().join("hoster.toml");
    std::fs::write(
        &cfg,
        format!(
            "chain = \"http://127.0.0.1:9\"\nhotkey = {:?}\nnetuid = 1\n\
             dht_listen = \"/ip4/127.0.0.1/tcp/0\"\ndata_dir = {:?}\nchain_timeout_ms = 500\n",
            key.display().to_string(),
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    (dir, cfg)
}

fn hoster(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut c = Command::new(BIN);
    c.arg("hoster").args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TALLY_")) {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_explains_every_key() {
    let (code, out, err) = hoster(&["--help"], &[]);
    assert_eq!(code, Some(0), "{err}");
    for k in [
        "chain",
        "hotkey",
        "netuid",
        "dht_listen",
        "bootstrap",
        "data_dir",
        "model",
        "model_seed",
        "tick_ms",
        "http",
        "heartbeat_ms",
        "chain_timeout_ms",
    ] {
        assert!(
            out.contains(&format!("  {k} = ")),
            "{k} not in the help:\n{out}"
        );
        assert!(out.contains(&format!("--{}", k.replace('_', "-"))), "--{k}");
    }
    assert!(out.contains("TALLY_<KEY>"), "{out}");
}

#[test]
fn missing_and_malformed_fields_are_named() {
    let (code, _, err) = hoster(&[], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("config: chain: missing"), "{err}");

    let (d, cfg) = setup();
    let c = cfg.to_str().unwrap();
    // a config without a hotkey
    let no_key = d.path().join("nokey.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("hotkey"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&no_key, text).unwrap();
    let (code, _, err) = hoster(&["--config", no_key.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("config: hotkey: missing"), "{err}");
    assert!(err.contains("TALLY_HOTKEY"), "{err}");
    let (code, _, err) = hoster(&["--config", c], &[("TALLY_HOTKEY", "/nonexistent/key")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: hotkey"), "{err}");
    let (code, _, err) = hoster(&["--config", c, "--chain", "ftp://x"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: chain"), "{err}");
    let (code, _, err) = hoster(&["--config", c, "--dht-listen", "nowhere"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: dht_listen"), "{err}");
    let (code, _, err) = hoster(&["--config", c, "--bootstrap", "x,y"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: bootstrap"), "{err}");
    for bad in ["0", "9", "60001"] {
        let (code, _, err) = hoster(&["--config", c], &[("TALLY_TICK_MS", bad)]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains("config: tick_ms"), "{bad}: {err}");
    }
    let (code, _, err) = hoster(&["--config", c, "--heartbeat-ms", "10"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: heartbeat_ms"), "{err}");
    let (code, _, err) = hoster(&["--config", c, "--http", "a b"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: http"), "{err}");
    // a flag wins over the environment
    let (code, _, err) = hoster(
        &["--config", c, "--tick-ms", "5"],
        &[("TALLY_TICK_MS", "500")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("config: tick_ms"), "{err}");
}

#[test]
fn unknown_keys_in_the_file_are_refused() {
    let (_d, cfg) = setup();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("modell = \"x\"\n");
    std::fs::write(&cfg, text).unwrap();
    let (code, _, err) = hoster(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("modell"), "{err}");
}

#[test]
fn a_bad_model_is_refused_before_anything_starts() {
    let (d, cfg) = setup();
    let c = cfg.to_str().unwrap();
    let (code, _, err) = hoster(
        &["--config", c, "--model", "/nonexistent/mlp.safetensors"],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("config: model: cannot read /nonexistent"),
        "{err}"
    );
    let junk = d.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    let (code, _, err) = hoster(&["--config", c, "--model", junk.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("config: model"), "{err}");
    assert!(err.contains("layers.N.weight"), "{err}");
    // a model of other widths than the family's
    let narrow = d.path().join("narrow.safetensors");
    let mlp = tally_exec::inference::Mlp::from_seed(1, &[32, 16]);
    std::fs::write(&narrow, tally_exec::safetensors::save_mlp(&mlp)).unwrap();
    let (code, _, err) = hoster(&["--config", c, "--model", narrow.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("takes 32 inputs"), "{err}");
    // both a file and a seed
    let (code, _, err) = hoster(
        &["--config", c, "--model", junk.to_str().unwrap()],
        &[("TALLY_MODEL_SEED", "3")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not both"), "{err}");
    // a good model file passes the settings and reaches the chain
    let good = d.path().join("good.safetensors");
    let mlp = tally_exec::inference::Inference::default_mlp(7);
    std::fs::write(&good, tally_exec::safetensors::save_mlp(&mlp)).unwrap();
    let (code, _, err) = hoster(&["--config", c, "--model", good.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot read subnet 1 from http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn an_unreachable_chain_is_a_clear_error() {
    let (d, cfg) = setup();
    let (code, _, err) = hoster(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot read subnet 1 from http://127.0.0.1:9"),
        "{err}"
    );
    // the store and the p2p identity were made in the data directory
    assert!(d.path().join("data").join("hoster.redb").exists());
    assert!(d.path().join("data").join("p2p.key").exists());
}
