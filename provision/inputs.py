"""Everything the tool is told, checked before anything is written: values, passwords, prompts.

The tool is run by people at a terminal and by configuration management with
no terminal at all, and both must get the same rules. So each value has one
parser (used for flags, prompts and the request file alike) that raises
:class:`ProvisioningError` with a one-line message naming the flag, and the
:class:`Prompter` only asks for what the flags did not give, on standard error,
in a fixed order a script can feed.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TextIO, TypeVar

from kafkaratchet.errors import ConfigError, ProvisioningError
from kafkaratchet.files.provisioning import ROLE_USAGES
from kafkaratchet.files.store import check_node_id
from kafkaratchet.protocol.certs import MAX_CHAIN_LENGTH, MAX_REGEX_LENGTH, MAX_TOPIC_LENGTH

__all__ = [
    "Prompter",
    "parse_node_id",
    "parse_role",
    "parse_topics",
    "parse_pathlen",
    "parse_lifetime",
    "parse_bootstrap",
    "parse_fingerprint",
    "read_password_file",
    "DEFAULT_LIFETIME",
    "MAX_LIFETIME",
    "MAX_NODE_PATHLEN",
    "ROOT_PASSWORD_ENV",
    "PROVISIONING_PASSWORD_ENV",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

ROOT_PASSWORD_ENV = "KAFKARATCHET_ROOT_PASSWORD"
PROVISIONING_PASSWORD_ENV = "KAFKARATCHET_PROVISIONING_PASSWORD"
#: one year: long enough for a lab, short enough that a forgotten node stops on its own
DEFAULT_LIFETIME = 365 * 86400
MAX_LIFETIME = 100 * 365 * 86400
#: root (or provisioner) + node + what the node may issue must fit in a chain
MAX_NODE_PATHLEN = MAX_CHAIN_LENGTH - 2
_TOPIC = re.compile(r"[A-Za-z0-9_-]+")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")
_MAX_PASSWORD_FILE = 4096
_ATTEMPTS = 3


def parse_node_id(text: str) -> str:
    """A node id is also a file name (``N.config``), so only a safe, portable subset is accepted."""
    try:
        return check_node_id(text.strip())
    except ConfigError as exc:
        raise ProvisioningError(str(exc)) from None


def parse_role(text: str) -> str:
    value = text.strip()
    if value not in ROLE_USAGES:
        raise ProvisioningError(f"unknown role {value!r}; choose one of {', '.join(ROLE_USAGES)}")
    return value


def parse_topics(texts: Iterable[str]) -> tuple[str, ...] | None:
    """Root topics from space-separated words; None when there are none (which means *all* topics).

    A literal must be a root topic (no ``.``: ``orders`` covers ``orders.eu``), since
    keys are per root and a certificate for ``orders.eu`` would match nothing.
    ``^regex`` entries are kept, and must compile.
    """
    topics: list[str] = []
    for word in (w for text in texts for w in text.split()):
        if word.startswith("^"):
            if len(word) > MAX_REGEX_LENGTH:
                raise ProvisioningError(f"topic pattern {word[:20]!r}... is longer than {MAX_REGEX_LENGTH}")
            try:
                re.compile(word)
            except re.error as exc:
                raise ProvisioningError(f"topic pattern {word!r} does not compile: {exc}") from None
        elif "." in word:
            raise ProvisioningError(f"{word!r} is not a root topic: give the name up to the first '.' "
                                    f"({word.split('.', 1)[0]!r} covers all of {word.split('.', 1)[0]}.*)")
        elif not _TOPIC.fullmatch(word) or len(word) > MAX_TOPIC_LENGTH:
            raise ProvisioningError(f"invalid topic {word!r}: Kafka topics use letters, digits, '_' and '-' "
                                    f"(at most {MAX_TOPIC_LENGTH})")
        if word not in topics:
            topics.append(word)
    return tuple(topics) or None


def _integer(text: str, what: str, flag: str, lo: int, hi: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ProvisioningError(f"{flag}: {what} must be a whole number, not {text.strip()!r}") from None
    if not lo <= value <= hi:
        raise ProvisioningError(f"{flag}: {what} must be between {lo} and {hi}")
    return value


def parse_pathlen(text: str) -> int:
    return _integer(text, "the maximum path length", "--pathlen", 0, MAX_NODE_PATHLEN)


def parse_lifetime(text: str) -> int:
    """Seconds; 0 means the chain never expires (allowed, not recommended)."""
    return _integer(text, "the lifetime in seconds", "--lifetime", 0, MAX_LIFETIME)


def parse_bootstrap(text: str) -> str:
    """``HOST:PORT[,HOST:PORT...]``: checked here so a typo fails now, not at the node's first start."""
    servers = [s.strip() for s in text.split(",") if s.strip()]
    if not servers:
        raise ProvisioningError("--bootstrap-servers: give at least one HOST:PORT")
    for server in servers:
        match = _HOST_PORT.fullmatch(server)
        if match is None or not 1 <= int(match.group(2)) <= 65535:
            raise ProvisioningError(f"--bootstrap-servers: {server!r} is not HOST:PORT")
    return ",".join(servers)


def parse_fingerprint(text: str) -> str:
    """A fingerprint as printed (``abcd-efgh-ijkl-mnop``), case and dashes ignored."""
    compact = text.strip().lower().replace("-", "")
    if not re.fullmatch(r"[a-z2-7]{16}", compact):
        raise ProvisioningError(f"--root-fingerprint: {text.strip()!r} is not a fingerprint (abcd-efgh-ijkl-mnop)")
    return "-".join(compact[i:i + 4] for i in range(0, 16, 4))


