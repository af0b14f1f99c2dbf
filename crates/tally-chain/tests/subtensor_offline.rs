//! The Subtensor adapter offline (feature `subtensor`): every call Tally submits, encoded
//! against Bittensor mainnet ("finney") metadata, decoded back by two decoders that share no code
//! with the encoder (a hand-written SCALE layout, and `scale-value` walking the metadata's
//! `RuntimeCall` type), to the same call and fields; the epoch clock against Subtensor's own
//! epoch rule; and the SDK's weight normalization.
//!
//! `tests/data/finney-spec365.scale` is the metadata file shipped by the `bittensor-rs` crate
//! 0.1.1 on crates.io (MIT licence, covenant.ai), spec_version 365: a registry package, never
//! fetched at build time.
#![cfg(feature = "subtensor")]

use parity_scale_codec::{Compact, Decode};
use std::sync::Arc;
use subxt::config::substrate::SpecVersionForRange;
use subxt::ext::frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};
use subxt::ext::scale_value::{self, Composite, ValueDef};
use subxt::{Metadata, OfflineClient, PolkadotConfig};
use tally_chain::extrinsic;
use tally_chain::subtensor::{
    epoch_clock, epoch_clock_stateful, subtensor_runs_epoch, weights_for_chain, SubtensorCall,
};

const FINNEY: &[u8] = include_bytes!("data/finney-spec365.scale");

/// The call bytes subxt encodes for `call` against finney's metadata.
fn encode(call: &SubtensorCall) -> Vec<u8> {
    let md = Metadata::decode_from(FINNEY).expect("finney metadata decodes");
    let cfg = PolkadotConfig::builder()
        .use_historic_types(false)
        .set_metadata_for_spec_versions([(365u32, Arc::new(md))])
        .set_spec_version_for_block_ranges([SpecVersionForRange {
            block_range: 0..u64::MAX,
            spec_version: 365,
            transaction_version: 1,
        }])
        .build();
    let offline = OfflineClient::new_with_config(cfg);
    let at = offline.at_block(0u64).expect("offline block");
    at.tx()
        .call_data(&call.payload().expect("payload"))
        .expect("encodes against finney")
}

