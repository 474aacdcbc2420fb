"""One module per ``stylecond`` tool subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
