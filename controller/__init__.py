"""The controller and chain-server daemons (entry points, service files, example configs)."""
