"""The application: the ``s4op`` command and the code only it needs.

- :mod:`~s4op_kernels.app.cli`: the command line (argument parsing, exit statuses, messages);
- :mod:`~s4op_kernels.app.pipeline`: from data to report (``s4op prune`` / ``run`` / ``compare`` /
  ``report``): the baseline, the run's identity, the search in a locked run folder, the report;
- :mod:`~s4op_kernels.app.train`: ``s4op train``: one task from its data to a saved checkpoint.
- :mod:`~s4op_kernels.app.benchreport`: ``s4op bench-report``: the benchmark suite's JSON as one Markdown
  report with plots (the suite's one formatter).

Dependencies point one way: this package imports the library (ops, layers, data, models, training,
pruning, checkpoint, runlock); nothing in the library imports this package.
"""
