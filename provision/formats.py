"""The two public files of the offline flow: ``N.request`` (node -> root) and ``N.chain`` (root -> node).

They travel over whatever the operator has (a USB stick, a ticket system, an
email), so they hold only public material and are parsed as hostile input: one
msgpack array through :mod:`kafkaratchet.protocol.wire` with a kind string first (so a
chain given where a request is expected is named as such), then a format
version, then exactly the documented fields with exact types.

Request file::

    ["kafkaratchet-request", 1, body: bin, signature: bin(64)]
    body = msgpack [node_id: str, role: str, public_key: bin(32), topics: [str] | nil,
                    pathlen: int, lifetime: int, created: int]

``signature`` is the node's Ed25519 signature over ``body`` (context
``kr-provision-request-v1``): proof that whoever wrote the request holds the
key it asks a certificate for, and that nobody edited it on the way.

Chain file::

    ["kafkaratchet-chain", 1, node_id: str, chain: bin (a Chain), root: bin (the root's Certificate)]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkaratchet.errors import FormatError, ProvisioningError, SignatureError
from kafkaratchet.files.provisioning import ROLE_USAGES
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import MAX_CHAIN_SIZE, MAX_PATHLEN, Certificate, Chain
from kafkaratchet.protocol.identity import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningIdentity, verify

from .inputs import MAX_LIFETIME, parse_node_id, parse_topics

__all__ = ["NodeRequest", "ChainFile", "read_public_file", "REQUEST_KIND", "CHAIN_KIND", "FILE_VERSION",
           "REQUEST_CONTEXT"]

REQUEST_KIND = "kafkaratchet-request"
CHAIN_KIND = "kafkaratchet-chain"
FILE_VERSION = 1
REQUEST_CONTEXT = b"kr-provision-request-v1"
#: far more than a chain of the longest allowed length plus a root certificate
MAX_FILE_SIZE = 4 * MAX_CHAIN_SIZE
_KINDS = {REQUEST_KIND: "request", CHAIN_KIND: "chain"}


def read_public_file(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a request or chain file, refusing a missing, unreadable or absurdly large one."""
    target = Path(path)
    try:
        size = target.stat().st_size
        if size > MAX_FILE_SIZE:
            raise ProvisioningError(f"{target}: {size} bytes is too large for a {what} file")
        return target.read_bytes()
    except FileNotFoundError:
        raise ProvisioningError(f"{target}: no such {what} file") from None
    except IsADirectoryError:
        raise ProvisioningError(f"{target}: is a directory, not a {what} file") from None
    except OSError as exc:
        raise ProvisioningError(f"{target}: cannot read the {what} file: {exc.strerror}") from None


def _outer(data: bytes, kind: str, size: int) -> list[Any]:
    """The checked outer array: kind first (so a file of the other kind is named), then version, then size."""
    items = wire.expect_list(wire.unpack(data, max_size=MAX_FILE_SIZE), "file", min_size=2)
    found = wire.expect(items[0], str, "kind")
    if found != kind:
        other = _KINDS.get(found)
        if other is not None:
            raise FormatError(f"this is a {other} file, not a {_KINDS[kind]} file")
        raise FormatError(f"not a kafkaratchet {_KINDS[kind]} file")
    version = wire.expect_int(items[1], "version")
    if version != FILE_VERSION:
        raise FormatError(f"unsupported {_KINDS[kind]} file version {version}")
    return wire.expect_list(items, _KINDS[kind], size=size)


@dataclass(frozen=True)
class NodeRequest:
    """What a node asks the root for: a certificate for its key, with these constraints."""

    node_id: str
    role: str
    public_key: bytes
    topics: tuple[str, ...] | None
    pathlen: int
    lifetime: int
    created: int

    def encode(self, identity: SigningIdentity) -> bytes:
        """Signed by ``identity``, which must be the key the request is for."""
        if identity.public_key != self.public_key:
            raise ProvisioningError("a request must be signed by the key it asks a certificate for")
        body = wire.pack([self.node_id, self.role, self.public_key,
                          None if self.topics is None else list(self.topics),
                          self.pathlen, self.lifetime, self.created])
        return wire.pack([REQUEST_KIND, FILE_VERSION, body, identity.sign(REQUEST_CONTEXT, body)])

    @classmethod
    def decode(cls, data: bytes) -> NodeRequest:
        """Parse strictly and check the signature; FormatError (or SignatureError) on anything wrong."""
        _, _, body, signature = _outer(data, REQUEST_KIND, 4)
        body = wire.expect_bytes(body, "request body")
        signature = wire.expect_bytes(signature, "signature", size=SIGNATURE_SIZE)
        fields = wire.expect_list(wire.unpack(body, max_size=MAX_FILE_SIZE), "request body", size=7)
        node_id, role, public_key, topics, pathlen, lifetime, created = fields
        public_key = wire.expect_bytes(public_key, "public key", size=PUBLIC_KEY_SIZE)
        verify(public_key, REQUEST_CONTEXT, body, signature)
        try:
            node = parse_node_id(wire.expect(node_id, str, "node id"))
        except ProvisioningError as exc:
            raise FormatError(str(exc)) from None
        role = wire.expect(role, str, "role")
        if role not in ROLE_USAGES:
            raise FormatError(f"unknown role {role!r}")
        if topics is None:
            parsed_topics = None
        else:
            names = [wire.expect(t, str, "topic") for t in wire.expect_list(topics, "topics", min_size=1)]
            try:
                parsed_topics = parse_topics(names)
            except ProvisioningError as exc:
                raise FormatError(str(exc)) from None
            if parsed_topics is None or len(parsed_topics) != len(names):
                raise FormatError("topics: empty or duplicate entries")
        return cls(node, role, public_key, parsed_topics,
                   wire.expect_int(pathlen, "pathlen", lo=0, hi=MAX_PATHLEN),
                   wire.expect_int(lifetime, "lifetime", lo=0, hi=MAX_LIFETIME),
                   wire.expect_int(created, "created", lo=0, hi=(1 << 63) - 1))


@dataclass(frozen=True)
class ChainFile:
    """The root's answer: the node's chain and the root certificate it starts from."""

    node_id: str
    chain: Chain
    root: Certificate

    def encode(self) -> bytes:
        return wire.pack([CHAIN_KIND, FILE_VERSION, self.node_id, self.chain.encode(), self.root.encode()])

    @classmethod
    def decode(cls, data: bytes) -> ChainFile:
        """Parse strictly (FormatError); the chain's signatures are checked by the installer against the root."""
        _, _, node_id, chain, root = _outer(data, CHAIN_KIND, 5)
        try:
            node = parse_node_id(wire.expect(node_id, str, "node id"))
        except ProvisioningError as exc:
            raise FormatError(str(exc)) from None
        parsed_chain = Chain.decode(wire.expect_bytes(chain, "chain"))
        parsed_root = Certificate.decode(wire.expect_bytes(root, "root certificate"))
        if not parsed_root.self_signed:
            raise FormatError("the root certificate is not self-signed")
        try:
            parsed_root.verify_signature()
        except SignatureError:
            raise FormatError("the root certificate's signature does not verify") from None
        return cls(node, parsed_chain, parsed_root)
