"""The process's runtime: DDP, the CUDA fast path, signal handling and fault injection.

Kept free of imports so that :mod:`sfbd.runtime.interrupt` can install its signal handlers
before torch is imported.
"""
