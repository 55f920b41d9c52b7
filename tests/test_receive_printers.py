"""What `promwrite receive` prints of what a sender chose: escaped as the text format requires, no
control character raw on the terminal, unknown metadata types as numbers, the request still answered.

Bodies are built with the official protobuf library, as any sender could.
"""

from __future__ import annotations

import io
import json
import pathlib
import time
from typing import Any, Dict, List

import pytest

from promwrite import codec, snappy
from promwrite.__main__ import write_json, write_text

import hostile

from .prompb2_ref import PB2
from .prompb_ref import PB

pytestmark = pytest.mark.timeout(120)

HOSTILE = 'q"\\\n\r\t\x1b[2J\x1b]0;title\x07\x7f\x85\x9b\u2028\u202e😀é'
HOSTILE_TEXT = r'q\"\\\n\x0d\x09\x1b[2J\x1b]0;title\x07\x7f\x85\x9b\u2028\u202e😀é'  # as a label value
LABELS = {"__name__": "evil\nname", "la\x1bbel": HOSTILE, "ok": "plain"}
V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"


def v1_body(kind: int, help_: str, labels: Dict[str, str] = LABELS) -> bytes:
    pb = PB["WriteRequest"]()
    ts = pb.timeseries.add()
    for name, value in labels.items():
        ts.labels.add(name=name, value=value)
    ts.samples.add(value=1.5, timestamp=1000)
    pb.metadata.add(type=kind, metric_family_name="m\x1b[31m", help=help_, unit="s\x1b")
    return pb.SerializeToString()


def v2_body(kind: int) -> bytes:
    pb = PB2["Request"]()
    pb.symbols.extend(["", "__name__", "m", "help\x1b[0m"])
    ts = pb.timeseries.add()
    ts.labels_refs.extend([1, 2])
    ts.samples.add(value=2.0, timestamp=2000)
    ts.metadata.type = kind
    ts.metadata.help_ref = 3
    return pb.SerializeToString()


def printed(printer: Any, body: bytes, protocol: str = "1.0") -> str:
    out = io.StringIO()
    printer(codec.decode(body, protocol), protocol, len(body), 1, out)
    return out.getvalue()


def all_printable(text: str) -> bool:
    return all(line.isprintable() for line in text.split("\n"))


def test_text_escapes_names_values_help_and_unit() -> None:
    out = printed(write_text, v1_body(2, HOSTILE))
    assert all_printable(out) and out.endswith("\n")
    assert out.splitlines()[1:] == [
        r'# HELP "m\x1b[31m" q"\\\n\x0d\x09\x1b[2J\x1b]0;title\x07\x7f\x85\x9b\u2028\u202e😀é',
        r'# TYPE "m\x1b[31m" gauge',
        r'# UNIT "m\x1b[31m" s\x1b',
        r'{"evil\nname","la\x1bbel"="' + HOSTILE_TEXT + r'",ok="plain"} 1.5 1000',
    ]


def test_json_escapes_what_a_terminal_would_act_on_and_round_trips() -> None:
    out = printed(write_json, v1_body(2, HOSTILE))
    assert all_printable(out) and out.count("\n") == 1
    obj = json.loads(out)
    assert obj["timeseries"][0]["labels"] == LABELS
    assert obj["metadata"] == [{"type": "gauge", "metric_family_name": "m\x1b[31m", "help": HOSTILE, "unit": "s\x1b"}]


@pytest.mark.parametrize("printer", [write_text, write_json])
def test_unknown_metadata_type_printed_as_its_number(printer: Any) -> None:
    plain = {"__name__": "m", "job": "a"}
    out1 = printed(printer, v1_body(9, "h", plain))
    out2 = printed(printer, v2_body(42), "2.0")
    if printer is write_text:
        assert r'# TYPE "m\x1b[31m" 9' in out1.splitlines()
        assert r"# m type=42 help='help\x1b[0m'" in out2.splitlines()
    else:
        assert json.loads(out1)["metadata"][0]["type"] == 9
        assert json.loads(out2)["timeseries"][0]["metadata"]["type"] == 42


def test_empty_help_prints_no_help_line() -> None:
    lines = printed(write_text, v1_body(1, "", {"__name__": "m"})).splitlines()
    assert lines[1:] == [r'# TYPE "m\x1b[31m" counter', r'# UNIT "m\x1b[31m" s\x1b', "m 1.5 1000"]
    assert not any(line.endswith(" ") for line in lines)


@pytest.mark.parametrize("form", ["text", "json"])
def test_receive_answers_and_prints_hostile_writes_safely(form: str, tmp_path: pathlib.Path) -> None:
    output = tmp_path / "out"
    with output.open("w") as sink, hostile.receive_process("--format", form, stdout=sink) as (proc, port):
        answers: List[int] = []
        for body, content_type in [(v1_body(9, HOSTILE), "application/x-protobuf"), (v2_body(42), V2)]:
            payload = snappy.compress(body)
            raw = hostile.REQUEST_LINE + (
                f"Content-Length: {len(payload)}\r\nContent-Type: {content_type}\r\nContent-Encoding: snappy\r\n\r\n"
            ).encode() + payload
            answers.append(hostile.exchange(port, raw)[0])
        deadline = time.monotonic() + 10
        while output.read_text(encoding="utf-8").count("\n") < (2 if form == "json" else 8):
            assert time.monotonic() < deadline and proc.poll() is None, output.read_text(encoding="utf-8")
            time.sleep(0.05)
    assert answers == [204, 204]
    out = output.read_bytes().decode("utf-8")
    assert all_printable(out)
    if form == "text":
        assert r'# TYPE "m\x1b[31m" 9' in out.splitlines() and "type=42" in out
    else:
        assert [json.loads(line)["write"] for line in out.splitlines()] == [1, 2]
