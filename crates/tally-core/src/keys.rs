//! Hotkeys: sr25519 keys as Substrate and Bittensor use them.
//!
//! * [`Hotkey`] is a 32-byte sr25519 public key, shown as an SS58 address (network prefix 42 by
//!   default, checksum `blake2b-512("SS58PRE" ‖ prefix ‖ key)[..2]` always verified).
//! * [`Keypair`] signs with schnorrkel's `sign_simple` under the signing context `substrate`,
//!   exactly as `sp_core::sr25519` and Bittensor's `bittensor-wallet` do, so signatures cross
//!   between them in both directions. Secrets come from a 32-byte mini-secret seed (expanded in
//!   Ed25519 mode, Substrate's convention), from the OS's randomness, or from a Bittensor
//!   keyfile (the unencrypted JSON with `secretSeed`, or `privateKey`).
//! * [`Signature`] is the 64-byte sr25519 signature.

use crate::CoreError;
use blake2::{Blake2b512, Digest};
use parity_scale_codec::{Decode, Encode};
use schnorrkel::{ExpansionMode, MiniSecretKey, PublicKey, SecretKey};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// The SS58 network prefix of Bittensor (and generic Substrate).
pub const SS58_DEFAULT_PREFIX: u16 = 42;
/// The signing context of Substrate's sr25519.
pub const SIGNING_CONTEXT: &[u8] = b"substrate";

/// A 32-byte sr25519 public key: a validator's, miner's or owner's identity on chain.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Hotkey(pub [u8; 32]);

fn ss58_checksum(payload: &[u8]) -> [u8; 2] {
    let mut h = Blake2b512::new();
    h.update(b"SS58PRE");
    h.update(payload);
    let d = h.finalize();
    [d[0], d[1]]
}

impl Hotkey {
    /// The SS58 address under `prefix` (0..=16383).
    pub fn to_ss58_with_prefix(&self, prefix: u16) -> String {
        let prefix = prefix & 0x3fff;
        let mut payload = Vec::with_capacity(36);
        if prefix < 64 {
            payload.push(prefix as u8);
        } else {
            payload.push((((prefix & 0b1111_1100) >> 2) as u8) | 0b0100_0000);
            payload.push(((prefix >> 8) as u8) | (((prefix & 0b11) as u8) << 6));
        }
        payload.extend_from_slice(&self.0);
        let c = ss58_checksum(&payload);
        payload.extend_from_slice(&c);
        bs58::encode(payload).into_string()
    }

    /// The SS58 address under prefix 42.
    pub fn to_ss58(&self) -> String {
        self.to_ss58_with_prefix(SS58_DEFAULT_PREFIX)
    }

    /// Decodes an SS58 address of any network, returning the key and its prefix. The checksum
    /// is verified.
    pub fn decode_ss58(s: &str) -> Result<(Hotkey, u16), CoreError> {
        let bad = |why: &str| CoreError::InvalidSs58(format!("{s:?}: {why}"));
        if s.len() > 64 {
            return Err(bad("too long"));
        }
        let data = bs58::decode(s).into_vec().map_err(|_| bad("not base58"))?;
        let (prefix, plen) = match data.first() {
            Some(&b) if b < 64 => (b as u16, 1),
            Some(&b) if b < 128 => {
                let b1 = *data.get(1).ok_or_else(|| bad("truncated"))?;
                let lower = (b << 2) | (b1 >> 6);
                let upper = b1 & 0b0011_1111;
                (lower as u16 | ((upper as u16) << 8), 2)
            }
            Some(_) => return Err(bad("reserved prefix byte")),
            None => return Err(bad("empty")),
        };
        if data.len() != plen + 32 + 2 {
            return Err(bad("wrong length for a 32-byte account"));
        }
        let (payload, check) = data.split_at(plen + 32);
        if ss58_checksum(payload) != check {
            return Err(bad("checksum mismatch"));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&payload[plen..]);
        Ok((Hotkey(key), prefix))
    }

