"""WGAN-GP gradient penalty (Gulrajani et al. 2017): weight * mean((||∇ critic(x̂)||₂ - center)²).

x̂ = eps * real + (1 - eps) * fake with eps ~ U(0, 1) drawn once per sample. The norm runs over all
non-batch dimensions of x̂, so it is the same for ``(B, C, H, W)`` and ``(B, C, D, H, W)`` images.

Two entry points over one computation (:func:`gradient_norms`):

- :func:`gradient_penalty` returns the scalar penalty, to add to the critic loss;
- :class:`GradientPenalty` does the same and keeps ``last_grad_norm`` (mean norm, detached) for logging;
  it is what a trainer built from YAML holds (``weight`` is the config's ``gp_weight``).

The penalty trains the critic only: real and fake are detached before interpolation, so a generator
never receives gradient from it. The gradient graph is kept (``create_graph=True``) so that
``penalty.backward()`` reaches the critic's parameters. The paper's critics have no batch norm, which would
couple samples and make the per-sample gradient ill-defined; use layer/instance norm or none.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def _check_images(real: Tensor, fake: Tensor) -> None:
    for name, x in (("real", real), ("fake", fake)):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"{name} must be a floating-point image tensor, got {kind}")
    if real.shape != fake.shape:
        raise ValueError(f"gradient penalty interpolates real and fake, so their shapes must match: "
                         f"{tuple(real.shape)} vs {tuple(fake.shape)}")


def _critic_logits(critic: Callable, x: Tensor, y: Tensor | None) -> Tensor:
    out = critic(x) if y is None else critic(x, y)
    if isinstance(out, tuple):  # AC-GAN style (logits, class_logits): only the adversarial head
        out = out[0]
    if not isinstance(out, Tensor):
        raise TypeError(f"critic must return a logits tensor or a tuple starting with one, got {type(out).__name__}")
    return out


def gradient_norms(critic: Callable, real: Tensor, fake: Tensor, *, y: Tensor | None = None,
                   eps: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample ||∇ₓ critic(x̂)||₂ at random interpolates x̂, shape ``(B,)``, differentiable.

    Args:
        critic: ``critic(x)`` or, when ``y`` is given, ``critic(x, y)``; returns logits ``(B, …)`` or a tuple
            whose first element they are. Patch logits are summed per sample before differentiating.
        real: ``(B, C, *spatial)`` real images.
        fake: generated images of the same shape.
        y: optional labels passed to a conditional critic, e.g. ``(B,)`` class indices.
        eps: optional ``(B,)`` interpolation weights in [0, 1] (for tests); they override ``generator``.
        generator: optional ``torch.Generator`` for the U(0, 1) draw, on ``real``'s device.
    """
    _check_images(real, fake)
    batch = real.shape[0]
    if eps is None:
        eps = torch.rand(batch, generator=generator, device=real.device, dtype=real.dtype)
    eps = eps.to(real).reshape(batch, *([1] * (real.dim() - 1)))
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    logits = _critic_logits(critic, x_hat, y)
    (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


def gradient_penalty(critic: Callable, real: Tensor, fake: Tensor, *, y: Tensor | None = None,
                     weight: float = 10.0, center: float = 1.0, eps: Tensor | None = None,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP penalty ``weight * mean((norm - center)²)``, a scalar; arguments as :func:`gradient_norms`.

    ``weight`` is the paper's λ = 10; ``center`` = 1 is the 1-Lipschitz target (0 gives the zero-centred
    variant of Mescheder et al. 2018 at interpolates).
    """
    norms = gradient_norms(critic, real, fake, y=y, eps=eps, generator=generator)
    return weight * (norms - center).square().mean()


class GradientPenalty(nn.Module):
    """:func:`gradient_penalty` as a module that also keeps ``last_grad_norm`` (mean norm, detached) for logs.

    ``GradientPenalty(weight=10.0)(critic, real, fake, y=None) -> scalar``; ``last_grad_norm`` is a 0-d
    tensor (NaN before the first call).
    """

    def __init__(self, weight: float = 10.0, center: float = 1.0) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"gradient penalty weight must be >= 0, got {weight}")
        self.weight, self.center = float(weight), float(center)
        self.last_grad_norm = torch.tensor(float("nan"))

    def forward(self, critic: Callable, real: Tensor, fake: Tensor, y: Tensor | None = None, *,
                eps: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Penalty for ``critic`` at interpolates of ``real`` and ``fake`` ``(B, C, *spatial)``, a scalar."""
        norms = gradient_norms(critic, real, fake, y=y, eps=eps, generator=generator)
        self.last_grad_norm = norms.detach().mean()
        return self.weight * (norms - self.center).square().mean()

    def extra_repr(self) -> str:
        return f"weight={self.weight}, center={self.center}"
