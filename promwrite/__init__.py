"""promwrite: push metrics to any Prometheus remote-write endpoint.

    import promwrite
    client = promwrite.Client("http://localhost:9090/api/v1/write")
    client.write(promwrite.WriteRequest(timeseries=[
        promwrite.TimeSeries({"__name__": "my_metric", "job": "demo"}, sample=promwrite.Sample(42.0)),
    ]))

`promwrite.backend` says which encoder runs: "native" (C) or "python", and
`promwrite.backend_reason` why. Public submodules (`promwrite.snappy`,
`promwrite.receiver`, ...) load on first use.
"""

import importlib
import importlib.util
from types import ModuleType

from . import _backend
from ._version import __version__
from .aio import AsyncClient
from .auth import AuthError, BasicAuth, BearerAuth, OAuth2, OAuth2Error, SigV4Auth
from .client import Client, WriteResponse
from .codec import SeriesSet, decode, encode
from .decoder import DecodeLimits
from .names import name_validation, set_name_validation
from .registry import push_registry
from .retry import Retry
from .errors import (
    ConnectError,
    DecodeError,
    DecodeLimitError,
    PromwriteError,
    SeriesError,
    SnappyError,
    TimeoutError,
    UnsupportedProtocolError,
    WriteError,
)
from .model import (
    STALE_NAN,
    BucketSpan,
    Exemplar,
    Histogram,
    Label,
    LabelSet,
    MetricMetadata,
    MetricType,
    ResetHint,
    Sample,
    TimeSeries,
    WriteRequest,
    is_stale_nan,
)
from .writer import FailedBatch, QueueFullError, Writer, WriterStats

#: "native" when the C accelerator is in use, "python" otherwise.
backend: str = _backend.name
#: Why that backend runs, as a sentence; for "python", also how to get the C accelerator.
backend_reason: str = _backend.reason


def __getattr__(name: str) -> ModuleType:
    """A public submodule (``promwrite.snappy``, ``promwrite.receiver``, ...), imported on first use."""
    public = name.isidentifier() and not name.startswith("_")
    if public and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "STALE_NAN",
    "AsyncClient",
    "AuthError",
    "BasicAuth",
    "BearerAuth",
    "BucketSpan",
    "Client",
    "ConnectError",
    "DecodeError",
    "DecodeLimitError",
    "DecodeLimits",
    "Exemplar",
    "FailedBatch",
    "Histogram",
    "Label",
    "LabelSet",
    "MetricMetadata",
    "MetricType",
    "OAuth2",
    "OAuth2Error",
    "PromwriteError",
    "QueueFullError",
    "ResetHint",
    "Retry",
    "Sample",
    "SeriesError",
    "SeriesSet",
    "SigV4Auth",
    "SnappyError",
    "TimeSeries",
    "TimeoutError",
    "UnsupportedProtocolError",
    "WriteError",
    "WriteRequest",
    "WriteResponse",
    "Writer",
    "WriterStats",
    "__version__",
    "backend",
    "backend_reason",
    "decode",
    "encode",
    "is_stale_nan",
    "name_validation",
    "push_registry",
    "set_name_validation",
]
