"""The README's ACLs on Apache Kafka's SCRAM listener: each principal can do its job and nothing more.

The ACLs are read from the ``kafka-acls.sh`` block of README.md, "Creating the topics", and granted
as written (over the plaintext listener, whose ``User:ANONYMOUS`` is a super user) with that
block's variables set per test: ``R`` a fresh root, ``T`` its data topic, ``G`` and ``CG`` fresh
groups, and the trust topics renamed ``R-chains``, ``R-allowlist``, ``R-denylist`` (nodes are
configured so), so that no test shares a topic with another. Every node then authenticates with
SCRAM-SHA-512 as the principal the README names for its role.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import shlex
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ConfigResource,
    ConfigResourceType,
    ResourcePattern,
    ResourceType,
    UserScramCredentialUpsertion,
)
from kafka.admin._acls import ACLResourcePatternType
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    NoError,
    TopicAuthorizationFailedError,
    for_code,
)

from kafkaratchet import KafkaCrypto
from kafkaratchet.files.credentials import chain_expiry
from kafkaratchet.files.provisioning import issue_node_chain, write_node
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.node.topicsetup import TopicSpec, ensure_topics
from kafkaratchet.node.trusttopics import TRUST_TOPIC_CONFIGS
from kafkaratchet.protocol.certs import Usage, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.services.chainserver import KafkaCryptoChainServer
from kafkaratchet.services.controller import KafkaCryptoController
from kafkaratchet.tools import cli as kr_cli
from kafkaratchet.tools.apachekafka import SCRAM_MECHANISM

from ..conftest import KafkaEngine
from .nodes import Cluster, Node, drain

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
TRUST = ("chains", "allowlist", "denylist")
_AUTH_ERRORS = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError, GroupAuthorizationFailedError)


# ---------------------------------------------------------------------------------------- the README's block


@dataclass(frozen=True)
class Grant:
    """One ``$acl ...`` line: every principal gets every operation on every resource."""

    principals: tuple[str, ...]
    operations: tuple[str, ...]
    resources: tuple[tuple[str, str], ...]  # (topic | group | cluster, name)
    pattern: str = "literal"


def _acl_block() -> list[str]:
    """The logical lines (continuations joined) of the README's one ``kafka-acls.sh`` block."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Creating the topics\n", 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "kafka-acls.sh" in b]
    assert len(blocks) == 1, "README 'Creating the topics' has exactly one kafka-acls.sh block"
    return [line.strip() for line in blocks[0].replace("\\\n", " ").splitlines()]


def readme_grants(values: dict[str, str] | None = None) -> list[Grant]:
    """The README's ACL lines, with its shell variables set as there, or to ``values`` where given."""
    values = values or {}
    variables: dict[str, str] = {}

    def expand(text: str) -> str:
        return re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda m: variables[m.group(1)], text)

    grants = []
    for line in _acl_block():
        if not line or line.startswith("#"):
            continue
        assignment = re.fullmatch(r"([A-Za-z_]\w*)=(.*)", line)
        if assignment:
            name, value = assignment.group(1), shlex.split(assignment.group(2), comments=True)[0]
            variables[name] = values.get(name, expand(value))
            continue
        assert line.startswith("$acl "), f"README ACL block: not a variable or an $acl line: {line}"
        tokens = shlex.split(expand(line[len("$acl "):]), comments=True)
        principals, operations, resources, pattern = [], [], [], "literal"
        while tokens:
            option = tokens.pop(0)
            if option == "--allow-principal":
                principals.append(tokens.pop(0))
            elif option == "--operation":
                operations.append(tokens.pop(0))
            elif option in ("--topic", "--group"):
                resources.append((option[2:], tokens.pop(0)))
            elif option == "--cluster":
                resources.append(("cluster", "kafka-cluster"))
            elif option == "--resource-pattern-type":
                pattern = tokens.pop(0)
            else:
                raise AssertionError(f"README ACL block: option {option} is not understood by this test")
        assert principals and operations and resources, line
        grants.append(Grant(tuple(principals), tuple(operations), tuple(resources), pattern))
    return grants


def _operation(name: str) -> ACLOperation:
    return ACLOperation[re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).upper()]


