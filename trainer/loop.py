"""``train(config) -> Path``: the training loop with checkpoints, exact resume, validation, logs.

Run folder ``train.out``: ``checkpoint.pt`` (the last good state: model, optimizer, scheduler,
iteration, RNG, config; written atomically, never after a non-finite loss), ``log.csv`` (loss per
``log_every`` iterations), ``val.csv`` (periodic validation), ``tensorboard/`` when the
tensorboard package is installed, and at the end
``<name>.safetensors`` + ``<name>.card.json`` (the model card).
"""

from __future__ import annotations

import csv
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from derain_deploy.atomic import write_atomic
from derain_deploy.model import DerainNet
from derain_deploy.weights import save_weights

from .checkpoint import (
    CHECKPOINT,
    code_version,
    init_from,
    model_card,
    read_checkpoint,
    same_recipe,
    save_checkpoint_file,
)
from .config import Config, stages_at
from .datasets import RainDataset, batch_for, gather_images, gather_pairs, validation_items
from .ema import averaged, ema_state, make_ema, restore_ema
from .errors import TrainingError, TrainingInterruptedError
from .losses import DerainLoss
from .validate import evaluate, flat


def _write_json(obj: Any, path: Path) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


class _TensorBoard:
    """Scalars to TensorBoard when the ``tensorboard`` package is installed; otherwise nothing."""

    def __init__(self, out: Path) -> None:
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))

    def log(self, row: dict[str, Any], step: int, prefix: str) -> None:
        if self.writer is not None:
            for k, v in row.items():
                if k != "iteration":
                    self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current step (a checkpoint is then exact);
    a second signal stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True




def build_data(cfg: Config) -> tuple[RainDataset, list]:
    d, v = cfg.data, cfg.val
    exclude = set(d.exclude)
    clean = gather_images(d.clean, exclude)
    pairs = gather_pairs(d.paired, exclude)
    dataset = RainDataset(clean, pairs, crop=d.crop, flip=d.flip, rain=d.rain,
                          paired_share=d.paired_share, seed=cfg.train.seed, rain_mix=d.rain_mix,
                          texture_share=d.texture_share)
    items: list = []
    if v.every and (v.clean or v.paired or v.texture):
        items = validation_items(gather_images(v.clean), gather_pairs(v.paired, names=v.paired_names),
                                 v.presets, v.seed, crop=v.crop, max_images=v.max_images,
                                 texture_files=gather_images(v.texture))
    return dataset, items


def identity_init(model: DerainNet, scale: float = 0.1) -> None:
    """Start close to the identity: the rain head ``rs`` is scaled down (rain estimates near 0)
    and a residual refinement's last conv starts at 0, so rain-free input passes through."""
    with torch.no_grad():
        model.rs.weight.mul_(scale)
        model.rs.bias.zero_()
        if model.config.refinement and model.config.residual_refinement:
            model.refine[-1].weight.zero_()
            model.refine[-1].bias.zero_()


def grow_stages(model: DerainNet, old: int, new: int) -> None:
    """Curriculum growth: the fusion convs of stages ``old + 1 .. new`` start as a pass-through of
    the newest output O_{t-1}, so the grown model starts where the shorter one ended."""
    with torch.no_grad():
        for t in range(max(old, 1) + 1, new + 1):
            fusion = model.stage_fusion[t - 2].conv
            if fusion is None:
                continue
            fusion.weight.zero_()
            fusion.weight[:, :3, 0, 0] = torch.eye(3)
            fusion.bias.zero_()
    print(f"curriculum: {old} -> {new} stages", flush=True)








def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch device; a GPU that is not there stops the run (no fallback)."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"train.device={name}: no CUDA GPU is available to torch here")
        if (device.index or 0) >= torch.cuda.device_count():
            raise TrainingError(f"train.device={name}: only {torch.cuda.device_count()} GPU(s) here")
    return device


