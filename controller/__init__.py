"""The controller and chain-server daemons: entry points, service files, example configs.

Only the command lines live here. How requests are judged and chains issued is the
library's: :mod:`kafkaratchet.services.controller` (KafkaCryptoController) and
:mod:`kafkaratchet.services.chainserver` (KafkaCryptoChainServer); both daemons share
:mod:`kafkaratchet.tools.clirunner` with the other console scripts.
"""
