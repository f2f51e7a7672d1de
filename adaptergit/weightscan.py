"""One read of a safetensors weights file: md5, sha256, per-tensor BLAKE3, NaN/Inf and all-zero
checks, and any copies, all from the same bytes.

The file is read with ``readinto`` into a small ring of fixed-size buffers (never memory-mapped:
a map of a file that a trainer truncates underneath ends in SIGBUS, and its pages count towards the
process's memory). Each buffer is handed to two worker threads while the caller's thread works on it
too: md5 (DVC's object id, and the slowest pass) in one, sha256 in the other; the reads, the copies
(written piece by piece right after each read, while the bytes are still in this core's cache),
BLAKE3 and the float checks in the caller's. hashlib, blake3 and file I/O release the GIL on large
buffers, so on two cores the whole scan takes little more than md5 alone would.

NaN/Inf are found without numpy: a non-finite float has every exponent bit set, so its top byte
(sign and high exponent bits) is one of a few values. The top bytes of a block are gathered with an
extended slice and searched with ``bytes.find``; only a block where such a byte occurs (a non-finite
value, or one of the largest finite ones: 2**127 and above in F32) is counted exactly, with numpy.

Copies start the kernel's write-back every 32 MiB, so that the caller's fsync waits only for the
last stretch rather than for the whole file (the kernel itself may wait 30 s before writing).
"""

from __future__ import annotations

import bisect
import hashlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import blake3

from adaptergit.errors import InvalidAdapter
from adaptergit.fsutil import WRITEBACK_EVERY, start_writeback
from adaptergit.safetensors_format import DTYPE_SIZES, Header, TensorSpec

# Bytes per buffer. Small enough that a buffer is still in cache when the third consumer reaches
# it, large enough that per-buffer overhead (queues, slicing) vanishes next to hashing it.
BLOCK_SIZE = 4 * 1024 * 1024
# Buffers in the ring: how far the fastest consumer may run ahead of the slowest. Memory held is
# RING * BLOCK_SIZE (16 MiB), whatever the size of the file.
RING = 4
# Below this size the worker threads cost more than they save.
THREAD_MIN_SIZE = 2 * 1024 * 1024
# Copies are written in pieces of this size: the kernel takes 256 KiB writes for a third of the
# system time that 4 MiB ones cost it (measured on Linux 6.x, ext4).
WRITE_SIZE = 256 * 1024

_ZEROS = memoryview(bytes(BLOCK_SIZE))  # calloc'ed: untouched pages, no memory actually held


@dataclass(frozen=True, slots=True)
class _FloatLayout:
    """Where a float dtype's top byte sits, and which top-byte values may mean NaN or Inf.

    `stride` is the distance between top bytes (a C64 element is two F32), `top` the top byte's
    offset within that stride (little-endian: the last byte), `suspects` the top-byte values of
    non-finite numbers (and, for F64/F32/BF16, of the largest finite ones, which the exact count
    then clears), `sign` the sign bit within the top byte (None: an unsigned format).
    numpy's view of the raw bits: `bits` (unsigned type), `mask` (magnitude bits), `nonfinite`
    (smallest non-finite magnitude), `inf` (the Inf magnitude; None: the format has no Inf).
    """

    stride: int
    top: int
    suspects: bytes
    sign: int | None
    bits: str
    mask: int
    nonfinite: int
    inf: int | None


_HIGH = b"\x7f\xff"  # top byte of the largest exponents, either sign
_F16_HIGH = bytes([*range(0x7C, 0x80), *range(0xFC, 0x100)])  # exponent 11111, either sign

FLOAT_LAYOUTS: dict[str, _FloatLayout] = {
    "F64": _FloatLayout(
        8, 7, _HIGH, 0x80, "<u8", 0x7FFF_FFFF_FFFF_FFFF, 0x7FF0 << 48, 0x7FF0 << 48
    ),
    "F32": _FloatLayout(4, 3, _HIGH, 0x80, "<u4", 0x7FFF_FFFF, 0x7F80_0000, 0x7F80_0000),
    "C64": _FloatLayout(4, 3, _HIGH, 0x80, "<u4", 0x7FFF_FFFF, 0x7F80_0000, 0x7F80_0000),
    "F16": _FloatLayout(2, 1, _F16_HIGH, 0x80, "<u2", 0x7FFF, 0x7C00, 0x7C00),
    "BF16": _FloatLayout(2, 1, _HIGH, 0x80, "<u2", 0x7FFF, 0x7F80, 0x7F80),
    "F8_E5M2": _FloatLayout(1, 0, _F16_HIGH, 0x80, "u1", 0x7F, 0x7C, 0x7C),
    # the "fn" variant: NaN is S.1111.111, there is no Inf
    "F8_E4M3": _FloatLayout(1, 0, _HIGH, 0x80, "u1", 0x7F, 0x7F, None),
    # unsigned exponent-only scales: 0xFF is NaN, 0x00 is 2**-127 (there is no zero)
    "F8_E8M0": _FloatLayout(1, 0, b"\xff", None, "u1", 0xFF, 0xFF, None),
}