def batches(dataset: RainDataset, start: int, batch: int, workers: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Batches ``start``, ``start + 1``, ...: the same samples with or without worker processes,
    since each sample is a function of its index."""
    if workers == 0:
        it = start
        while True:
            yield batch_for(dataset, it, batch)
            it += 1
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch, sampler=range(start * batch, len(dataset)),
                        num_workers=workers, prefetch_factor=4, pin_memory=torch.cuda.is_available())
    for item in loader:
        yield tuple(item)


def resolve_bf16(setting: bool | str, device: torch.device | None = None) -> bool:
    """``train.bf16`` as used: "auto" is on where the CPU (or GPU) has native bf16. The choice is
    printed, and so is a warning where bf16 is forced on a CPU that emulates it (about 10x slower
    than FP32)."""
    from derain_deploy.cpu import native_bf16, no_bf16_reason

    if device is not None and device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        if setting == "auto":
            print(f"bf16 auto: {'on' if native else 'off'}, {torch.cuda.get_device_name(device)}", flush=True)
            return native
        return bool(setting)
    native = native_bf16()
    if setting == "auto":
        state = "on, this CPU has native bf16" if native else f"off, {no_bf16_reason()}"
        print(f"bf16 auto: {state}", flush=True)
        return native
    if setting and not native:
        print(f"warning: train.bf16 is true but {no_bf16_reason()}: torch emulates it, about 10x slower "
              "than FP32 (train.bf16=auto chooses for the CPU)", flush=True)
    return bool(setting)


def train(cfg: Config, resume: bool = False, progress: bool = True) -> Path:
    """Train per ``cfg``; returns the path of the final safetensors weights."""
    t = cfg.train
    out = Path(t.out)
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed)
    model = DerainNet(cfg.model_config())
    if t.init:
        init_from(model, Path(t.init))
    elif t.identity_init:
        identity_init(model)
    device = resolve_device(t.device)
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    milestones = sorted({max(1, round(m * t.iterations)) for m in cfg.optim.milestones})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.optim.gamma)
    criterion = DerainLoss(cfg.loss.stage_mse, cfg.loss.l1, cfg.loss.perceptual, cfg.loss.vgg_weights)
    criterion = criterion.to(device)
    dataset, val_items = build_data(cfg)
    print(f"data: {dataset.summary()}; validation: {len(val_items)} images", flush=True)
    use_bf16 = resolve_bf16(t.bf16, device)

    out.mkdir(parents=True, exist_ok=True)
    start, wall = 0, 0.0
    ckpt_path = out / CHECKPOINT
    if resume:
        if not ckpt_path.is_file():
            raise TrainingError(f"nothing to resume: {ckpt_path} not found")
        state = read_checkpoint(ckpt_path, "cannot resume")
        diffs = same_recipe(state["config"], cfg.to_dict())
        if diffs:
            raise TrainingError(f"cannot resume {ckpt_path}: the config differs in {', '.join(diffs)}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start, wall = int(state["iteration"]), float(state["wall_s"])
        old_iterations = int(state["config"]["train"]["iterations"])
        if old_iterations != t.iterations:
            # A longer (or shorter) run: the milestones stay relative to the new length.
            from collections import Counter

            sched.milestones = Counter(milestones)
            lr = cfg.optim.lr * cfg.optim.gamma ** sum(m <= start for m in milestones)
            for group in opt.param_groups:
                group["lr"] = lr
            sched._last_lr = [lr for _ in opt.param_groups]
            print(f"iterations changed from {old_iterations} to {t.iterations}: milestones {milestones}, "
                  f"lr now {lr:g}", flush=True)
        print(f"resumed from {ckpt_path} at iteration {start}", flush=True)
    elif ckpt_path.exists():
        raise TrainingError(f"{ckpt_path} exists: pass --resume to continue it or choose another train.out")
    ema = make_ema(model, t.ema_decay)  # from the resumed weights; the checkpoint's average if it has one
    if resume and ema is not None:
        print(restore_ema(ema, state), flush=True)
    elif resume and state.get("ema"):
        print("ema: train.ema_decay is 0, so the checkpoint's average is dropped; the run's weights will "
              "be the raw ones", flush=True)  # fmt: skip

    def save_checkpoint(iteration: int) -> None:
        save_checkpoint_file({
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "iteration": iteration, "torch_rng": torch.get_rng_state(), "wall_s": wall + (time.time() - t0),
            "config": cfg.to_dict(), "ema": ema_state(ema),
        }, ckpt_path)

    last_val: dict[str, dict[str, float]] = {}
    board = _TensorBoard(out)
    total_stages = model.config.stages

    def n_stages(i: int) -> int:
        return stages_at(t.stage_schedule, t.iterations, i, total_stages)

    current_stages = n_stages(max(start - 1, 0))

    def validate(iteration: int) -> None:
        nonlocal last_val
        if not val_items:
            return
        runs = [("val", model)] + ([("val_ema", averaged(ema))] if ema is not None else [])
        for name, net in runs:  # the raw weights, then their average (the run's weights)
            last_val = evaluate(net, val_items, stages=current_stages)
            _append_csv(out / f"{name}.csv", {"iteration": iteration, **flat(last_val)})
            board.log(flat(last_val), iteration, name)
            parts = ", ".join(
                f"{p} {d['input_psnr_y']:.2f}->{d['output_psnr_y']:.2f} dB" if "input_psnr_y" in d
                else f"{p} change {d['change_psnr_y']:.2f} dB" for p, d in last_val.items())
            tqdm.write(f"{'val' if name == 'val' else 'val (ema)'} @ {iteration}: {parts}")
        model.train()

    t0 = time.time()
    it = start
    # Ctrl-C and SIGTERM (kill PID) save a checkpoint after the current step; SIGINT is caught
    # even where a shell ignored it for a background job.
    stop = _StopFlag()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        for s in previous:
            signal.signal(s, stop)
    bar = tqdm(total=t.iterations, initial=start, disable=not progress, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 60.0, desc=t.name)
    window_t, window_n, window_loss = time.time(), 0, [0.0, 0.0, 0.0, 0.0]
    stream = batches(dataset, start, t.batch, t.workers)
    try:
        model.train()
        while it < t.iterations:
            if stop.requested:
                raise KeyboardInterrupt
            if n_stages(it) != current_stages:
                grow_stages(model, current_stages, n_stages(it))
                current_stages = n_stages(it)
                if ema is not None:  # the average restarts from the grown model
                    ema = make_ema(model, t.ema_decay)
            batch = next(stream)
            rainy, clean, rain = (x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                                  for x in batch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                pred, stages = model(rainy, return_stages=True, stages=current_stages)
            terms = criterion(rainy, clean, rain, pred.float(), [s.float() for s in stages])
            if not math.isfinite(float(terms.total.detach())):
                good = ckpt_path if ckpt_path.exists() else "(none yet)"
                raise TrainingError(
                    f"loss became {float(terms.total.detach())} at iteration {it + 1}; stopped, the last "
                    f"good checkpoint is {good}; lower optim.lr or set optim.grad_clip and --resume"
                )
            opt.zero_grad(set_to_none=True)
            terms.total.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            it += 1
            window_n += 1
            for k, v in enumerate((float(terms.total.detach()), terms.stage_mse, terms.l1, terms.perceptual)):
                window_loss[k] += v
            bar.update(1)
            if it % t.log_every == 0 or it == t.iterations:
                now = time.time()
                rate = window_n / max(now - window_t, 1e-9)
                mean = [v / window_n for v in window_loss]
                bar.set_postfix(loss=f"{mean[0]:.4f}", refresh=False)
                row = {
                    "iteration": it, "loss": mean[0], "stage_mse": mean[1], "l1": mean[2],
                    "perceptual": mean[3], "lr": opt.param_groups[0]["lr"], "it_per_s": round(rate, 4),
                    "stages": current_stages,
                    "wall_s": round(wall + now - t0, 1),
                }
                _append_csv(out / "log.csv", row)
                board.log(row, it, "train")
                window_t, window_n, window_loss = now, 0, [0.0, 0.0, 0.0, 0.0]
            if it % t.checkpoint_every == 0 or it == t.iterations:
                save_checkpoint(it)
            if cfg.val.every and (it % cfg.val.every == 0 or it == t.iterations):
                validate(it)
    except KeyboardInterrupt:
        bar.close()
        board.close()
        save_checkpoint(it)
        raise TrainingInterruptedError(f"interrupted at iteration {it}; checkpoint saved to {ckpt_path} "
                                       "(continue with --resume)") from None
    finally:
        if in_main_thread:
            for s, handler in previous.items():
                signal.signal(s, handler)
    bar.close()
    board.close()
    wall += time.time() - t0
    weights = out / f"{t.name}.safetensors"
    extra = {"iterations": str(it), "trainer": code_version()}
    if ema is not None:  # the run's weights are the average; the raw ones are kept beside them
        save_weights(model.to(device="cpu", memory_format=torch.contiguous_format),
                     out / f"{t.name}.raw.safetensors", extra={**extra, "weights": "raw"})
        model = averaged(ema)
        extra["weights"] = f"ema {t.ema_decay:g}"
    save_weights(model.to(device="cpu", memory_format=torch.contiguous_format), weights, extra=extra)
    card = model_card(cfg, dataset, it, wall, last_val, weights, use_bf16)
    _write_json(card, out / f"{t.name}.card.json")
    print(f"data: {dataset.summary()}", flush=True)
    return weights


