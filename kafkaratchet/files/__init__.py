"""A node's files on disk: config and settings, secret files, the ratchet seed, the key archive,
its credentials and trust entries, and writing a new node. No network."""
