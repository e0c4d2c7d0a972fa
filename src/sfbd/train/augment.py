"""Non-leaky geometric augmentation with conditioning labels, as used to regularise EDM training.

Each sample of a batch independently receives a random subset of geometric transforms; transform
``k`` is switched on with probability ``p * multiplier_k`` (clipped to 1), as in ADA. The
parameters that were drawn are returned as a (B, 9) label vector which the denoiser receives as an
extra conditioning input. Training then learns the augmented distribution *conditioned on* the
label, and sampling with all-zero labels targets the un-augmented data, so the augmentations do
not leak into the generated images.

Transforms, in the order they act on the image content (pixel coordinates relative to the image
centre, ``x`` to the right, ``y`` down):

1. x-flip (mirror left-right) and y-flip (mirror top-bottom): exact pixel permutations.
2. isotropic scaling by ``s = 2 ** (w * scale_std)``, ``w ~ N(0, 1)``;
3. rotation by ``theta ~ U(-pi, pi) * rotate_frac_max``: content point ``(x, y)`` moves to
   ``(x cos theta - y sin theta, x sin theta + y cos theta)``;
4. anisotropic scaling: stretch by ``2 ** (w * aniso_std)`` along the direction at angle ``r``
   and shrink by the same factor across it, ``w ~ N(0, 1)``; ``r ~ U(-pi, pi)`` with probability
   ``aniso_rotate_prob``, else ``r = 0`` (axis-aligned);
5. translation by ``(tx * W, ty * H) * translate_frac_std`` pixels, ``tx, ty ~ N(0, 1)``
   (positive moves content right / down).

Steps 2-5 are composed into one affine map per sample and executed with a single bilinear
``grid_sample`` with reflection padding; samples whose steps 2-5 were all switched off are
returned bit-exactly (flips aside).

Label layout (``augment_dim = 9``), zero exactly when the transform was not applied:

====  =====================================================================
 0    x-flip: 1 if mirrored left-right, else 0
 1    y-flip: 1 if mirrored top-bottom, else 0
 2    scale: ``w`` (log2 of the scale factor in units of ``scale_std``)
 3    rotation: ``cos(theta) - 1``
 4    rotation: ``sin(theta)``
 5    anisotropic scaling: ``w * cos(r)``
 6    anisotropic scaling: ``w * sin(r)``
 7    translation x: ``tx`` (in units of ``translate_frac_std * W`` pixels)
 8    translation y: ``ty`` (in units of ``translate_frac_std * H`` pixels)
====  =====================================================================

The defaults are EDM's "geometric" pipe: ``p = 0.12``, x-flip multiplier ``1e8`` (so, for any
``p > 0``, every sample is flipped with probability 1/2 and the label says whether), and
multiplier 1 for y-flip, scaling, rotation, anisotropic scaling and translation, with
``scale_std = aniso_std = 0.2``, ``translate_frac_std = 0.125``, full-circle rotation and
``aniso_rotate_prob = 0.5``. Unlike EDM, resampling is a plain bilinear lookup (no 2x wavelet
upsampling for anti-aliasing).

References: Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data" (ADA),
Section 2 and Appendix B; Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models" (EDM), Section 5 and Appendix F.2 (non-leaky augmentation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

augment_dim = 9

# Number of independent random draws of each kind per sample; every call consumes the same
# amount of randomness whatever is enabled, so switching one transform off leaves the others'
# draws unchanged.
_N_GATES = 6  # xflip, yflip, scale, rotate, aniso, translate
_N_BITS = 2  # xflip, yflip
_N_NORMALS = 4  # scale, aniso, translate x, translate y
_N_UNIFORMS = 3  # rotation angle, aniso direction, aniso direction on/off


def zero_labels(batch: int, device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    """All-zero augmentation labels (batch, 9): "no augmentation", e.g. for sampling."""
    return torch.zeros(batch, augment_dim, device=device, dtype=dtype)


@dataclass(frozen=True)
class AugmentParams:
    """Per-sample augmentation parameters, each (B,) float, zero where not applied.

    Attributes:
        xflip, yflip: 1.0 where the image is mirrored, else 0.0.
        scale: ``w``; the scale factor is ``2 ** (w * scale_std)``.
        angle: rotation angle in radians.
        aniso: ``w``; the stretch factor is ``2 ** (w * aniso_std)``.
        aniso_dir: direction ``r`` (radians) of the stretch axis.
        tx, ty: translation in units of ``translate_frac_std`` times the image width / height.
    """

    xflip: Tensor
    yflip: Tensor
    scale: Tensor
    angle: Tensor
    aniso: Tensor
    aniso_dir: Tensor
    tx: Tensor
    ty: Tensor

    def labels(self) -> Tensor:
        """The (B, 9) conditioning vector in the layout documented in the module docstring."""
        return torch.stack(
            [
                self.xflip,
                self.yflip,
                self.scale,
                torch.cos(self.angle) - 1,
                torch.sin(self.angle),
                self.aniso * torch.cos(self.aniso_dir),
                self.aniso * torch.sin(self.aniso_dir),
                self.tx,
                self.ty,
            ],
            dim=1,
        )

    def to(self, device: torch.device | str, dtype: torch.dtype) -> AugmentParams:
        """A copy with every field moved to ``device`` / ``dtype``."""
        return AugmentParams(
            *(getattr(self, f).to(device=device, dtype=dtype) for f in self.__dataclass_fields__)
        )

    def geometric(self) -> Tensor:
        """(B,) bool: whether any of scale / rotation / aniso / translation is applied."""
        return (
            (self.scale != 0)
            | (self.angle != 0)
            | (self.aniso != 0)
            | (self.tx != 0)
            | (self.ty != 0)
        )


class Augment:
    """ADA/EDM-style geometric augmentation returning images and (B, 9) conditioning labels.

    Args:
        p: overall augmentation probability; transform ``k`` is applied to a sample with
            probability ``min(1, p * multiplier_k)``. ``p = 0`` disables everything.
        xflip, yflip, scale, rotate_frac, aniso, translate_frac: per-transform probability
            multipliers (0 disables the transform). Defaults are EDM's geometric pipe.
        scale_std: log2 standard deviation of isotropic scaling.
        rotate_frac_max: range of rotation as a fraction of a half turn each way (1 = full circle).
        aniso_std: log2 standard deviation of anisotropic scaling.
        aniso_rotate_prob: probability that the anisotropic stretch axis is randomly oriented
            rather than axis-aligned.
        translate_frac_std: standard deviation of translation, relative to the image size.

    Call ``augment(images, generator)`` with images (B, C, H, W), float32 or float64, on any
    device. Randomness is drawn on ``generator.device`` when a generator is given (else on the
    images' device from the global RNG), so results are a function of the generator state.
    Returns ``(augmented images (B, C, H, W), labels (B, 9))``, both in the images' dtype.
    """

    def __init__(
        self,
        p: float = 0.12,
        *,
        xflip: float = 1e8,
        yflip: float = 1,
        scale: float = 1,
        rotate_frac: float = 1,
        aniso: float = 1,
        translate_frac: float = 1,
        scale_std: float = 0.2,
        rotate_frac_max: float = 1,
        aniso_std: float = 0.2,
        aniso_rotate_prob: float = 0.5,
        translate_frac_std: float = 0.125,
    ) -> None:
        values = dict(
            p=p,
            xflip=xflip,
            yflip=yflip,
            scale=scale,
            rotate_frac=rotate_frac,
            aniso=aniso,
            translate_frac=translate_frac,
            scale_std=scale_std,
            rotate_frac_max=rotate_frac_max,
            aniso_std=aniso_std,
            aniso_rotate_prob=aniso_rotate_prob,
            translate_frac_std=translate_frac_std,
        )
        for name, v in values.items():
            if not (math.isfinite(float(v)) and float(v) >= 0):
                raise ValueError(f"Augment: {name} must be a finite number >= 0, got {v!r}")
        if aniso_rotate_prob > 1:
            raise ValueError(f"Augment: aniso_rotate_prob must be <= 1, got {aniso_rotate_prob}")
        self.p = float(p)
        self.xflip = float(xflip)
        self.yflip = float(yflip)
        self.scale = float(scale)
        self.rotate_frac = float(rotate_frac)
        self.aniso = float(aniso)
        self.translate_frac = float(translate_frac)
        self.scale_std = float(scale_std)
        self.rotate_frac_max = float(rotate_frac_max)
        self.aniso_std = float(aniso_std)
        self.aniso_rotate_prob = float(aniso_rotate_prob)
        self.translate_frac_std = float(translate_frac_std)

    def __repr__(self) -> str:
        names = ("p", "xflip", "yflip", "scale", "rotate_frac", "aniso", "translate_frac")
        return "Augment(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

    def sample(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> AugmentParams:
        """Draw float32 parameters for ``batch`` samples.

        Draws happen on ``generator.device`` if a generator is given, else on ``device`` (CPU by
        default); the result stays on that device.
        """
        dev = generator.device if generator is not None else torch.device(device or "cpu")
        kw = dict(generator=generator, device=dev, dtype=torch.float32)
        gates = torch.rand(batch, _N_GATES, **kw)
        bits = torch.randint(2, (batch, _N_BITS), generator=generator, device=dev)
        normals = torch.randn(batch, _N_NORMALS, **kw)
        uniforms = torch.rand(batch, _N_UNIFORMS, **kw)

        def gate(i: int, multiplier: float) -> Tensor:
            return gates[:, i] < self.p * multiplier

        zero = torch.zeros((), device=dev)
        on_scale = gate(2, self.scale)
        on_rot = gate(3, self.rotate_frac)
        on_aniso = gate(4, self.aniso)
        on_tr = gate(5, self.translate_frac)
        angle = (uniforms[:, 0] * 2 - 1) * (math.pi * self.rotate_frac_max)
        aniso_dir = (uniforms[:, 1] * 2 - 1) * math.pi
        aniso_dir = torch.where(uniforms[:, 2] < self.aniso_rotate_prob, aniso_dir, zero)
        return AugmentParams(
            xflip=(gate(0, self.xflip) & (bits[:, 0] == 1)).float(),
            yflip=(gate(1, self.yflip) & (bits[:, 1] == 1)).float(),
            scale=torch.where(on_scale, normals[:, 0], zero),
            angle=torch.where(on_rot, angle, zero),
            aniso=torch.where(on_aniso, normals[:, 1], zero),
            aniso_dir=torch.where(on_aniso, aniso_dir, zero),
            tx=torch.where(on_tr, normals[:, 2], zero),
            ty=torch.where(on_tr, normals[:, 3], zero),
        )

    def inverse_matrices(self, params: AugmentParams, height: int, width: int) -> Tensor:
        """(B, 3, 3) maps from output to input pixel coordinates (relative to the image centre).

        The forward map is ``translate @ aniso @ rotate @ scale``; this returns its inverse,
        in ``params``' dtype and device.
        """
        ref = params.scale
        one, zero = torch.ones_like(ref), torch.zeros_like(ref)

        def mat(rows: list[list[Tensor]]) -> Tensor:
            return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)

        def rot(t: Tensor) -> Tensor:
            c, s = torch.cos(t), torch.sin(t)
            return mat([[c, -s, zero], [s, c, zero], [zero, zero, one]])

        def diag(a: Tensor, b: Tensor) -> Tensor:
            return mat([[a, zero, zero], [zero, b, zero], [zero, zero, one]])

        s_inv = torch.exp2(-params.scale * self.scale_std)
        a_inv = torch.exp2(-params.aniso * self.aniso_std)
        shift = mat(
            [
                [one, zero, -params.tx * (self.translate_frac_std * width)],
                [zero, one, -params.ty * (self.translate_frac_std * height)],
                [zero, zero, one],
            ]
        )
        aniso = rot(params.aniso_dir) @ diag(a_inv, 1 / a_inv) @ rot(-params.aniso_dir)
        return diag(s_inv, s_inv) @ rot(-params.angle) @ aniso @ shift

    def apply(self, images: Tensor, params: AugmentParams) -> Tensor:
        """Apply the transforms described by ``params`` to images (B, C, H, W)."""
        if images.ndim != 4:
            raise ValueError(f"Augment: images must be (B, C, H, W), got {tuple(images.shape)}")
        b, _, h, w = images.shape
        if params.scale.shape != (b,):
            raise ValueError(f"Augment: params are for {params.scale.shape} samples, images {b}")
        work = torch.float64 if images.dtype == torch.float64 else torch.float32
        params = params.to(images.device, work)

        flip_x = params.xflip.bool().view(b, 1, 1, 1)
        flip_y = params.yflip.bool().view(b, 1, 1, 1)
        out = torch.where(flip_x, images.flip(3), images)
        out = torch.where(flip_y, out.flip(2), out)

        if self.p > 0 and (self.scale or self.rotate_frac or self.aniso or self.translate_frac):
            # Pixel coordinates relative to the centre = normalised coordinates * (W/2, H/2) with
            # align_corners=False, so conjugate the pixel-space map by that scaling.
            g = self.inverse_matrices(params, h, w)
            to_pix = torch.tensor([w / 2, h / 2, 1.0], device=images.device, dtype=work)
            theta = (g * to_pix[None, None, :] / to_pix[None, :, None])[:, :2, :]
            grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
            warped = F.grid_sample(
                out.to(work), grid, mode="bilinear", padding_mode="reflection", align_corners=False
            ).to(images.dtype)
            out = torch.where(params.geometric().view(b, 1, 1, 1), warped, out)
        return out

    def __call__(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Augment a batch: returns (images (B, C, H, W), labels (B, 9)) in the images' dtype."""
        if images.ndim != 4:
            raise ValueError(f"Augment: images must be (B, C, H, W), got {tuple(images.shape)}")
        params = self.sample(images.shape[0], generator, images.device)
        out = self.apply(images, params)
        return out, params.labels().to(device=images.device, dtype=images.dtype)
