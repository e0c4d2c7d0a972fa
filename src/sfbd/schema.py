"""The configuration schema: one dataclass per section, each field with its default and a
trailing comment saying what it means. It imports nothing of sfbd, so every module can name
the type; loading and checking live in :mod:`sfbd.config` and :mod:`sfbd.validate`.

The sections below hold the keys every run reads. A plug-in adds its own keys to a section
(:func:`add_keys`, called by :class:`sfbd.registry.Registry` when a noise model or network
with a ``Keys`` dataclass registers): ``data.gain`` belongs to the photon-noise model's file,
``model.hidden`` to the MLP's. :data:`SECTIONS` holds each section's class with every
registered plug-in's keys, and :class:`Config` builds its sections from it.
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
    # the noise model: a name of sfbd.noise.NOISE_MODELS (white, per-sample, coloured,
    # poisson-gaussian), or auto: the one whose keys are set (docs/noise-models.md); each
    # model's own keys (data.sigma_range, data.noise_cov, data.gain, ...) live in its file
    noise: str = "auto"
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
    # a name of sfbd.nets.NETWORKS (mlp unet ddpmpp ncsnpp adm gaussian), or auto (mlp for
    # vectors, unet for images); each network's own keys (model.hidden, ...) live in its file
    kind: str = "auto"
    channels: int = 32  # image nets: base channels (EDM's model_channels)
    channel_mult: list[int] = field(default_factory=lambda: [1, 2])  # image nets: per level
    blocks_per_level: int = 2  # image nets: residual blocks per level (EDM's num_blocks)
    dropout: float = 0.0  # image nets: dropout probability
    attn_resolutions: list[int] = field(default_factory=lambda: [16])  # ddpmpp/ncsnpp/adm


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
    cg_steps: int = 1  # masked/blurred data: conjugate-gradient steps of posterior sampling
    #                    (MMPS) per denoiser call, each one more backward pass of the network


@dataclass
class FastConfig:
    bf16: str = "auto"  # bf16 autocast of the network: training and sampling (auto: CUDA)
    channels_last: str = "auto"  # NHWC memory format for image networks (auto: on for CUDA)
    compile: str = "auto"  # torch.compile the network for training and sampling (auto: CUDA)
    fused_adam: str = "auto"  # fused Adam kernel (auto: where this torch has one)


@dataclass
class SfbdConfig:
    iterations: int = 3  # K: rounds of backward sampling + denoiser update
    pretrain: str = "clean"  # stage 0 of sfbd / online-sfbd: clean (the clean set, with
    #                          data.pretrain) | ambient (clean and noisy samples, the noisy ones
    #                          by the ambient loss; docs/methods.md)


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
    # fraction of the noisy set held out for val_noisy (never trained on, denoised or banked)
    noisy_holdout: float = 0.05
    noisy_holdout_max: int = 2000  # at most this many held-out noisy samples


#: section name -> its class, extended by every registered plug-in's keys (:func:`add_keys`)
SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig}
#: 'section.key' -> the plug-ins that declared it (e.g. 'noise model coloured')
KEY_OWNERS: dict[str, list[str]] = {}


def add_keys(section: str, keys: type, owner: str) -> None:
    """Add the fields of dataclass ``keys`` to ``section`` (``SECTIONS[section]`` becomes a
    subclass with them). A key already in the section may be declared again only with the
    same type and default (two networks sharing a key); anything else is refused."""
    import dataclasses
    import typing

    base = SECTIONS[section]
    have = {f.name: f for f in dataclasses.fields(base)}
    hints, base_hints = typing.get_type_hints(keys), typing.get_type_hints(base)
    new = []
    for f in dataclasses.fields(keys):
        KEY_OWNERS.setdefault(f"{section}.{f.name}", []).append(owner)
        if f.name in have:
            same = base_hints[f.name] == hints[f.name] and _default(have[f.name]) == _default(f)
            if not same:
                raise ValueError(f"{owner} declares {section}.{f.name}, which exists otherwise")
            continue
        new.append(
            (
                f.name,
                hints[f.name],
                dataclasses.field(default=f.default, default_factory=f.default_factory),
            )
        )
    if new:
        cls = dataclasses.make_dataclass(base.__name__, new, bases=(base,))
        cls.__module__, cls.__doc__ = __name__, base.__doc__
        SECTIONS[section] = cls


def _default(f: object) -> object:
    import dataclasses

    assert isinstance(f, dataclasses.Field)
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


@dataclass
class Config:
    method: str = "sfbd"  # sfbd | online-sfbd | clean-only | noisy-only | oracle | ambient
    seed: int = 0  # global seed: same seed, same machine -> same result
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # plug-ins outside sfbd: .py files or module names imported before the configuration is
    # checked (a new noise model, network, method or sampler; docs/extending.md)
    plugins: list[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=lambda: SECTIONS["data"]())
    model: ModelConfig = field(default_factory=lambda: SECTIONS["model"]())
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    sfbd: SfbdConfig = field(default_factory=SfbdConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    fast: FastConfig = field(default_factory=FastConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
