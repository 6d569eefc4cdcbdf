#!/usr/bin/env python3
"""An independent verifier of OpenConsole's audit proofs.

It shares no code with the server: it checks, with Python's standard library and the
cryptography package only, what the operator API answers:

  verify.py --key VERIFIER inclusion PROOF.json
      PROOF.json is the answer of GET /api/openconsole/v1/audit/proof/{seq}: the signed
      checkpoint's Ed25519 signature, that the leaf is the entry shown, and the RFC 6962 audit
      path from the leaf's hash to the checkpoint's root.
  verify.py --key VERIFIER consistency CONSISTENCY.json
      CONSISTENCY.json is the answer of GET /api/openconsole/v1/audit/consistency?from=M&to=N:
      the checkpoints' signatures (when the answer has them) and the RFC 6962 consistency proof
      between the two roots.

VERIFIER is the audit key as `openconsole audit key` prints it: name+hash+base64(0x01 || key).
It exits 0 and prints what it verified, or exits 1 saying what does not hold.
"""
import argparse
import base64
import hashlib
import json
import sys
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Failure(Exception):
    pass


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def b64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def parse_verifier(vkey: str):
    name, keyhash, key = vkey.split("+", 2)
    raw = b64(key)
    if len(raw) != 33 or raw[0] != 1:
        raise Failure("the verifier key is not an Ed25519 key")
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != keyhash:
        raise Failure("the verifier key's hash does not match its name and key")
    return name, bytes.fromhex(keyhash), Ed25519PublicKey.from_public_bytes(raw[1:])


def open_checkpoint(note: str, vkey: str):
    """Verifies a signed note and returns (origin, size, root) of the checkpoint it holds."""
    name, keyhash, pub = parse_verifier(vkey)
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise Failure("the checkpoint has no signature")
    text += "\n"
    ok = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise Failure("malformed signature line: %r" % line)
        signer, _, sig = line[2:].partition(" ")
        raw = b64(sig)
        if signer != name or raw[:4] != keyhash:
            continue
        try:
            pub.verify(raw[4:], text.encode())
            ok = True
        except InvalidSignature:
            raise Failure("the checkpoint's signature by %s does not verify" % name)
    if not ok:
        raise Failure("the checkpoint is not signed by %s" % name)
    lines = text.split("\n")
    origin, size, root = lines[0], int(lines[1]), b64(lines[2])
    if origin != name:
        raise Failure("checkpoint of %r signed by the key of %r" % (origin, name))
    return origin, size, root


def lsb(x: int) -> bool:
    return x & 1 == 1


def check_inclusion(index: int, size: int, leaf: bytes, path, root: bytes):
    """RFC 9162, 2.1.3.2: verifying an inclusion proof."""
    if index >= size:
        raise Failure("the entry is not in a tree of that size")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Failure("the audit path is too long")
        if lsb(fn) or fn == sn:
            r = node_hash(p, r)
            if not lsb(fn):
                while not lsb(fn) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Failure("the audit path is too short")
    if r != root:
        raise Failure("the audit path does not lead to the checkpoint's root")


def check_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path):
    """RFC 9162, 2.1.4.2: verifying a consistency proof."""
    if first > second or first < 1:
        raise Failure("bad tree sizes")
    if first == second:
        if path or first_root != second_root:
            raise Failure("equal trees with different roots or a proof")
        return
    if first & (first - 1) == 0:
        path = [first_root] + list(path)
    if not path:
        raise Failure("empty consistency proof")
    fn, sn = first - 1, second - 1
    while lsb(fn):
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Failure("the consistency proof is too long")
        if lsb(fn) or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not lsb(fn):
                while not lsb(fn) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if fr != first_root or sr != second_root or sn != 0:
        raise Failure("the consistency proof does not lead to both roots")


def millis(rfc3339: str) -> int:
    t = datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return round(t.timestamp() * 1000)


def inclusion(doc, vkey):
    if doc.get("checkpoint") is None:
        raise Failure("the answer has no signed checkpoint of size %d" % doc["size"])
    origin, size, root = open_checkpoint(doc["checkpoint"], vkey)
    if size != doc["size"] or root != b64(doc["rootHash"]):
        raise Failure("the answer's size or root is not the signed checkpoint's")
    leaf = doc["leaf"].encode("utf-8")
    h = leaf_hash(leaf)
    if h != b64(doc["leafHash"]):
        raise Failure("the leaf does not hash to leafHash")
    # The leaf is the entry the answer shows.
    fields = json.loads(leaf)
    entry = doc["entry"]
    shown = {"v": 1, "seq": entry["seq"], "at": millis(entry["at"]),
             "actor": {"kind": entry["actor"]["kind"], "name": entry["actor"]["name"], "addr": entry["actor"]["addr"]},
             "action": entry["action"], "target": entry["target"], "before": entry["before"], "after": entry["after"]}
    if fields != shown or fields["seq"] != doc["seq"]:
        raise Failure("the leaf is not the entry shown: %r vs %r" % (fields, shown))
    check_inclusion(doc["seq"], size, h, [b64(p) for p in doc["proof"]], root)
    return "entry %d (%s %s) is in the tree of size %d signed by %s" % (doc["seq"], entry["action"], entry["target"], size, origin)


def consistency(doc, vkey):
    first, second = doc["from"], doc["to"]
    first_root, second_root = b64(doc["fromRootHash"]), b64(doc["toRootHash"])
    signed = []
    for field, size, root in (("fromCheckpoint", first, first_root), ("toCheckpoint", second, second_root)):
        if doc.get(field) is not None:
            _, s, r = open_checkpoint(doc[field], vkey)
            if s != size or r != root:
                raise Failure("%s is not the tree of size %d with the root given" % (field, size))
            signed.append(size)
    check_consistency(first, second, first_root, second_root, [b64(p) for p in doc["proof"]])
    return "the tree of size %d extends the tree of size %d (signed checkpoints: %s)" % (
        second, first, ", ".join(map(str, signed)) or "none")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--key", required=True, help="the audit verifier key (openconsole audit key)")
    ap.add_argument("kind", choices=["inclusion", "consistency"])
    ap.add_argument("file")
    a = ap.parse_args()
    with open(a.file, encoding="utf-8") as f:
        doc = json.load(f)
    try:
        print("ok: " + (inclusion if a.kind == "inclusion" else consistency)(doc, a.key))
    except (Failure, KeyError, ValueError, TypeError) as e:
        print("FAILED: %s" % e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