/// `(pallet, call, fields)` of `bytes` as the metadata's `RuntimeCall` type says, by
/// `scale-value` (a decoder: subxt only encoded).
fn decode_by_metadata(bytes: &[u8]) -> (String, String, Composite<u32>) {
    let prefixed = RuntimeMetadataPrefixed::decode(&mut &FINNEY[..]).expect("metadata");
    let RuntimeMetadata::V16(md) = prefixed.1 else {
        panic!("finney metadata is V16")
    };
    let mut cur = bytes;
    let v = scale_value::scale::decode_as_type(&mut cur, md.outer_enums.call_enum_ty.id, &md.types)
        .expect("decodes as a RuntimeCall");
    assert!(cur.is_empty(), "{} bytes left over", cur.len());
    let ValueDef::Variant(pallet) = v.value else {
        panic!("a RuntimeCall is a variant")
    };
    let call = match pallet.values {
        Composite::Unnamed(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("pallet variant holds one call: {other:?}"),
    };
    let ValueDef::Variant(call) = call.value else {
        panic!("a pallet call is a variant")
    };
    (pallet.name, call.name, call.values)
}

fn field_u128(fields: &Composite<u32>, name: &str) -> u128 {
    let Composite::Named(f) = fields else {
        panic!("named fields")
    };
    let v = &f.iter().find(|(n, _)| n == name).expect(name).1;
    // newtypes (NetUid) are one-field composites around the number
    fn num(v: &scale_value::Value<u32>) -> u128 {
        match &v.value {
            ValueDef::Primitive(p) => p.as_u128().expect("unsigned"),
            ValueDef::Composite(Composite::Unnamed(x)) if x.len() == 1 => num(&x[0]),
            ValueDef::Composite(Composite::Named(x)) if x.len() == 1 => num(&x[0].1),
            other => panic!("not a number: {other:?}"),
        }
    }
    num(v)
}

fn field_u16s(fields: &Composite<u32>, name: &str) -> Vec<u16> {
    let Composite::Named(f) = fields else {
        panic!("named fields")
    };
    let v = &f.iter().find(|(n, _)| n == name).expect(name).1;
    let ValueDef::Composite(c) = &v.value else {
        panic!("{name} is a sequence")
    };
    c.values()
        .map(|x| match &x.value {
            ValueDef::Primitive(p) => p.as_u128().expect("u16") as u16,
            other => panic!("not a u16: {other:?}"),
        })
        .collect()
}

#[test]
fn set_weights_encodes_against_mainnet_metadata_and_decodes_back() {
    let tally = extrinsic::set_weights(vec![(3, 1_000), (7, 64_535), (9, 0)]).unwrap();
    let call = SubtensorCall::from_call(21, &tally, 7).unwrap();
    let bytes = encode(&call);
    // hand-written layout: pallet index, call index, netuid, dests, weights, version key
    let (p, c, netuid, dests, weights, vk) =
        <(u8, u8, u16, Vec<u16>, Vec<u16>, u64)>::decode(&mut &bytes[..]).unwrap();
    assert_eq!((p, c), (7, 0), "SubtensorModule.set_weights");
    assert_eq!(netuid, 21);
    assert_eq!(dests, vec![3, 7]); // the zero weight is dropped, as the SDK does
    assert_eq!(weights, vec![1_015, 65_535]); // max-upscaled: 1000 / 64535 * 65535 = 1015.495
    assert_eq!(vk, 7);
    // by the metadata
    let (pallet, name, fields) = decode_by_metadata(&bytes);
    assert_eq!(
        (pallet.as_str(), name.as_str()),
        ("SubtensorModule", "set_weights")
    );
    assert_eq!(field_u128(&fields, "netuid"), 21);
    assert_eq!(field_u16s(&fields, "dests"), dests);
    assert_eq!(field_u16s(&fields, "weights"), weights);
    assert_eq!(field_u128(&fields, "version_key"), 7);
}

#[test]
fn commitments_encode_as_raw_data_fields() {
    let data: Vec<u8> = (0..40u8).collect();
    let call = SubtensorCall::from_call(5, &extrinsic::commit(data.clone()).unwrap(), 0).unwrap();
    let bytes = encode(&call);
    // Commitments.set_commitment(netuid, CommitmentInfo { fields: [Raw40(data)] }): a
    // one-element vector whose element is variant 41 (RawN is N + 1) followed by the bytes
    let mut cur = &bytes[..];
    let (p, c, netuid) = <(u8, u8, u16)>::decode(&mut cur).unwrap();
    assert_eq!((p, c, netuid), (18, 0, 5));
    assert_eq!(<Compact<u32>>::decode(&mut cur).unwrap().0, 1);
    assert_eq!(u8::decode(&mut cur).unwrap(), 41);
    assert_eq!(cur, &data[..]);
    let (pallet, name, fields) = decode_by_metadata(&bytes);
    assert_eq!(
        (pallet.as_str(), name.as_str()),
        ("Commitments", "set_commitment")
    );
    assert_eq!(field_u128(&fields, "netuid"), 5);
    let text = format!("{fields:?}");
    assert!(text.contains("Raw40"), "{text}");
    // over 128 bytes is refused before anything is signed
    assert!(SubtensorCall::SetCommitment {
        netuid: 5,
        data: vec![0; 129]
    }
    .payload()
    .is_err());
}

#[test]
fn serve_axon_encodes_ip_and_port_as_the_chain_stores_them() {
    let call =
        SubtensorCall::from_call(2, &extrinsic::serve("127.0.0.2:8091", "").unwrap(), 0).unwrap();
    let bytes = encode(&call);
    let (p, c, netuid, version, ip, port, ip_type, protocol, a, b) =
        <(u8, u8, u16, u32, u128, u16, u8, u8, u8, u8)>::decode(&mut &bytes[..]).unwrap();
    assert_eq!((p, c, netuid, version), (7, 4, 2, 0));
    assert_eq!(ip, u32::from(std::net::Ipv4Addr::new(127, 0, 0, 2)) as u128);
    assert_eq!((port, ip_type, protocol, a, b), (8091, 4, 4, 0, 0));
    let (pallet, name, fields) = decode_by_metadata(&bytes);
    assert_eq!(
        (pallet.as_str(), name.as_str()),
        ("SubtensorModule", "serve_axon")
    );
    assert_eq!(field_u128(&fields, "port"), 8091);
    assert_eq!(field_u128(&fields, "ip"), ip);
    // registration needs the coldkey: a clear refusal, not a call
    let err = SubtensorCall::from_call(2, &extrinsic::register("", "").unwrap(), 0).unwrap_err();
    assert!(err.to_string().contains("btcli"), "{err}");
}

/// Subtensor's `blocks_until_next_epoch`, as the pallet writes it (the oracle the clock must
/// match).
fn blocks_until_next_epoch(netuid: u16, tempo: u16, block: u64) -> u64 {
    if tempo == 0 {
        return u64::MAX;
    }
    let netuid_plus_one = (netuid as u64).saturating_add(1);
    let tempo_plus_one = (tempo as u64).saturating_add(1);
    let adjusted_block = block.wrapping_add(netuid_plus_one);
    let remainder = adjusted_block.checked_rem(tempo_plus_one).unwrap_or(0);
    (tempo as u64).saturating_sub(remainder)
}

#[test]
fn the_epoch_clock_follows_subtensors_epoch_rule() {
    for netuid in [0u16, 1, 2, 3, 7, 18, 64, 128, 4095] {
        for tempo in [1u16, 2, 9, 10, 99, 100, 360] {
            let (length, offset) = epoch_clock(netuid, tempo);
            assert_eq!(length, tempo as u64 + 1);
            assert!(offset < length);
            for b in 0..3 * length + 5 {
                let chain = blocks_until_next_epoch(netuid, tempo, b) == 0;
                assert_eq!(subtensor_runs_epoch(netuid, tempo, b), chain);
                // a Tally epoch starts in the block right after one where the chain ran its epoch
                let starts = b + 1 >= offset && (b + 1 - offset).is_multiple_of(length);
                assert_eq!(
                    chain, starts,
                    "netuid {netuid} tempo {tempo} block {b}: chain epoch {chain}, tally start at {} {starts}",
                    b + 1
                );
            }
        }
    }
    // tempo 0: the chain runs no epoch
    assert!(!(0..1000).any(|b| subtensor_runs_epoch(3, 0, b)));
}

#[test]
fn weights_are_max_upscaled_and_rounded_like_the_sdk() {
    // the SDK's sample: [0.5, 1.0, 0.25, 0.0, 1e-6, 0.7] gives uids [0,1,2,5] and values
    // [32768, 65535, 16384, 45874]; in u16 shares the same shape:
    let w = [
        (0, 32_768),
        (1, 65_535),
        (2, 16_384),
        (3, 0),
        (4, 0),
        (5, 45_874),
    ];
    assert_eq!(
        weights_for_chain(&w),
        (vec![0, 1, 2, 5], vec![32_768, 65_535, 16_384, 45_874])
    );
    // exact halves go to even, as Python's round does: 1/2 of 65535 = 32767.5 -> 32768
    assert_eq!(weights_for_chain(&[(0, 1), (1, 2)]).1, vec![32_768, 65_535]);
    // 1/6 of 65535 = 10922.5 -> 10922 (even)
    assert_eq!(weights_for_chain(&[(0, 1), (1, 6)]).1, vec![10_922, 65_535]);
    assert_eq!(weights_for_chain(&[(0, 0)]), (vec![], vec![]));
    assert_eq!(weights_for_chain(&[]), (vec![], vec![]));
}

#[test]
fn the_weights_commit_hash_matches_the_sdk_and_the_pallet() {
    // the vector the Python SDK's generate_weight_hash gives (checked against the chain's
    // get_commit_hash): account 0x01..0x20, netuid 1, uids [0, 5], values [65535, 100],
    // salt 1..8, version key 7
    let account: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
    let salt: Vec<u16> = (1..=8).collect();
    let h =
        tally_chain::subtensor::weights_commit_hash(&account, 1, &[0, 5], &[65_535, 100], &salt, 7);
    assert_eq!(
        hex::encode(h),
        "bb2e98048040f8c6555abdcae505323993a939b17ff5ba4104c39238d5e585e5"
    );
    // commit and reveal encode against mainnet's metadata
    let commit = encode(&SubtensorCall::CommitWeights { netuid: 1, hash: h });
    let (p, c, netuid, hash) = <(u8, u8, u16, [u8; 32])>::decode(&mut &commit[..]).unwrap();
    assert_eq!((p, c, netuid, hash), (7, 96, 1, h));
    let reveal = encode(&SubtensorCall::RevealWeights {
        netuid: 1,
        uids: vec![0, 5],
        values: vec![65_535, 100],
        salt: salt.clone(),
        version_key: 7,
    });
    let (p, c, netuid, uids, values, s, vk) =
        <(u8, u8, u16, Vec<u16>, Vec<u16>, Vec<u16>, u64)>::decode(&mut &reveal[..]).unwrap();
    assert_eq!(
        (p, c, netuid, uids, values, s, vk),
        (7, 97, 1, vec![0, 5], vec![65_535, 100], salt, 7)
    );
    let (pallet, name, _) = decode_by_metadata(&reveal);
    assert_eq!(
        (pallet.as_str(), name.as_str()),
        ("SubtensorModule", "reveal_weights")
    );
}

/// The stateful scheduler of spec 423 on (`run_coinbase.rs`, `should_run_epoch` at opentensor/
/// subtensor 14bc6f9f): with no owner trigger pending and the safety net not reached, the
/// epoch runs once `block - LastEpochBlock >= tempo`, and running it sets `LastEpochBlock` to
/// the block.
fn stateful_should_run_epoch(tempo: u16, last_epoch_block: u64, block: u64) -> bool {
    tempo != 0 && block.saturating_sub(last_epoch_block) >= tempo as u64
}

#[test]
fn the_stateful_epoch_clock_follows_the_newer_scheduler() {
    // anchors as the chain sets them: at registration `now - netuid % tempo`, after the upgrade
    // migration on the legacy schedule, after a trigger or a tempo change any block
    for tempo in [1u16, 2, 10, 99, 360, 361, 7200] {
        for anchor in [0u64, 1, 17, 359, 360, 1_000_003, 6_543_210] {
            let (length, offset) = epoch_clock_stateful(tempo, anchor);
            assert_eq!(length, tempo as u64);
            assert!(offset < length);
            // replay the chain from the anchor: each epoch it runs re-anchors it
            let mut last = anchor;
            let mut epochs = 0;
            for b in anchor + 1..=anchor + 4 * tempo as u64 {
                let chain = stateful_should_run_epoch(tempo, last, b);
                if chain {
                    last = b;
                    epochs += 1;
                    // the clock read after the epoch is the same clock
                    assert_eq!(epoch_clock_stateful(tempo, last), (length, offset));
                }
                let starts = b + 1 >= offset && (b + 1 - offset).is_multiple_of(length);
                assert_eq!(
                    chain, starts,
                    "tempo {tempo} anchor {anchor} block {b}: chain epoch {chain}, tally start at {} {starts}",
                    b + 1
                );
            }
            assert_eq!(epochs, 4, "tempo {tempo} anchor {anchor}");
        }
    }
    // an owner's trigger re-anchors the schedule: the clock read afterwards follows it
    let (tempo, anchor) = (360u16, 1_000u64);
    let triggered = anchor + 100;
    let after = epoch_clock_stateful(tempo, triggered);
    assert_ne!(after, epoch_clock_stateful(tempo, anchor));
    assert!(stateful_should_run_epoch(tempo, triggered, triggered + 360));
    assert_eq!((triggered + 361 - after.1) % after.0, 0);
}
