#!/usr/bin/env python3
"""Regenerate the demo secrets of the example lab (examples/home/secrets.sops.yaml).

The example lab references secrets such as ``${secret:db.password}``. They live in
``examples/home/secrets.sops.yaml``, a genuine SOPS v3 YAML file encrypted to the age
X25519 recipient of the demo identity ``examples/home/age-demo.key``. That identity is
committed on purpose so the example can be decrypted; it is DEMO ONLY.

How the file is made (SOPS v3 format, see the guide's formats.md §1 and §2):
  * a fresh 32-byte data key is drawn;
  * every leaf value becomes ``ENC[AES256_GCM,data:..,iv:..,tag:..,type:str]`` —
    AES-256-GCM with a fresh 32-byte IV, AAD = the map keys of its path joined with
    ``:`` plus a trailing ``:`` (e.g. ``db:password:``), base64 with padding;
  * the MAC is SHA-512 over the plaintext leaves in document order (no keys, no
    separators), as uppercase hex, stored encrypted with AAD = the ``lastmodified``
    string;
  * the data key is encrypted to the recipient with the real ``age -r <recipient> -a``
    CLI and stored (ASCII armor) in ``sops.age[0].enc``.
The structure is fixed; the values, data key and IVs are random on every run.

Usage (needs Python 3, the ``cryptography`` package and the age CLI, e.g.
``apt-get install age``):

  # make a new demo identity (only if the key file does not exist yet) and the file
  scripts/dev/make-example-secrets.py --new-key \
      examples/home/age-demo.key examples/home/secrets.sops.yaml

  # re-encrypt new random values for the existing demo identity
  scripts/dev/make-example-secrets.py examples/home/age-demo.key examples/home/secrets.sops.yaml

  # check a file: decrypt the data key with `age -d -i KEYFILE`, decrypt every value,
  # recompute and compare the MAC; also runs the value-cipher KATs of formats.md §2.8
  scripts/dev/make-example-secrets.py --verify examples/home/secrets.sops.yaml \
      --identity examples/home/age-demo.key

  # only the KATs
  scripts/dev/make-example-secrets.py --kat

If you regenerate the identity, update ``secrets.recipients`` in examples/home/lab.yaml
to the new ``age1...`` recipient (printed by this script).
"""

import argparse
import base64
import datetime
import hashlib
import os
import re
import secrets
import string
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SOPS_VERSION = "3.10.2"
UNENCRYPTED_SUFFIX = "_unencrypted"
DEMO_COMMENT = ("# DEMO ONLY: this key decrypts examples/home/secrets.sops.yaml. "
                "Never use it for real secrets.")
ENC_RE = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]$")


# --------------------------------------------------------------------------- value cipher

def b64(b):
    return base64.b64encode(b).decode("ascii")


def encrypt_value(key, plaintext, aad, typ="str", iv=None):
    """SOPS value encryption: AES-256-GCM, 32-byte IV, tag stored separately."""
    if iv is None:
        iv = os.urandom(32)
    ct = AESGCM(key).encrypt(iv, plaintext.encode("utf-8"), aad.encode("utf-8"))
    data, tag = ct[:-16], ct[-16:]
    return "ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]" % (b64(data), b64(iv), b64(tag), typ)


def decrypt_value(key, enc, aad):
    m = ENC_RE.match(enc)
    if not m:
        raise ValueError("not an ENC[...] value: %r" % enc)
    data, iv, tag = (base64.b64decode(x, validate=True) for x in m.group(1, 2, 3))
    if len(tag) != 16:
        raise ValueError("tag is not 16 bytes")
    pt = AESGCM(key).decrypt(iv, data + tag, aad.encode("utf-8"))
    return pt.decode("utf-8"), m.group(4), len(iv)


