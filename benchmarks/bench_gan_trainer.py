"""Training throughput: ``ConditionalGanTrainer`` against a plain PyTorch loop doing the same work, one process.

Both arms train the same cDCGAN (``Generator`` + projection ``Discriminator``, Adam 2e-4, betas (0.5, 0.999))
on the same in-memory labelled random images, served by the same kind of ``torch.utils.data.DataLoader``
(shuffled, default collate of dict samples). One iteration, in both arms, is ``n_critic`` discriminator steps,
each on a fresh real batch with fresh ``z ~ N(0, I)`` and uniform fake labels (fakes made under ``no_grad``),
then one generator step on fresh ``z, y``; the same ``DiscriminatorLoss`` / ``GeneratorLoss``, the same
``zero_grad(set_to_none=False)`` (the trainer's default ``optim_set_to_none``) right before each backward, the
same autocast / ``GradScaler`` setup with ``--amp``. The plain loop reads each step's loss with ``.item()``,
as a loop that logs its losses does (the trainer also returns them as floats).

Arm A runs the trainer (``max_epochs=1``, ``epoch_length=--iterations``; a fresh trainer per block, built
outside the timed region, over the shared networks and optimisers); arm B the plain loop. Both arms train the
same network and optimiser objects, so the weights (and any denormal slow paths) are the same for both.
After an untimed warm-up of each, blocks alternate A, B, A, B, ... so machine load hits both alike; the script
prints the iterations per second, the median of the per-pair ratios and the ratio of the medians.

Before timing it checks that the arms do the same work: from the same seed and the same initial weights, one
iteration of each must leave the same G and D parameters and buffers (max abs difference printed).

    python benchmarks/bench_gan_trainer.py                       # CPU, about 2 minutes on 2 cores
    python benchmarks/bench_gan_trainer.py --device cuda --base-channels 64 --iterations 100 --amp

Target: ratio (trainer / plain iterations per second) >= 0.95.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from medsynth.engines.gan_trainer import ConditionalGanTrainer
from medsynth.losses import DiscriminatorLoss, GeneratorLoss
from medsynth.networks.dcgan import Discriminator, Generator

TARGET = 0.95


class DictDataset(Dataset):
    """``{"image": (C, H, W), "label": ()}`` samples from two in-memory tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "label": self.labels[index]}


class Nets:
    """Generator, discriminator and their optimisers, identically initialised from ``seed``."""

    def __init__(self, args: argparse.Namespace, device: torch.device, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.g = Generator(latent_size=args.latent_size, image_size=args.image_size, channels=args.channels,
                           base_channels=args.base_channels, num_classes=args.num_classes).to(device)
        self.d = Discriminator(image_size=args.image_size, channels=args.channels, base_channels=args.base_channels,
                               num_classes=args.num_classes, conditioning="projection").to(device)
        self.g_opt = torch.optim.Adam(self.g.parameters(), 2e-4, betas=(0.5, 0.999))
        self.d_opt = torch.optim.Adam(self.d.parameters(), 2e-4, betas=(0.5, 0.999))

    def state(self) -> list[torch.Tensor]:
        return [t.detach() for m in (self.g, self.d) for t in (*m.parameters(), *m.buffers())]


def make_loader(args: argparse.Namespace, num_batches: int, seed: int = 1) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    count = num_batches * args.batch_size
    images = torch.rand(count, args.channels, args.image_size, args.image_size, generator=gen) * 2 - 1
    labels = torch.randint(0, args.num_classes, (count,), generator=gen)
    return DataLoader(DictDataset(images, labels), batch_size=args.batch_size, shuffle=True, drop_last=True,
                      pin_memory=args.device == "cuda")


def trainer_arm(nets: Nets, loader: DataLoader, iterations: int, args: argparse.Namespace,
                device: torch.device) -> Callable[[], None]:
    """Arm A: a fresh trainer over ``nets`` (built here, untimed); returns the call to time."""
    trainer = ConditionalGanTrainer(
        device=device, max_epochs=1, epoch_length=iterations, train_data_loader=loader,
        g_network=nets.g, g_optimizer=nets.g_opt, d_network=nets.d, d_optimizer=nets.d_opt,
        loss=args.loss, n_critic=args.n_critic, amp=args.amp,
    )
    return trainer.run


def plain_arm(nets: Nets, loader: DataLoader, iterations: int, args: argparse.Namespace,
              device: torch.device) -> Callable[[], None]:
    """Arm B: the same iteration as ``ConditionalGanTrainer._iteration``, written out in plain PyTorch."""
    g, d, g_opt, d_opt = nets.g, nets.d, nets.g_opt, nets.d_opt
    d_loss_fn, g_loss_fn = DiscriminatorLoss(args.loss), GeneratorLoss(args.loss)
    scaled = args.amp and device.type == "cuda"
    g_scaler, d_scaler = torch.amp.GradScaler("cuda", enabled=scaled), torch.amp.GradScaler("cuda", enabled=scaled)
    batch_size, latent, classes = args.batch_size, args.latent_size, args.num_classes

    def step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        opt.zero_grad(set_to_none=False)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def run() -> None:
        g.train()
        d.train()
        batches = iter(loader)
        losses = []
        for _ in range(iterations):
            for _ in range(args.n_critic):
                batch = next(batches)
                reals = batch["image"].to(device)
                labels = batch["label"].to(device).reshape(-1).long()
                z = torch.randn(batch_size, latent, device=device)
                y = torch.randint(0, classes, (batch_size,), device=device)
                with torch.autocast(device.type, enabled=args.amp):
                    with torch.no_grad():
                        fakes = g(z, y)
                    d_loss = d_loss_fn(d(reals, labels).float(), d(fakes, y).float())
                step(d_loss, d_opt, d_scaler)
                losses.append(d_loss.item())
            z = torch.randn(batch_size, latent, device=device)
            y = torch.randint(0, classes, (batch_size,), device=device)
            with torch.autocast(device.type, enabled=args.amp):
                g_loss = g_loss_fn(d(g(z, y), y).float())
            step(g_loss, g_opt, g_scaler)
            losses.append(g_loss.item())

    return run


ARMS = {"trainer": trainer_arm, "plain": plain_arm}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], None], device: torch.device) -> float:
    gc.collect()
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - start


