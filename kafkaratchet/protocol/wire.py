"""Strict msgpack for outside bytes: bounded sizes, bounded depth, no surprises.

Everything kafkaratchet reads from the broker or a file goes through
:func:`unpack`, so that a msgpack bomb (deep nesting, huge declared lengths) or a
wrong type becomes a :class:`~kafkaratchet.errors.FormatError` and nothing else.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgpack

from kafkaratchet.errors import FormatError

__all__ = ["pack", "unpack", "expect", "expect_list", "expect_bytes", "expect_int", "MAX_MESSAGE"]

#: The largest management structure accepted (a chain, a key request or answer).
MAX_MESSAGE = 1 << 20
#: Nesting deeper than this is refused before it can exhaust the stack.
MAX_DEPTH = 16

T = TypeVar("T")


def pack(obj: Any) -> bytes:
    """Canonical encoding: bin for bytes, str for text, no ext types."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def _depth(obj: Any, limit: int) -> None:
    """Walk the containers only: a flat array of thousands of strings costs one pass in C, not a Python loop."""
    containers = (list, dict)
    stack: list[tuple[Any, int]] = [(obj, 0)] if isinstance(obj, containers) else []
    while stack:
        item, level = stack.pop()
        if level >= limit:
            raise FormatError(f"nesting deeper than {limit}")
        children = [*item.values(), *item] if isinstance(item, dict) else item
        stack.extend([(child, level + 1) for child in children if isinstance(child, containers)])


def unpack(data: bytes, *, max_size: int = MAX_MESSAGE, max_depth: int = MAX_DEPTH,
           max_items: int | None = None) -> Any:
    """Decode one msgpack object from ``data`` or raise FormatError.

    ``max_items`` caps every array and map (refused inside msgpack's C decoder, before any Python work).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise FormatError(f"{len(data)} bytes exceeds the limit of {max_size}")
    limit = len(data)
    items = limit if max_items is None else min(limit, max_items)
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=limit,
            max_str_len=limit,
            max_array_len=items,
            max_map_len=items,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        if max_items is not None and isinstance(exc, ValueError) and "exceeds max" in str(exc):
            raise FormatError(f"an array or map holds more than {max_items} items") from None
        raise FormatError(f"invalid msgpack ({type(exc).__name__})") from None
    except RecursionError:
        raise FormatError("nesting too deep") from None
    _depth(obj, max_depth)
    return obj


def expect(value: Any, kind: type[T], what: str) -> T:
    """``value`` as ``kind``, or FormatError naming the field (bool is not an int here)."""
    if kind is int and isinstance(value, bool):
        raise FormatError(f"{what}: expected int, got bool")
    if not isinstance(value, kind):
        raise FormatError(f"{what}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def expect_int(value: Any, what: str, *, lo: int | None = None, hi: int | None = None) -> int:
    number = expect(value, int, what)
    if lo is not None and number < lo:
        raise FormatError(f"{what}: {number} is below {lo}")
    if hi is not None and number > hi:
        raise FormatError(f"{what}: {number} is above {hi}")
    return number


def expect_bytes(value: Any, what: str, *, size: int | None = None, max_size: int | None = None) -> bytes:
    data = expect(value, bytes, what)
    if size is not None and len(data) != size:
        raise FormatError(f"{what}: expected {size} bytes, got {len(data)}")
    if max_size is not None and len(data) > max_size:
        raise FormatError(f"{what}: {len(data)} bytes exceeds {max_size}")
    return data


def expect_list(value: Any, what: str, *, size: int | None = None, min_size: int = 0) -> list[Any]:
    items = expect(value, list, what)
    if size is not None and len(items) != size:
        raise FormatError(f"{what}: expected {size} items, got {len(items)}")
    if len(items) < min_size:
        raise FormatError(f"{what}: expected at least {min_size} items, got {len(items)}")
    return items
