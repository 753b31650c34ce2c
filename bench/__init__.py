"""kafkaratchet's benchmark suite: ``python -m bench`` (see ``python -m bench --help``).

Modules, one per measurement: :mod:`bench.micro` (raw AEAD against the
serializers and deserializers, bytes added), :mod:`bench.e2e` (through the
broker, producer and consumer in separate processes), :mod:`bench.keyexchange`
(a fresh consumer's first decrypted record), :mod:`bench.idle` (the CPU a started
node costs its process while it idles), :mod:`bench.startup` (import and
``KafkaCrypto`` construction), :mod:`bench.writers` (threads sharing one node),
:mod:`bench.hostile` (node CPU per hostile record on every topic, and what still
works afterwards);
:mod:`bench.engine` starts or recognises the broker (Apache Kafka, Tansu),
:mod:`bench.common` holds the interleaving, the nodes and topic creation,
:mod:`bench.kcnode` kafkacrypto's nodes, :mod:`bench.report` the table, JSON and
plot, :mod:`bench.compare` runs side by side.
"""