# For suspect sets of more than two values: top byte -> 1 if suspect, else 0.
_SUSPECT_TABLES = {
    layout.suspects: bytes(int(i in layout.suspects) for i in range(256))
    for layout in FLOAT_LAYOUTS.values()
}


@dataclass(frozen=True, kw_only=True, slots=True)
class TensorCheck:
    """What the scan learned about one tensor.

    Attributes:
        blake3: BLAKE3 of the tensor's raw bytes, hex.
        zero: a float tensor whose every element is +0 or -0 (False for other dtypes).
        nan: how many NaN elements it holds (float dtypes only).
        inf: how many +Inf or -Inf elements it holds.
    """

    blake3: str
    zero: bool
    nan: int
    inf: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FileScan:
    """The result of `scan`: whole-file md5 and sha256 (hex), and each tensor's `TensorCheck`."""

    md5: str
    sha256: str
    tensors: dict[str, TensorCheck]


def scan(
    stream: _Readable,
    header: Header,
    prefix: bytes,
    path: Path,
    outputs: Sequence[BinaryIO] = (),
) -> FileScan:
    """Read the tensor data of an open safetensors file once, hashing, checking and copying it.

    Args:
        stream: the file, opened for binary reading and positioned at ``header.data_start`` (just
            after `prefix`).
        header: its validated header; tensors tile bytes ``[data_start, file_size)``.
        prefix: the file's first ``header.data_start`` bytes (length field and JSON header), as
            they were read and parsed; hashed and copied ahead of the tensor data.
        path: the file's path, for error messages.
        outputs: streams that receive a copy of every byte of the file, in order.

    Returns:
        md5 and sha256 of the whole file, and per tensor its BLAKE3 and float checks.

    Raises:
        InvalidAdapter: the file ended before ``header.file_size`` bytes (it changed while read).
        OSError: reading the file or writing an output failed (a failed read is `OSError` from
            `stream`; the caller says which).
    """
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    big = header.file_size >= WRITEBACK_EVERY
    sinks = [_Sink(out, big) for out in outputs]
    tensors = _Tensors(header.tensors)

    def copy(view: memoryview) -> None:
        for sink in sinks:
            sink.write(view)

    reader = _Reader(stream, header, path, copy if sinks else None)
    with memoryview(prefix) as view:
        copy(view)
    if header.file_size < THREAD_MIN_SIZE:
        _scan_inline(reader, prefix, tensors, [md5.update, sha.update])
    else:
        _scan_threaded(reader, prefix, tensors, [md5.update, sha.update])
    for sink in sinks:
        sink.finish()
    return FileScan(md5=md5.hexdigest(), sha256=sha.hexdigest(), tensors=tensors.results)


def _blocks(header: Header) -> list[tuple[int, int]]:
    """[start, end) file ranges of at most BLOCK_SIZE bytes covering the tensor data, each ending
    on an element boundary of the tensor it cuts, so that every piece holds whole elements."""
    specs = header.tensors
    starts = [s.start for s in specs]
    ranges = []
    pos, size = header.data_start, header.file_size
    while pos < size:
        end = min(pos + BLOCK_SIZE, size)
        if end < size:
            spec = specs[bisect.bisect_right(starts, end) - 1]
            end -= (end - spec.start) % DTYPE_SIZES[spec.dtype]
        ranges.append((pos, end))
        pos = end
    return ranges


class _Reader:
    """Fills buffers from the stream, WRITE_SIZE bytes at a time, each piece copied to the
    outputs at once: it is still in this core's cache then, which makes the copy far cheaper
    than a write of the whole buffer later from another thread."""

    def __init__(
        self,
        stream: _Readable,
        header: Header,
        path: Path,
        copy: Callable[[memoryview], None] | None,
    ) -> None:
        self.stream = stream
        self.header = header
        self.path = path
        self.copy = copy

    def read_into(self, view: memoryview, at: int) -> None:
        """Fill `view` with file bytes from `at` on; a file that ends early changed since its
        header was read."""
        done = 0
        while done < len(view):
            with view[done : done + WRITE_SIZE] as piece:
                n = _read_into(self.stream, piece, at + done, self.header, self.path)
                if self.copy is not None:
                    with piece[:n] as got:
                        self.copy(got)
            done += n


