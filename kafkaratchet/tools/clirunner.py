"""One runner for the four console scripts: logging set-up, ``-v``/``-q``, and errors to exit status.

``kafkaratchet``, ``kafkaratchet-provision``, ``kafkaratchet-controller`` and
``kafkaratchet-chainserver`` all go through :func:`run`, so they share one
contract a script can rely on:

* exit status 0: done;
* 2: a usage error or bad input (argparse's complaints, :class:`UsageError`,
  ``ProvisioningError``, ``ConfigError``, ``FormatError``, ``CryptoError``):
  nothing was acted on;
* 1: a runtime failure (an ``OSError`` while reading or writing, a broker
  error, ``BrokerError`` or any other ``KafkaRatchetError`` raised at run time);
* 130: interrupted (Ctrl-C).

Every failure above is exactly one line on standard error,
``<prog>: error: <message>``, never a traceback (a bug, an exception nobody
expected, still shows its traceback). Logs go to standard error in one
format; ``-v`` shows INFO, ``-vv`` DEBUG of kafkaratchet's own loggers (and the
Kafka client's warnings), ``-vvv`` adds the Kafka client's DEBUG; ``-q`` leaves
errors only.

Import-light on purpose: the standard library and :mod:`kafkaratchet.errors`,
so ``--help`` and a usage error cost no cryptography or Kafka import.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn, TextIO

from kafkaratchet.errors import ConfigError, CryptoError, FormatError, KafkaRatchetError, ProvisioningError

__all__ = [
    "ArgumentParser",
    "UsageError",
    "add_verbosity_flags",
    "log_levels",
    "exit_status",
    "error_line",
    "run",
    "LOG_FORMAT",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: the one log format of every console script (to standard error)
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
#: the loggers ``-v`` and ``-q`` speak about: kafkaratchet's own packages
OWN_LOGGERS = ("kafkaratchet", "provision", "controller")
#: kafka-python: silent below ``-vv`` (see :func:`log_levels`)
CLIENT_LOGGERS = ("kafka",)

#: refused input: the user can fix the command line, a file or a password and run again
INPUT_ERRORS: tuple[type[BaseException], ...] = (ProvisioningError, ConfigError, FormatError, CryptoError)


class UsageError(Exception):
    """A command line (or a value given on it) the program cannot act on: exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse prints usage plus the error and exits; here the error becomes one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    """``-v``/``--verbose`` and ``-q``/``--quiet``, with the same meaning in every console script."""
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more to standard error: -v info, -vv debug (and the Kafka client's "
                             "warnings), -vvv also the Kafka client's debug")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="log only errors to standard error")


def log_levels(verbose: int, quiet: int = 0) -> tuple[int, int]:
    """(level of kafkaratchet's loggers, level of the Kafka client's) for ``-v`` given ``verbose`` times.

    The Kafka client logs connection churn as WARNING and ERROR (every refused connection, every client
    closed mid-refresh) and retries on its own; kafkaratchet logs what matters of it. So the client is
    silent by default, shows its warnings with ``-vv`` and its debug with ``-vvv``.
    """
    step = verbose - quiet
    if step < 0:
        return logging.ERROR, logging.CRITICAL
    own = (logging.WARNING, logging.INFO)[step] if step < 2 else logging.DEBUG
    client = logging.CRITICAL if step < 2 else logging.WARNING if step == 2 else logging.DEBUG
    return own, client


