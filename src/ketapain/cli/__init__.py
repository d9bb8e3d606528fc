"""ketapain.cli: the ``ketapain`` command line (Typer, rich tables and progress bars)."""
