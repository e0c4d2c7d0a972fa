"""What every run of the memory benchmark uses: the sample shape, the sizes and the settings."""

from __future__ import annotations

SHAPE = (3, 32, 32)  # CIFAR-sized samples
D = 3 * 32 * 32
SIGMA = 0.2
LIMIT = 0.15  # the target: RssAnon grows by less than 15% of the extra data bytes
KINDS = ("vectors", "images")
SIZES = (4000, 10000, 40000, 100000)
QUICK_SIZES = (1000, 4000)
PROCS = (1, 2)
INTERVAL = 0.02  # seconds between polls of /proc
CHUNK = 2048  # samples generated and written at a time
MIB = 2**20

#: Every run: SFBD with one tiny iteration, on the CPU.
COMMON = [
    "method=sfbd",
    "seed=0",
    "device=cpu",
    "sfbd.iterations=1",
    "train.pretrain_steps=20",
    "train.update_steps=20",
    "train.batch_size=16",
    "train.lr_warmup=0",
    "train.log_every=10",
    "train.checkpoint_every=0",
    "sample.sampler=sde",
    "sample.steps=4",  # below tau = 0.2: levels 0.2, 0.002, 0: 2 evaluations per sample
    "sample.batch_size=256",
    "sample.shard_size=2048",
    "eval.num_samples=256",
]
#: The network of each kind: an MLP on vectors, a one-level U-Net on images.
MODELS = {
    "vectors": ["model.kind=mlp", "model.hidden=64", "model.layers=1"],
    "images": [
        "model.kind=unet",
        "model.channels=4",
        "model.channel_mult=[1]",
        "model.blocks_per_level=1",
    ],
}
