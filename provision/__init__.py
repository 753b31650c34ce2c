"""kafkaratchet-provision: gives a new node its identity, its ratchet seed and its chain of trust.

Two ways, both scriptable:

- ``password``: the quick start. The root of trust and the provisioner are
  derived from two passwords (Argon2id), so nodes provisioned with the same
  passwords trust each other without any file being carried around.
- ``init-root`` / ``request`` / ``sign`` / ``install``: an offline PKI for
  operators whose root key never leaves an offline machine and whose nodes'
  private keys never leave the nodes; only public files travel.

The command line (:mod:`provision.cli`) is thin; the work is importable and
tested like the library: :mod:`provision.password` (key derivation),
:mod:`provision.rootkey` (the sealed root key file), :mod:`provision.formats`
(request and chain files), :mod:`provision.quickstart` and
:mod:`provision.offline` (the flows). The user guide is docs/provisioning.md.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The console script's entry, importable without loading argparse up front."""
    from .cli import main as cli_main

    return cli_main(argv)