def check_equivalence(args: argparse.Namespace, device: torch.device) -> float:
    """Max abs difference of all G/D parameters and buffers after one iteration of each arm, same seeds."""
    states = []
    for arm in ARMS.values():
        nets = Nets(args, device, seed=0)
        loader = make_loader(args, args.n_critic + 1)
        torch.manual_seed(1234)
        arm(nets, loader, 1, args, device)()
        states.append(nets.state())
    initial = Nets(args, device, seed=0).state()
    moved = max((a.float() - b.float()).abs().max().item() for a, b in zip(states[0], initial, strict=True))
    diff = max((a.float() - b.float()).abs().max().item() for a, b in zip(*states, strict=True))
    print(f"equivalence: max |trainer - plain| over G/D params+buffers after 1 iteration = {diff:.3g} "
          f"(params+buffers moved by up to {moved:.3g} from init) -> {'IDENTICAL' if diff == 0 else 'DIFFERENT'}")
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--latent-size", type=int, default=128)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=5, help="generator steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per arm")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations per arm")
    parser.add_argument("--loss", default="hinge", choices=("hinge", "wasserstein", "bce", "mse"))
    parser.add_argument("--n-critic", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--amp", action="store_true", help="autocast (bfloat16 on CPU) + GradScaler on CUDA")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    parser.add_argument("--skip-check", action="store_true", help="skip the one-iteration equivalence check")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        torch.backends.cudnn.benchmark = True
    else:
        name = "cpu"

    print(f"machine: {platform.processor() or platform.machine()} ({os.cpu_count()} CPUs), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device} ({name})")
    print(f"settings: cDCGAN {args.image_size} px x {args.channels} ch, base_channels {args.base_channels}, "
          f"latent {args.latent_size}, {args.num_classes} classes, batch {args.batch_size}, loss {args.loss}, "
          f"n_critic {args.n_critic}, amp {args.amp}; {args.repeats} blocks x {args.iterations} iterations per arm "
          f"after {args.warmup} warm-up iterations")
    diff = 0.0 if args.skip_check else check_equivalence(args, device)

    nets = Nets(args, device, seed=0)
    loader = make_loader(args, args.n_critic * max(args.iterations, args.warmup) + 1)
    for arm in ARMS.values():
        timed(arm(nets, loader, args.warmup, args, device), device)
    times: dict[str, list[float]] = {name: [] for name in ARMS}
    for _ in range(args.repeats):
        for arm_name, arm in ARMS.items():
            times[arm_name].append(timed(arm(nets, loader, args.iterations, args, device), device))

    rates = {arm_name: [args.iterations / t for t in ts] for arm_name, ts in times.items()}
    for arm_name, rs in rates.items():
        print(f"{arm_name:>8}: median {statistics.median(rs):.3f} it/s  (runs: {', '.join(f'{r:.3f}' for r in rs)})")
    pair_ratios = [a / b for a, b in zip(rates["trainer"], rates["plain"], strict=True)]
    median_pair = statistics.median(pair_ratios)
    of_medians = statistics.median(rates["trainer"]) / statistics.median(rates["plain"])
    print(f"ratio trainer/plain: median of per-pair ratios {median_pair:.3f} "
          f"(pairs: {', '.join(f'{r:.3f}' for r in pair_ratios)}); ratio of medians {of_medians:.3f}")
    verdict = "MET" if median_pair >= TARGET else "NOT MET"
    fair = "" if diff == 0 else f" (but the arms differ after one iteration by {diff:.3g}: compare with care)"
    print(f"target ratio >= {TARGET}: {verdict}{fair}")


if __name__ == "__main__":
    main()