def _read_into(stream: _Readable, view: memoryview, at: int, header: Header, path: Path) -> int:
    """Read at least one byte into `view`; a file that ends early changed since its header was
    read. Returns the bytes read."""
    n = stream.readinto(view)
    if not n:
        raise InvalidAdapter(
            path,
            f"the file changed while it was being read: it ended at byte {at:,} "
            f"of {header.file_size:,} (is something still writing it?)",
        )
    return n


def _scan_inline(
    reader: _Reader,
    prefix: bytes,
    tensors: _Tensors,
    tasks: list[Callable[[memoryview], object]],
) -> None:
    """The scan without threads, for small files."""
    header = reader.header
    with memoryview(prefix) as view:
        for task in tasks:
            task(view)
    buffer = bytearray(min(BLOCK_SIZE, header.file_size))
    with memoryview(buffer) as whole:
        for start, end in _blocks(header):
            with whole[: end - start] as view:
                reader.read_into(view, start)
                for task in tasks:
                    task(view)
                tensors.consume(buffer, start, end)
    tensors.finish()


class _Slot:
    """One buffer of the ring; back on the free queue once every consumer has released it."""

    def __init__(self, free: queue.SimpleQueue[_Slot], lock: threading.Lock) -> None:
        self.buffer = bytearray(BLOCK_SIZE)
        self.view = memoryview(self.buffer)
        self._free = free
        self._lock = lock
        self._pending = 0

    def hand_out(self, consumers: int) -> None:
        self._pending = consumers

    def release(self) -> None:
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._free.put(self)


