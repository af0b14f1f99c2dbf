#!/usr/bin/env python3
"""Cross-checks tally's sr25519 against Bittensor's own tooling (the bittensor-wallet package).

Two uses:
  bittensor_crosscheck.py fixtures OUT.json
      writes signatures made by bittensor-wallet, for tally's Rust tests to verify;
  bittensor_crosscheck.py verify < CASES.json
      reads [{"ss58", "message_hex", "signature_hex", "public_hex"}...] made by tally and
      checks each with bittensor-wallet; exits 0 only if every one verifies and every
      public key/address pair agrees.

Installed by .ci/run with `pip install bittensor-wallet==4.1.1`.
"""
import json
import sys

from bittensor_wallet import Keypair

MNEMONIC = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"


def fixtures(out):
    cases = []
    seeds = ["0x" + "11" * 32, "0x" + "00" * 32, "0x" + bytes(range(32)).hex()]
    messages = [b"", b"hello tally", bytes(range(256)) * 5]
    for seed in seeds:
        kp = Keypair.create_from_seed(seed)
        for msg in messages:
            sig = kp.sign(msg)
            assert kp.verify(msg, sig)
            cases.append({
                "seed_hex": seed[2:],
                "ss58": kp.ss58_address,
                "public_hex": kp.public_key.hex(),
                "message_hex": msg.hex(),
                "signature_hex": sig.hex(),
            })
    kp = Keypair.create_from_mnemonic(MNEMONIC)
    sig = kp.sign(b"tally keyfile")
    cases.append({"seed_hex": None, "ss58": kp.ss58_address, "public_hex": kp.public_key.hex(),
                  "message_hex": b"tally keyfile".hex(), "signature_hex": sig.hex()})
    with open(out, "w") as f:
        json.dump(cases, f, indent=1)


def verify():
    cases = json.load(sys.stdin)
    bad = 0
    for c in cases:
        kp = Keypair(ss58_address=c["ss58"])
        if kp.public_key.hex() != c["public_hex"]:
            print("address/public key mismatch:", c["ss58"])
            bad += 1
            continue
        ok = kp.verify(bytes.fromhex(c["message_hex"]), bytes.fromhex(c["signature_hex"]))
        if not ok:
            print("signature rejected by bittensor-wallet:", c)
            bad += 1
    print(f"{len(cases) - bad} passed, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "fixtures":
        fixtures(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "verify":
        verify()
    else:
        print(__doc__)
        sys.exit(2)