def _is_broker_error(exc: BaseException | None) -> bool:
    """A kafka-python error, or an error raised while handling one (``raise ... from None`` keeps context)."""
    kafka_errors = sys.modules.get("kafka.errors")  # never imported here: only if the command used Kafka
    base = getattr(kafka_errors, "KafkaError", None)
    seen = 0
    while exc is not None and seen < 10:
        if base is not None and isinstance(exc, base):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def exit_status(exc: BaseException) -> int:
    """The exit status for an expected failure (see the module docstring)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if _is_broker_error(exc):
        return EXIT_FAILURE
    if isinstance(exc, INPUT_ERRORS):
        return EXIT_USAGE
    return EXIT_FAILURE


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    else:
        text = str(exc)
    return " ".join(text.split()) or type(exc).__name__


def error_line(prog: str, exc: BaseException | str) -> str:
    """``<prog>: error: <message>`` on one line, with a newline."""
    text = exc if isinstance(exc, str) else _message(exc)
    return f"{prog}: error: {' '.join(text.split())}\n"


class _LevelFilter(logging.Filter):
    """Lets a record through if it reaches its family's level (and, optionally, comes from one thread)."""

    def __init__(self, levels: dict[str, int], thread: int | None) -> None:
        super().__init__()
        self.levels = levels
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        if self.thread is not None and record.thread != self.thread:
            return False
        name = record.name
        while True:
            if name in self.levels:
                return record.levelno >= self.levels[name]
            if "." not in name:
                return False
            name = name.rsplit(".", 1)[0]


class _Logging:
    """The handler for one run: attached on entry, removed (and logger levels restored) on exit.

    Not ``logging.basicConfig``: ``main()`` is also called in-process (tests, embedding), many times.
    """

    def __init__(self, stream: TextIO, verbose: int, quiet: int, *, always_info: Iterable[str],
                 this_thread_only: bool) -> None:
        own, client = log_levels(verbose, quiet)
        levels = {name: own for name in OWN_LOGGERS}
        levels.update({name: client for name in CLIENT_LOGGERS})
        if logging.INFO < own < logging.ERROR:
            levels.update({name: logging.INFO for name in always_info})
        self.levels = levels
        self.handler = logging.StreamHandler(stream)
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT))
        self.handler.addFilter(_LevelFilter(levels, threading.get_ident() if this_thread_only else None))
        self.saved: list[tuple[logging.Logger, int]] = []

    def __enter__(self) -> None:
        for name, level in self.levels.items():
            logger = logging.getLogger(name)
            self.saved.append((logger, logger.level))
            logger.setLevel(min(level, logger.getEffectiveLevel()))  # never hide records from others' handlers
            if "." not in name:
                logger.addHandler(self.handler)

    def __exit__(self, *_exc: object) -> None:
        for name in self.levels:
            if "." not in name:
                logging.getLogger(name).removeHandler(self.handler)
        for logger, level in reversed(self.saved):
            logger.setLevel(level)
        self.saved.clear()


def run(prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
        argv: Sequence[str] | None = None, *, stderr: TextIO | None = None, always_info: Iterable[str] = (),
        this_thread_only: bool = False) -> int:
    """Parse ``argv``, set up logging, run ``body(args)``, and map what it raises to one line and a status.

    ``parser`` should be an :class:`ArgumentParser` with :func:`add_verbosity_flags`. ``always_info``
    names loggers kept at INFO unless ``-q`` (a daemon's audit trail); ``this_thread_only`` drops records
    of other threads (a tool called in-process must not print what the caller's threads log).
    """
    err = stderr if stderr is not None else sys.stderr
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except UsageError as exc:
        err.write(error_line(prog, exc))
        err.flush()
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    try:
        with _Logging(err, getattr(args, "verbose", 0), getattr(args, "quiet", 0), always_info=always_info,
                      this_thread_only=this_thread_only):
            return body(args)
    except KeyboardInterrupt:
        err.write(f"\n{prog}: interrupted\n")
        err.flush()
        return EXIT_INTERRUPTED
    except (UsageError, KafkaRatchetError, OSError) as exc:
        err.write(error_line(prog, exc))
        err.flush()
        return exit_status(exc)
    except Exception as exc:
        if not _is_broker_error(exc):
            raise  # a bug: its traceback is what a bug report needs
        err.write(error_line(prog, exc))
        err.flush()
        return EXIT_FAILURE