def kafka_acls(grants: list[Grant], rename: dict[str, str]) -> list[ACL]:
    """kafka-python ACL objects for ``grants``, topic names mapped through ``rename``."""
    types = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.CLUSTER}
    acls = []
    for grant in grants:
        for principal in grant.principals:
            for operation in grant.operations:
                for kind, name in grant.resources:
                    name = rename.get(name, name) if kind == "topic" else name
                    pattern = ResourcePattern(types[kind], name, ACLResourcePatternType[grant.pattern.upper()])
                    acls.append(ACL(principal, "*", _operation(operation), ACLPermissionType.ALLOW, pattern))
    return acls


def _allowed(grants: list[Grant], principal: str, operation: str, kind: str, name: str) -> bool:
    return any(principal in g.principals and operation in g.operations and (kind, name) in g.resources
               for g in grants)


def test_the_readme_acls_parse_and_keep_trust_writes_to_admins_and_the_chain_server() -> None:
    grants = readme_grants()
    principals = {p for g in grants for p in g.principals}
    assert principals == {"User:kr-admin", "User:kr-chainserver", "User:kr-controller", "User:kr-producer",
                          "User:kr-consumer", "User:kr-subscriber"}
    for grant in grants:
        for operation in grant.operations:
            _operation(operation)  # every operation is one Kafka knows
    writers = {topic: {p for p in principals if _allowed(grants, p, "Write", "topic", topic)} for topic in TRUST}
    assert writers == {"chains": {"User:kr-chainserver"}, "allowlist": {"User:kr-admin"},
                       "denylist": {"User:kr-admin"}}
    assert not any(op in ("Create", "All", "Alter", "AlterConfigs", "Delete") for g in grants for op in g.operations
                   if set(g.principals) - {"User:kr-admin"}), "only admins create or change topics"
    readers = {p for p in principals if all(_allowed(grants, p, "Read", "topic", t) for t in TRUST)}
    assert readers == principals - {"User:kr-admin", "User:kr-chainserver"}


# ---------------------------------------------------------------------------------------- the cluster


@dataclass
class Sasl:
    """The session's Apache Kafka cluster: its plaintext (super user) and SCRAM listeners, and the users."""

    engine: KafkaEngine
    users: dict[str, str]

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.engine.bootstrap_servers, request_timeout_ms=15000)

    def settings(self, principal: str) -> dict[str, Any]:
        user = principal.removeprefix("User:")
        return {"bootstrap_servers": self.engine.sasl_bootstrap_servers, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": SCRAM_MECHANISM, "sasl_plain_username": user,
                "sasl_plain_password": self.users[user]}


@pytest.fixture(scope="module")
def sasl(kafka_engine: KafkaEngine) -> Sasl:
    """SCRAM users for every principal the README names (those the session did not make are added here)."""
    cluster = kafka_engine.require_cluster()
    assert kafka_engine.sasl_bootstrap_servers
    users = dict(kafka_engine.users)
    wanted = {p.removeprefix("User:") for g in readme_grants() for p in g.principals} | {"kr-outsider"}
    added = {name: secrets.token_urlsafe(18) for name in sorted(wanted - users.keys())}
    if added:
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=15000)
        try:
            answer = admin.alter_user_scram_credentials(
                [UserScramCredentialUpsertion(name, SCRAM_MECHANISM, password) for name, password in added.items()])
        finally:
            admin.close()
        assert not any(answer.get(name) for name in added), answer
        users.update(added)
        for name in added:  # every broker has applied the new credential before a node uses it
            for port in (cluster.ports[n].sasl for n in cluster.node_ids):
                _wait_authenticates(Sasl(kafka_engine, users).settings(f"User:{name}") |
                                    {"bootstrap_servers": f"127.0.0.1:{port}"})
    return Sasl(kafka_engine, users)


