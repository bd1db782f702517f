"""Pre-checks that refuse hostile checkpoint files before any reader touches them.

A checkpoint from the internet may try to run code (a pickle that asks for ``os.system``,
``builtins.eval``, ``subprocess.Popen``...), exhaust memory (a zip whose entries declare or
inflate to absurd sizes, a storage or tensor that claims billions of elements) or both.
The real readers (``torch.load(weights_only=True)``, the NVlabs restricted unpickler,
safetensors) already refuse foreign globals, but they do so while loading, after
allocating storages. These guards look at the file's structure first and call nothing:

- :func:`check_torch_zip`: the zip central directory of a ``torch.save`` file (entry
  count, declared sizes against the file size and a hard limit, compression ratio), then a
  *dry run* of ``data.pkl``: an unpickler whose ``find_class`` returns inert stand-ins for
  the globals torch's weights-only loader allows and refuses every other one, whose
  ``persistent_load`` compares each storage's declared size with its zip entry, and whose
  tensor rebuild checks shapes and strides against the storage. Nothing real is built.
- :func:`check_legacy_torch`: the same dry run over the pickles of torch's pre-1.6 format,
  then a walk over the raw storage records that follow them.
- :func:`check_safetensors`: the safetensors header (length, JSON, dtypes, shapes, data
  offsets) against the file size.
- :func:`check_tensor_shape` / :func:`check_legacy_bytes`: used by the NVlabs reader for
  the tensors and storages nested in a network pickle.

Formats: PyTorch ``torch/serialization.py`` (zip: ``archive/data.pkl`` + ``archive/data/<key>``
with persistent ids ``('storage', StorageType, key, location, numel)``; legacy: magic
number, protocol, sys info, object, storage keys, then per storage an int64 element count
and its bytes), safetensors (8-byte little-endian header length, JSON header, data).
"""

from __future__ import annotations

import io
import json
import math
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from faceedit.errors import CheckpointError

# Hard limits, far above any real face-editing checkpoint (the largest official file, a
# pSp encoder with its generator, is about 1.2 GB) but far below what would hurt a machine.
MAX_TOTAL_BYTES = 16 * 1024**3  # everything a file may declare once unpacked
MAX_TENSOR_ELEMENTS = 2**32  # one tensor (16 GB of float32)
MAX_ZIP_ENTRIES = 100_000
MAX_COMPRESSION_RATIO = 100  # torch writes stored entries; deflate beyond this is a bomb
MAX_PICKLE_BYTES = 1024**3  # the data.pkl of a zip checkpoint holds only structure
MAX_SAFETENSORS_HEADER = 100 * 1024**2  # the safetensors library's own limit

# Legacy torch files start with this pickled number (torch.serialization.MAGIC_NUMBER).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Refused(Exception):
    """Raised inside a dry run; becomes a CheckpointError naming the file."""


