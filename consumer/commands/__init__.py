"""The ``engage-consumer`` subcommands, one module each (the sandbox has its own two).

Each module offers ``add_arguments(parser)`` and ``run_from_args(args) -> int`` (the exit
status) and keeps its heavy imports inside ``run_from_args``, so that building the parser stays
cheap. They sit at the top of the house: they may import any folder's surface, and nothing
imports them but ``consumer.cli``.
"""

__all__: list[str] = []
