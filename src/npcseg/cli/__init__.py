"""The ``npcseg`` command line: thin typer commands over the library functions."""
