"""What the ``kafkaratchet`` command runs (cli, demo, keyinfo, the embedded broker) and the runner all
four console scripts share (clirunner)."""
