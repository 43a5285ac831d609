"""One module per ``workshop`` subcommand; each defines ``register(subparsers)``."""
