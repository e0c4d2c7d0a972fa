"""The memory benchmark's parts (benchmarks/memory.py is the command that runs them).

* ``settings``: the sample shape, the sizes, the limit, every run's ``--set`` pairs.
* ``proc``: polling /proc for the RssAnon and VmRSS of a command and its descendants.
* ``datasets``: the seeded synthetic datasets, written in chunks.
* ``runs``: one measured `sfbd run` (one process, or several under torchrun).
* ``verdict``: the growth of the peak with N, and PASS or FAIL per kind and process count.
* ``report``: the machine, the table, the plot and the Markdown results file.

Imports point one way: memory.py -> report, runs -> verdict, datasets, proc -> settings.
"""
