"""Train a QuartzNet CTC model.

    python train.py --preset small                                   # LibriSpeech train-clean-100 / dev-clean
    python train.py --preset small --train_data PATH/train-clean-5 --val_speakers 19 32 --max_steps 5000
    python train.py --resume --out_dir runs/default                  # continue exactly where it stopped
    python train.py plot runs/a runs/b --out curves.png              # loss / WER / CER / LR curves
    python train.py export runs/a/best.pt checkpoints/model.pt --decoder beam_lm --lm lm.arpa.gz  # model.py

The loop is written out top to bottom: data, model, optimiser, then steps with periodic validation
and checkpoints. Checkpoints are written atomically (temporary file, then rename), so a crash or
Ctrl-C at any moment leaves the last good one in place.
"""

import argparse
import math
import random
import signal
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from audio import HOP_LENGTH, SAMPLE_RATE, DataError
from calc_metrics import EXIT_WARNINGS, corpus_error_rates
from config import Config, add_config_args, config_from_args, config_from_dict, overrides_from_args
from data import DurationBatchSampler, SpeechDataset, collate, make_output_dir, read_data, speaker_of
from decode import DecodingOptions, decode_batch, decoder_pool
from model import (
    QuartzNet,
    export_main,
    load_checkpoint,
    num_params,
    pick_device,
    save_checkpoint,
    utterance_log_probs,
)
from tokenizer import BLANK, Tokenizer

# ----------------------------------------------------------------------------- optimisation


