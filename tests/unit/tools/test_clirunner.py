"""The four console scripts share one runner: exit statuses, one-line errors, and what ``-v`` means.

Every script is run in-process through its ``main``; runtime failures that would need a broker are
made by the Kafka client raising as it does when no broker answers (without the 30 s it takes).
"""

from __future__ import annotations

import argparse
import errno
import io
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import kafka
import kafka.errors
import pytest

from controller import chainserver_daemon, controller_daemon
from kafkaratchet.errors import (
    BrokerError,
    ChainError,
    ConfigError,
    FormatError,
    KafkaRatchetError,
    ProvisioningError,
    RatchetError,
)
from kafkaratchet.tools import cli as kr_cli
from kafkaratchet.tools import clirunner
from provision import cli as provision_cli

Main = Callable[[list[str]], int]


def _provision_main(argv: list[str]) -> int:
    return provision_cli.main(argv, stdin=io.StringIO(""))


#: prog -> (main, argv prefix every command needs)
SCRIPTS: dict[str, tuple[Main, list[str]]] = {
    "kafkaratchet": (kr_cli.main, []),
    "kafkaratchet-provision": (_provision_main, []),
    "kafkaratchet-controller": (controller_daemon.main, []),
    "kafkaratchet-chainserver": (chainserver_daemon.main, []),
}