    /// Decodes an SS58 address and requires network prefix `expected`.
    pub fn from_ss58_with_prefix(s: &str, expected: u16) -> Result<Hotkey, CoreError> {
        let (k, found) = Self::decode_ss58(s)?;
        if found != expected {
            return Err(CoreError::WrongSs58Prefix { found, expected });
        }
        Ok(k)
    }

    /// From 64 hex digits (an optional `0x` prefix allowed).
    pub fn from_hex(s: &str) -> Result<Hotkey, CoreError> {
        Ok(Hotkey(parse_hex_array(s, "public key")?))
    }

    /// True when `signature` is this key's sr25519 signature (context `substrate`) of `message`.
    ///
    /// Valid results are remembered in a bounded process-wide set keyed by
    /// `SHA-256(key, message, signature)`, so the same signed bytes checked again (the same
    /// report seen over HTTP and in the DHT, or by every simulated node of `tally sim`) cost a
    /// hash instead of a curve operation. Invalid results are never remembered.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let id = crate::hash::tagged_sha256(
            b"tally/verified/v1",
            &[
                &self.0,
                &(message.len() as u64).to_le_bytes(),
                message,
                &signature.0,
            ],
        );
        if verified::contains(&id) {
            return true;
        }
        let Ok(pk) = PublicKey::from_bytes(&self.0) else {
            return false;
        };
        let Ok(sig) = schnorrkel::Signature::from_bytes(&signature.0) else {
            return false;
        };
        let ok = pk.verify_simple(SIGNING_CONTEXT, message, &sig).is_ok();
        if ok {
            verified::insert(id);
        }
        ok
    }
}

/// Forgets every remembered verification (benchmarks time the curve operation itself).
pub fn forget_verified() {
    verified::clear()
}

/// The bounded set of verified `(key, message, signature)` digests.
mod verified {
    use std::collections::HashSet;
    use std::sync::Mutex;

    /// Most digests kept; the set is cleared when full (only a cost, never a wrong answer).
    const CAP: usize = 1 << 17;
    static SET: Mutex<Option<HashSet<[u8; 32]>>> = Mutex::new(None);

    pub(super) fn contains(id: &[u8; 32]) -> bool {
        SET.lock()
            .ok()
            .is_some_and(|s| s.as_ref().is_some_and(|s| s.contains(id)))
    }

    pub(super) fn clear() {
        if let Ok(mut s) = SET.lock() {
            *s = None;
        }
    }

    pub(super) fn insert(id: [u8; 32]) {
        if let Ok(mut s) = SET.lock() {
            let set = s.get_or_insert_with(HashSet::new);
            if set.len() >= CAP {
                set.clear();
            }
            set.insert(id);
        }
    }
}

impl fmt::Display for Hotkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hotkey({})", self.to_ss58())
    }
}

impl FromStr for Hotkey {
    type Err = CoreError;
    /// Parses an SS58 address with prefix 42.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hotkey::from_ss58_with_prefix(s, SS58_DEFAULT_PREFIX)
    }
}

impl serde::Serialize for Hotkey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_ss58())
    }
}

