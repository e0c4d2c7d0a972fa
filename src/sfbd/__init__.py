"""sfbd: train diffusion models from noisy data plus a small clean set.

Stochastic Forward-Backward Deconvolution (Lu, Wu, Yu, ICML 2025): pretrain an EDM denoiser on
the clean set, then alternately denoise every noisy sample by running the reverse diffusion from
its noise level tau down to 0 and retrain the denoiser on denoised and clean data.
"""

__version__ = "0.5.0"
