"""Roles: the documented table is the code's, and a chain server issues under the chain that covers the topics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kafkaratchet.errors import ConfigError
from kafkaratchet.files.provisioning import ROLE_USAGES, write_node
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.trust import TrustStore
from kafkaratchet.services.chainserver import KafkaCryptoChainServer, ServedKey

DOC = Path(__file__).resolve().parents[3] / "docs" / "provisioning.md"
_ROW = re.compile(r"\|\s*([a-z-]+)\s*\|\s*([a-z, -]+?)\s*\|")


def documented_roles() -> dict[str, frozenset[str]]:
    """The rows of the table headed ``| role | usages in the certificate |`` in docs/provisioning.md."""
    lines = [line.strip() for line in DOC.read_text(encoding="utf-8").splitlines()]
    start = lines.index("| role | usages in the certificate |")
    assert set(lines[start + 1]) <= set("|-: "), "the header is followed by its separator row"
    table: dict[str, frozenset[str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        match = _ROW.fullmatch(line)
        assert match is not None, f"not a role row: {line!r}"
        role, usages = match.groups()
        assert role not in table, f"role {role} listed twice"
        table[role] = frozenset(u.strip() for u in usages.split(","))
    return table


def test_the_documented_role_table_is_role_usages() -> None:
    assert documented_roles() == ROLE_USAGES


def test_least_privilege_of_the_daemons() -> None:
    assert ROLE_USAGES["controller"] == {Usage.CONTROLLER}, "a controller re-signs; it never reads keys"
    granted = frozenset().union(*(usages for role, usages in ROLE_USAGES.items()
                                  if role not in {"controller", "chainserver", "admin"}))
    assert ROLE_USAGES["chainserver"] == granted | {Usage.CHAIN_ISSUE}, "holds exactly what it re-issues"


# ----------------------------------------------------------------------- chain server: which chain issues


@pytest.fixture
def two_chain_server(tmp_path: Path) -> tuple[KafkaCryptoChainServer, TrustStore]:
    """A chain server with two chain-issue chains from one root: chain0 for payments, chain1 for orders."""
    root = SigningIdentity.generate()
    root_cert = self_signed_root(root)
    server = SigningIdentity.generate()
    chains = [Chain.of(issue_certificate(root, server.public_key, usages=ROLE_USAGES["chainserver"],
                                         topics=[topic], pathlen=1))
              for topic in ("payments", "orders")]
    store = write_node(tmp_path, "chains", server, chains=chains, roots=[root_cert], crypto={"role": "chainserver"})
    return KafkaCryptoChainServer(None, config=store), TrustStore([root_cert])


def test_the_issuing_chain_is_the_one_whose_topics_cover_the_served_key(
        two_chain_server: tuple[KafkaCryptoChainServer, TrustStore]) -> None:
    server, trust = two_chain_server
    for topic, index in (("orders", 1), ("payments", 0)):
        node = SigningIdentity.generate().public_key
        chain = server.issue(ServedKey(node, frozenset({Usage.CONSUME}), (topic,)))
        assert chain.certificates[:-1] == server.credentials.chains[index].certificates, topic
        checked = trust.validate(chain)  # and the nodes accept it: no widened topics
        assert checked.subject == node and checked.allows(Usage.CONSUME, topic)


@pytest.mark.parametrize("topics", [("weather",), ("orders", "payments"), None], ids=["other", "both", "all"])
def test_no_chain_covers_the_topics(two_chain_server: tuple[KafkaCryptoChainServer, TrustStore],
                                    topics: tuple[str, ...] | None) -> None:
    server, _ = two_chain_server
    with pytest.raises(ConfigError, match="no valid chain-issue chain of chains covers usages consume on "
                                          + ("all topics" if topics is None else f"topics {','.join(topics)}")):
        server.issue(ServedKey(SigningIdentity.generate().public_key, frozenset({Usage.CONSUME}), topics))
