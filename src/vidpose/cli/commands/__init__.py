"""One module per ``vidpose`` command: ``register(subparsers)`` and ``handle(args) -> int``.

``register`` adds the command's parser and sets ``handle`` as its default; ``handle`` checks
paths before any work and calls the public API as ``vidpose.<name>`` (lazily imported).
"""
