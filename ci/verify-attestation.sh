#!/usr/bin/env bash
# Verifies the signature of a stackcheck attestation (`run --attest`) with OpenSSL alone, the way
# any DSSE verifier does: Ed25519 over the pre-authentication encoding
#   DSSEv1 <len(payloadType)> <payloadType> <len(payload)> <payload>
# Usage: ci/verify-attestation.sh ATTESTATION PUBLIC_KEY_PEM
# Prints the statement's predicate result; exits non-zero when the signature does not verify.
# It checks the signature only: `stackcheck verify` also checks the types, the result, the images
# and the suite's files.
set -euo pipefail
att=$1 key=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
field() { python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$att" "$1"; }
field 'e["payload"]' | base64 -d >"$work/payload"
field 'e["signatures"][0]["sig"]' | base64 -d >"$work/sig"
type=$(field 'e["payloadType"]')
printf 'DSSEv1 %d %s %d ' "${#type}" "$type" "$(stat -c %s "$work/payload")" >"$work/pae"
cat "$work/payload" >>"$work/pae"
openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$work/pae" -sigfile "$work/sig"
python3 -c 'import json,sys; print("result:", json.load(open(sys.argv[1]))["predicate"]["result"])' "$work/payload"
