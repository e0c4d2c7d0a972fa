"""The configuration schema: one dataclass per section, each field with its default and a
trailing comment saying what it means. It imports nothing of sfbd, so every module can name
the type; loading and checking live in :mod:`sfbd.config` and :mod:`sfbd.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DataConfig:
    source: str | None = (
        None  # builtin (ring8 checkerboard swissroll digits cifar10 celeba) or path
    )
    # noise level tau: std of the additive white Gaussian noise, in the data's scale; or the
    # path of a .npy of N per-sample levels (user mode, in the order of data.noisy)
    sigma: float | str | None = 0.35
    sigma_range: list[float] | None = None  # benchmark mode: [lo, hi], log-uniform per sample
    noise: str = "gaussian"  # gaussian | poisson-gaussian (photon noise: gain, read_noise)
    # .npy covariance of coloured Gaussian noise: D x D matrix (vectors) or (C, H, W) power
    # spectrum (images, orthonormal 2-D DFT); data.sigma must then be null
    noise_cov: str | None = None
    noise_method: str = "whiten"  # coloured noise: whiten (exact) | top-up (exact, loses info)
    gain: float | None = None  # poisson-gaussian: intensity of one photon (alpha), u = (x + 1) / 2
    read_noise: float = 0.0  # poisson-gaussian: std of the Gaussian read noise, intensity units
    clean_fraction: float = 0.02  # benchmark mode: fraction of the training part kept clean
    noise_seed: int = 0  # benchmark mode: seed of the split and of the fixed per-sample noise
    num_samples: int = 20000  # builtin 2-D sets: size; celeba: first N images (before hold-out)
    holdout: float = 0.1  # benchmark mode: fraction held out as reference (unless eval.reference)
    noisy: str | None = None  # user mode: .npy/.npz of noisy samples at level sigma
    clean: str | None = None  # user mode: clean samples (.npy/.npz, image folder or .zip)
    # clean samples of a similar distribution (builtin name or path like data.clean): stage 0
    # and clean-only train on pretrain + clean, SFBD updates on E_k + clean
    pretrain: str | None = None
    root: str | None = None  # cifar10: tarball or folder (default: cache, download); celeba: folder
    image_size: int = 64  # celeba: side of the center-cropped, resized images
    # converted-input caches (image folders/zips, cifar10, celeba, compressed .npz) as .npy;
    # null: $SFBD_CACHE/data, else ~/.cache/sfbd/data
    cache_dir: str | None = None


@dataclass
class ModelConfig:
    kind: str = "auto"  # auto (mlp for vectors, unet for images) | mlp | unet | ddpmpp | ncsnpp
    #                     | adm | gaussian
    hidden: int = 256  # mlp: width
    layers: int = 3  # mlp: residual blocks
    channels: int = 32  # image nets: base channels (EDM's model_channels)
    channel_mult: list[int] = field(default_factory=lambda: [1, 2])  # image nets: per level
    blocks_per_level: int = 2  # image nets: residual blocks per level (EDM's num_blocks)
    dropout: float = 0.0  # image nets: dropout probability
    attention: bool = False  # unet: self-attention at the lowest resolution
    attn_resolutions: list[int] = field(default_factory=lambda: [16])  # ddpmpp/ncsnpp/adm
    channel_mult_noise: int | None = None  # ddpmpp/ncsnpp: noise embedding mult (None: preset)
    resample_filter: list[int] | None = None  # ddpmpp/ncsnpp: FIR filter (None: preset)


@dataclass
class TrainConfig:
    pretrain_steps: int = 4000  # optimizer steps of pretraining (SFBD iteration 0)
    update_steps: int = 2000  # optimizer steps of each denoiser update (warm start)
    batch_size: int = 512
    lr: float = 1e-3  # Adam learning rate
    lr_warmup: int = 200  # linear learning-rate warm-up at the start of pretraining, in steps
    ema_halflife: float = 0.1  # EMA half-life as a fraction of each stage's steps
    augment: float = 0.0  # non-leaky augmentation probability p (ddpmpp/ncsnpp/adm; EDM: 0.12)
    log_every: int = 100  # steps between training-loss records in log.jsonl
    checkpoint_every: int = 1000  # steps between step checkpoints (resume mid-stage; 0: never)
    max_skipped: int = 50  # consecutive non-finite steps (skipped) before the run stops
    # sum: EDM's reduction, the loss summed over a sample's elements (mean over the batch), so
    # Adam's eps acts as in EDM; mean: averaged over the elements (gradients D times smaller).
    # train_loss is reported as the per-element mean either way
    loss_reduction: str = "mean"
    micro_batch: int | None = None  # most samples per forward pass per process (gradient
    #                                 accumulation above it); None: the whole share at once


@dataclass
class SampleConfig:
    sampler: str = "heun"  # backward sampling: heun (probability-flow ODE) | sde (posterior)
    steps: int = 64  # steps of the full EDM schedule; the part below tau is what runs
    batch_size: int = 4096  # samples per sampler batch
    shard_size: int = 16384  # denoised samples per shard file (the unit of resume and of DDP)
    denoised_dtype: str = "float32"  # E_k shards on disk: float32 | float16 (half the disk)


@dataclass
class FastConfig:
    bf16: str = "auto"  # bf16 autocast of the network: training and sampling (auto: CUDA)
    channels_last: str = "auto"  # NHWC memory format for image networks (auto: on for CUDA)
    compile: str = "auto"  # torch.compile the network for training and sampling (auto: CUDA)
    fused_adam: str = "auto"  # fused Adam kernel (auto: where this torch has one)


@dataclass
class SfbdConfig:
    iterations: int = 3  # K: rounds of backward sampling + denoiser update


@dataclass
class OnlineConfig:
    refresh_every: int = 20  # online-sfbd: steps between bank refreshes (the paper's 20)
    refresh_size: int | None = None  # online-sfbd: samples per refresh (None: SFBD's budget,
    #                                  (K - 1) N re-denoisings spread over the phase)
    ramp: float = 0.25  # online-sfbd: fraction of the phase over which the bank's weight
    #                     ramps from 0 to 1 (0: no ramp)


@dataclass
class EvalConfig:
    reference: str | None = (
        None  # .npy/.npz of held-out clean samples (benchmark default: hold-out)
    )
    num_samples: int = 5000  # generated samples per stage for the metrics
    swd_projections: int = 256  # random directions of the sliced Wasserstein distance
    fid: bool = False  # images: FID per stage (Inception-v3 weights: cache or download)
    fid_samples: int = 50000  # generated images per FID / FD-DINOv2
    fid_stats: str | None = None  # .npz (mu, sigma) of the FID reference; default: computed
    inception: str | None = None  # path of the FID Inception weights (default: cache/download)
    fd_dinov2: bool = False  # images: FD-DINOv2 per stage, on the same eval.fid_samples images
    fd_dinov2_stats: str | None = None  # .npz (mu, sigma) of DINOv2 reference features
    dinov2: str | None = None  # path of the DINOv2 ViT-L/14 weights (default: cache/download)


@dataclass
class Config:
    method: str = "sfbd"  # sfbd | online-sfbd | clean-only | noisy-only | oracle
    seed: int = 0  # global seed: same seed, same machine -> same result
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    sfbd: SfbdConfig = field(default_factory=SfbdConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    fast: FastConfig = field(default_factory=FastConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