class BoundedReader(io.RawIOBase):
    """A read-only view of a file that never asks the OS for more than is left.

    ``pickle`` reads a frame or a bytes object by its declared length in one call; a
    plain file object would allocate that length first (terabytes for a hostile header).
    """

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self._f.readinto(view[: min(len(view), self._left)])
        self._left -= n or 0
        return n or 0

    def read(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.readline(size)
        self._left -= len(data)
        return data


# -- inert stand-ins -----------------------------------------------------------------


class _Inert:
    """Whatever an allowed but irrelevant global would have built: accepts anything."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Iterable[Any]) -> None:
        pass


class _StorageType:
    """Stands for ``torch.FloatStorage`` & co.: only its element size matters."""

    def __init__(self, name: str, itemsize: int) -> None:
        self.name = name
        self.itemsize = itemsize

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert()


class _Storage:
    def __init__(self, key: str, nbytes: int, itemsize: int) -> None:
        self.key = key
        self.nbytes = nbytes
        self.itemsize = itemsize


class _Tensor(_Inert):
    pass


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Refused(f"{what} is {type(value).__name__}, not an integer")
    return value


def check_tensor_shape(
    size: Any, stride: Any = None, offset: int = 0, storage_numel: Any = None
) -> None:
    """Refuse a tensor whose shape is absurd or reaches past its storage.

    Args:
        size: the shape, a tuple of ints.
        stride: the strides (same length), or None for contiguous.
        offset: storage offset in elements.
        storage_numel: elements in the storage, or None when unknown.

    Raises:
        ValueError: with the reason (callers add the file name).
    """
    try:
        _check_tensor_shape(size, stride, offset, storage_numel)
    except _Refused as e:
        raise ValueError(str(e)) from None


def _check_tensor_shape(size: Any, stride: Any, offset: Any, storage_numel: Any) -> None:
    if not isinstance(size, tuple | list):
        raise _Refused(f"tensor shape is {type(size).__name__}, not a tuple")
    dims = [_int(d, "a tensor dimension") for d in size]
    if len(dims) > 64 or any(d < 0 for d in dims):
        raise _Refused(f"tensor shape {tuple(dims)[:8]} is invalid")
    numel = math.prod(dims)
    if numel > MAX_TENSOR_ELEMENTS:
        raise _Refused(
            f"a tensor declares shape {tuple(dims)} ({numel:.3g} elements, limit "
            f"{MAX_TENSOR_ELEMENTS:.3g})"
        )
    offset = _int(offset, "a storage offset")
    if offset < 0:
        raise _Refused("a tensor has a negative storage offset")
    if stride is not None and numel > 0:
        if not isinstance(stride, tuple | list) or len(stride) != len(dims):
            raise _Refused("a tensor's strides do not match its shape")
        steps = [_int(s, "a tensor stride") for s in stride]
        if any(s < 0 for s in steps):
            raise _Refused("a tensor has a negative stride")
        extent = offset + sum((d - 1) * s for d, s in zip(dims, steps, strict=True)) + 1
        if storage_numel is not None and extent > storage_numel:
            raise _Refused(
                f"a tensor of shape {tuple(dims)} reaches element {extent:,} of a storage "
                f"of {storage_numel:,}"
            )


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _Tensor:
    numel = storage.nbytes // storage.itemsize if isinstance(storage, _Storage) else None
    _check_tensor_shape(size, stride, offset, numel)
    return _Tensor()


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    return data


# Element sizes of torch's typed storage classes, as they appear in ``GLOBAL torch <name>``.
_STORAGE_ITEMSIZE = {
    "UntypedStorage": 1, "ByteStorage": 1, "CharStorage": 1, "BoolStorage": 1,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
    "HalfStorage": 2, "BFloat16Storage": 2, "ShortStorage": 2, "FloatStorage": 4,
    "IntStorage": 4, "QInt32Storage": 4, "DoubleStorage": 8, "LongStorage": 8,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}  # fmt: skip


def _storage_type(name: str) -> _StorageType | None:
    itemsize = _STORAGE_ITEMSIZE.get(name)
    return None if itemsize is None else _StorageType(name, itemsize)


def _torch_allowed() -> set[str]:
    """Dotted names torch's weights-only loader accepts (plus faceedit's harmless extras)."""
    import torch

    names: set[str] = {"argparse.Namespace"}
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        names.update(_get_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover - other torch versions
        names.update({"collections.OrderedDict", "torch.Size", "torch._utils._rebuild_tensor_v2"})
    for obj in torch.serialization.get_safe_globals():
        obj = obj[0] if isinstance(obj, tuple) else obj
        names.add(f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}")
    return names


_SPECIAL: dict[str, Callable[..., Any]] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
}


class _DictWithAttrs(dict):
    """Stands in for ``OrderedDict``; unlike ``dict`` it accepts attributes (BUILD)."""


class _DryRun(pickle._Unpickler):
    """Unpickles the structure of a torch pickle without building or calling anything real.

    The pure-Python unpickler on purpose: its memo is a dict, while the C one grows an
    array to the largest index a ``LONG_BINPUT`` names (16 GB for ``0x7fffffff``).

    ``storages(pid) -> _Storage`` decides what a persistent id may declare.
    """

    def __init__(self, f: BinaryIO, storages: Callable[[Any], _Storage]) -> None:
        super().__init__(f)
        self._storages = storages
        self._allowed = _torch_allowed()

    def find_class(self, module: str, name: str) -> Any:
        dotted = f"{module}.{name}"
        if dotted in _SPECIAL:
            return _SPECIAL[dotted]
        if module in ("torch", "torch.storage"):
            storage = _storage_type(name)
            if storage is not None:
                return storage
        if dotted == "collections.OrderedDict":
            # a dict subclass: state_dict() pickles carry a BUILD of their _metadata
            return _DictWithAttrs
        if dotted in self._allowed:
            return _Inert
        raise _Refused(f"the file asks for the Python global {dotted}, which is not plain weights")

    def persistent_load(self, pid: Any) -> Any:
        return self._storages(pid)


def _storage_from_pid(pid: Any) -> tuple[_StorageType, str, int]:
    if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
        raise _Refused("a persistent id that is not a storage")
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(storage_type, _StorageType):
        raise _Refused("a storage of an unknown type")
    if not isinstance(key, str):
        raise _Refused("a storage key that is not a string")
    numel = _int(numel, "a storage size")
    if numel < 0 or numel > MAX_TENSOR_ELEMENTS:
        raise _Refused(f"a storage declares {numel:,} elements (limit {MAX_TENSOR_ELEMENTS:,})")
    return storage_type, key, numel


def _dry_run(data: bytes | BinaryIO, storages: Callable[[Any], _Storage]) -> Any:
    f = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return _DryRun(f, storages).load()
    except _Refused:
        raise
    except RecursionError:
        raise _Refused("the pickle nests too deeply") from None
    except Exception as e:  # nothing real runs in a dry run: any error means corruption
        raise _Refused(f"corrupt pickle ({type(e).__name__}: {str(e)[:120]})") from None


def _refuse(path: Path | str, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: refused: {reason}")


# -- torch zip ------------------------------------------------------------------------


def check_torch_zip(path: str | Path) -> None:
    """Refuse a ``torch.save`` zip whose directory or pickle is hostile (see module doc).

    A zip that cannot even be opened is left to the torch reader, which reports it as
    truncated or corrupt.

    Raises:
        CheckpointError: naming the file and the reason.
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            _check_zip_directory(infos, size)
            pkl = [i for i in infos if i.filename.endswith("data.pkl")]
            if not pkl:
                return
            prefix = pkl[0].filename[: -len("data.pkl")]
            entries = {i.filename: i for i in infos}
            if pkl[0].file_size > MAX_PICKLE_BYTES:
                raise _Refused(f"data.pkl declares {pkl[0].file_size:,} bytes")
            try:
                data = z.read(pkl[0])
            except zipfile.BadZipFile as e:
                # torch does not check CRCs: it would unpickle the damaged bytes
                raise _Refused(f"data.pkl is damaged ({e})") from None
    except _Refused as e:
        raise _refuse(path, str(e)) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError,
            EOFError, ValueError, RuntimeError):  # fmt: skip
        return  # unreadable (cut off, encrypted...): torch's reader reports it

    def storages(pid: Any) -> _Storage:
        storage_type, key, numel = _storage_from_pid(pid)
        info = entries.get(f"{prefix}data/{key}")
        nbytes = numel * storage_type.itemsize
        if info is None:
            raise _Refused(f"storage {key!r} has no entry in the archive")
        if nbytes > info.file_size:
            raise _Refused(
                f"storage {key!r} declares {nbytes:,} bytes but its entry holds {info.file_size:,}"
            )
        return _Storage(key, nbytes, storage_type.itemsize)

    try:
        _dry_run(data, storages)
    except _Refused as e:
        raise _refuse(path, str(e)) from None


