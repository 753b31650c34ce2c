"""The library halves of the daemons: the controller (KafkaCryptoController) and the chain server
(KafkaCryptoChainServer). Their command-line entry points live in the top-level ``controller`` package."""