impl<'de> serde::Deserialize<'de> for Hotkey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses hex (optional `0x`) into exactly `N` bytes.
pub fn parse_hex_array<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], CoreError> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 2 * N {
        return Err(CoreError::InvalidHex {
            what,
            reason: format!("expected {} hex digits, got {}", 2 * N, s.len()),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| CoreError::InvalidHex {
        what,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// A 64-byte sr25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// From 128 hex digits (an optional `0x` prefix allowed).
    pub fn from_hex(s: &str) -> Result<Signature, CoreError> {
        Ok(Signature(parse_hex_array(s, "signature")?))
    }
    /// Lowercase hex without prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

/// An sr25519 key pair that signs as Substrate does.
#[derive(Clone)]
pub struct Keypair {
    inner: schnorrkel::Keypair,
    /// The mini-secret seed, when the pair was made from one (kept to write keyfiles).
    seed: Option<Zeroizing<[u8; 32]>>,
    /// Sign without fresh randomness (the simulator's keys: a seed must replay bit for bit).
    deterministic: bool,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.hotkey())
    }
}

impl Keypair {
    /// From a 32-byte mini-secret seed, expanded in Ed25519 mode as `sp_core` does.
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        // A 32-byte slice is always a valid mini secret; the error arm cannot be reached.
        let mini = MiniSecretKey::from_bytes(seed).expect("32 bytes is a valid mini secret");
        Keypair {
            inner: mini.expand_to_keypair(ExpansionMode::Ed25519),
            seed: Some(Zeroizing::new(*seed)),
            deterministic: false,
        }
    }

    /// The same key, signing deterministically: the nonce is derived from the secret nonce key
    /// and the message only (as Ed25519 does), with no fresh randomness mixed in. Plain Schnorr
    /// signatures stay secure; the simulator uses it so one seed replays the same bytes.
    pub fn deterministic(mut self) -> Keypair {
        self.deterministic = true;
        self
    }

    /// From 64 hex digits of a mini-secret seed (an optional `0x` prefix allowed).
    pub fn from_seed_hex(s: &str) -> Result<Keypair, CoreError> {
        let seed = Zeroizing::new(parse_hex_array::<32>(s, "seed")?);
        Ok(Keypair::from_seed(&seed))
    }

    /// From a secret URI as Substrate's tools take it: 64 hex digits of a mini-secret seed
    /// (`0x` optional), or hard derivations of the public development phrase (`//Alice`,
    /// `//Bob//stash`, `//0`), which are for development chains only: anyone can derive them.
    pub fn from_uri(uri: &str) -> Result<Keypair, CoreError> {
        let uri = uri.trim();
        let Some(path) = uri.strip_prefix("//") else {
            return Keypair::from_seed_hex(uri).map_err(|_| {
                CoreError::InvalidKey(
                    "a key URI is 64 hex digits of a seed or a development path like //Alice"
                        .into(),
                )
            });
        };
        // the mini-secret of Substrate's development phrase ("bottom drive obey lake curtain
        // smoke basket hold race lonely fit walk"), as `subkey inspect` prints it
        let mut mini = parse_hex_array::<32>(
            "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e",
            "seed",
        )?;
        for junction in path.split("//") {
            if junction.is_empty() || junction.contains('/') {
                return Err(CoreError::InvalidKey(format!(
                    "{uri:?}: only hard derivations (//name) are supported"
                )));
            }
            // the chain code: the junction's SCALE encoding (a number as u64), zero-padded
            let enc = match junction.parse::<u64>() {
                Ok(n) => n.encode(),
                Err(_) => junction.encode(),
            };
            if enc.len() > 32 {
                return Err(CoreError::InvalidKey(format!(
                    "{junction:?}: a junction is at most 31 bytes"
                )));
            }
            let mut cc = [0u8; 32];
            cc[..enc.len()].copy_from_slice(&enc);
            let secret = MiniSecretKey::from_bytes(&mini)
                .map_err(|e| CoreError::InvalidKey(e.to_string()))?
                .expand(ExpansionMode::Ed25519);
            mini = secret
                .hard_derive_mini_secret_key(Some(schnorrkel::derive::ChainCode(cc)), b"")
                .0
                .to_bytes();
        }
        Ok(Keypair::from_seed(&mini))
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Keypair, CoreError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut seed[..])
            .map_err(|e| CoreError::InvalidKey(format!("no OS randomness: {e}")))?;
        Ok(Keypair::from_seed(&seed))
    }

    /// From the bytes of a Bittensor keyfile (`~/.bittensor/wallets/<w>/hotkeys/<h>`).
    ///
    /// Uses `secretSeed` when present, else the 64-byte `privateKey`; when `publicKey` or
    /// `ss58Address` is present it must match the derived key. An encrypted keyfile (NaCl,
    /// Ansible vault or legacy Fernet) gets an error that says so.
    pub fn from_keyfile_json(bytes: &[u8]) -> Result<Keypair, CoreError> {
        const MAX_KEYFILE: usize = 64 * 1024;
        if bytes.len() > MAX_KEYFILE {
            return Err(CoreError::Keyfile(format!(
                "{} bytes is too large for a keyfile (cap {MAX_KEYFILE})",
                bytes.len()
            )));
        }
        let trimmed = bytes.trim_ascii_start();
        for (magic, name) in [
            (&b"$NACL"[..], "NaCl"),
            (b"$ANSIBLE_VAULT", "Ansible vault"),
            (b"gAAAAA", "legacy Fernet"),
        ] {
            if trimmed.starts_with(magic) {
                return Err(CoreError::Keyfile(format!(
                    "this keyfile is encrypted ({name}); tally reads unencrypted hotkey files only: \
                     use the wallet's hotkey file (hotkeys are stored unencrypted by btcli), or \
                     decrypt it with bittensor's tooling first"
                )));
            }
        }
        let v: serde_json::Value = serde_json::from_slice(trimmed)
            .map_err(|e| CoreError::Keyfile(format!("not a Bittensor JSON keyfile ({e})")))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
        let kp = if let Some(seed) = field("secretSeed") {
            Keypair::from_seed_hex(seed)
                .map_err(|e| CoreError::Keyfile(format!("secretSeed: {e}")))?
        } else if let Some(sk) = field("privateKey") {
            let sk = Zeroizing::new(
                parse_hex_array::<64>(sk, "privateKey")
                    .map_err(|e| CoreError::Keyfile(e.to_string()))?,
            );
            // bittensor-wallet (sp_core) writes schnorrkel's own 64-byte form; older tools wrote
            // the Ed25519-compatible form. Take the first that parses.
            let secret = SecretKey::from_bytes(&sk[..])
                .or_else(|_| SecretKey::from_ed25519_bytes(&sk[..]))
                .map_err(|e| CoreError::Keyfile(format!("privateKey: {e}")))?;
            Keypair {
                inner: secret.to_keypair(),
                seed: None,
                deterministic: false,
            }
        } else {
            return Err(CoreError::Keyfile(
                "no secretSeed or privateKey: this is a public-only keyfile; sign with the \
                 wallet's hotkey file instead"
                    .into(),
            ));
        };
        if let Some(pk) = field("publicKey") {
            if Hotkey::from_hex(pk).ok() != Some(kp.hotkey()) {
                return Err(CoreError::Keyfile(
                    "publicKey does not match the secret".into(),
                ));
            }
        }
        if let Some(addr) = field("ss58Address") {
            match Hotkey::decode_ss58(addr) {
                Ok((k, _)) if k == kp.hotkey() => {}
                _ => {
                    return Err(CoreError::Keyfile(
                        "ss58Address does not match the secret".into(),
                    ))
                }
            }
        }
        Ok(kp)
    }

    /// An unencrypted keyfile in Bittensor's JSON layout; needs a key made from a seed.
    pub fn to_keyfile_json(&self) -> Result<String, CoreError> {
        let seed = self.seed.as_ref().ok_or_else(|| {
            CoreError::Keyfile("this key was not made from a seed; cannot write a keyfile".into())
        })?;
        let pk = format!("0x{}", hex::encode(self.hotkey().0));
        let v = serde_json::json!({
            "accountId": pk,
            "publicKey": pk,
            "privateKey": format!("0x{}", hex::encode(self.inner.secret.to_bytes())),
            "secretPhrase": serde_json::Value::Null,
            "secretSeed": format!("0x{}", hex::encode(&seed[..])),
            "ss58Address": self.hotkey().to_ss58(),
        });
        Ok(v.to_string())
    }

    /// The public key.
    pub fn hotkey(&self) -> Hotkey {
        Hotkey(self.inner.public.to_bytes())
    }

    /// Signs `message` with context `substrate`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        if self.deterministic {
            use rand_chacha::rand_core::SeedableRng;
            let t = schnorrkel::signing_context(SIGNING_CONTEXT).bytes(message);
            let rng = rand_chacha::ChaCha20Rng::from_seed([0; 32]);
            return Signature(
                self.inner
                    .sign(schnorrkel::context::attach_rng(t, rng))
                    .to_bytes(),
            );
        }
        Signature(self.inner.sign_simple(SIGNING_CONTEXT, message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_uris_derive_the_well_known_accounts() {
        let alice = Keypair::from_uri("//Alice").unwrap();
        assert_eq!(
            alice.hotkey().to_ss58(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        assert_eq!(
            Keypair::from_uri("//Bob").unwrap().hotkey().to_ss58(),
            "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
        );
        let seed = "e5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a";
        assert_eq!(Keypair::from_uri(seed).unwrap().hotkey(), alice.hotkey());
        for bad in [
            "//",
            "//a/b",
            "Alice",
            "0x12",
            &format!("//{}", "x".repeat(40)),
        ] {
            assert!(Keypair::from_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ss58_round_trip_and_checksum() {
        let kp = Keypair::from_seed(&[7u8; 32]);
        let hk = kp.hotkey();
        let s = hk.to_ss58();
        assert!(s.starts_with('5'));
        assert_eq!(s.parse::<Hotkey>().unwrap(), hk);
        // flip one character: checksum or base58 must fail
        let mut bad = s.clone().into_bytes();
        bad[10] = if bad[10] == b'a' { b'b' } else { b'a' };
        assert!(String::from_utf8(bad).unwrap().parse::<Hotkey>().is_err());
        for prefix in [0u16, 2, 63, 64, 255, 1000, 16383] {
            let a = hk.to_ss58_with_prefix(prefix);
            assert_eq!(
                Hotkey::decode_ss58(&a).unwrap(),
                (hk, prefix),
                "prefix {prefix}"
            );
        }
        assert!(matches!(
            Hotkey::from_ss58_with_prefix(&hk.to_ss58_with_prefix(0), 42),
            Err(CoreError::WrongSs58Prefix {
                found: 0,
                expected: 42
            })
        ));
    }

    #[test]
    fn known_alice_address() {
        // //Alice's well-known public key and its generic-substrate address.
        let alice =
            Hotkey::from_hex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
                .unwrap();
        assert_eq!(
            alice.to_ss58(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
    }

    #[test]
    fn sign_verify_and_tamper() {
        let kp = Keypair::from_seed(&[1u8; 32]);
        let sig = kp.sign(b"msg");
        assert!(kp.hotkey().verify(b"msg", &sig));
        assert!(!kp.hotkey().verify(b"msh", &sig));
        let other = Keypair::from_seed(&[2u8; 32]);
        assert!(!other.hotkey().verify(b"msg", &sig));
        let mut bad = sig;
        bad.0[3] ^= 1;
        assert!(!kp.hotkey().verify(b"msg", &bad));
    }

    #[test]
    fn keyfile_round_trip() {
        let kp = Keypair::from_seed(&[9u8; 32]);
        let json = kp.to_keyfile_json().unwrap();
        let back = Keypair::from_keyfile_json(json.as_bytes()).unwrap();
        assert_eq!(back.hotkey(), kp.hotkey());
        // privateKey alone gives the same key
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v.as_object_mut().unwrap().remove("secretSeed");
        let back = Keypair::from_keyfile_json(v.to_string().as_bytes()).unwrap();
        assert_eq!(back.hotkey(), kp.hotkey());
    }

    #[test]
    fn keyfile_errors_are_clear() {
        let e = Keypair::from_keyfile_json(b"$NACL\x01\x02").unwrap_err();
        assert!(e.to_string().contains("encrypted"), "{e}");
        let e = Keypair::from_keyfile_json(b"{\"ss58Address\":\"x\"}").unwrap_err();
        assert!(e.to_string().contains("public-only"), "{e}");
        let e = Keypair::from_keyfile_json(b"not json").unwrap_err();
        assert!(e.to_string().contains("JSON"), "{e}");
        let mut v: serde_json::Value =
            serde_json::from_str(&Keypair::from_seed(&[3; 32]).to_keyfile_json().unwrap()).unwrap();
        v["publicKey"] = serde_json::json!(format!("0x{}", "00".repeat(32)));
        let e = Keypair::from_keyfile_json(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }
}
