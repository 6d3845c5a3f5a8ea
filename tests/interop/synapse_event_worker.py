"""Runs under .venv-synapse/bin/python (never imported by our test suite): answers one JSON
request per input line with one JSON line, using Synapse's own event code, so our redaction,
hashes and ids can be compared with the reference implementation.

Request: {"room_version": "<id>", "pdu": {...}, "seed": <unpadded base64 ed25519 seed>,
          "key_version": "...", "server_name": "..."}
Answer: the redacted pdu, content and reference hashes, event id, room id, and the hashes and
signatures Synapse gives the pdu (without its hashes/signatures) when it signs it. One round
trip per event keeps the session fast.
"""

import hashlib
import json
import sys

from signedjson.key import decode_signing_key_base64
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.crypto.event_signing import (
    add_hashes_and_signatures,
    compute_content_hash,
    compute_event_reference_hash,
)
from synapse.events import make_event_from_dict
from synapse.synapse_rust.events import redact_event_dict
from unpaddedbase64 import encode_base64


def handle(req):
    rv = KNOWN_ROOM_VERSIONS[req["room_version"]]
    pdu = req["pdu"]
    ev = make_event_from_dict(dict(pdu), rv)
    _, ref = compute_event_reference_hash(ev)
    _, content = compute_content_hash(dict(pdu), hashlib.sha256)
    key = decode_signing_key_base64("ed25519", req["key_version"], req["seed"])
    to_sign = {k: v for k, v in pdu.items() if k not in ("hashes", "signatures")}
    add_hashes_and_signatures(rv, to_sign, req["server_name"], key)
    return {
        "redacted": redact_event_dict(rv, pdu),
        "event_id": ev.event_id,
        "room_id": ev.room_id,
        "reference_hash": encode_base64(ref),
        "content_hash": encode_base64(content),
        "signed_hashes": to_sign["hashes"],
        "signed_signatures": to_sign["signatures"],
    }


def main():
    for line in sys.stdin:
        try:
            out = handle(json.loads(line))
        except Exception as e:  # report, keep serving
            out = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