class _Worker:
    """A thread running `tasks` on each view it is given, in order; the first error stops it."""

    def __init__(self, name: str, task: Callable[[memoryview], object]) -> None:
        self.task = task
        self.error: BaseException | None = None
        self.stop = False
        self._queue: queue.SimpleQueue[tuple[memoryview, _Slot | None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, view: memoryview, slot: _Slot | None) -> None:
        self._queue.put((view, slot))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            view, slot = item
            if self.error is None and not self.stop:
                try:
                    self.task(view)
                except BaseException as exc:  # handed to the caller's thread, re-raised there
                    self.error = exc
            if slot is not None:
                slot.release()


def _scan_threaded(
    reader: _Reader,
    prefix: bytes,
    tensors: _Tensors,
    tasks: list[Callable[[memoryview], object]],
) -> None:
    """The scan with `tasks` on worker threads and the reads, copies and tensor checks on this
    one."""
    header = reader.header
    free: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
    lock = threading.Lock()
    slots = 0
    workers = [_Worker(f"adaptergit-scan-{i}", task) for i, task in enumerate(tasks)]

    def failed() -> BaseException | None:
        return next((w.error for w in workers if w.error is not None), None)

    prefix_view = memoryview(prefix)
    try:
        for worker in workers:
            worker.submit(prefix_view, None)
        for start, end in _blocks(header):
            if slots < RING and free.empty():  # buffers are made as the readers fall behind
                slots += 1
                slot = _Slot(free, lock)
            else:
                slot = free.get()
            error = failed()
            if error is not None:
                raise error
            view = slot.view[: end - start]
            reader.read_into(view, start)
            slot.hand_out(len(workers) + 1)
            for worker in workers:
                worker.submit(view, slot)
            try:
                tensors.consume(slot.buffer, start, end)
            finally:
                slot.release()
        tensors.finish()
    except BaseException:
        for worker in workers:
            worker.stop = True
        raise
    finally:
        for worker in workers:
            worker.close()
        prefix_view.release()
    error = failed()
    if error is not None:
        raise error


class _Sink:
    """An output copy: writes every byte, and (`big`) starts the kernel's write-back as it goes."""

    def __init__(self, out: BinaryIO, big: bool) -> None:
        self.out = out
        self.written = 0  # bytes written by us
        self.queued = 0  # of which handed to the kernel's write-back
        self.fd = -1
        self.base = 0  # the file offset we started at
        self.start_writeback: Callable[[int, int, int], None] | None = None
        if big:
            try:
                self.fd = out.fileno()
                self.base = out.tell()
            except (AttributeError, OSError, ValueError):  # a BytesIO, a pipe or the like
                return
            self.start_writeback = start_writeback

    def write(self, data: memoryview) -> None:
        for start in range(0, len(data), WRITE_SIZE):
            with data[start : start + WRITE_SIZE] as piece:
                written = self.out.write(piece)
                # A raw (unbuffered) stream may take less than it was given.
                while written is not None and written < len(piece):
                    with piece[written:] as rest:
                        more = self.out.write(rest)
                    written += more or 0
        self.written += len(data)
        if self.start_writeback is not None and self.written - self.queued >= WRITEBACK_EVERY:
            self.out.flush()
            self.start_writeback(self.fd, self.base + self.queued, self.written - self.queued)
            self.queued = self.written

    def finish(self) -> None:
        self.out.flush()


class _Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


class _Tensor:
    """A tensor being scanned: its running BLAKE3 and float checks."""

    __slots__ = ("hasher", "inf", "layout", "nan", "spec", "zero")

    def __init__(self, spec: TensorSpec) -> None:
        self.spec = spec
        self.layout = FLOAT_LAYOUTS.get(spec.dtype)
        self.hasher: Any = None
        self.zero = self.layout is not None
        self.nan = 0
        self.inf = 0

    def piece(self, buffer: bytearray, a: int, b: int, whole: bool) -> None:
        """Take bytes [a, b) of `buffer` (whole elements); `whole`: they are all of the tensor."""
        with memoryview(buffer)[a:b] as view:
            if whole:
                self.hasher = blake3.blake3(view)
            else:
                if self.hasher is None:
                    self.hasher = blake3.blake3()
                self.hasher.update(view)
            if self.layout is not None:
                self._check(buffer, view, a, b, self.layout)

    def _check(
        self, buffer: bytearray, view: memoryview, a: int, b: int, layout: _FloatLayout
    ) -> None:
        tops = buffer[a + layout.top : b : layout.stride]
        if len(layout.suspects) <= 2:
            suspect = any(tops.find(byte) >= 0 for byte in layout.suspects)
        else:
            suspect = tops.translate(_SUSPECT_TABLES[layout.suspects]).find(1) >= 0
        if suspect:
            nan, inf = _count_nonfinite(view, layout)
            self.nan += nan
            self.inf += inf
        if self.zero and not buffer.startswith(_ZEROS[: b - a], a, b):
            # Not all zero bytes; still all +-0 if the only other bits set are signs (rare, so
            # look at the first element before counting).
            sign = layout.sign
            self.zero = (
                sign is not None
                and _signed_zero(buffer[a : a + layout.stride])
                and buffer.count(0, a, b) + tops.count(sign) == b - a
            )

    def result(self) -> TensorCheck:
        digest = (self.hasher or blake3.blake3()).hexdigest()
        return TensorCheck(blake3=digest, zero=self.zero, nan=self.nan, inf=self.inf)


def _signed_zero(element: bytes | bytearray) -> bool:
    """Whether one little-endian float is +0 or -0."""
    return element[-1] in (0, 0x80) and not any(element[:-1])


def _count_nonfinite(view: memoryview, layout: _FloatLayout) -> tuple[int, int]:
    """Exact NaN and Inf counts of a block that holds a suspect top byte."""
    import numpy as np  # only here: a block with a non-finite (or huge) value is rare

    values = np.frombuffer(view, dtype=layout.bits)
    magnitudes = values & values.dtype.type(layout.mask)
    if layout.inf is None:
        nan = int(np.count_nonzero(magnitudes >= layout.nonfinite))
        inf = 0
    else:
        nan = int(np.count_nonzero(magnitudes > layout.inf))
        inf = int(np.count_nonzero(magnitudes == layout.inf))
    del values, magnitudes
    return nan, inf


class _Tensors:
    """Walks the tensors in file order as blocks arrive, collecting each one's `TensorCheck`."""

    def __init__(self, specs: Sequence[TensorSpec]) -> None:
        self._specs = sorted(specs, key=lambda s: (s.start, s.end))
        self._next = 0
        self._current: _Tensor | None = None
        self.results: dict[str, TensorCheck] = {}

    def consume(self, buffer: bytearray, start: int, end: int) -> None:
        """Take file bytes [start, end), held at the start of `buffer`."""
        pos = start
        while True:
            if self._current is None:
                if self._next == len(self._specs) or self._specs[self._next].start >= end:
                    break
                self._current = _Tensor(self._specs[self._next])
                self._next += 1
            tensor = self._current
            spec = tensor.spec
            upto = min(spec.end, end)
            if upto > pos:
                whole = spec.start == pos and spec.end == upto
                tensor.piece(buffer, pos - start, upto - start, whole)
            if spec.end > end:
                break
            self.results[spec.name] = tensor.result()
            self._current = None
            pos = upto

    def finish(self) -> None:
        """Close the tensors no block reached (zero-size tensors at the end of the file)."""
        while self._next < len(self._specs):
            spec = self._specs[self._next]
            self.results[spec.name] = _Tensor(spec).result()
            self._next += 1
