"""``kafkaratchet.confluent``: the confluent-kafka serdes, kept at this documented path (see node/confluent)."""

from kafkaratchet.node.confluent import *  # noqa: F403
from kafkaratchet.node.confluent import __all__  # noqa: F401
