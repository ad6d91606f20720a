#!/usr/bin/env python3
"""Reference SigV4 signatures from botocore, for tests/repo/sigv4_test.cc.

Signs a fixed set of S3 requests with botocore's own signer classes
(botocore.auth.S3SigV4Auth, and SigV4Auth for one request where the two
agree) at fixed timestamps, and prints one JSON array: for each request the
inputs (decoded path, query, headers, body, credentials, time) and botocore's
results (Authorization header, canonical request, x-amz-date,
x-amz-content-sha256). The C++ test signs the same inputs with
src/repo/core/sigv4.cc and compares.

Exits 3 with a message on stderr when botocore cannot be imported.
"""

import calendar
import datetime
import json
import sys
from urllib.parse import quote

try:
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"botocore is not importable: {e}", file=sys.stderr)
    sys.exit(3)

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMPTY = ""

CASES = [
    # The GET example of the S3 documentation ("Signature Calculations for the
    # Authorization Header: Transferring Payload in a Single Chunk").
    dict(name="get-range-aws-doc-example", method="GET", scheme="https",
         host="examplebucket.s3.amazonaws.com", path="/test.txt",
         headers=[["Range", "bytes=0-9"]], when="2013-05-24T00:00:00"),
    dict(name="put-with-payload-hash-path-style", method="PUT", scheme="https",
         host="127.0.0.1:9000",
         path="/restic-bucket/home/data/3f/3f9c0e1d2b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d",
         headers=[["Content-Type", "application/octet-stream"],
                  ["Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="],
                  ["x-amz-storage-class", "STANDARD_IA"]],
         body="pack bytes \x00\x01\x02 and more"),
    dict(name="put-unsigned-payload", method="PUT", scheme="https",
         host="bucket-1.s3.eu-west-1.amazonaws.com", path="/keys/" + "ab" * 32,
         headers=[["Content-Type", "application/octet-stream"]], body="key file",
         unsigned=True, region="eu-west-1"),
    dict(name="list-v2-continuation-token", method="GET", scheme="https",
         host="s3.eu-central-1.amazonaws.com", path="/restic-bucket",
         query=[["list-type", "2"], ["prefix", "home/laptop/data/"], ["max-keys", "1000"],
                ["continuation-token", "1ab+cd/EF9=gh=="]],
         region="eu-central-1"),
    dict(name="list-virtual-host-style", method="GET", scheme="https",
         host="restic-bucket.s3.amazonaws.com", path="/",
         query=[["prefix", "snapshots/"], ["list-type", "2"], ["max-keys", "7"]]),
    dict(name="key-needing-percent-encoding", method="GET", scheme="https",
         host="minio.example.net:9443",
         path="/bucket/dir with space/\u00fc+x=y&z;(a)*!'@$,~tilde%25/end",
         headers=[["Range", "bytes=100-"]]),
    dict(name="head-with-session-token", method="HEAD", scheme="https",
         host="restic-bucket.s3.us-west-2.amazonaws.com", path="/config",
         token="FQoGZXIvYXdzEBYaDH+token/with=chars", region="us-west-2"),
    dict(name="non-default-port-http", method="GET", scheme="http", host="localhost:4568",
         path="/bucket/index/" + "0123456789abcdef" * 4),
    dict(name="create-multipart-upload", method="POST", scheme="https", host="127.0.0.1:9000",
         path="/bucket/data/aa/" + "a" * 64, query=[["uploads", ""]],
         headers=[["Content-Type", "application/octet-stream"]]),
    dict(name="upload-part", method="PUT", scheme="https", host="127.0.0.1:9000",
         path="/bucket/data/aa/" + "a" * 64,
         query=[["partNumber", "2"], ["uploadId", "VXBsb2Fk+SUQ/Zm9v=="]],
         body="x" * 1000),
    dict(name="complete-multipart-upload", method="POST", scheme="https", host="127.0.0.1:9000",
         path="/bucket/data/aa/" + "a" * 64, query=[["uploadId", "VXBsb2Fk+SUQ/Zm9v=="]],
         body="<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
              "<ETag>\"d41d8cd98f00b204e9800998ecf8427e\"</ETag></Part></CompleteMultipartUpload>"),
    dict(name="delete-object", method="DELETE", scheme="https", host="127.0.0.1:9000",
         path="/bucket/locks/" + "c" * 64),
    dict(name="header-value-white-space", method="PUT", scheme="https", host="127.0.0.1:9000",
         path="/bucket/x", headers=[["x-amz-meta-note", "  two   spaces  inside "]],
         body="b"),
    dict(name="create-bucket-with-location", method="PUT", scheme="https",
         host="s3.ap-southeast-2.amazonaws.com", path="/new-bucket",
         body="<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
              "<LocationConstraint>ap-southeast-2</LocationConstraint></CreateBucketConfiguration>",
         region="ap-southeast-2"),
    dict(name="gcs-region-auto", method="GET", scheme="https",
         host="home-lab-backup.storage.googleapis.com", path="/restic/config", region="auto"),
    # The generic signer agrees with the S3 one when the path needs no
    # normalization and x-amz-content-sha256 is given.
    dict(name="generic-sigv4auth", method="GET", scheme="https", host="127.0.0.1:9000",
         path="/bucket/snapshots/" + "d" * 64, generic=True),
]


class Recording:
    """Runs one of botocore's signers step by step at a fixed time and keeps
    the canonical request (add_auth would read the clock)."""

    def __init__(self, signer):
        self.signer = signer

    def sign(self, request, timestamp):
        s = self.signer
        request.context["timestamp"] = timestamp
        s._modify_request_before_signing(request)
        canonical = s.canonical_request(request)
        string_to_sign = s.string_to_sign(request, canonical)
        signature = s.signature(string_to_sign, request)
        s._inject_signature_to_request(request, signature)
        return canonical


def run(case):
    when = datetime.datetime.fromisoformat(case.get("when", "2024-03-09T14:05:07"))
    timestamp = when.strftime("%Y%m%dT%H%M%SZ")
    region = case.get("region", "us-east-1")
    token = case.get("token")
    body = case.get("body", EMPTY)
    unsigned = case.get("unsigned", False)
    headers = case.get("headers", [])
    query = case.get("query", [])
    url = f"{case['scheme']}://{case['host']}{quote(case['path'], safe='/~')}"
    request = AWSRequest(method=case["method"], url=url, headers=dict(headers),
                         data=body.encode("utf-8"), params=dict(query))
    if unsigned:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    creds = Credentials(AKID, SECRET, token)
    if case.get("generic"):
        import hashlib
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body.encode()).hexdigest()
        signer = SigV4Auth(creds, "s3", region)
    else:
        signer = S3SigV4Auth(creds, "s3", region)
    canonical = Recording(signer).sign(request, timestamp)
    return dict(
        name=case["name"], method=case["method"], host=case["host"], path=case["path"],
        query=query, headers=headers, body=body, unsigned=unsigned, region=region,
        service="s3", access_key=AKID, secret_key=SECRET, token=token or "",
        when=calendar.timegm(when.timetuple()),
        authorization=request.headers["Authorization"],
        canonical_request=canonical,
        x_amz_date=request.headers["X-Amz-Date"],
        content_sha256=request.headers["X-Amz-Content-SHA256"],
    )


def main():
    json.dump([run(c) for c in CASES], sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
