//! `tally key …`: hotkey files, addresses, signing and verification.
//!
//! Keys are sr25519 with Substrate's signing context, so a Bittensor wallet's hotkey file works
//! as `--key`, and signatures made here verify in Bittensor's tooling and back.

use crate::Failure;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use tally_core::{Hotkey, Keypair, Signature};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a fresh hotkey and write it as an unencrypted Bittensor-style keyfile (mode 0600).
    New {
        /// Where to write the keyfile; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a key's SS58 address (prefix 42) and public key in hex.
    Show(KeySource),
    /// Sign a message given in hex; prints the 64-byte signature in hex.
    Sign {
        #[command(flatten)]
        key: KeySource,
        /// The message bytes, in hex (an optional 0x prefix is allowed).
        #[arg(long)]
        message_hex: String,
    },
    /// Verify a signature: exit 0 when valid, 1 when invalid, 2 on malformed input.
    Verify {
        /// The signer's SS58 address.
        #[arg(long)]
        ss58: String,
        /// The message bytes, in hex.
        #[arg(long)]
        message_hex: String,
        /// The 64-byte signature, in hex.
        #[arg(long)]
        signature: String,
    },
}

/// Where the secret comes from: a keyfile or a 32-byte seed.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct KeySource {
    /// A keyfile: a Bittensor wallet hotkey file (`~/.bittensor/wallets/W/hotkeys/H`) or one
    /// written by `tally key new`.
    #[arg(long)]
    key: Option<PathBuf>,
    /// A 32-byte mini-secret seed in hex (as `secretSeed` in a Bittensor keyfile).
    #[arg(long)]
    seed: Option<String>,
}

impl KeySource {
    fn load(&self) -> Result<Keypair, Failure> {
        if let Some(path) = &self.key {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read keyfile {}", path.display()))
                .map_err(Failure::input)?;
            return Keypair::from_keyfile_json(&bytes)
                .with_context(|| format!("keyfile {}", path.display()))
                .map_err(Failure::input);
        }
        let seed = self.seed.as_deref().unwrap_or_default();
        Keypair::from_seed_hex(seed)
            .context("--seed")
            .map_err(Failure::input)
    }
}

fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>, Failure> {
    let t = s.trim();
    hex::decode(t.strip_prefix("0x").unwrap_or(t))
        .with_context(|| format!("{what} is not valid hex"))
        .map_err(Failure::input)
}

fn write_keyfile(path: &PathBuf, contents: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create {} (an existing keyfile is never overwritten)",
            path.display()
        )
    })?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub fn run(cmd: KeyCommand) -> Result<u8, Failure> {
    match cmd {
        KeyCommand::New { out } => {
            let kp = Keypair::generate()?;
            write_keyfile(&out, &kp.to_keyfile_json()?)?;
            println!("{}", kp.hotkey().to_ss58());
            eprintln!("wrote {} (mode 0600); keep it secret", out.display());
            Ok(0)
        }
        KeyCommand::Show(src) => {
            let kp = src.load()?;
            println!("ss58: {}", kp.hotkey().to_ss58());
            println!("public: 0x{}", hex::encode(kp.hotkey().0));
            Ok(0)
        }
        KeyCommand::Sign { key, message_hex } => {
            let msg = parse_hex(&message_hex, "--message-hex")?;
            let kp = key.load()?;
            println!("{}", kp.sign(&msg).to_hex());
            Ok(0)
        }
        KeyCommand::Verify {
            ss58,
            message_hex,
            signature,
        } => {
            let (hk, _) = Hotkey::decode_ss58(&ss58)
                .context("--ss58")
                .map_err(Failure::input)?;
            let msg = parse_hex(&message_hex, "--message-hex")?;
            let sig = Signature::from_hex(&signature)
                .context("--signature")
                .map_err(Failure::input)?;
            if hk.verify(&msg, &sig) {
                println!("valid");
                Ok(0)
            } else {
                println!("invalid");
                Ok(1)
            }
        }
    }
}
