"""Reports: R matrices across seeds, tables, plots, markdown and HTML."""