def _wait_authenticates(settings: dict[str, Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(**settings, request_timeout_ms=5000, bootstrap_timeout_ms=5000)
            admin.close()
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the broker applies the metadata record within milliseconds


@dataclass
class World:
    """One test's root, topics and groups, its README ACLs granted, and nodes that use them over SCRAM."""

    sasl: Sasl
    directory: Path
    root: str
    values: dict[str, str]
    rename: dict[str, str]
    cluster: Cluster
    closers: list[Any] = field(default_factory=list)

    @property
    def data(self) -> str:
        return self.values["T"]

    def topic(self, name: str) -> str:
        return self.rename.get(name, name)

    def crypto(self) -> dict[str, Any]:
        return {"chains_topic": self.topic("chains"), "allowlist_topic": self.topic("allowlist"),
                "denylist_topic": self.topic("denylist"), "request_retry": 0.5}

    def provision(self, node_id: str, role: str, principal: str, *, lifetime: int = 0,
                  crypto: dict[str, Any] | None = None) -> KafkaCryptoStore:
        identity = SigningIdentity.generate()
        chain = issue_node_chain(self.cluster.root, None, identity.public_key, role, topics=[self.root],
                                 lifetime=lifetime)
        return write_node(self.directory, node_id, identity, chains=[chain],
                          roots=[self_signed_root(self.cluster.root)], kafka=self.sasl.settings(principal),
                          crypto={**self.crypto(), **(crypto or {})})

    def node(self, node_id: str, role: str, principal: str, **kwargs: Any) -> Node:
        return self.cluster.start(self.provision(node_id, role, principal, **kwargs))

    def cli(self, config: Path, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out):
            status = kr_cli.main(["topics", *argv, "--config", str(config)])
        return status, out.getvalue()

    def create_everything(self) -> None:
        """What an administrator does first: ``kafkaratchet topics create`` and the data topic."""
        admin = self.provision("admin", "admin", "User:kr-admin")
        status, out = self.cli(admin.path, "create", "--root", self.root, "--trust")
        assert status == 0, out
        result = ensure_topics(self.sasl.settings("User:kr-admin"), [TopicSpec(self.data, 2)])
        assert result.created == [self.data], result


@pytest.fixture
def world(sasl: Sasl, unique_root: str, tmp_path: Path) -> Iterator[World]:
    values = {"R": unique_root, "T": f"{unique_root}.eu", "G": f"{unique_root}-readers",
              "CG": f"{unique_root}-controllers"}
    rename = {name: f"{unique_root}-{name}" for name in TRUST}
    acls = kafka_acls(readme_grants(values), rename)
    admin = sasl.admin()
    try:
        answer = admin.create_acls(acls)
    finally:
        admin.close()
    assert not answer["failed"], answer["failed"]
    cluster = Cluster(sasl.engine.sasl_bootstrap_servers or "", tmp_path)
    w = World(sasl, tmp_path, unique_root, values, rename, cluster)
    try:
        yield w
    finally:
        for closer in reversed(w.closers):
            closer()
        cluster.close()


# ---------------------------------------------------------------------------------------- the scenarios


def test_a_principal_that_may_not_create_topics_is_told_which_and_how(world: World,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    root, reqs = world.root, f"{world.root}.reqs"
    producer_store = world.provision("prod", "producer", "User:kr-producer")
    # the command, run with a node's credentials: each topic is named, and why
    status, out = world.cli(producer_store.path, "create", "--root", root, "--trust")
    assert status == 1
    why = "not authorised: User:kr-producer may not create it (it needs Create on the topic or on the cluster)"
    assert out.splitlines() == [f"refused  {name}  {why}" for name in (
        reqs, f"{root}.keys", f"{root}.subs", *(world.topic(t) for t in TRUST))]

    # a node with that principal: not ready, and an ERROR per missing topic naming the command
    caplog.set_level(logging.ERROR, logger="kafkaratchet.node.topiccreator")
    kp = KafkaProducer(**producer_store.get_kafka_config("producer", extra="crypto"))
    kc = KafkaConsumer(**producer_store.get_kafka_config("consumer", extra="crypto"))
    crypto = KafkaCrypto(None, kp, kc, config=producer_store)
    world.closers += [kp.close, kc.close, crypto.close]
    crypto.getValueSerializer().serialize(world.data, b"sealed before the topics exist")  # R.reqs is wanted now
    creator = crypto.exchange.subscriptions.creator
    assert creator is not None
    expected = {*(world.topic(t) for t in TRUST), reqs}
    deadline = time.monotonic() + 20
    while not expected <= set(creator.missing) and time.monotonic() < deadline:
        time.sleep(0.1)  # the exchange thread looks the topics up on its own schedule
    assert expected <= set(creator.missing), creator.missing
    assert not crypto.wait_ready(0)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert (f"topic {reqs} is missing: it does not exist and this node's principal may not create it. "
            f"An administrator creates it with: kafkaratchet topics create --config NODE.config --root {root}"
            ) in errors, errors
    assert any(m.startswith(f"topic {world.topic('chains')} is missing") and m.endswith("--trust")
               for m in errors), errors

    # an administrator creates them; the node finds them and becomes ready by itself
    admin = world.provision("admin", "admin", "User:kr-admin")
    status, out = world.cli(admin.path, "create", "--root", root, "--trust")
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0] == f"created  {reqs}  cleanup.policy=delete retention.ms=86400000"
    assert lines[3].startswith(f"created  {world.topic('chains')}  partitions=1 cleanup.policy=compact ")
    assert crypto.wait_ready(90), "the node looks again after its backoff and follows the trust topics"
    status, out = world.cli(admin.path, "check", "--root", root, "--trust")
    assert status == 0 and len(out.splitlines()) == 6 and "problem" not in out, out
    described = world.sasl.admin()
    try:
        configs = described.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, world.topic("denylist"))], config_filter="all")
    finally:
        described.close()
    got = {k: v["value"] for k, v in configs["topic"][world.topic("denylist")].items()}
    assert {k: got[k] for k in TRUST_TOPIC_CONFIGS} == dict(TRUST_TOPIC_CONFIGS)


