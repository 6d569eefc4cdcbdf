#!/usr/bin/env python3
"""An independent verifier of OpenConsole offline certificates (docs/offline.md).

    verify_cert.py --pin VERIFIER_KEY CERT_FILE...

VERIFIER_KEY is the console's note verifier key ("name+hash+base64", as `openconsole offline key`
prints it). Each certificate must be a C2SP signed note with exactly one Ed25519 signature by that
key, in canonical form, and a body that follows the format line by line. Prints "ok FILE" or
"refused FILE: REASON" per file; exits 0 when every file is accepted, 1 when any is refused,
2 on a usage error.

Written from the format description alone; it shares no code with the Go implementation.
Needs Python 3 and the `cryptography` package.
"""
import base64
import binascii
import datetime
import hashlib
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_SIZE = 1024
HEADER = "openconsole offline certificate v1"
KEYS = ["issuer", "license", "license-hint", "device", "nonce", "counter", "issued",
        "not-before", "not-after", "session", "session-timestamp"]
SIG_PREFIX = "\u2014 "  # em dash and a space


class Refused(Exception):
    pass


def std_b64(s, nbytes=None):
    """Decode standard base64 and insist on the one canonical spelling."""
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("not base64")
    if base64.b64encode(raw).decode() != s:
        raise Refused("base64 not canonical")
    if nbytes is not None and len(raw) != nbytes:
        raise Refused("want %d bytes" % nbytes)
    return raw


def valid_name(name):
    return 0 < len(name) <= 64 and all(0x20 < ord(c) < 0x7f and c != "+" for c in name)


def key_hash(name, key):
    return hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]


def parse_pin(vkey):
    parts = vkey.split("+", 2)
    if len(parts) != 3 or not valid_name(parts[0]) or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise Refused("pin is not a note verifier key")
    name, hexhash, b64 = parts
    key = std_b64(b64, 33)
    if key[0] != 1:
        raise Refused("pin is not an Ed25519 key")
    if key_hash(name, key).hex() != hexhash:
        raise Refused("pin's key hash does not match its key")
    return name, key_hash(name, key), Ed25519PublicKey.from_public_bytes(key[1:])


def decimal(s, limit):
    if not re.fullmatch(r"0|[1-9][0-9]*", s) or int(s) > limit:
        raise Refused("not a canonical decimal up to %d: %r" % (limit, s))
    return int(s)


def utc_time(s):
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", s):
        raise Refused("time not in the form 2006-01-02T15:04:05Z: %r" % s)
    try:
        t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise Refused("not a date: %r" % s)
    if t.year < 1970:
        raise Refused("time before 1970")
    return t


def lower_hex(s, nbytes):
    if not re.fullmatch(r"[0-9a-f]{%d}" % (2 * nbytes), s):
        raise Refused("want %d lower-case hex digits" % (2 * nbytes))
    return bytes.fromhex(s)


def verify(msg, pin):
    name, khash, pub = parse_pin(pin)
    if len(msg) > MAX_SIZE:
        raise Refused("longer than %d bytes" % MAX_SIZE)
    try:
        text_all = msg.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("not UTF-8")
    if any(ord(c) < 0x20 and c != "\n" for c in text_all):
        raise Refused("control character")
    split = msg.rfind(b"\n\n")
    if split < 0:
        raise Refused("no signature block")
    text, sigs = msg[:split + 1], msg[split + 2:].decode("utf-8")

    # The signature block: exactly one line, by the pinned key, canonical.
    if sigs.count("\n") != 1 or not sigs.endswith("\n") or not sigs.startswith(SIG_PREFIX):
        raise Refused("want exactly one signature line")
    line = sigs[len(SIG_PREFIX):-1]
    sname, sep, sb64 = line.partition(" ")
    if not sep or sname != name:
        raise Refused("signed by %r, not the pinned %r" % (sname, name))
    sig = std_b64(sb64, 4 + 64)
    if sig[:4] != khash:
        raise Refused("signature key hash is not the pinned key's")
    try:
        pub.verify(sig[4:], text)
    except InvalidSignature:
        raise Refused("signature does not verify")

    # The body, line by line.
    lines = text.decode("utf-8")[:-1].split("\n")
    if lines[0] != HEADER:
        raise Refused("first line is not %r" % HEADER)
    if len(lines) != 1 + len(KEYS):
        raise Refused("want %d lines, got %d" % (1 + len(KEYS), len(lines)))
    v = {}
    for key, l in zip(KEYS, lines[1:]):
        k, sep, val = l.partition(" ")
        if k != key or not sep:
            raise Refused("line %r where %r belongs" % (k, key))
        if val == "" or " " in val:
            raise Refused("%s: value must be one word" % key)
        v[key] = val
    if not valid_name(v["issuer"]) or v["issuer"] != name:
        raise Refused("issuer %r is not the pinned key" % v["issuer"])
    lower_hex(v["license"], 32)
    h = v["license-hint"]
    if h != "-" and not re.fullmatch(r"[0-9A-Za-z._-]{1,16}", h):
        raise Refused("bad license-hint")
    std_b64(v["device"], 32)
    lower_hex(v["nonce"], 16)
    decimal(v["counter"], 2**64 - 1)
    utc_time(v["issued"])
    nb, na = utc_time(v["not-before"]), utc_time(v["not-after"])
    if nb > na:
        raise Refused("not-before is after not-after")
    if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", v["session"]):
        raise Refused("session is not a lower-case UUID")
    decimal(v["session-timestamp"], 2**63 - 1)
    return v


def main(argv):
    if len(argv) < 3 or argv[0] != "--pin":
        sys.stderr.write(__doc__)
        return 2
    pin, files = argv[1], argv[2:]
    status = 0
    for f in files:
        with open(f, "rb") as fh:
            msg = fh.read()
        try:
            verify(msg, pin)
            print("ok %s" % f)
        except Refused as e:
            print("refused %s: %s" % (f, e))
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
