"""The two sides of the key exchange as the exchange loop runs them, each on the loop's state.

:class:`KeyRequests` asks other nodes for the keys this node's deserializers want
and installs their answers; :class:`KeyAnswers` judges other nodes' requests for
keys this node produced and answers the ones the trust store allows. Both are
called only by the exchange loop (or a test in its place), with its state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from kafkaratchet.errors import ChainError, FormatError, KafkaRatchetError
from kafkaratchet.files.credentials import Credentials
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.node.contract import ExchangeProducer
from kafkaratchet.node.limits import Backoff
from kafkaratchet.node.state import WANT_TTL, ExchangeState, Pending, Want
from kafkaratchet.node.subscriptions import Subscriptions
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol.certs import REASON_TOPIC_NOT_ALLOWED, REASON_USAGE_NOT_ALLOWED, Usage
from kafkaratchet.protocol.identity import SigningIdentity, fingerprint
from kafkaratchet.protocol.kem import KemPrivateKey
from kafkaratchet.protocol.trust import TrustStore
from kafkaratchet.ratelimit import RateLimiter

__all__ = ["KeyRequests", "KeyAnswers"]

log = logging.getLogger(__name__)

_MAX_RETRY = 30.0
#: a key-exchange topic not found yet (being created, or not in the metadata yet): asked again this soon; the
#: topic creator's own backoff (1 s doubling to 60 s) paces the lookups of a topic that stays missing
_TOPIC_RETRY = 1.0
#: refusals raised only after the request's signature and the requester's chain verified (ValidatedChain.require):
#: the sender is identified, so it may have a log line of its own; any other refusal names a signer the
#: sender chose, and all of them share one rate limit per root
_IDENTIFIED_REFUSALS = frozenset({REASON_USAGE_NOT_ALLOWED, REASON_TOPIC_NOT_ALLOWED})


class KeyRequests:
    """The consumer side: wanted key ids, the requests that ask for them, the answers that bring them."""

    def __init__(self, node_id: str, settings: NodeSettings, identity: SigningIdentity, credentials: Credentials,
                 trust: TrustStore, ring: KeyRing, kp: ExchangeProducer, subscriptions: Subscriptions,
                 limiter: RateLimiter, notify: Callable[[], None]) -> None:
        self._node_id = node_id
        self._settings = settings
        self._identity = identity
        self._credentials = credentials
        self._trust = trust
        self._ring = ring
        self._kp = kp
        self._subscriptions = subscriptions
        self._limiter = limiter
        self._notify = notify
        self._kems = settings.kem_types()
        self._retry = Backoff(first=settings.request_retry, limit=_MAX_RETRY)

    def want(self, state: ExchangeState, root: str, key_id: bytes) -> None:
        """A deserializer is missing ``key_id`` of ``root``: ask for it soon (at once if it is new)."""
        if self._ring.get(root, key_id) is not None:
            self._notify()
            return
        want = state.wants.setdefault(root, Want(retry=self._settings.request_retry))
        now = time.monotonic()
        if key_id not in want.key_ids:
            want.next_request = min(want.next_request, now) if want.next_request else now
        want.key_ids[key_id] = now
        want.last_wanted = now

    def send_due(self, state: ExchangeState) -> None:
        """Send the requests whose retry time has come; forget what is no longer wanted or already here."""
        now = time.monotonic()
        for root, want in list(state.wants.items()):
            want.key_ids = {k: t for k, t in want.key_ids.items()
                            if self._ring.get(root, k) is None and now - t <= WANT_TTL}
            if not want.key_ids or now - want.last_wanted > WANT_TTL:
                del state.wants[root]
                continue
            if now >= want.next_request:
                outcome = self._request(state, root, want.key_ids)
                if outcome == "sent":
                    want.next_request = now + want.retry
                    want.retry = self._retry.after(want.retry)
                elif outcome == "no-topic":
                    want.next_request = now + _TOPIC_RETRY
                else:
                    want.next_request = now + _MAX_RETRY

    def _request(self, state: ExchangeState, root: str, wanted: dict[bytes, float]
                 ) -> Literal["sent", "no-topic", "no-chain"]:
        """Ask for ``wanted`` keys of ``root``: "sent", "no-topic" (R.keys, or the topic the request goes to,
        cannot be used yet) or "no-chain" (this node has no chain to ask with)."""
        # the most recently wanted ids first: bogus ids written into a data topic cannot crowd out a real one
        key_ids = sorted(wanted, key=wanted.__getitem__, reverse=True)[:kx.MAX_KEY_IDS]
        found = self._credentials.chain_for(Usage.CONSUME, root)
        direct = found is not None
        if found is None:
            found = self._credentials.chain_for(Usage.SUBSCRIBE, root)
        if found is None:
            # ask anyway with the chain we have: the producer is the judge, and its refusal is logged there
            if self._limiter.allow(("no-consume", root)):
                log.warning("node %s has no chain allowing it to ask for keys of root %s; "
                            "producers will refuse it", self._node_id, root)
            fallback = self._credentials.any_chain(Usage.CONSUME)
            direct = fallback is not None
            if fallback is None:
                fallback = self._credentials.any_chain(Usage.SUBSCRIBE)
            if fallback is None:
                return "no-chain"
            chain = fallback
        else:
            chain = found[0]
        if not self._subscriptions.follow(state, root + self._settings.keys_suffix, "end"):
            return "no-topic"  # cannot pin where answers will appear yet: try again later
        topic = root + (self._settings.reqs_suffix if direct else self._settings.subs_suffix)
        # the request topic must exist (created here if it is missing and the node may): a producer's send
        # to a missing topic would block this thread for max_block_ms (60 s) and then fail
        if not self._subscriptions.partitions(topic):
            return "no-topic"
        kems = [KemPrivateKey(kem) for kem in self._kems]
        request = kx.make_request(self._identity, chain, root, key_ids, kems)
        state.add_pending(request.request_id, Pending(root, frozenset(key_ids), {k.kem: k for k in kems},
                                                      time.monotonic()))
        self._kp.send(topic, value=request.raw)
        log.debug("asked for %d key(s) of root %s on %s", len(key_ids), root, topic)
        return "sent"

    def on_answer(self, state: ExchangeState, topic: str, value: bytes) -> None:
        """An answer on ``R.keys``: install the keys it brings if it answers an open request of ours."""
        message = kx.parse(value)
        if not isinstance(message, kx.KeyAnswer):
            raise FormatError("a request on a key topic")
        pending = state.pending.get(message.request_id)
        if pending is None or message.root != pending.root or topic != pending.root + self._settings.keys_suffix:
            return  # not an answer to a request of ours that is still open
        if message.requester != self._identity.public_key:
            raise FormatError("answer names another requester")
        kx.verify_answer(message, self._trust)
        installed = 0
        for wrapped in kx.open_answer(message, pending.kems):
            if wrapped.key_id in pending.key_ids and self._ring.add_received(pending.root, wrapped.key_id,
                                                                             wrapped.key):
                installed += 1
        missing = {k for k in pending.key_ids if self._ring.get(pending.root, k) is None}
        if not missing:
            del state.pending[message.request_id]
        if installed:
            log.debug("installed %d key(s) for root %s from %s", installed, pending.root,
                      fingerprint(message.signer))
            self._notify()


class KeyAnswers:
    """The producer side: judge requests for this node's own keys, answer the allowed ones once."""

    def __init__(self, settings: NodeSettings, identity: SigningIdentity, credentials: Credentials,
                 trust: TrustStore, ring: KeyRing, kp: ExchangeProducer, limiter: RateLimiter) -> None:
        self._settings = settings
        self._identity = identity
        self._credentials = credentials
        self._trust = trust
        self._ring = ring
        self._kp = kp
        self._limiter = limiter

    def on_request(self, state: ExchangeState, topic: str, value: bytes) -> None:
        """A request (or a forwarded one) on ``R.reqs``: answer it if it is for our keys and allowed."""
        message = kx.parse(value)
        if isinstance(message, kx.KeyAnswer):
            raise FormatError("an answer on a request topic")
        root = message.root
        if topic != root + self._settings.reqs_suffix or root not in state.produce_roots:
            return
        inner = message.inner if isinstance(message, kx.ForwardedRequest) else message
        # A request id is unique only per requester: it is remembered with the requester's key, so another
        # requester (even an authorised one, who reads the genuine request on R.reqs) reusing the id in a
        # request of its own cannot get the genuine one dropped as already answered. Only a verified
        # request is remembered, so an entry for (key, id) means that key really sent that id.
        if (inner.signer, message.request_id) in state.seen:
            return  # answered (or judged) already: duplicates and replays get nothing
        keys = self._ring.own(root, inner.key_ids)
        if not keys:
            return  # someone else's keys
        try:
            requester = kx.verify_request(message, self._trust, max_age=self._settings.request_max_age)
        except KafkaRatchetError as exc:
            self._log_refusal(message, inner, root, exc)
            return
        state.remember(requester.subject, message.request_id, time.monotonic())
        mine = self._credentials.chain_for(Usage.PRODUCE, root)
        if mine is None:
            if self._limiter.allow(("no-produce", root)):
                log.warning("cannot answer key request for root %s: no chain with produce usage", root)
            return
        wrapped = [kx.WrappedKey(k.key_id, k.key, int(k.created)) for k in keys]
        answer = kx.make_answer(self._identity, mine[0], message, wrapped)
        self._kp.send(root + self._settings.keys_suffix, value=answer.raw)
        log.debug("answered %s with %d key(s) for root %s", fingerprint(requester.subject), len(keys), root)

    def _log_refusal(self, message: Any, inner: Any, root: str, exc: KafkaRatchetError) -> None:
        # The rate-limit key is never something the sender chooses (a forged request names any signer it
        # likes): the signer of the message itself when its signature and chain verified (only then can
        # the refusal be about its rights), as many as the trust lists hold; else the root, one for all.
        # (A forward's inner signer is not verified when the forwarder's own rights are what failed.)
        identified = isinstance(exc, ChainError) and exc.reason in _IDENTIFIED_REFUSALS
        if self._limiter.allow(("refused", message.signer, root) if identified else ("refused-unverified", root)):
            who = fingerprint(inner.signer)
            if message is not inner:
                who += f" (forwarded by {fingerprint(message.signer)})"
            further = "" if identified else (f" (further requests for this root that do not verify are not "
                                             f"logged for {self._limiter.interval:.0f} s)")
            log.warning("refused key request from %s for root %s: %s%s", who, root, exc, further)