@pytest.fixture(autouse=True)
def no_signal_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemons install SIGTERM/SIGINT handlers: not in the test process."""
    for module in (controller_daemon, chainserver_daemon):
        monkeypatch.setattr(module, "stop_event", lambda: _set_event())


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _one_error_line(err: str, prog: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: "), lines
    assert "Traceback" not in err
    return lines[0]


def _bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.config"
    path.write_text("[crypto]\nnot an option line\n")
    return path


# --------------------------------------------------------------------------- exit status, one line


@pytest.mark.parametrize("prog", sorted(SCRIPTS))
@pytest.mark.parametrize("argv", [["--no-such-flag"], []])
def test_usage_error_exits_2_with_one_line(prog: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    main, _ = SCRIPTS[prog]
    assert main(argv) == 2
    captured = capsys.readouterr()
    _one_error_line(captured.err, prog)
    assert captured.out == ""


@pytest.mark.parametrize("prog", sorted(SCRIPTS))
def test_help_exits_0(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    main, _ = SCRIPTS[prog]
    assert main(["--help"]) == 0
    assert "-v, --verbose" in capsys.readouterr().out


def _bad_config_argv(prog: str, config: Path) -> list[str]:
    return {
        "kafkaratchet": ["keyinfo", str(config)],
        "kafkaratchet-provision": ["denylist", "--self", "--config", str(config)],
        "kafkaratchet-controller": ["--config", str(config)],
        "kafkaratchet-chainserver": ["--config", str(config), "list"],
    }[prog]


@pytest.mark.parametrize("prog", sorted(SCRIPTS))
@pytest.mark.parametrize("which", ["missing", "corrupt"])
def test_bad_config_exits_2_with_one_line(prog: str, which: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "missing.config" if which == "missing" else _bad_config(tmp_path)
    main, _ = SCRIPTS[prog]
    assert main(_bad_config_argv(prog, config)) == 2
    line = _one_error_line(capsys.readouterr().err, prog)
    assert config.name in line


def test_chainserver_bad_key_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    class Server:
        def __init__(self, *_args: object, **_kwargs: object) -> None:
            pass

    monkeypatch.setattr("kafkaratchet.services.chainserver.KafkaCryptoChainServer", Server)
    config = str(tmp_path / "s.config")
    assert chainserver_daemon.main(["--config", config, "remove-key", "zz"]) == 2
    assert "neither a 64-digit hex" in _one_error_line(capsys.readouterr().err, "kafkaratchet-chainserver")
    assert chainserver_daemon.main(["--config", config, "add-key", "00" * 32, "--role", "root"]) == 2
    assert "unservable role 'root'" in _one_error_line(capsys.readouterr().err, "kafkaratchet-chainserver")


def _no_brokers(*_args: object, **_kwargs: object) -> None:
    raise kafka.errors.KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")


def test_runtime_failures_exit_1_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # kafkaratchet: the embedded broker does not start
    def no_broker(*_args: object) -> int:
        raise BrokerError("the embedded broker did not start")

    monkeypatch.setattr("kafkaratchet.tools.demo.main", no_broker)
    assert kr_cli.main(["demo"]) == 1
    assert "embedded broker did not start" in _one_error_line(capsys.readouterr().err, "kafkaratchet")

    # kafkaratchet-provision: the disk is full while writing the request
    def disk_full(path: Path, *_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("provision.offline.write_atomic", disk_full)
    assert _provision_main(["request", "--node-id", "c1", "--role", "controller", "--all-topics",
                            "--pathlen", "0", "--lifetime", "60", "--bootstrap-servers", "127.0.0.1:1",
                            "--dir", str(tmp_path)]) == 1
    line = _one_error_line(capsys.readouterr().err, "kafkaratchet-provision")
    assert line.endswith("c1.request: No space left on device"), line

    # kafkaratchet-controller: no broker answers (a node from `request` is enough to reach the client)
    monkeypatch.setattr(kafka, "KafkaProducer", _no_brokers)
    assert controller_daemon.main(["--config", str(tmp_path / "c1.config")]) == 1
    assert "Unable to bootstrap" in _one_error_line(capsys.readouterr().err, "kafkaratchet-controller")

    # kafkaratchet-chainserver: no broker answers while starting
    class Server:
        def __init__(self, *_args: object, **_kwargs: object) -> None:
            pass

        def start(self) -> None:
            _no_brokers()

    monkeypatch.setattr("kafkaratchet.services.chainserver.KafkaCryptoChainServer", Server)
    assert chainserver_daemon.main(["--config", str(tmp_path / "c1.config"), "run"]) == 1
    assert "Unable to bootstrap" in _one_error_line(capsys.readouterr().err, "kafkaratchet-chainserver")


@pytest.mark.parametrize(("exc", "status"), [
    (clirunner.UsageError("x"), 2),
    (ProvisioningError("x"), 2),
    (ConfigError("x"), 2),
    (FormatError("x"), 2),
    (ChainError("expired"), 2),
    (BrokerError("x"), 1),
    (RatchetError("x"), 1),
    (KafkaRatchetError("x"), 1),
    (OSError(errno.EACCES, "Permission denied", "f"), 1),
    (kafka.errors.KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1"), 1),
    (KeyboardInterrupt(), 130),
])
def test_error_to_exit_status(exc: BaseException, status: int) -> None:
    err = io.StringIO()

    def body(_args: argparse.Namespace) -> int:
        raise exc

    parser = clirunner.ArgumentParser(prog="p")
    clirunner.add_verbosity_flags(parser)
    assert clirunner.run("p", parser, body, [], stderr=err) == status
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p: "), lines
    assert "Traceback" not in err.getvalue()


def test_refusal_raised_while_handling_a_broker_error_is_a_runtime_failure() -> None:
    """``raise ProvisioningError(...) from None`` around a KafkaError (publishing a trust update): exit 1."""
    try:
        try:
            raise kafka.errors.KafkaTimeoutError("no ack")
        except kafka.errors.KafkaError:
            raise ProvisioningError("could not publish on _kafkaratchet.denylist: no ack") from None
    except ProvisioningError as exc:
        assert clirunner.exit_status(exc) == 1
    assert clirunner.exit_status(ProvisioningError("could not publish")) == 2


def test_a_bug_keeps_its_traceback() -> None:
    def body(_args: argparse.Namespace) -> int:
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        clirunner.run("p", clirunner.ArgumentParser(prog="p"), body, [], stderr=io.StringIO())


# ------------------------------------------------------------------------------------ -v / -q


def test_verbosity_levels() -> None:
    assert clirunner.log_levels(0) == (logging.WARNING, logging.CRITICAL)
    assert clirunner.log_levels(1) == (logging.INFO, logging.CRITICAL)
    assert clirunner.log_levels(2) == (logging.DEBUG, logging.WARNING)
    assert clirunner.log_levels(3) == (logging.DEBUG, logging.DEBUG)
    assert clirunner.log_levels(0, 1) == (logging.ERROR, logging.CRITICAL)


def _logging_body(args: argparse.Namespace) -> int:
    for name in ("kafkaratchet.x", "provision.x", "controller.x"):
        logging.getLogger(name).debug("debug from %s", name)
        logging.getLogger(name).info("info from %s", name)
        logging.getLogger(name).warning("warning from %s", name)
    logging.getLogger("kafka.conn").warning("client warning")
    logging.getLogger("kafka.conn").debug("client debug")
    return 0


_BODIES = {
    "kafkaratchet": (kr_cli, "_run"),
    "kafkaratchet-provision": (provision_cli, "_run"),
    "kafkaratchet-controller": (controller_daemon, "_serve"),
    "kafkaratchet-chainserver": (chainserver_daemon, "_command"),
}


def _argv(prog: str, flags: list[str]) -> list[str]:
    return {
        "kafkaratchet": [*flags, "keyinfo", "x.config"],
        "kafkaratchet-provision": [*flags, "request"],
        "kafkaratchet-controller": [*flags, "--config", "x.config"],
        "kafkaratchet-chainserver": [*flags, "--config", "x.config", "list"],
    }[prog]


@pytest.mark.parametrize("prog", sorted(SCRIPTS))
def test_verbose_means_the_same_in_every_script(prog: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    module, name = _BODIES[prog]
    monkeypatch.setattr(module, name, lambda args, *_rest: _logging_body(args))
    main, _ = SCRIPTS[prog]
    seen: dict[str, list[str]] = {}
    for flags in ([], ["-v"], ["-vv"], ["-v", "-v", "-v"], ["-q"]):
        assert main(_argv(prog, flags)) == 0
        err = capsys.readouterr().err
        seen[" ".join(flags)] = [line.split(" ", 2)[2] for line in err.splitlines()]  # without the timestamp
    levels = {key: {line.split(":")[0].split()[-1] for line in lines} for key, lines in seen.items()}
    assert levels == {"": {"WARNING"}, "-v": {"WARNING", "INFO"}, "-vv": {"WARNING", "INFO", "DEBUG"},
                      "-v -v -v": {"WARNING", "INFO", "DEBUG"}, "-q": set()}, seen
    assert len(seen[""]) == 3 and len(seen["-v"]) == 6 and len(seen["-vv"]) == 10 and len(seen["-v -v -v"]) == 11
    assert seen[""][0] == "kafkaratchet.x WARNING: warning from kafkaratchet.x"  # one format everywhere


def test_controller_audit_lines_show_without_v(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def body(_args: argparse.Namespace) -> int:
        logging.getLogger("kafkaratchet.audit").info("allowed request")
        logging.getLogger("kafkaratchet.node").info("chatter")
        return 0

    monkeypatch.setattr(controller_daemon, "_serve", body)
    assert controller_daemon.main(["--config", "x.config"]) == 0
    err = capsys.readouterr().err
    assert "allowed request" in err and "chatter" not in err
    assert controller_daemon.main(["-q", "--config", "x.config"]) == 0
    assert capsys.readouterr().err == ""


def test_logging_is_undone_after_each_run() -> None:
    loggers = [logging.getLogger(name) for name in ("kafkaratchet", "provision", "controller", "kafka")]
    before = [(logger.level, list(logger.handlers)) for logger in loggers]
    parser = clirunner.ArgumentParser(prog="p")
    clirunner.add_verbosity_flags(parser)
    assert clirunner.run("p", parser, lambda _args: 0, ["-vvv"], stderr=io.StringIO()) == 0
    assert [(logger.level, list(logger.handlers)) for logger in loggers] == before


def test_the_runner_is_import_light() -> None:
    import subprocess
    import sys

    code = ("import sys, kafkaratchet.tools.clirunner; "
            "heavy = [m for m in ('kafka', 'nacl', 'provision', 'kafkaratchet.node') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
