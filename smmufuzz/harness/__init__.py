"""The harness: program model, byte codec, runner, fuzz/replay tooling and the CLI."""
