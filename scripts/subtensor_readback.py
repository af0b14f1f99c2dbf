#!/usr/bin/env python3
"""Read back from Subtensor, with the Python bittensor SDK, what Tally's validators wrote.

    python3 scripts/subtensor_readback.py CHECKS.json

CHECKS.json:
    {"url": "ws://127.0.0.1:9944", "netuid": 2,
     "commitments": [{"run": 7, "validator": "5F...", "at_block": 120, "block": 113, "data": "<hex>"}],
     "weights":     [{"run": 7, "validator": "5F...", "uid": 1, "at_block": 125, "weights": [[4, 21845], [5, 65535]]}]}

Every read uses the chain state at `at_block`:
  commitment: Commitments.CommitmentOf[netuid][validator] must exist, its `block` (the block the
              commitment was made in) must equal `block`, and its first field must be a RawN field
              whose bytes equal `data`.
  weights:    SubtensorModule.Keys[netuid][uid] must be `validator`, and
              SubtensorModule.Weights[netuid][uid] must equal `weights` (as a set of pairs).

Prints one `ok` / `MISMATCH` / `ERROR` line per check and a summary line.
Exit codes: 0 every check matches; 1 at least one mismatch; 2 the script cannot run or a read
failed (bad CHECKS.json, bittensor missing, chain unreachable, state at a block not available).

A chopsticks chain needs bittensor_chopsticks_shim.py imported before bittensor is used. It is
looked up at $TALLY_CHOPSTICKS_SHIM (the .py file or its directory), else at
<repo>/../shared/subtensor-local/; when it is not found the script goes on without it (a real
node does not need it).
"""
import asyncio
import importlib.util
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIM = "bittensor_chopsticks_shim.py"


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_shim():
    """Import the chopsticks shim if it can be found; return its path or None."""
    env = os.environ.get("TALLY_CHOPSTICKS_SHIM")
    path = env or os.path.join(REPO, "..", "shared", "subtensor-local")
    if os.path.isdir(path):
        path = os.path.join(path, SHIM)
    if not os.path.isfile(path):
        if env:
            print(f"warning: TALLY_CHOPSTICKS_SHIM={env}: no {SHIM} there; going on without it", file=sys.stderr)
        return None
    spec = importlib.util.spec_from_file_location("bittensor_chopsticks_shim", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # patches bittensor's RPC layer
    return os.path.abspath(path)


def raw_bytes(field):
    """The bytes of a decoded `Data::RawN` field, or None when the field is another variant.

    The SDK decodes `Data` as a one-key dict, e.g. {"Raw40": "0x<80 hex digits>"}: [u8; N] comes
    back as 0x-hex, never as text, so the bytes are exact. Anything else is refused rather than guessed."""
    if not isinstance(field, dict) or len(field) != 1:
        return None
    (variant, value), = field.items()
    if not (variant.startswith("Raw") and variant[3:].isdigit()):
        return None
    n = int(variant[3:])
    if isinstance(value, (bytes, bytearray)):
        out = bytes(value)
    elif isinstance(value, (list, tuple)):
        out = bytes(int(b) for b in value)
    elif isinstance(value, str) and value.startswith("0x"):
        out = bytes.fromhex(value[2:])
    else:
        raise ValueError(f"cannot read {variant} payload {value!r} as raw bytes")
    if len(out) != n:
        raise ValueError(f"{variant} payload has {len(out)} bytes")
    return out


async def check_commitment(sub, netuid, c):
    """One commitment check -> (ok, message)."""
    who = f"commitment run {c['run']} validator {c['validator']}"
    want = bytes.fromhex(c["data"].removeprefix("0x"))
    # Client.query(("Commitments", "CommitmentOf"), ...) returns the stored Registration decoded against
    # the live runtime's metadata (a tuple address: bt.storage is built from mainnet metadata).
    # Not sub.identity.commitment(...).data: it joins all Raw fields and returns text when they are UTF-8.
    rec = await sub.query(("Commitments", "CommitmentOf"), [netuid, c["validator"]], block=c["at_block"])
    if not rec:
        return False, f"{who}: no commitment on chain at block {c['at_block']}"
    fields = list((rec.get("info") or {}).get("fields") or [])
    got = raw_bytes(fields[0]) if fields else None
    problems = []
    if int(rec["block"]) != c["block"]:
        problems.append(f"chain block {rec['block']} != tally {c['block']}")
    if got is None:
        problems.append(f"first field is not RawN: {fields[0] if fields else 'no fields'}")
    elif got != want:
        problems.append(f"chain data {got.hex()} != tally {want.hex()}")
    return verdict(who, problems, f"block {rec['block']}, {len(got or b'')} bytes")


def verdict(who, problems, ok):
    """(ok, message) for one check: its problems, or what matched."""
    if problems:
        return False, f"{who}: " + "; ".join(problems)
    return True, f"{who}: {ok}"


async def check_weights(sub, netuid, w):
    """One weights check -> (ok, message)."""
    who = f"weights run {w['run']} validator {w['validator']} uid {w['uid']}"
    at = w["at_block"]
    # Raw storage, not sub.weights.weights: that one normalizes each row to fractions.
    hotkey = await sub.query(("SubtensorModule", "Keys"), [netuid, w["uid"]], block=at)
    row = await sub.query(("SubtensorModule", "Weights"), [netuid, w["uid"]], block=at) or []
    got = sorted((int(d), int(v)) for d, v in row)
    want = sorted((int(d), int(v)) for d, v in w["weights"])
    problems = []
    if str(hotkey) != w["validator"]:
        problems.append(f"uid {w['uid']} is {hotkey} on chain")
    if got != want:
        problems.append(f"chain {json.dumps([list(p) for p in got])} != tally {json.dumps([list(p) for p in want])}")
    return verdict(who, problems, f"{len(got)} pairs")


async def run(bt, url, netuid, commitments, weights, shim):
    # The SDK's async Client (`await bt.Subtensor(url)`), so that asyncio.run owns and closes the
    # event loop: the blocking facade leaves its background loop to interpreter exit, which prints
    # a spurious "Exception ignored in BaseEventLoop.__del__" traceback.
    try:
        sub = await bt.Subtensor(url)
        head = await sub.block()
    except Exception as e:  # noqa: BLE001  (any connection failure)
        die(f"cannot reach {url}: {e!r}; start the chain or fix \"url\" in {sys.argv[1]}"
            + ("" if shim else f" (no {SHIM} was loaded: set TALLY_CHOPSTICKS_SHIM if this is chopsticks)"))
    mismatches = errors = 0
    for kind, fn, items in (("commitment", check_commitment, commitments), ("weights", check_weights, weights)):
        for item in items:
            try:
                ok, msg = await fn(sub, netuid, item)
            except Exception as e:  # noqa: BLE001  (a failed read is reported, then exit 2)
                errors += 1
                print(f"ERROR    {kind} {json.dumps(item)[:120]}: {e!r}", flush=True)
                continue
            mismatches += not ok
            print(f"{'ok      ' if ok else 'MISMATCH'} {msg}", flush=True)
    await sub.close()
    n = len(commitments) + len(weights)
    print(f"{n} checks, {mismatches} mismatches{f', {errors} errors' if errors else ''} "
          f"(read with bittensor {bt.__version__} at {url}, head {head}{', chopsticks shim' if shim else ''})")
    return 2 if errors else 1 if mismatches else 0


def main():
    if len(sys.argv) != 2:
        die(f"usage: {sys.argv[0]} CHECKS.json")
    try:
        with open(sys.argv[1]) as f:
            spec = json.load(f)
        url, netuid = spec["url"], int(spec["netuid"])
        commitments, weights = spec.get("commitments", []), spec.get("weights", [])
    except (OSError, ValueError, KeyError, TypeError) as e:
        die(f"cannot read {sys.argv[1]}: {e!r}; fix the file (see the docstring of {__file__} for its format)")

    try:
        shim = load_shim()
        import bittensor as bt
    except ImportError as e:
        die(f"bittensor SDK not importable ({e}); run: pip install \"bittensor>=11,<12\"")

    sys.exit(asyncio.run(run(bt, url, netuid, commitments, weights, shim)))


if __name__ == "__main__":
    main()
