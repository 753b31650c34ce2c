"""A node's files, read one way: the identity, the ``[chains]``, ``[allowlist]`` and ``[denylist]`` of its
``.config``, and the trust entries kept in ``<node>.trust``.

:meth:`NodeFiles.read` is the one reader. ``strict`` is how a node starts (the first problem is a
:class:`~kafkaratchet.errors.ConfigError`); lenient is how ``keyinfo`` looks at a node (every problem is
collected, and what can be read is). :class:`~kafkaratchet.files.credentials.Credentials`, ``keyinfo``, the
provisioning tool and the chain-server daemon all read a node's files through this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kafkaratchet.errors import ChainError, ConfigError, FormatError
from kafkaratchet.files.secretfile import read_secret
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol.certs import Certificate, Chain
from kafkaratchet.protocol.identity import PUBLIC_KEY_SIZE, SigningIdentity, decode_identity_file, fingerprint
from kafkaratchet.protocol.trust import TrustUpdate

__all__ = ["NodeFiles", "read_identity", "parse_public_key_arg", "same_constraints", "write_chains"]

_MAX_IDENTITY_FILE = 4096
#: the parts of a node's files, in the order they are read (and a strict read fails)
PARTS = ("identity", "allowlist", "denylist", "chains", "trust")


def read_identity(path: Path) -> SigningIdentity:
    """The identity file at ``path``; ConfigError naming the file when it is missing or not one."""
    try:
        return decode_identity_file(read_secret(path, max_size=_MAX_IDENTITY_FILE))
    except FormatError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def same_constraints(a: Chain, b: Chain) -> bool:
    """Do two chains grant the same rights (usages and topics)? A new one then renews the old one."""
    return a.leaf.usages == b.leaf.usages and a.leaf.topics == b.leaf.topics


def write_chains(store: KafkaCryptoStore, chains: Iterable[Chain]) -> None:
    """Replace the node's ``[chains]`` with ``chains``, named ``chain0``, ``chain1``, ..."""
    store.replace_section("chains", {f"chain{i}": c.encode() for i, c in enumerate(chains)})


def parse_public_key_arg(text: str) -> bytes:
    """A public key given on a command line: 64 hex digits, or the path of a node's ``.config`` (its key).

    ConfigError when it is neither, or when the node's config or identity cannot be read.
    """
    path = Path(text)
    if path.suffix == ".config":
        if not path.exists():
            raise ConfigError(f"{path} does not exist")
        store = KafkaCryptoStore(path)
        return read_identity(store.secret_path("cryptokey", ".crypto")).public_key
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != PUBLIC_KEY_SIZE:
        raise ConfigError(f"{text!r} is neither a 64-digit hex public key nor a node's .config file")
    return key


def _blobs(store: KafkaCryptoStore, section: str) -> list[tuple[str, bytes]]:
    """The base64 values of a section, by name in sorted order."""
    found = []
    for name in sorted(store.load_section(section)):
        blob = store.load_bytes(name, section)
        if blob is not None:
            found.append((name, blob))
    return found


@dataclass
class NodeFiles:
    """What a node's files hold. From a lenient read, ``identity`` is None when it could not be read, and
    ``problems`` holds, by part (see :data:`PARTS`), what was wrong and left out."""

    store: KafkaCryptoStore
    identity_path: Path
    identity: SigningIdentity | None
    #: ``[allowlist]`` certificates by name
    roots: dict[str, Certificate]
    #: ``[denylist]`` keys by name
    denied: dict[str, bytes]
    #: ``[chains]`` by name (from a lenient read, also chains for another key)
    chains: dict[str, Chain]
    #: ``[chains]`` entries that do not parse: name -> why
    bad_chains: dict[str, str]
    trust_path: Path
    #: the entries of ``<node>.trust`` that verify, in file order
    trust_updates: list[TrustUpdate]
    problems: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, store: KafkaCryptoStore, *, strict: bool, identity_path: str | os.PathLike[str] | None = None
             ) -> tuple[NodeFiles, list[str]]:
        """Read the node's files; with ``strict``, ConfigError at the first problem.

        The list returned names what was left out. Strictly read, it holds only the trust entries that no
        longer verify (a node starts without them); read leniently, every problem found.
        ``identity_path`` overrides the ``cryptokey`` of the config.
        """
        problems: dict[str, list[str]] = {}

        def problem(part: str, text: str) -> None:
            if strict:
                raise ConfigError(text)
            problems.setdefault(part, []).append(text)

        where = store.path
        key_path = Path(identity_path) if identity_path else store.secret_path("cryptokey", ".crypto")
        identity: SigningIdentity | None = None
        try:
            identity = read_identity(key_path)
        except ConfigError as exc:
            problem("identity", str(exc))

        roots: dict[str, Certificate] = {}
        for name, blob in _blobs(store, "allowlist"):
            try:
                roots[name] = Certificate.decode(blob)
            except FormatError as exc:
                problem("allowlist", f"{where}: [allowlist] {name} is not a certificate: {exc}")
        denied: dict[str, bytes] = {}
        for name, blob in _blobs(store, "denylist"):
            if len(blob) == PUBLIC_KEY_SIZE:
                denied[name] = blob
            else:
                problem("denylist", f"{where}: [denylist] {name} is not a {PUBLIC_KEY_SIZE}-byte key")

        chains: dict[str, Chain] = {}
        bad_chains: dict[str, str] = {}
        for name, blob in _blobs(store, "chains"):
            try:
                chain = Chain.decode(blob)
            except (FormatError, ChainError) as exc:
                bad_chains[name] = str(exc)
                problem("chains", f"{where}: [chains] {name} cannot be parsed: {exc}")
                continue
            chains[name] = chain
            if identity is not None and chain.subject != identity.public_key:
                problem("chains", f"{where}: [chains] {name} is for key {fingerprint(chain.subject)}, "
                                  "not this node's")

        # imported here: credentials imports this module (read_trust_file stays importable from there)
        from kafkaratchet.files.credentials import read_trust_file

        trust_path = store.secret_path("trustentries", ".trust")
        updates: list[TrustUpdate] = []
        skipped: list[str] = []
        try:
            updates, skipped = read_trust_file(trust_path)
        except ConfigError as exc:
            problem("trust", str(exc))
        if skipped:
            problems.setdefault("trust", []).extend(skipped)
        files = cls(store=store, identity_path=key_path, identity=identity, roots=roots, denied=denied,
                    chains=chains, bad_chains=bad_chains, trust_path=trust_path, trust_updates=updates,
                    problems=problems)
        return files, [text for part in PARTS for text in problems.get(part, [])]

    @property
    def root_certificates(self) -> list[Certificate]:
        return list(self.roots.values())

    @property
    def denied_keys(self) -> list[bytes]:
        return list(self.denied.values())
