"""Where a worker runs: inline (tests), in a thread, or in a separate process.

Every host takes the same messages, in order, from the engine: ``items`` (work), ``flush``
(idle advancement), ``add``/``remove`` (config changes), ``call`` (snapshot, status, close_all,
with a reply), ``stop``. Emitted windows go to the sink; completed work is acknowledged through
``on_done(samples)`` so the engine can bound what is queued (backpressure).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from precompute.accumulators.base import Accumulator
from precompute.config import AggregationConfig, EngineOptions
from precompute.output import OutputSink
from precompute.window_batch import WindowBatch
from precompute.worker import Emit, Worker

Message = tuple[Any, ...]

# Calls that only read a worker's state; every other message may change it.
READ_ONLY_CALLS = frozenset({"coverage", "status", "snapshot"})
# Hosts stamp ``generation`` with the next number at every message that may change their
# worker (``next`` on a count is atomic under the GIL): an unchanged stamp means a read-only
# answer (e.g. ``coverage``, asked on every query) read since is still right.
_STAMPS = itertools.count(1)


def _stamp(host: Any, msg: Message) -> None:
    if msg[0] != "call" or msg[1] not in READ_ONLY_CALLS:
        host.generation = next(_STAMPS)


def _handle(worker: Worker, msg: Message) -> tuple[list[Emit], int, Any]:
    """Apply one message: returns (emits, samples completed, reply)."""
    kind = msg[0]
    if kind == "items":
        out: list[Emit] = []
        n = 0
        for item in msg[1]:
            out += worker.process(item)
            n += len(item)
        return out, n, None
    if kind == "flush":
        return worker.flush(msg[1]), 0, None
    if kind == "add":
        worker.add_config(msg[1])
        return [], 0, None
    if kind == "remove":
        worker.remove_config(msg[1])
        return [], 0, None
    if kind == "call":
        name = msg[1]
        if name == "close_all":
            return worker.close_all(), 0, None
        if name == "restore":
            worker.restore(msg[2])
            return [], 0, None
        return [], 0, getattr(worker, name)()
    raise ValueError(f"unknown worker message {kind!r}")


class InlineHost:
    def __init__(self, worker: Worker, sink: OutputSink, on_done: Callable[[int], None]) -> None:
        self.worker, self.sink, self.on_done = worker, sink, on_done
        self.generation = next(_STAMPS)

    def send(self, msg: Message) -> Future | None:
        _stamp(self, msg)
        out, n, reply = _handle(self.worker, msg)
        if out:
            self.sink.write(out)
        if n:
            self.on_done(n)
        if msg[0] == "call":
            fut: Future = Future()
            fut.set_result(reply)
            return fut
        return None

    def stop(self) -> None:
        return None


class ThreadHost:
    """numpy releases the GIL in its kernels, but Python between them does not: see the RFC for
    the measured threads-vs-processes comparison."""

    def __init__(self, worker: Worker, sink: OutputSink, on_done: Callable[[int], None]) -> None:
        self.worker, self.sink, self.on_done = worker, sink, on_done
        self.generation = next(_STAMPS)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="precompute-worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            msg, fut = self.inbox.get()
            if msg[0] == "stop":
                return
            try:
                out, n, reply = _handle(self.worker, msg)
                if out:
                    self.sink.write(out)
                if fut is not None:
                    fut.set_result(reply)
            except BaseException as exc:  # keep serving; the engine reports the error
                self.error = exc
                traceback.print_exc()
                n = sum(len(i) for i in msg[1]) if msg[0] == "items" else 0
                if fut is not None:
                    fut.set_exception(exc)
            if n:
                self.on_done(n)

    def send(self, msg: Message) -> Future | None:
        _stamp(self, msg)
        fut: Future | None = Future() if msg[0] == "call" else None
        self.inbox.put((msg, fut))
        return fut

    def stop(self) -> None:
        self.inbox.put((("stop",), None))
        self.thread.join(timeout=30)


def _process_main(configs, options, inbox, outbox) -> None:
    worker = Worker(configs, options)
    while True:
        msg = inbox.get()
        if msg[0] == "stop":
            outbox.put(("stopped",))
            return
        try:
            out, n, reply = _handle(worker, msg)
            if out:
                # Window batches pickle as their columns; single windows as accumulator bytes.
                wire = [e if isinstance(e, WindowBatch) else (e[0], e[1].to_bytes()) for e in out]
                outbox.put(("emit", wire))
            if msg[0] == "call":
                outbox.put(("reply", reply, None))
        except BaseException as exc:
            n = sum(len(i) for i in msg[1]) if msg[0] == "items" else 0
            if msg[0] == "call":
                outbox.put(("reply", None, repr(exc)))
            traceback.print_exc()
        if n:
            outbox.put(("done", n))


class ProcessHost:
    """A worker in its own process (true parallelism; costs pickling the work items)."""

    def __init__(
        self,
        configs: list[AggregationConfig],
        options: EngineOptions,
        sink: OutputSink,
        on_done: Callable[[int], None],
    ) -> None:
        ctx = mp.get_context("forkserver")
        self.inbox = ctx.Queue()
        self.outbox = ctx.Queue()
        self.sink, self.on_done = sink, on_done
        self.generation = next(_STAMPS)
        self.pending: queue.SimpleQueue = queue.SimpleQueue()
        self.proc = ctx.Process(
            target=_process_main, args=(configs, options, self.inbox, self.outbox), daemon=True
        )
        self.proc.start()
        self.reader = threading.Thread(
            target=self._read, name="precompute-proc-reader", daemon=True
        )
        self.reader.start()

    def _read(self) -> None:
        while True:
            msg = self.outbox.get()
            if msg[0] == "stopped":
                return
            if msg[0] == "emit":
                self.sink.write(
                    [
                        e if isinstance(e, WindowBatch) else (e[0], Accumulator.from_bytes(e[1]))
                        for e in msg[1]
                    ]
                )
            elif msg[0] == "done":
                self.on_done(msg[1])
            elif msg[0] == "reply":
                fut: Future = self.pending.get()
                if msg[2] is None:
                    fut.set_result(msg[1])
                else:
                    fut.set_exception(RuntimeError(msg[2]))

    def send(self, msg: Message) -> Future | None:
        _stamp(self, msg)
        fut: Future | None = None
        if msg[0] == "call":
            fut = Future()
            self.pending.put(fut)
        self.inbox.put(msg)
        return fut

    def stop(self) -> None:
        self.inbox.put(("stop",))
        self.reader.join(timeout=30)
        self.proc.join(timeout=30)