def run_kats():
    """The self-generated KATs of formats.md §2.8."""
    key = bytes(range(0x00, 0x20))
    iv = bytes(range(0x20, 0x40))
    iv_b64 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
    cases = [
        ("hello", "db:password:", "str", "f6SdJOI=", "PGBcUJdsHFD7m6Z4OihMLg=="),
        ("42", "port:", "int", "I/M=", "yf50HBA0avv/Q3VXImnAwQ=="),
        ("True", "flags:", "bool", "Q7OELQ==", "/idaZC+rDnwunLprUhFRVA=="),
    ]
    assert b64(iv) == iv_b64
    for pt, aad, typ, data, tag in cases:
        want = "ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]" % (data, iv_b64, tag, typ)
        got = encrypt_value(key, pt, aad, typ, iv=iv)
        if got != want:
            raise SystemExit("KAT FAILED for %r/%r:\n got  %s\n want %s" % (pt, aad, got, want))
        back, btyp, ivlen = decrypt_value(key, want, aad)
        if (back, btyp, ivlen) != (pt, typ, 32):
            raise SystemExit("KAT decrypt FAILED for %r" % pt)
        try:  # wrong AAD must fail
            decrypt_value(key, want, aad + "x")
            raise SystemExit("KAT: wrong AAD was accepted for %r" % pt)
        except Exception as e:  # cryptography raises InvalidTag
            if isinstance(e, SystemExit):
                raise
    mac = mac_of(["hello", "42", "True"])
    if not mac.startswith("BF1494391A064ACD74287133") or len(mac) != 128:
        raise SystemExit("KAT FAILED for MAC: %s" % mac)
    print("KAT OK: value cipher (3 vectors, data/iv/tag/type exact, wrong AAD rejected) and MAC prefix")


def mac_of(leaves):
    h = hashlib.sha512()
    for v in leaves:
        h.update(v.encode("utf-8"))
    return h.hexdigest().upper()


# --------------------------------------------------------------------------- age CLI

def age_recipient(keyfile):
    out = subprocess.run(["age-keygen", "-y", keyfile], check=True, capture_output=True, text=True)
    lines = [l for l in out.stdout.splitlines() if l.startswith("age1")]
    if len(lines) != 1:
        raise SystemExit("expected exactly one age identity in %s" % keyfile)
    return lines[0]


def age_encrypt_armored(recipient, data):
    out = subprocess.run(["age", "-r", recipient, "-a"], input=data, check=True, capture_output=True)
    return out.stdout.decode("ascii")


def age_decrypt(keyfile, armored):
    out = subprocess.run(["age", "-d", "-i", keyfile], input=armored.encode("ascii"),
                         check=True, capture_output=True)
    return out.stdout


def new_key(keyfile):
    if os.path.exists(keyfile):
        raise SystemExit("%s exists; refusing to overwrite (delete it first)" % keyfile)
    with tempfile.TemporaryDirectory() as d:
        tmp = os.path.join(d, "key.txt")
        subprocess.run(["age-keygen", "-o", tmp], check=True, capture_output=True)
        with open(tmp) as f:
            body = f.read()
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(DEMO_COMMENT + "\n" + body)


# --------------------------------------------------------------------------- generate

def random_password(n=24):
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def plaintext_tree():
    """Fixed structure, random demo values. Order = document order."""
    return [
        ("db", [("password", random_password())]),
        ("app", [("secret_key", random_password())]),
        ("backup", [("repo_password", random_password())]),
        ("gcs", [("hmac", "GOOG1EXAMPLEACCESSKEY:examplesecret")]),
        ("cache", [("password", random_password())]),
    ]


