"""Design-space sweeps as Ray tasks (``speckv-sweep``): the grid and cell keys (``grid.py``),
one cell's run (``cells.py``), the results file (``store.py``), the Ray execution
(``runner.py``), the summary and plots (``report.py``), the command line (``cli.py``)."""
