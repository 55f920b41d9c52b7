"""``python -m promwrite`` / ``promwrite``: the command line.

    promwrite send URL [SAMPLE ...]     push exposition-format samples (arguments, or stdin)
    promwrite receive [--port P]        a remote-write receiver that prints every write
    promwrite demo                      the README's main job on an embedded receiver
    promwrite --version                 version, backend (native or python) and why

Exit codes: 0 success, 1 the write failed (the server refused it, or could not
be reached), 2 a usage or parse error; errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List, NoReturn, Optional, TextIO, Union

from . import __version__, _backend
from ._checks import positive_int, positive_seconds
from .names import LEGACY_LABEL_NAME, LEGACY_METRIC_NAME


def about() -> str:
    """The version, where it was imported from, the backend and why: `--version` and `send -v`."""
    where = os.path.dirname(os.path.abspath(__file__))
    python = ".".join(map(str, sys.version_info[:3]))
    return f"promwrite {__version__} from {where} (Python {python})\nbackend {_backend.name}: {_backend.reason}"


class _About(argparse.Action):
    """--version: prints `about()` unwrapped (argparse's version action refills the text)."""

    def __init__(self, option_strings: List[str], dest: str, help: Optional[str] = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        print(about())
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Fail(Exception):
    """A one-line failure: `code` is the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _count(text: str) -> int:
    """A flag's positive whole number (argparse's `type`: a bad one is a usage error naming the flag)."""
    try:
        return positive_int("value", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}") from None


def _seconds(text: str) -> float:
    """A flag's positive, finite number of seconds (argparse's `type`)."""
    try:
        return positive_seconds("value", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}") from None


def _port(text: str) -> int:
    """A flag's TCP port, 0 for any free one (argparse's `type`)."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in [0, 65535], not {text!r}")
    return int(text)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="promwrite", allow_abbrev=False, description="Push metrics to Prometheus remote-write endpoints.")
    parser.add_argument("--version", action=_About, help="show the version, the backend (native or python) and why, and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser(
        "demo",
        allow_abbrev=False,
        help="write a realistic batch to an embedded receiver and verify it",
        description=(
            "Start a remote-write receiver inside this process on 127.0.0.1, write a realistic batch"
            " (node-exporter-like series) to it through the real Client over HTTP, decode what arrived and"
            " check it is exactly what was sent; print series, samples, bytes on the wire, compression,"
            " the backend that ran (native C or pure Python) and why, and timings. Exit code 0 when"
            " everything arrived intact, 1 otherwise."
        ),
    )
    demo.add_argument("--series", type=int, default=2000, help="series to write (default 2000)")
    demo.add_argument("--samples", type=int, default=10, help="samples per series (default 10)")

    send = commands.add_parser(
        "send",
        allow_abbrev=False,
        usage="%(prog)s [options] URL [SAMPLE ...]",
        help="push samples in the Prometheus text exposition format",
        description=(
            "Push samples in the Prometheus text exposition format (metric{label=\"v\"} value"
            " [timestamp_ms], with # TYPE / # HELP as metadata) to a remote-write URL. Samples come"
            " from the arguments, or from standard input when there are none or one is '-': "
            "curl -s localhost:9100/metrics | promwrite send URL --label instance=host1. "
            "Exit codes: 0 sent, 1 the write failed, 2 usage or parse error."
        ),
        epilog=(
            "environment: PROMWRITE_USERNAME, PROMWRITE_PASSWORD (basic auth), PROMWRITE_BEARER_TOKEN. "
            "A password is never taken as an argument: use PROMWRITE_PASSWORD or --password-file."
        ),
    )
    send.add_argument("url", metavar="URL", nargs="?",  # checked in _send: argparse's message would call SAMPLE required
                      help="the remote-write URL, e.g. http://localhost:9090/api/v1/write")
    send.add_argument("samples", metavar="SAMPLE", nargs="*", help="sample lines; none or '-' reads standard input")
    send.add_argument("--label", "-l", action="append", default=[], metavar="NAME=VALUE",
                      help="add a label to every series (repeatable; wins over the sample's own)")
    send.add_argument("--header", "-H", action="append", default=[], metavar="NAME:VALUE",
                      help="an HTTP header for the request, e.g. X-Scope-OrgID:tenant1 (repeatable)")
    send.add_argument("--username", "-u", default=os.environ.get("PROMWRITE_USERNAME"),
                      help="basic-auth user (default $PROMWRITE_USERNAME); the password comes from"
                           " $PROMWRITE_PASSWORD or --password-file")
    send.add_argument("--password-file", metavar="FILE", help="file holding the basic-auth password")
    send.add_argument("--bearer-token-file", metavar="FILE",
                      help="file holding a bearer token (re-read when it changes); or $PROMWRITE_BEARER_TOKEN")
    send.add_argument("--protocol", choices=("1.0", "2.0"), default="1.0",
                      help="remote-write version (default 1.0; 2.0 falls back to 1.0 if refused)")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")
    send.add_argument("--utf8-names", action="store_true",
                      help="send metric and label names that are not legacy ones (e.g. Prometheus 3's quoted"
                           ' {"my.metric"}) as they are; not every receiver takes them')
    send.add_argument("--verbose", "-v", action="store_true",
                      help="also print the version, the backend (native or python) and why, on stderr")

    receive = commands.add_parser(
        "receive",
        allow_abbrev=False,
        help="run a remote-write receiver that prints every write",
        description=(
            "Run a remote-write receiver (1.0 and 2.0) and print every decoded write until Ctrl-C:"
            " as exposition-like text lines, or as one JSON object per write."
        ),
    )
    receive.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    receive.add_argument("--port", type=_port, default=9201, help="port to listen on (default 9201; 0 picks a free one)")
    receive.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    receive.add_argument("--username", "-u", default=os.environ.get("PROMWRITE_USERNAME"),
                         help="require basic auth with this user; password from $PROMWRITE_PASSWORD or --password-file")
    receive.add_argument("--password-file", metavar="FILE", help="file holding the basic-auth password")
    receive.add_argument("--header-timeout", type=_seconds, default=10.0, metavar="S",
                         help="seconds for a request's line and headers, and an idle connection's limit (default 10)")
    receive.add_argument("--body-timeout", type=_seconds, default=30.0, metavar="S",
                         help="seconds for a request's body (default 30)")
    receive.add_argument("--max-connections", type=_count, default=100, metavar="N",
                         help="connections served at once; more are answered 503 (default 100)")
    receive.add_argument("--max-length", type=_count, default=64 << 20, metavar="BYTES",
                         help="largest request, decompressed; larger are answered 413 (default 64 MiB)")
    receive.add_argument("--memory-budget", type=_count, metavar="BYTES",
                         help="request bodies, compressed and decompressed, held at once; more are answered 503"
                              " (default 256 MiB, or one request of --max-length if more)")  # fmt: skip
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # sample lines given after options (argparse takes a '*' positional only once)
        if args.command != "send" or any(e.startswith("-") and e != "-" for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.samples = [*args.samples, *extra]
    log = logging.getLogger("promwrite")
    if not log.handlers:  # the error is reported once, on one line, below: no second copy from the log
        log.addHandler(logging.NullHandler())
    try:
        if args.command == "demo":
            from . import demo as demo_module

            return demo_module.run(args.series, args.samples)
        if args.command == "send":
            return _send(args)
        if args.command == "receive":
            return _receive(args)
    except _Fail as exc:
        print(f"promwrite {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"promwrite {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return 2  # argparse requires a command, so this is not reached


def _read_file(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        raise _Fail(2, f"cannot read the {what} file {path!r}: {exc.strerror}") from None


def _password(args: argparse.Namespace) -> Optional[str]:
    if args.password_file:
        return _read_file(args.password_file, "password")
    return os.environ.get("PROMWRITE_PASSWORD")


def _pairs(items: List[str], sep: str, what: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for item in items:
        name, found, value = item.partition(sep)
        if not found or not name.strip():
            raise _Fail(2, f"{what} {item!r} is not NAME{sep}VALUE")
        out[name.strip()] = value.strip() if sep == ":" else value
    return out


def _send(args: argparse.Namespace) -> int:
    from .auth import BasicAuth, BearerAuth
    from .client import Client
    from .errors import PromwriteError
    from .exposition import ParseError, parse
    from .names import UTF8, set_name_validation

    if args.url is None:
        raise _Fail(2, "no URL given; usage: promwrite send [options] URL [SAMPLE ...], with the samples"
                       " from the arguments, or from standard input when there are none (see --help)")
    if args.verbose:
        print(about(), file=sys.stderr)
    labels = _pairs(args.label, "=", "--label")
    headers = _pairs(args.header, ":", "--header")
    auth: Any = None
    token = os.environ.get("PROMWRITE_BEARER_TOKEN")
    if args.bearer_token_file or token:
        if args.username:
            raise _Fail(2, "give basic auth (--username) or a bearer token, not both")
        try:
            auth = BearerAuth(token_file=args.bearer_token_file) if args.bearer_token_file else BearerAuth(token)
        except ValueError as exc:
            raise _Fail(2, str(exc)) from None
    elif args.username:
        password = _password(args)
        if password is None:
            raise _Fail(2, "--username needs a password: set PROMWRITE_PASSWORD or give --password-file")
        try:
            auth = BasicAuth(args.username, password)
        except ValueError as exc:
            raise _Fail(2, str(exc)) from None
    elif args.password_file:
        raise _Fail(2, "--password-file needs --username (or PROMWRITE_USERNAME)")

    if not args.samples or args.samples == ["-"]:
        source = "standard input"
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise _Fail(2, f"standard input is not UTF-8: {exc.reason}") from None
    elif "-" in args.samples:
        raise _Fail(2, "'-' (standard input) cannot be mixed with sample arguments")
    else:
        source = "arguments"
        text = "\n".join(args.samples)
    if args.utf8_names:
        set_name_validation(UTF8)
    try:
        request = parse(text, labels)
    except ParseError as exc:
        where = f"argument {exc.line}" if source == "arguments" else f"line {exc.line}"
        raise _Fail(2, f"{source}: {where}, column {exc.column}: {exc.problem}") from None
    except ValueError as exc:
        raise _Fail(2, str(exc) + ("" if args.utf8_names else " (--utf8-names allows any UTF-8 name)")) from None
    if not args.utf8_names:
        _refuse_utf8_names(request, source)
    series = len(request.timeseries)
    if not series:
        raise _Fail(2, f"no samples in the {source}")
    samples = sum(len(ts.samples) for ts in request.timeseries)
    try:
        client = Client(args.url, auth=auth, headers=headers, protocol=args.protocol, timeout=args.timeout)
    except ValueError as exc:
        raise _Fail(2, str(exc)) from None
    try:
        with client:
            response = client.write(request)
    except PromwriteError as exc:
        if isinstance(exc, ValueError):  # refused before sending (SeriesError)
            raise _Fail(2, str(exc)) from None
        raise _Fail(1, f"write failed: {exc}") from None
    except ValueError as exc:
        raise _Fail(2, str(exc)) from None
    except OSError as exc:
        raise _Fail(1, f"write failed: {client.url}: {exc}") from None
    print(
        f"sent {series} series, {samples} samples, {len(request.metadata)} metadata to {client.url}"
        f" (HTTP {response.status}, remote write {response.protocol})"
    )
    return 0


def _refuse_utf8_names(request: Any, source: str) -> None:
    """A usage error, suggesting --utf8-names, for the first name that is not a legacy one."""
    from .exposition import excerpt
    from .names import is_valid_label_name, is_valid_metric_name

    for ts in request.timeseries:
        for name, value in ts.labels:
            if name == "__name__" and not is_valid_metric_name(value):
                what = f"metric name {excerpt(value)}"
            elif not is_valid_label_name(name):
                what = f"label name {excerpt(name)} (of {excerpt(dict(ts.labels)['__name__'])})"
            else:
                continue
            raise _Fail(2, f"{source}: {what} is not a legacy name; --utf8-names sends such names as they are"
                           " (not every receiver takes them)")


# ---- receive -------------------------------------------------------------------


def format_value(value: float) -> str:
    """A float as the exposition format writes it (NaN, +Inf, -Inf, else shortest repr)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


_TEXT_ESCAPES = {"\\": "\\\\", "\n": "\\n"}  # what the text format escapes in HELP; label values add \"
_QUOTED_ESCAPES = {**_TEXT_ESCAPES, '"': '\\"'}


def _escaped(text: str, escapes: Dict[str, str] = _TEXT_ESCAPES) -> str:
    """`text` escaped as the text format does, and any other character a terminal could act on
    (control characters such as ESC, bidi overrides, line separators) as \\xHH, \\uHHHH or \\UHHHHHHHH."""
    if text.isprintable() and not any(c in text for c in escapes):
        return text
    return "".join(escapes.get(c) or (c if c.isprintable() else _hex_escape(c)) for c in text)


def _hex_escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _quoted(text: str) -> str:
    return '"' + _escaped(text, _QUOTED_ESCAPES) + '"'


def _name(name: str) -> str:
    """A metric name as written after # HELP and # TYPE: bare when legacy, else quoted (Prometheus 3)."""
    return name if LEGACY_METRIC_NAME.fullmatch(name) else _quoted(name)


def _type_name(kind: int) -> Union[str, int]:
    """A metadata type's name ("counter"), or its number when this version knows no such type."""
    from .model import MetricType

    try:
        return MetricType(kind).name.lower()
    except ValueError:
        return int(kind)


def _series_text(labels: Any) -> str:
    """A series as the text format writes it: ``name{a="b"}``, or ``{"odd.name",a="b"}`` for a UTF-8 name."""
    name = ""
    rest = []
    for n, v in labels:
        if n == "__name__":
            name = v
        else:
            label = n if LEGACY_LABEL_NAME.fullmatch(n) else _quoted(n)
            rest.append(f"{label}={_quoted(v)}")
    if name and not LEGACY_METRIC_NAME.fullmatch(name):
        return "{" + ",".join([_quoted(name), *rest]) + "}"
    return name + ("{" + ",".join(rest) + "}" if rest or not name else "")


def write_text(request: Any, protocol: str, size: int, number: int, out: TextIO) -> None:
    """One write as exposition-like text: a header comment, metadata comments, one line per sample.

    Everything the sender chose is escaped: no control character reaches the terminal raw.
    """
    samples = sum(len(ts.samples) for ts in request.timeseries)
    lines = [f"# write {number}: remote write {protocol}, {size} bytes, {len(request.timeseries)} series, {samples} samples"]
    for m in request.metadata:
        name = _name(m.metric_family_name)
        if m.help:
            lines.append(f"# HELP {name} {_escaped(m.help)}")
        lines.append(f"# TYPE {name} {_type_name(m.type)}")
        if m.unit:
            lines.append(f"# UNIT {name} {_escaped(m.unit)}")
    for ts in request.timeseries:
        head = _series_text(ts.labels)
        if ts.metadata is not None:
            md = ts.metadata
            lines.append(f"# {head} type={_type_name(md.type)} help={md.help!r}" + (f" unit={_escaped(md.unit)}" if md.unit else ""))
        if ts.start_timestamp_ms is not None:
            lines.append(f"# {head} start_timestamp_ms={ts.start_timestamp_ms}")
        for value, stamp in ts.samples:
            lines.append(f"{head} {format_value(value)} {stamp}")
        for h in ts.histograms:
            lines.append(f"{head} histogram{{count={h.count},sum={format_value(h.sum)},schema={h.schema}}} {h.timestamp_ms}")
        for e in ts.exemplars:
            lines.append(f"{head} # exemplar {_series_text(e.labels)} {format_value(e.value)} {e.timestamp_ms}")
    out.write("\n".join(lines) + "\n")
    out.flush()


def _json_float(value: float) -> Any:
    return value if math.isfinite(value) else format_value(value)


def _json_printable(text: str) -> str:
    """JSON text with every character a terminal could act on as a \\uXXXX escape (they occur only in strings)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


def write_json(request: Any, protocol: str, size: int, number: int, out: TextIO) -> None:
    """One write as one JSON object on one line (NaN and ±Inf as the strings "NaN", "+Inf", "-Inf")."""

    def md(m: Any) -> Dict[str, Any]:
        return {"type": _type_name(m.type), "metric_family_name": m.metric_family_name, "help": m.help, "unit": m.unit}

    series = []
    for ts in request.timeseries:
        item: Dict[str, Any] = {"labels": dict(ts.labels), "samples": [[_json_float(v), t] for v, t in ts.samples]}
        if ts.histograms:
            item["histograms"] = [
                {name: (_json_float(getattr(h, name)) if isinstance(getattr(h, name), float) else getattr(h, name))
                 for name in ("count", "sum", "schema", "zero_threshold", "zero_count", "timestamp_ms")}
                for h in ts.histograms
            ]
        if ts.exemplars:
            item["exemplars"] = [{"labels": dict(e.labels), "value": _json_float(e.value), "timestamp_ms": e.timestamp_ms}
                                 for e in ts.exemplars]
        if ts.metadata is not None:
            item["metadata"] = md(ts.metadata)
        if ts.start_timestamp_ms is not None:
            item["start_timestamp_ms"] = ts.start_timestamp_ms
        series.append(item)
    obj = {"write": number, "protocol": protocol, "bytes": size, "timeseries": series,
           "metadata": [md(m) for m in request.metadata]}
    out.write(_json_printable(json.dumps(obj, ensure_ascii=False)) + "\n")
    out.flush()


def _receive(args: argparse.Namespace) -> int:
    from .receiver import Receiver

    basic_auth = None
    if args.username:
        password = _password(args)
        if password is None:
            raise _Fail(2, "--username needs a password: set PROMWRITE_PASSWORD or give --password-file")
        basic_auth = (args.username, password)
    elif args.password_file:
        raise _Fail(2, "--password-file needs --username (or PROMWRITE_USERNAME)")
    printer = write_json if args.format == "json" else write_text
    lock = threading.Lock()
    count = [0]
    holder: List[Receiver] = []

    def on_write(request: Any) -> None:
        receiver = holder[0]
        with receiver._lock:  # find this write's protocol and size, and forget it (a long run keeps nothing)
            i = next(i for i in range(len(receiver.received) - 1, -1, -1) if receiver.received[i] is request)
            protocol, size = receiver.received_protocols.pop(i), receiver.payload_bytes.pop(i)
            del receiver.received[i]
        with lock:
            count[0] += 1
            try:
                printer(request, protocol, size, count[0], sys.stdout)
            except BrokenPipeError:
                pass

    try:
        receiver = Receiver(args.host, args.port, basic_auth=basic_auth, on_write=on_write,
                            header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                            max_connections=args.max_connections, max_length=args.max_length,
                            memory_budget=args.memory_budget)  # fmt: skip
    except ValueError as exc:
        raise _Fail(2, str(exc)) from None
    except OSError as exc:
        raise _Fail(1, f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    holder.append(receiver)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    auth_note = f", basic auth as {args.username!r}" if basic_auth else ""
    print(f"promwrite receive: listening on {receiver.url} (remote write 1.0 and 2.0{auth_note}); Ctrl-C stops",
          file=sys.stderr, flush=True)
    receiver.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    print(f"promwrite receive: stopped after {count[0]} writes", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