def _check_zip_directory(infos: list[zipfile.ZipInfo], file_size: int) -> None:
    if len(infos) > MAX_ZIP_ENTRIES:
        raise _Refused(f"the archive has {len(infos):,} entries (limit {MAX_ZIP_ENTRIES:,})")
    declared = 0
    for info in infos:
        if info.compress_size > file_size:
            raise _Refused(
                f"entry {info.filename!r} claims {info.compress_size:,} compressed bytes in a "
                f"file of {file_size:,}"
            )
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise _Refused(f"stored entry {info.filename!r} declares two different sizes")
        elif info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise _Refused(
                f"entry {info.filename!r} would inflate {info.compress_size:,} bytes to "
                f"{info.file_size:,} (a zip bomb)"
            )
        declared += info.file_size
        if declared > MAX_TOTAL_BYTES:
            raise _Refused(
                f"the archive declares {declared:,} bytes once unpacked (limit {MAX_TOTAL_BYTES:,})"
            )


# -- legacy torch ---------------------------------------------------------------------


def check_legacy_torch(path: str | Path) -> None:
    """Refuse a pre-1.6 ``torch.save`` file whose pickles or storage records are hostile.

    Raises:
        CheckpointError: naming the file and the reason.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            _check_legacy_stream(f, path.stat().st_size)
    except _Refused as e:
        raise _refuse(path, str(e)) from None


def check_legacy_bytes(data: bytes, what: str) -> None:
    """:func:`check_legacy_torch` for bytes held in memory (a storage in a network pickle).

    Raises:
        CheckpointError: starting with ``what``.
    """
    try:
        _check_legacy_stream(io.BytesIO(data), len(data))
    except _Refused as e:
        raise _refuse(what, str(e)) from None


def _check_legacy_stream(raw: BinaryIO, total: int) -> None:
    # No read-ahead in the bounded reader, so the raw file's position stays exact.
    f = BoundedReader(raw, total)

    def no_storage(pid: Any) -> _Storage:
        raise _Refused("a storage where the header expects a plain value")

    magic = _dry_run(f, no_storage)
    if magic != _LEGACY_MAGIC:
        raise _Refused("not a legacy PyTorch file (wrong magic number)")
    _dry_run(f, no_storage)  # protocol version
    _dry_run(f, no_storage)  # sys info
    declared: dict[str, int] = {}

    def storages(pid: Any) -> _Storage:
        storage_type, key, numel = _storage_from_pid(pid)
        nbytes = numel * storage_type.itemsize
        if nbytes > total:
            raise _Refused(f"storage {key!r} declares {nbytes:,} bytes in a file of {total:,}")
        declared[key] = nbytes
        return _Storage(key, nbytes, storage_type.itemsize)

    _dry_run(f, storages)
    keys = _dry_run(f, no_storage)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Refused("the storage key list is malformed")
    # Each storage follows as an int64 element count and its bytes.
    for key in keys:
        if key not in declared:
            raise _Refused(f"storage {key!r} is listed but never used")
        head = raw.read(8)
        if len(head) < 8:
            return  # truncated: torch's reader reports it
        raw.seek(declared[key], io.SEEK_CUR)
        if raw.tell() > total:
            return


# -- safetensors ----------------------------------------------------------------------

_SAFETENSORS_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
    "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def check_safetensors(path: str | Path) -> None:
    """Refuse a safetensors file whose header lies about sizes, shapes or offsets.

    Raises:
        CheckpointError: naming the file and the reason.
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _Refused("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_SAFETENSORS_HEADER or n > size - 8:
                raise _Refused(f"the header declares {n:,} bytes in a file of {size:,}")
            raw = f.read(n)
        try:
            header = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Refused("the header is not valid JSON") from None
        if not isinstance(header, dict):
            raise _Refused("the header is not a JSON object")
        data_size = size - 8 - n
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(entry, dict):
                raise _Refused(f"tensor {name!r} has no description")
            itemsize = _SAFETENSORS_ITEMSIZE.get(entry.get("dtype"))
            shape, offsets = entry.get("shape"), entry.get("data_offsets")
            if itemsize is None:
                raise _Refused(f"tensor {name!r} has unknown dtype {entry.get('dtype')!r}")
            _check_tensor_shape(shape, None, 0, None)
            if (
                not isinstance(offsets, list)
                or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            ):
                raise _Refused(f"tensor {name!r} has malformed data offsets")
            begin, end = offsets
            if not 0 <= begin <= end <= data_size:
                raise _Refused(f"tensor {name!r} claims bytes {begin:,}..{end:,} of {data_size:,}")
            if end - begin != math.prod(shape) * itemsize:
                raise _Refused(f"tensor {name!r}: shape {tuple(shape)} does not fit its bytes")
    except _Refused as e:
        raise _refuse(path, str(e)) from None