def read_password_file(path: Path, what: str) -> str:
    """A password from a file: UTF-8, one trailing newline removed; a warning if others may read it."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ProvisioningError(f"{path}: the {what} file is not a regular file")
        if info.st_size > _MAX_PASSWORD_FILE:
            raise ProvisioningError(f"{path}: the {what} file is larger than {_MAX_PASSWORD_FILE} bytes")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProvisioningError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise ProvisioningError(f"{path}: cannot read the {what} file: {exc.strerror}") from None
    if os.name == "posix" and info.st_mode & 0o077:
        log.warning("%s: the %s file can be read by other users (mode %o); chmod 600 it", path, what,
                    info.st_mode & 0o777)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProvisioningError(f"{path}: the {what} file is not UTF-8 text") from None
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    if not text:
        raise ProvisioningError(f"{path}: the {what} file is empty")
    return text


def _terminal_available() -> bool:
    """Can getpass read without echo? Only from a terminal: never fall back to an echoing stdin."""
    if os.name != "posix":
        return True
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


class Prompter:
    """Asks on standard error for what the flags did not give; reads answers from standard input.

    At a terminal an invalid answer is asked again (up to three times); from a
    script, the first invalid answer is an error naming the flag to pass
    instead, so a half-fed run fails instead of hanging. When a script's input
    ends, a question with a documented default (path length, lifetime, a yes/no
    confirmation: no) takes it; one without a default is an error naming the flag.
    """

    def __init__(self, stdin: TextIO | None = None, stderr: TextIO | None = None,
                 env: Mapping[str, str] | None = None,
                 read_secret: Callable[[str], str] | None = None) -> None:
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stderr = stderr if stderr is not None else sys.stderr
        self.env = env if env is not None else os.environ
        self._read_secret = read_secret

    @property
    def interactive(self) -> bool:
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    def _line(self, prompt: str, flag: str, default: str | None = None) -> str:
        """One answer; at the end of a script's input, ``default`` if there is one, else an error naming ``flag``."""
        self.stderr.write(prompt)
        self.stderr.flush()
        line = self.stdin.readline()
        if not line:
            if default is not None and not self.interactive:
                # no terminal and nothing more to read: the documented default, said so on the prompt's line
                self.stderr.write(f"{default} (default: standard input is not a terminal)\n")
                self.stderr.flush()
                return default
            self.stderr.write("\n")  # so the error that follows starts a line of its own
            raise ProvisioningError(f"standard input ended while asking for {flag[2:].replace('-', ' ')}; "
                                    f"pass {flag}")
        return line.rstrip("\r\n")

    def ask(self, prompt: str, flag: str, parse: Callable[[str], T], default: str | None = None) -> T:
        """Ask until ``parse`` accepts the answer (an empty answer means ``default`` when there is one).

        From a script (standard input not a terminal), the end of input also means ``default``;
        a question without a default fails there instead, naming ``flag``.
        """
        label = f"{prompt} [{default}]: " if default is not None else f"{prompt}: "
        for attempt in range(1, _ATTEMPTS + 1):
            answer = self._line(label, flag, default)
            if not answer.strip() and default is not None:
                answer = default
            try:
                return parse(answer)
            except ProvisioningError as exc:
                if not self.interactive or attempt == _ATTEMPTS:
                    raise
                self.stderr.write(f"  {exc}\n")
        raise AssertionError("unreachable")

    def confirm(self, question: str, flag: str) -> bool:
        """A yes/no question whose default is no (also at the end of a script's input)."""
        answer = self._line(f"{question} [y/N]: ", flag, default="no")
        return answer.strip().lower() in {"y", "yes"}

    def password(self, label: str, *, file: Path | None, env_var: str | None, check: Callable[[str], object],
                 flag: str, confirm: bool = False) -> str:
        """From ``file``, else ``env_var``, else a no-echo prompt; ``check`` raises if it is unacceptable.

        Never falls back to reading a password with echo: with no terminal the
        caller is told which flag or variable to use instead.
        """
        if file is not None:
            value = read_password_file(file, label)
            check(value)
            return value
        if env_var and self.env.get(env_var):
            value = self.env[env_var]
            check(value)
            return value
        reader = self._read_secret
        if reader is None:
            if not _terminal_available():
                hint = f"{flag} or {env_var}" if env_var else flag
                raise ProvisioningError(f"no terminal to read the {label} from without echo; use {hint}")

            def reader(text: str) -> str:
                try:
                    return getpass.getpass(text, stream=self.stderr)
                except EOFError:
                    raise ProvisioningError(f"the terminal closed while asking for the {label}") from None

        for attempt in range(1, _ATTEMPTS + 1):
            value = reader(f"{label[0].upper()}{label[1:]}: ")
            try:
                check(value)
                if confirm and reader(f"Repeat the {label}: ") != value:
                    raise ProvisioningError(f"the two {label}s do not match")
                return value
            except ProvisioningError as exc:
                if attempt == _ATTEMPTS or not self._terminal_retry():
                    raise
                self.stderr.write(f"  {exc}\n")
        raise AssertionError("unreachable")

    def _terminal_retry(self) -> bool:
        """Passwords come from the terminal even when stdin is a pipe: retry only if a human is there."""
        return self.interactive