def test_producer_consumer_chain_server_and_controller_do_their_jobs(world: World) -> None:
    world.create_everything()
    prod = world.node("prod", "producer", "User:kr-producer")
    # the consumer's group is its node id (README: G)
    cons = world.node(world.values["G"], "consumer", "User:kr-consumer", lifetime=300)

    # a producer and a consumer (in its group G) round-trip encrypted records through the key exchange
    producer = prod.producer()
    for i in range(20):
        producer.send(world.data, key=b"k%d" % i, value=b"record %d" % i)
    producer.flush()
    assert cons.store.get_kafka_config("consumer")["group_id"] == world.values["G"]
    consumer = KafkaConsumer(
        world.data, **cons.store.get_kafka_config("consumer"), auto_offset_reset="earliest", enable_auto_commit=False,
        key_deserializer=cons.crypto.getKeyDeserializer(max_key_wait_intervals=1, key_wait_interval=15.0),
        value_deserializer=cons.crypto.getValueDeserializer(max_key_wait_intervals=1, key_wait_interval=15.0))
    cons.clients.append(consumer)
    records = drain(consumer, 20, timeout=60)
    assert sorted(r.value.getMessage() for r in records if r.value.isCleartext()) == \
        sorted(b"record %d" % i for i in range(20))
    consumer.commit()  # the group's offsets: Read on the group

    # the chain server publishes a fresh chain; the consumer adopts it from the chains topic
    server = KafkaCryptoChainServer(None, config=world.provision(
        "chains", "chainserver", "User:kr-chainserver", crypto={"chain_lifetime": 900}))
    world.closers.append(server.close)
    def latest() -> int:
        return max(chain_expiry(chain) for chain in cons.crypto.credentials.chains)

    first = latest()
    server.add_key(cons.crypto.public_key, {Usage.CONSUME}, [world.root])
    assert server.run_once() == 1
    deadline = time.monotonic() + 30
    while latest() <= first and time.monotonic() < deadline:
        time.sleep(0.1)  # the node reads chains on its own thread
    assert latest() > first + 300, "the chain server's chain was adopted"

    # a subscribe-only consumer gets keys through a controller, in the controllers' group CG
    limited = world.node("limited", "consumer-limited", "User:kr-subscriber")
    ctl_store = world.provision("ctl", "controller", "User:kr-controller")
    kp = KafkaProducer(**ctl_store.get_kafka_config("producer", extra="crypto"))
    kc = KafkaConsumer(**{**ctl_store.get_kafka_config("consumer", extra="crypto"), "group_id": world.values["CG"],
                          "auto_offset_reset": "earliest", "enable_auto_commit": False, "metadata_max_age_ms": 500,
                          "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000,
                          "request_timeout_ms": 8000})
    controller = KafkaCryptoController(None, kp, kc, config=ctl_store)
    world.closers += [kp.close, kc.close, controller.close]
    assert controller.wait_ready(30)
    producer.send(world.data, value=b"for the subscriber")
    producer.flush()
    opened = [r.value.getMessage() for r in drain(limited.consumer(world.data, wait=30.0), 21, timeout=90)
              if r.value.isCleartext()]
    assert b"for the subscriber" in opened
    assert controller.forwarded >= 1


