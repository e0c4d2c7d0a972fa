"""Section 7 of the quality benchmark: noise models on data with known truth.

``common``: the noise settings, the files, the naive white-noise guess and the baselines;
``per_sample`` (a), ``coloured`` (b), ``photon`` (c), ``gaussian`` (d): one subsection each;
``section``: the subsections in order, as benchmarks/quality.py and benchmarks/noise_models.py
run them.
"""
