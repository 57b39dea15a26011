"""``python -m bot bench``: the project's REST and NLU throughput, latency, memory and start time, measured in
one run side by side with a stock Rasa 3.6 assistant built from the installed Rasa.

* :mod:`bot.bench.stock` builds, trains (once, cached) and starts the stock baseline;
* :mod:`bot.bench.load` is the closed-loop load generator and its statistics;
* :mod:`bot.bench.rss` reads the resident memory of a process tree from ``/proc``;
* :mod:`bot.bench.run` starts each server in turn, measures it and writes the figures;
* :mod:`bot.bench.report` renders the figures: the console table, ``reports/perf/README.md`` and the chart.

How to run and read it: docs/performance.md.
"""
