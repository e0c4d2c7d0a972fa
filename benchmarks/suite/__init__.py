"""The quality benchmark's parts (benchmarks/quality.py is the command that runs them).

Imports point one way: the entry points (quality.py, noise_models.py, online_ramp.py) import
the sections, and the sections import the shared modules; nothing here imports an entry point.

Shared:

* ``settings``: the full and quick suites' sizes, the methods and their colours.
* ``data``: the data files the suite makes (8-D mixture, digits split, similar sets, Gaussian).
* ``runner``: ``Runner``, which runs (or reuses) one seeded `sfbd run` per configuration.
* ``tables``: means, spreads, Markdown tables and the small words the sentences use.
* ``plots``: the axes style, the last samples of a run, the figure of sections 3 and 4.
* ``section``: what a section is given (``Context``) and what it returns (``Output``).

Sections (one module each; their ``--only`` names in benchmarks/quality.py): ``methods`` (1),
``samplers`` (2), ``fractions`` (3), ``sigmas`` (4), ``gaussian`` (5), ``pretrain`` (6) and
the noise models (7) in ``noise``: ``per_sample`` (a), ``coloured`` (b), ``photon`` (c),
``gaussian`` (d) over ``noise.common``, assembled by ``noise.section``.
"""
