"""SigV4Auth: AWS's published Signature Version 4 test vectors, botocore's signer, and the client."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from promwrite import Client, Sample, SigV4Auth, TimeSeries, WriteError, WriteRequest
from promwrite.auth import AuthError, sigv4_sign

from .faulty import FaultyServer

# The fixed inputs of AWS's aws-sig-v4-test-suite (AWS's documented example keys, nobody's).
AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = dt.datetime(2015, 8, 30, 12, 36, 0, tzinfo=dt.timezone.utc)
HOST = ("Host", "example.amazonaws.com")
DATE = ("X-Amz-Date", "20150830T123600Z")
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
STS_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8"
    "YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6"
    "fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj"
    "2ICCR/oLxBA=="
)

# name, method, url, extra headers, body, signed headers, signature
# (and, where the suite gives them, the canonical request and the string to sign's hash).
VECTORS = [
    ("get-vanilla", "GET", "https://example.amazonaws.com/", [], b"", "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("post-vanilla", "POST", "https://example.amazonaws.com/", [], b"", "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("post-vanilla-query", "POST", "https://example.amazonaws.com/?Param1=value1", [], b"", "host;x-amz-date",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
    ("get-vanilla-query-order-key-case", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", [],
     b"", "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("get-vanilla-query-order-value", "GET", "https://example.amazonaws.com/?Param1=value2&Param1=value1", [],
     b"", "host;x-amz-date", "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"),
    ("post-x-www-form-urlencoded", "POST", "https://example.amazonaws.com/",
     [("Content-Type", "application/x-www-form-urlencoded")], b"Param1=value1", "content-type;host;x-amz-date",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ("post-header-key-case", "POST", "https://example.amazonaws.com/", [("MY-HEADER1", "value1")], b"",
     "host;my-header1;x-amz-date", "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    ("post-header-value-case", "POST", "https://example.amazonaws.com/", [("My-Header1", "VALUE1")], b"",
     "host;my-header1;x-amz-date", "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
    ("get-header-key-duplicate", "GET", "https://example.amazonaws.com/",
     [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")], b"",
     "host;my-header1;x-amz-date", "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
    ("get-header-value-order", "GET", "https://example.amazonaws.com/",
     [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")], b"",
     "host;my-header1;x-amz-date", "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
    ("get-header-value-trim", "GET", "https://example.amazonaws.com/",
     [("My-Header1", " value1"), ("My-Header2", ' "a   b   c"')], b"",
     "host;my-header1;my-header2;x-amz-date", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    ("get-utf8", "GET", "https://example.amazonaws.com/\u1234", [], b"", "host;x-amz-date",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("post-sts-header-before", "POST", "https://example.amazonaws.com/", [("X-Amz-Security-Token", STS_TOKEN)], b"",
     "host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
]  # fmt: skip


@pytest.mark.parametrize("name,method,url,extra,body,signed,signature", VECTORS, ids=[v[0] for v in VECTORS])
def test_aws_test_suite_vectors(name, method, url, extra, body, signed, signature) -> None:
    result = sigv4_sign(method, url, [HOST, *extra, DATE], body, WHEN, AKID, SECRET, "us-east-1", "service")
    assert result.signed_headers == signed
    assert result.signature == signature
    assert result.authorization == (
        f"AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/service/aws4_request,"
        f" SignedHeaders={signed}, Signature={signature}"
    )


def test_aws_test_suite_intermediate_steps() -> None:
    # get-vanilla and post-x-www-form-urlencoded: the canonical request and the string to sign.
    vanilla = sigv4_sign("GET", "https://example.amazonaws.com/", [HOST, DATE], b"", WHEN, AKID, SECRET,
                         "us-east-1", "service")  # fmt: skip
    assert vanilla.canonical_request == (
        f"GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY}"
    )
    assert vanilla.string_to_sign == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )
    form = sigv4_sign(
        "POST", "https://example.amazonaws.com/", [("Content-Type", "application/x-www-form-urlencoded"), HOST, DATE],
        b"Param1=value1", WHEN, AKID, SECRET, "us-east-1", "service",
    )  # fmt: skip
    assert form.canonical_request == (
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    )
    assert form.string_to_sign.endswith("\n42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281")
    query = sigv4_sign("POST", "https://example.amazonaws.com/?Param1=value1", [HOST, DATE], b"", WHEN, AKID,
                       SECRET, "us-east-1", "service")  # fmt: skip
    assert query.string_to_sign.endswith("\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd")


def test_sigv4auth_headers_at_a_fixed_time() -> None:
    auth = SigV4Auth("us-east-1", access_key=AKID, secret_key=SECRET, session_token="tok-123", service="service")
    body = b"\x00snappy-bytes"
    headers = auth.sign("https://example.amazonaws.com/workspaces/ws-1/api/v1/remote_write", body, WHEN)
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["X-Amz-Content-Sha256"] == hashlib.sha256(body).hexdigest()
    assert headers["X-Amz-Security-Token"] == "tok-123"
    assert headers["Host"] == "example.amazonaws.com"
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token," in headers["Authorization"]
    # A non-default port is part of the signed Host, as http.client sends it.
    assert auth.sign("https://example.amazonaws.com:8443/x", body, WHEN)["Host"] == "example.amazonaws.com:8443"


@pytest.mark.parametrize("token", [None, STS_TOKEN])
@pytest.mark.parametrize(
    "url",
    [
        "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-0123abcd-4567/api/v1/remote_write",
        "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write?b=2&a=1",
        "http://127.0.0.1:9090/api/v1/write",
    ],
)
def test_equals_botocore(url: str, token) -> None:
    pytest.importorskip("botocore")  # a test-only reference (the `test` extra)
    from botocore.auth import SigV4Auth as BotoSigV4
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = bytes(range(256)) * 8
    # botocore signs at its own "now"; ours is then signed at the time botocore wrote down.
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest()})  # fmt: skip
    BotoSigV4(Credentials("AKIDEXAMPLE2", SECRET, token), "aps", "eu-west-1").add_auth(request)
    when = dt.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    ours = SigV4Auth("eu-west-1", access_key="AKIDEXAMPLE2", secret_key=SECRET, session_token=token).sign(
        url, body, when
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
    if token:
        assert ours["X-Amz-Security-Token"] == request.headers["X-Amz-Security-Token"]


def test_environment_credentials_and_no_secret_in_repr(monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    auth = SigV4Auth("us-east-1")
    with pytest.raises(AuthError, match="AWS_ACCESS_KEY_ID"):
        auth.headers("https://example.amazonaws.com/", b"")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    from_env = auth.sign("https://example.amazonaws.com/", b"x", WHEN)
    given = SigV4Auth("us-east-1", access_key=AKID, secret_key=SECRET, session_token="env-token").sign(
        "https://example.amazonaws.com/", b"x", WHEN
    )
    assert from_env == given and from_env["X-Amz-Security-Token"] == "env-token"
    explicit = SigV4Auth("us-east-1", access_key=AKID, secret_key=SECRET, session_token="tok")
    for text in (repr(auth), repr(explicit), repr(Client("https://example.amazonaws.com/", auth=explicit))):
        assert SECRET not in text and "tok'" not in text
    with pytest.raises(ValueError):
        SigV4Auth("us-east-1", access_key=AKID)
    with pytest.raises(ValueError):
        SigV4Auth("")


def test_client_sends_the_signed_headers() -> None:
    auth = SigV4Auth("us-east-1", access_key=AKID, secret_key=SECRET)
    request = WriteRequest([TimeSeries({"__name__": "up"}, sample=Sample(1.0, timestamp_ms=1))])
    with FaultyServer([("status", 403, "signature mismatch", {})]) as server:
        with Client(server.url, auth=auth) as client, pytest.raises(WriteError) as info:
            client.write(request)
        arrival = server.arrivals[0]
    assert SECRET not in str(info.value)
    got = {k.lower(): v for k, v in arrival.headers.items()}
    # The server can verify the request exactly as it arrived.
    when = dt.datetime.strptime(got["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    signed = got["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert signed == ["host", "x-amz-content-sha256", "x-amz-date"]
    again = sigv4_sign("POST", server.url, [(n, got[n]) for n in signed], arrival.body, when, AKID, SECRET,
                       "us-east-1", "aps")  # fmt: skip
    assert again.authorization == got["authorization"]
    assert got["x-amz-content-sha256"] == hashlib.sha256(arrival.body).hexdigest()