@dataclass
class Attempt:
    principal: str
    action: str  # "write", "read" (in a consumer group) or "describe"
    resource: str
    why: str


def _try_write(settings: dict[str, Any], topic: str) -> BaseException | None:
    producer = KafkaProducer(**settings, max_block_ms=15000, request_timeout_ms=10000, delivery_timeout_ms=12000)
    try:
        producer.send(topic, key=b"k", value=b"junk").get(timeout=20)
    except KafkaError as exc:
        return exc
    finally:
        producer.close(timeout=2)
    return None


def _try_read(settings: dict[str, Any], group_and_topic: str) -> BaseException | None:
    """Read in a consumer group. (kafka-python's consumer takes a topic it may not read for a missing one,
    without an error, where Java's raises; the group is where it is refused clearly.)"""
    group, topic = group_and_topic.split(" ", 1)
    consumer = KafkaConsumer(**settings, group_id=group, enable_auto_commit=False, request_timeout_ms=10000)
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
    except KafkaError as exc:
        return exc
    finally:
        consumer.close()
    return None


def _try_describe(settings: dict[str, Any], topic: str) -> BaseException | None:
    """Metadata of a topic: what a consumer needs first; refused to a principal without Read or Describe."""
    admin = KafkaAdminClient(**settings, request_timeout_ms=10000)
    try:
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    error = for_code(described["error_code"])
    return None if error is NoError else error(topic)


def test_what_the_acls_do_not_grant_is_refused(world: World) -> None:
    world.create_everything()
    root, data = world.root, world.data
    attempts = [
        Attempt("User:kr-consumer", "write", world.topic("denylist"), "a consumer erases denials"),
        Attempt("User:kr-outsider", "write", world.topic("denylist"), "anyone erases denials"),
        Attempt("User:kr-producer", "write", world.topic("allowlist"), "a producer admits roots"),
        Attempt("User:kr-controller", "write", world.topic("chains"), "a controller overwrites chains"),
        Attempt("User:kr-consumer", "write", f"{root}.keys", "a consumer forges key answers"),
        Attempt("User:kr-subscriber", "write", f"{root}.reqs", "a subscriber bypasses the controller"),
        Attempt("User:kr-consumer", "write", data, "a consumer writes data"),
        Attempt("User:kr-outsider", "read", f"{world.values['G']} {data}", "anyone reads data"),
        Attempt("User:kr-outsider", "describe", data, "anyone learns of the data topic"),
        Attempt("User:kr-chainserver", "describe", world.topic("denylist"), "the chain server reads denials"),
        Attempt("User:kr-consumer", "describe", f"{root}.subs", "a consumer reads others' subscriptions"),
        Attempt("User:kr-controller", "describe", data, "a controller reads data"),
    ]
    tries = {"write": _try_write, "read": _try_read, "describe": _try_describe}
    for attempt in attempts:
        error = tries[attempt.action](world.sasl.settings(attempt.principal), attempt.resource)
        assert isinstance(error, _AUTH_ERRORS), f"{attempt.why}: {attempt.principal} {attempt.action} " \
                                                f"{attempt.resource} gave {error!r}"
        if isinstance(error, TopicAuthorizationFailedError):
            assert attempt.resource.split()[-1] in str(error), "the refusal names the topic"
    # topic creation is the admins' alone
    store = world.provision("cons", "consumer", "User:kr-consumer")
    status, out = world.cli(store.path, "create", "--root", f"{root}x")
    assert status == 1 and out.startswith(f"refused  {root}x.reqs  not authorised: User:kr-consumer")
