"""The Label Studio round trip: client, server process, push, pull, ML backend (CLI in pipeline.cli)."""
