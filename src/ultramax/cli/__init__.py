"""The ``ultramax`` command line: one module per command group, each a thin face over the library."""