class NovoGrad(torch.optim.Optimizer):
    """NovoGrad (Ginsburg et al., 2019): Adam-like, but the second moment is one scalar per layer
    (the squared gradient norm), which QuartzNet was trained with."""

    def __init__(self, params, lr=0.01, betas=(0.95, 0.5), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                grad_sq = p.grad.float().pow(2).sum()
                if not state:
                    state["m"] = torch.zeros_like(p)
                    state["v"] = grad_sq.clone()
                else:
                    state["v"].mul_(beta2).add_(grad_sq, alpha=1 - beta2)
                g = p.grad / (state["v"].sqrt() + group["eps"])
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state["m"].mul_(beta1).add_(g)
                p.add_(state["m"], alpha=-group["lr"])


def make_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    # no weight decay on norms and biases
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    groups = [dict(params=decay, weight_decay=cfg.weight_decay), dict(params=no_decay, weight_decay=0.0)]
    if cfg.optimizer == "novograd":
        return NovoGrad(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use novograd or adamw")


def get_lr(step: int, cfg: Config) -> float:
    """Linear warmup, then cosine decay to min_lr at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def ctc_loss(log_probs, out_lengths, tokens, token_lengths) -> torch.Tensor:
    """Mean over the batch of the per-utterance CTC loss divided by its transcript length."""
    return F.ctc_loss(
        log_probs.transpose(0, 1), tokens, out_lengths, token_lengths, blank=BLANK, zero_infinity=True
    )


# ----------------------------------------------------------------------------- validation


@torch.no_grad()
def evaluate(model, loader, device, cfg: Config, tokenizer: Tokenizer) -> tuple[dict, list[dict], dict]:
    """Greedy (and beam, no LM) WER/CER over a loader, per-utterance examples, and the loader's
    first batch (its spectrogram goes to the logs without reading it again)."""
    model.eval()
    ids, refs, all_log_probs, first_batch = [], [], [], None
    for batch in loader:
        if not batch["ids"]:  # every file in it failed to load (named by the dataset's warnings)
            continue
        first_batch = first_batch or batch
        ids += batch["ids"]
        refs += batch["texts"]
        all_log_probs += utterance_log_probs(model, batch, device)
    model.train()
    greedy = [
        tokenizer.decode(t) for t in decode_batch(all_log_probs, tokenizer.vocab, DecodingOptions("greedy"))
    ]
    m = corpus_error_rates(refs, greedy)
    metrics = {"val/wer": m["wer"], "val/cer": m["cer"]}
    if cfg.beam_size > 1:
        with decoder_pool() as pool:
            beam = decode_batch(all_log_probs, tokenizer.vocab, DecodingOptions("beam", cfg.beam_size), pool)
        b = corpus_error_rates(refs, [tokenizer.decode(t) for t in beam])
        metrics.update({"val/beam_wer": b["wer"], "val/beam_cer": b["cer"]})
    examples = []
    for i in random.Random(0).sample(range(len(refs)), min(cfg.num_examples, len(refs))):
        e = corpus_error_rates([refs[i]], [greedy[i]])
        examples.append(dict(id=ids[i], target=refs[i], prediction=greedy[i], cer=e["cer"], wer=e["wer"]))
    return metrics, examples, first_batch


def first_waveform(dataset: SpeechDataset, batch: dict):
    """The audio (N,) of a batch's first utterance as the model heard it (augmented when training)."""
    index = next(i for i, u in enumerate(dataset.utterances) if u.id == batch["ids"][0])
    return dataset.waveform(index)


# ----------------------------------------------------------------------------- main


def _stop(signum, frame):
    raise KeyboardInterrupt  # `kill`, a notebook's stop button or a job scheduler save like Ctrl-C


def catch_stop_signals() -> dict:
    """Make SIGTERM, and SIGINT even where a background shell ignores it, raise KeyboardInterrupt.
    Returns the previous handlers for `signal.signal` to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers
    return {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _stop),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
    }


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a QuartzNet CTC speech recognizer.")
    add_config_args(parser)
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="CHECKPOINT",
        help="continue from CHECKPOINT (default: OUT_DIR/last.pt)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["plot"]:
        from logger import plot_main

        return plot_main(argv[1:])
    if argv[:1] == ["export"]:
        return export_main(argv[1:])
    args = parse_args(argv)

    # -------- config: from the command line, or from the checkpoint being resumed
    checkpoint = None
    if args.resume is not None:
        out_dir = getattr(args, "out_dir", Config.out_dir)
        checkpoint = load_checkpoint(args.resume or Path(out_dir) / "last.pt")
        cfg = config_from_dict({**checkpoint["config"], **overrides_from_args(args)})
        tokenizer = Tokenizer.from_state_dict(checkpoint["tokenizer"])
    else:
        cfg, tokenizer = config_from_args(args), Tokenizer()
    out_dir = make_output_dir(cfg.out_dir, "--out_dir")
    device = pick_device(cfg.device)
    device_type = torch.device(device).type
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    # -------- data
    train_utts = read_data(cfg.train_data, cfg.data_root)
    val_utts = read_data(cfg.val_data, cfg.data_root) if cfg.val_data else []
    if cfg.val_speakers:
        held_out = set(cfg.val_speakers)
        val_utts += [u for u in train_utts if speaker_of(u.id) in held_out]
        train_utts = [u for u in train_utts if speaker_of(u.id) not in held_out]
    train_set = SpeechDataset(train_utts, cfg, tokenizer, train=True)
    sampler = DurationBatchSampler(
        [u.duration for u in train_set.utterances], cfg.batch_seconds, seed=cfg.seed
    )
    # A new worker each epoch picks up the dataset's epoch (it seeds the augmentations). "spawn": a
    # forked worker would copy, page by page, the gigabytes of freed activation memory in this process.
    loader_args = dict(
        collate_fn=collate,
        num_workers=cfg.num_workers,
        persistent_workers=False,
        multiprocessing_context="spawn" if cfg.num_workers > 0 else None,
        pin_memory=device_type == "cuda",  # page-locked batches: copied to the GPU while it computes
    )
    val_loader = None
    if val_utts:
        val_set = SpeechDataset(val_utts, cfg, tokenizer)
        val_batches = DurationBatchSampler(
            [u.duration for u in val_set.utterances], cfg.batch_seconds, shuffle=False
        )
        val_loader = torch.utils.data.DataLoader(val_set, batch_sampler=val_batches, **loader_args)
    hours = sum(u.duration for u in train_set.utterances) / 3600
    print(f"train: {len(train_set)} utterances ({hours:.2f} h); validation: {len(val_utts)} utterances")

    # -------- model and optimiser
    model = QuartzNet(cfg, len(tokenizer)).to(device)
    optimizer = make_optimizer(model, cfg)
    step, epoch, epoch_batch, best_wer, metrics = 0, 0, 0, float("inf"), {}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, epoch, epoch_batch = checkpoint["step"], checkpoint["epoch"], checkpoint["epoch_batch"]
        best_wer = checkpoint.get("best_wer", best_wer)
        print(f"resumed from step {step} (epoch {epoch}, batch {epoch_batch})")
    print(
        f"model: {num_params(model) / 1e6:.2f} M parameters, receptive field {model.receptive_field} frames"
    )
    use_amp = device_type == "cuda"
    # bf16 from Ampere on; older GPUs (T4, V100) run fp16 with a loss scaler. Not
    # torch.cuda.is_bf16_supported(): it says yes on a T4 too, where bf16 is emulated and slow.
    bf16 = use_amp and torch.cuda.get_device_capability(device)[0] >= 8
    amp_dtype = torch.bfloat16 if bf16 else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not bf16)

    from logger import RunLogger

    log = RunLogger(cfg, out_dir)

    def save(name: str, **extra):
        state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(), config=cfg.to_dict())
        state.update(tokenizer=tokenizer.state_dict(), step=step, epoch=epoch, epoch_batch=epoch_batch)
        save_checkpoint(out_dir / name, dict(state, best_wer=best_wer, **extra))

    def validate(train_batch):
        metrics, examples, val_batch = evaluate(model, val_loader, device, cfg, tokenizer)
        shown = {"val": (val_set, val_batch)} | ({"train": (train_set, train_batch)} if train_batch else {})
        log.log_validation(
            step,
            metrics,
            examples=examples,
            spectrograms={
                k: b["features"][0, :, : b["feature_lengths"][0]].numpy() for k, (_, b) in shown.items()
            },
            audio={k: first_waveform(dataset, b) for k, (dataset, b) in shown.items()},
            sample_rate=SAMPLE_RATE,
        )
        minutes = (time.time() - start_time) / 60
        tqdm.write(
            f"step {step} ({minutes:.1f} min): " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        )
        return metrics

    # -------- training loop
    start_time = time.time()
    if val_loader is not None and step == 0:
        metrics = validate(None)  # the untrained baseline, so every curve starts at step 0
    model.train()
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    last_batch, audio_seconds, t0, unreadable = None, 0.0, time.time(), set()
    previous_handlers = catch_stop_signals()
    try:
        while step < cfg.max_steps:
            train_set.set_epoch(epoch)
            sampler.set_epoch(epoch, start_batch=epoch_batch)
            loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, **loader_args)
            for batch in loader:
                for uid, error in batch["errors"]:  # named once; the count goes to the final line
                    if uid not in unreadable:
                        unreadable.add(uid)
                        tqdm.write(f"warning: skipped in training: {error}")
                if not batch["ids"]:
                    epoch_batch += 1
                    continue
                lr = get_lr(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                torch.manual_seed(cfg.seed + step)  # dropout depends on the step only: resumable
                with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=use_amp):
                    log_probs, out_lengths = model(
                        batch["features"].to(device, non_blocking=True),
                        batch["feature_lengths"].to(device, non_blocking=True),
                    )
                loss = ctc_loss(
                    log_probs,
                    out_lengths,
                    batch["tokens"].to(device, non_blocking=True),
                    batch["token_lengths"].to(device, non_blocking=True),
                )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    model.parameters(), cfg.grad_clip
                )  # norm before clipping
                scaler.step(optimizer)
                scaler.update()
                step, epoch_batch = step + 1, epoch_batch + 1
                last_batch = batch
                audio_seconds += int(batch["feature_lengths"].sum()) * HOP_LENGTH / SAMPLE_RATE

                if step % cfg.log_every == 0:
                    elapsed, t0 = time.time() - t0, time.time()
                    speed, audio_seconds = audio_seconds / max(elapsed, 1e-9), 0.0
                    log.log(
                        step,
                        {
                            "train/loss": loss.item(),
                            "train/lr": lr,
                            "train/grad_norm": grad_norm.item(),
                            "train/audio_sec_per_sec": speed,
                            "train/epoch": epoch,
                        },
                    )
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", audio_x=f"{speed:.0f}")
                bar.update(1)
                if step % cfg.save_every == 0:
                    save("last.pt")
                if val_loader is not None and (step % cfg.eval_every == 0 or step == cfg.max_steps):
                    metrics = validate(last_batch)
                    if metrics["val/wer"] < best_wer:
                        best_wer = metrics["val/wer"]
                        save("best.pt", val=metrics)
                    save("last.pt")
                if step >= cfg.max_steps:
                    break
            else:
                epoch, epoch_batch = epoch + 1, 0
    except KeyboardInterrupt:
        save("last.pt")
        log.close()
        print(
            f"\ninterrupted: saved {out_dir / 'last.pt'} at step {step}; continue with --resume --out_dir {out_dir}"
        )
        sys.exit(130)
    except BaseException:
        log.close(exit_code=1)  # marks the run as failed; the last checkpoint stays as it was
        raise
    finally:
        bar.close()
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    save("last.pt")
    log.close()
    skipped = f" ({len(unreadable)} unreadable file(s) skipped, named above)" if unreadable else ""
    print(f"done: {step} steps; checkpoints in {out_dir}{skipped}")
    return dict(step=step, best_wer=best_wer, unreadable=len(unreadable), **metrics)


if __name__ == "__main__":
    try:
        result = main()
    except (DataError, ValueError, OSError) as e:  # bad input: one clear line, no traceback
        sys.exit(f"error: {e}")
    sys.exit(EXIT_WARNINGS if isinstance(result, dict) and result.get("unreadable") else 0)