def generate(keyfile, outfile):
    recipient = age_recipient(keyfile)
    data_key = os.urandom(32)
    tree = plaintext_tree()

    lines, leaves = [], []
    for top, children in tree:
        lines.append("%s:" % top)
        for k, v in children:
            leaves.append(v)
            path = [top, k]
            if any(p.endswith(UNENCRYPTED_SUFFIX) for p in path):
                raise SystemExit("demo structure must not contain unencrypted keys")
            aad = ":".join(path) + ":"
            lines.append("    %s: %s" % (k, encrypt_value(data_key, v, aad)))

    lastmodified = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    mac = encrypt_value(data_key, mac_of(leaves), lastmodified)
    armored = age_encrypt_armored(recipient, data_key)
    if not armored.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n") or \
            not armored.endswith("-----END AGE ENCRYPTED FILE-----\n"):
        raise SystemExit("unexpected output from age -a")

    lines.append("sops:")
    lines.append("    age:")
    lines.append("        - recipient: %s" % recipient)
    lines.append("          enc: |")
    for l in armored.splitlines():
        lines.append("            " + l)
    lines.append('    lastmodified: "%s"' % lastmodified)
    lines.append("    mac: %s" % mac)
    lines.append("    unencrypted_suffix: %s" % UNENCRYPTED_SUFFIX)
    lines.append("    version: %s" % SOPS_VERSION)
    with open(outfile, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s for recipient %s" % (outfile, recipient))
    return recipient


# --------------------------------------------------------------------------- verify

def parse_yaml_subset(text):
    """Tiny parser for what sops emits here: nested block mappings, one block sequence
    of mappings, plain or double-quoted scalars and literal block scalars (`|`).
    Returns nested lists of (key, value) pairs (keeps document order); sequences are
    Python lists of such pair lists."""
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    pos = 0

    def indent(l):
        return len(l) - len(l.lstrip(" "))

    def scalar(s):
        s = s.strip()
        if s.startswith('"'):
            if not s.endswith('"') or len(s) < 2:
                raise ValueError("bad quoted scalar %r" % s)
            return s[1:-1].encode().decode("unicode_escape")
        if s.startswith("'"):
            return s[1:-1].replace("''", "'")
        return s

    def block_scalar(min_indent):
        nonlocal pos
        body = []
        ind = None
        while pos < len(raw):
            l = raw[pos]
            if l.strip() == "":
                body.append("")
                pos += 1
                continue
            if indent(l) < min_indent:
                break
            if ind is None:
                ind = indent(l)
            body.append(l[ind:])
            pos += 1
        while body and body[-1] == "":
            body.pop()
        return "\n".join(body) + "\n"

    def mapping(ind, first=None):
        nonlocal pos
        pairs = []
        while True:
            if first is not None:
                l, first = first, None
            else:
                while pos < len(raw) and (raw[pos].strip() == "" or raw[pos].lstrip().startswith("#")):
                    pos += 1
                if pos >= len(raw) or indent(raw[pos]) != ind or raw[pos].lstrip().startswith("- "):
                    if pos < len(raw) and indent(raw[pos]) > ind:
                        raise ValueError("bad indentation at line %d" % (pos + 1))
                    return pairs
                l = raw[pos].strip()
                pos += 1
            key, sep, rest = l.partition(":")
            if not sep or (rest and not rest.startswith(" ")):
                raise ValueError("expected 'key: value' at line %d" % pos)
            rest = rest.strip()
            if rest == "|":
                pairs.append((key, block_scalar(ind + 1)))
            elif rest:
                pairs.append((key, scalar(rest)))
            else:
                pairs.append((key, node(ind)))

    def sequence(ind):
        nonlocal pos
        items = []
        while pos < len(raw) and indent(raw[pos]) == ind and raw[pos].lstrip().startswith("- "):
            l = raw[pos]
            pos += 1
            items.append(mapping(ind + 2, first=l[ind + 2:].strip()))
        return items

    def node(parent_ind):
        if pos >= len(raw) or indent(raw[pos]) <= parent_ind and not raw[pos].lstrip().startswith("- "):
            return None
        ind = indent(raw[pos])
        if raw[pos].lstrip().startswith("- "):
            return sequence(ind)
        return mapping(ind)

    doc = mapping(0)
    if pos != len(raw):
        raise ValueError("unparsed input at line %d" % (pos + 1))
    return doc


def to_plain(node):
    if isinstance(node, list) and node and isinstance(node[0], tuple):
        return {k: to_plain(v) for k, v in node}
    if isinstance(node, list):
        return [to_plain(x) for x in node]
    return node


def verify(path, keyfile):
    run_kats()
    with open(path) as f:
        text = f.read()
    doc = parse_yaml_subset(text)
    try:  # optional cross-check with a real YAML parser
        import yaml
        if yaml.safe_load(text) != to_plain(doc):
            raise SystemExit("subset parser and PyYAML disagree")
        print("PyYAML parses the file to the same tree")
    except ImportError:
        pass

    meta = dict(doc)["sops"]
    if [k for k, _ in doc][-1] != "sops":
        raise SystemExit("sops block is not the last top-level key")
    meta = dict(meta)
    for field in ("age", "lastmodified", "mac", "unencrypted_suffix", "version"):
        if field not in meta:
            raise SystemExit("sops.%s missing" % field)
    if meta["unencrypted_suffix"] != UNENCRYPTED_SUFFIX:
        raise SystemExit("unexpected unencrypted_suffix")
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["lastmodified"]):
        raise SystemExit("lastmodified is not RFC 3339 UTC")
    if not re.fullmatch(r"3\.\d+\.\d+", meta["version"]):
        raise SystemExit("version is not 3.x.y")

    own = age_recipient(keyfile)
    data_key = None
    for entry in meta["age"]:
        entry = dict(entry)
        if entry["recipient"] != own:
            continue
        if not entry["enc"].startswith("-----BEGIN AGE ENCRYPTED FILE-----\n"):
            raise SystemExit("enc is not an armored age file")
        data_key = age_decrypt(keyfile, entry["enc"])  # the real age CLI
    if data_key is None:
        raise SystemExit("no age entry for %s" % own)
    if len(data_key) != 32:
        raise SystemExit("data key is %d bytes, want 32" % len(data_key))
    print("age -d -i %s: data key decrypted (32 bytes) for %s" % (keyfile, own))

    leaves, n = [], 0

    def walk(node, path):
        nonlocal n
        if isinstance(node, list) and node and isinstance(node[0], tuple):
            for k, v in node:
                walk(v, path + [k])
        elif isinstance(node, list):
            for x in node:  # list indices are not part of the AAD
                walk(x, path)
        elif node is None:
            return
        else:
            encrypted = not any(p.endswith(UNENCRYPTED_SUFFIX) for p in path)
            if encrypted and node != "":
                aad = ":".join(path) + ":"
                pt, typ, ivlen = decrypt_value(data_key, node, aad)
                if typ != "str":
                    raise SystemExit("%s: type %s, expected str" % (aad, typ))
                if ivlen != 32:
                    raise SystemExit("%s: IV is %d bytes, expected 32" % (aad, ivlen))
                print("  %-22s decrypted (%d chars)" % (aad, len(pt)))
                leaves.append(pt)
                n += 1
            else:
                leaves.append(node)

    for k, v in doc:
        if k != "sops":
            walk(v, [k])
    mac = mac_of(leaves)
    stored, typ, ivlen = decrypt_value(data_key, meta["mac"], meta["lastmodified"])
    if stored != mac:
        raise SystemExit("MAC MISMATCH:\n stored   %s\n computed %s" % (stored, mac))
    print("MAC matches (%d leaves, AAD = lastmodified %s)" % (len(leaves), meta["lastmodified"]))
    print("OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keyfile", nargs="?", help="age identity file (age-keygen format)")
    ap.add_argument("outfile", nargs="?", help="SOPS YAML file to write")
    ap.add_argument("--new-key", action="store_true", help="create KEYFILE with age-keygen first")
    ap.add_argument("--verify", metavar="FILE", help="verify FILE instead of generating")
    ap.add_argument("--identity", metavar="KEYFILE", help="identity for --verify")
    ap.add_argument("--kat", action="store_true", help="only run the formats.md §2.8 KATs")
    a = ap.parse_args()
    if a.kat:
        run_kats()
        return
    if a.verify:
        if not a.identity:
            ap.error("--verify needs --identity")
        verify(a.verify, a.identity)
        return
    if not a.keyfile or not a.outfile:
        ap.error("need KEYFILE and OUTFILE")
    run_kats()
    if a.new_key:
        new_key(a.keyfile)
    generate(a.keyfile, a.outfile)
    verify(a.outfile, a.keyfile)


if __name__ == "__main__":
    main()
