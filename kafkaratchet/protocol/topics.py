"""Topic rules of certificates: literal root topics and ``^`` patterns, their caps, and when patterns run.

Decoding checks only lengths and counts (:func:`parse_topics`); a pattern is compiled
(:func:`compile_patterns`, cached) only once every signature of its chain verified under a
trusted root, and matched only against names from a trusted source. docs/PROTOCOL.md
section 5, "Topics".
"""

from __future__ import annotations

import functools
import re
from typing import Any

from kafkaratchet.errors import FormatError
from kafkaratchet.protocol import wire

__all__ = ["MAX_TOPIC_LENGTH", "MAX_REGEX_LENGTH", "MAX_TOPICS", "MAX_PATTERNS", "parse_topics", "compile_patterns",
           "topic_allowed", "topics_narrow"]

#: Kafka's own limit on a topic name.
MAX_TOPIC_LENGTH = 249
MAX_REGEX_LENGTH = 256
#: At most this many topic entries in one certificate, of which at most MAX_PATTERNS are patterns.
MAX_TOPICS = 256
MAX_PATTERNS = 16


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    """Compiled once per distinct pattern (a bounded cache): chains are validated over and over.

    Only called for patterns of verified certificates (see :func:`validate_chain`).
    """
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError):
        raise FormatError("a topic pattern does not compile") from None


def _check_topic(value: Any, what: str) -> str:
    """Length only: a pattern's syntax is checked (compiled) once its certificate is trusted."""
    topic = wire.expect(value, str, what)
    if topic.startswith("^"):
        if len(topic) > MAX_REGEX_LENGTH:
            raise FormatError(f"{what}: regex longer than {MAX_REGEX_LENGTH} characters")
    elif not 1 <= len(topic) <= MAX_TOPIC_LENGTH:
        raise FormatError(f"{what}: topic must be 1..{MAX_TOPIC_LENGTH} characters")
    return topic


def parse_topics(value: Any, what: str = "topics") -> tuple[str, ...] | None:
    """A ``topics`` field (nil or an array of str) with its caps; no pattern is compiled here."""
    if value is None:
        return None
    items = wire.expect_list(value, what)
    if len(items) > MAX_TOPICS:
        raise FormatError(f"{what}: more than {MAX_TOPICS} entries")
    patterns = 0
    for i, topic in enumerate(items):  # a tight loop: hostile chains carry thousands of these
        if type(topic) is not str:
            _check_topic(topic, f"{what}[{i}]")  # raises, naming the item
        if topic[:1] == "^":
            patterns += 1
            if len(topic) > MAX_REGEX_LENGTH:
                _check_topic(topic, f"{what}[{i}]")
        elif not 1 <= len(topic) <= MAX_TOPIC_LENGTH:
            _check_topic(topic, f"{what}[{i}]")
    if patterns > MAX_PATTERNS:
        raise FormatError(f"{what}: more than {MAX_PATTERNS} patterns")
    return tuple(items)


def compile_patterns(topics: tuple[str, ...] | None) -> None:
    """Compile (and cache) every pattern of a trusted topic list; FormatError if one does not compile."""
    for entry in topics or ():
        if entry.startswith("^"):
            _compile(entry)


def topic_allowed(topics: tuple[str, ...] | None, root_topic: str) -> bool:
    """Does a trusted topic list allow ``root_topic``? (None: every topic.)"""
    return _topic_allowed(topics, root_topic)


def topics_narrow(parent: tuple[str, ...] | None, child: tuple[str, ...] | None) -> bool:
    """Is every topic ``child`` claims already allowed by ``parent``? (Both lists trusted.)"""
    return _topics_narrow(parent, child)


def _topic_allowed(topics: tuple[str, ...] | None, root_topic: str) -> bool:
    """None allows every topic; a literal must be equal; a "^" entry must fullmatch."""
    if topics is None:
        return True
    for entry in topics:
        if entry.startswith("^"):
            if _compile(entry).fullmatch(root_topic) is not None:
                return True
        elif entry == root_topic:
            return True
    return False


def _topics_narrow(parent: tuple[str, ...] | None, child: tuple[str, ...] | None) -> bool:
    """Is every topic the child claims already allowed by the parent?

    A child regex can only be proven narrower by being the very same string (or
    the parent allowing everything): deciding regex inclusion in general is not
    something to attempt in a trust check.
    """
    if parent is None:
        return True
    if child is None:
        return False
    for entry in child:
        if entry.startswith("^"):
            if entry not in parent:
                return False
        elif not _topic_allowed(parent, entry):
            return False
    return True


