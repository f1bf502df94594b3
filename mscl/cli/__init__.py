"""The Typer command-line interface: a thin shell over typed Python functions."""
