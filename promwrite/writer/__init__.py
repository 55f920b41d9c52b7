"""A batching background writer: add samples from any thread; promwrite sends them.

    with promwrite.Writer("http://localhost:9090/api/v1/write") as w:
        w.add({"__name__": "jobs_done_total", "queue": "mail"}, 17)

`Writer` keeps what `add` accepted in bounded, compact per-shard queues,
encodes a batch with one kernel call when it is full (`max_samples_per_send`)
or old (`flush_interval`), and sends it from one of several shard threads,
retrying by a `Retry` policy. A series always goes to the same shard and a
shard sends one batch at a time, so each series' samples arrive in order.

Memory: a queued sample costs an index into a table of encoded label sets
(interned: each distinct series is encoded once, by the codec's kernel) and
its value and timestamp in packed arrays: about 20 bytes on the `add` path, 8
to 16 on the `add_many` path. `max_queued_samples` bounds the queues; when
they are full, `add` blocks (optionally up to `block_timeout`, then raises
`QueueFullError`) or, with ``when_full="drop_oldest"``, the oldest queued
samples are dropped and counted.

Accounting (`stats()`), at any moment: ``added == sent + failed + dropped +
spooled + queued`` (queued includes batches in flight).

Durability: with `spool_dir`, every batch is written to the spool (a
write-ahead queue, `promwrite.spool`) when it is cut, before it is sent, and
removed once the server accepted or refused it. After a crash or ``kill -9``
the next Writer on that directory sends what was left, first: a sample added
`flush_interval` (plus the time to write a batch) before the kill is not
lost, whether the endpoint was up or down. Delivery is at least once: the
batches on the wire at the kill (one per shard at most) may arrive twice.

Protocol: a batch is encoded in the remote-write version the client uses at
that moment (`Client.protocol`): 2.0 for ``Client(url, protocol="2.0")``, 1.0
once the client has fallen back. Sent samples and requests are counted per
the version the server accepted them in (`WriteResponse.protocol`), so a
2.0 batch that triggered the fallback (and went again as 1.0) counts as 1.0.
Spooled batches are always stored as 1.0 (also encoded so when the batch went
as 2.0), so every receiver takes them at replay.

Rooms: `queue` (shards, backpressure, cutting batches, flush bookkeeping),
`series_table` (each series' labels encoded once), `segments` (what a queue
holds and how it becomes one `promwrite.batch.SeriesBatch`, the codec's
columnar batch), `delivery` (send with retries, the spool, accounting),
`core` (`Writer`, fork and exit hooks), `reports` (`FailedBatch`, `WriterStats`).
"""


from .core import Writer
from .queue import QueueFullError
from .reports import FailedBatch, WriterStats

__all__ = ["FailedBatch", "QueueFullError", "Writer", "WriterStats"]
