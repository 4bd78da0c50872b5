"""Transcribe a folder of audio with a trained checkpoint.

    python inference.py --data_dir X --out preds                       # X/audio/<id>.<ext> -> preds/<id>.txt
    python inference.py --data_dir X --out preds --decoder beam_lm --lm lm.arpa
    python inference.py --data_dir data --dataset librispeech --split dev-clean --out preds

Predictions are written batch by batch, so an interrupted run keeps what it has done. A file that
cannot be read gets a warning and an empty prediction; the run goes on. When transcriptions exist
the corpus WER/CER is printed at the end.
"""

import argparse
import re
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from calc_metrics import corpus_error_rates, format_report
from data import (
    VOCAB,
    DataError,
    DurationBatchSampler,
    SpeechDataset,
    collate,
    download_file,
    file_digest,
    read_data,
)
from decode import decode_batch, format_table, grid_search_lm
from train import load_checkpoint, model_from_checkpoint, utterance_log_probs

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "model.pt"
MIN_SECONDS = 0.1  # shorter clips carry no speech the model can recognise


def download_weights(source: str, dest: str | Path, sha256: str | None = None) -> Path:
    """Fetch a checkpoint from a Google Drive link or file id (with gdown) or a plain http(s) URL,
    and check its sha256 when given. An existing file with the right hash is not fetched again."""
    dest = Path(dest)
    if dest.exists() and (sha256 is None or file_digest(dest, "sha256") == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    drive_id = _drive_id(source)
    if drive_id:
        import gdown

        if gdown.download(id=drive_id, output=str(tmp), quiet=False) is None:
            raise RuntimeError(f"could not download {source}: is the file shared as 'anyone with the link'?")
    else:
        download_file(source, tmp)
    if sha256 is not None and file_digest(tmp, "sha256") != sha256:
        tmp.unlink()
        raise RuntimeError(f"{source}: sha256 mismatch (expected {sha256}); the download was removed")
    tmp.replace(dest)
    return dest


def _drive_id(source: str) -> str | None:
    """A Google Drive file id from a share link, an open?id= link or a bare id; None for other URLs."""
    for pattern in (r"drive\.google\.com/file/d/([\w-]+)", r"drive\.google\.com/.*[?&]id=([\w-]+)"):
        if match := re.search(pattern, source):
            return match.group(1)
    return source if re.fullmatch(r"[\w-]{25,}", source) else None


def resolve_checkpoint(source: str, sha256: str | None = None) -> Path:
    """A local path as is; a URL or Drive link is downloaded to checkpoints/downloaded/ first."""
    if Path(source).exists() or not (source.startswith(("http://", "https://")) or _drive_id(source)):
        return Path(source)
    name = _drive_id(source) or Path(source.split("?")[0]).name or "model"
    return download_weights(
        source, DEFAULT_CHECKPOINT.parent / "downloaded" / f"{Path(name).stem}.pt", sha256
    )


class SafeDataset(SpeechDataset):
    """Like SpeechDataset, but a file that fails to load becomes an item with an error message
    instead of an exception that would stop the whole run."""

    def __getitem__(self, index: int) -> dict:
        utt = self.utterances[index]
        try:
            if utt.duration < MIN_SECONDS:
                raise DataError(f"{utt.path}: {utt.duration:.3f} s is too short (at least {MIN_SECONDS} s)")
            return super().__getitem__(index)
        except DataError as e:
            return dict(id=utt.id, error=str(e), text=utt.text)


def collate_safe(items: list[dict]) -> dict:
    good = [it for it in items if "error" not in it]
    batch = collate(good) if good else dict(ids=[], texts=[])
    batch["errors"] = [(it["id"], it["error"], it["text"]) for it in items if "error" in it]
    return batch


def load_utterances(args) -> list:
    if args.dataset == "librispeech":
        return read_data(args.split, data_root=args.data_dir)
    for folder in args.data_dir.split(","):  # several folders may be joined with commas
        if not Path(folder).expanduser().is_dir():
            raise DataError(f"{folder}: folder not found")
    return read_data(args.data_dir)


def decoding_settings(args, checkpoint: dict, cfg) -> dict:
    """Command line over the checkpoint's tuned settings over the config's. A checkpoint names its
    LM relative to its own folder, so the shipped model finds the shipped LM from anywhere."""
    settings = dict(decoder="greedy", beam_size=cfg.beam_size, lm=cfg.lm, alpha=cfg.alpha, beta=cfg.beta)
    settings.update(checkpoint.get("decoding", {}))
    chosen = {k: getattr(args, k) for k in settings if getattr(args, k) is not None}
    settings.update(chosen)
    if args.tune:
        settings["decoder"] = "beam_lm"
    lm = settings["lm"]
    if lm and not Path(lm).exists() and (Path(args.checkpoint).parent / lm).exists():
        settings["lm"] = str(Path(args.checkpoint).parent / lm)
    if settings["decoder"] == "beam_lm" and not (settings["lm"] and Path(settings["lm"]).exists()):
        if "decoder" in chosen or args.tune:
            raise ValueError(f"beam_lm decoding needs --lm PATH to an ARPA file (got {settings['lm']!r})")
        print(f"warning: the checkpoint's LM {lm!r} is missing; decoding with beam search and no LM")
        settings["decoder"] = "beam"
    if settings["decoder"] != "beam_lm":
        settings["lm"] = None
    return settings


def tune(kept: list, refs: dict, decoding: dict, args) -> dict:
    """Grid-search the LM weight and word bonus; prints the table, returns the best row."""
    kept = [(uid, lp) for uid, lp in kept if refs.get(uid)]
    if not kept:
        sys.exit("error: --tune needs transcriptions")
    print(f"tuning alpha x beta on {len(kept)} utterances (beam {decoding['beam_size']})")
    rows = grid_search_lm(
        [lp for _, lp in kept], [refs[uid] for uid, _ in kept], VOCAB, decoding["lm"],
        args.alphas, args.betas, beam_size=decoding["beam_size"],
    )  # fmt: skip
    print(format_table(rows))
    return min(rows, key=lambda r: (r["wer"], r["cer"]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Transcribe audio files with a trained QuartzNet model.")
    parser.add_argument(
        "--data_dir", required=True, help="DIR with audio/ (+ transcriptions/), or a LibriSpeech folder"
    )
    parser.add_argument("--out", default="preds", help="folder for <id>.txt predictions")
    parser.add_argument(
        "--checkpoint", default=str(DEFAULT_CHECKPOINT), help="path, URL or Google Drive link"
    )
    parser.add_argument("--sha256", default=None, help="expected sha256 of a downloaded checkpoint")
    parser.add_argument("--dataset", choices=["custom", "librispeech"], default="custom")
    parser.add_argument("--split", default="test-clean", help="LibriSpeech split with --dataset librispeech")
    parser.add_argument(
        "--decoder", choices=["greedy", "beam", "beam_lm"], default=None, help="default: the checkpoint's"
    )
    parser.add_argument("--beam_size", type=int, default=None)
    parser.add_argument("--lm", default=None, help="ARPA language model for beam_lm")
    parser.add_argument("--alpha", type=float, default=None, help="LM weight")
    parser.add_argument("--beta", type=float, default=None, help="word insertion bonus")
    parser.add_argument(
        "--tune", action="store_true", help="grid-search alpha/beta on this (validation!) data"
    )
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.9, 1.2, 1.5])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--batch_seconds", type=float, default=200.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num_workers", type=int, default=2)
    args = parser.parse_args(argv)

    try:
        utterances = load_utterances(args)
        checkpoint = load_checkpoint(resolve_checkpoint(args.checkpoint, args.sha256))
    except FileNotFoundError as e:
        sys.exit(f"error: {e}; train one with train.py, or pass --checkpoint PATH")
    except (ValueError, DataError, RuntimeError, OSError) as e:
        sys.exit(f"error: {e}")
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    model, cfg = model_from_checkpoint(checkpoint, device)
    try:
        decoding = decoding_settings(args, checkpoint, cfg)
    except ValueError as e:
        sys.exit(f"error: {e}")
    decoder = decoding["decoder"]

    with warnings.catch_warnings(record=True) as caught:  # collect 'skipped' warnings to report once
        warnings.simplefilter("always")
        dataset = SafeDataset(utterances, cfg, train=False, need_text=False)
    for w in caught:
        print(f"warning: {w.message}")
    skipped_ids = {u.id for u in utterances} - {u.id for u in dataset.utterances}
    sampler = DurationBatchSampler(
        [u.duration for u in dataset.utterances], args.batch_seconds, shuffle=False
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_safe, num_workers=args.num_workers
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    refs = {u.id: u.text for u in utterances if u.text is not None}
    hyps, failed, kept = {}, [], []
    for uid in sorted(skipped_ids):  # unreadable or empty files: an empty prediction keeps ids aligned
        (out / f"{uid}.txt").write_text("\n", encoding="utf-8")
        failed.append(uid)
    print(f"transcribing {len(dataset)} files with {decoder} decoding on {device}")
    if decoder == "beam_lm":
        print(
            f"LM {decoding['lm']}, alpha {decoding['alpha']}, beta {decoding['beta']}, beam {decoding['beam_size']}"
        )
    for batch in tqdm(loader, desc="inference", unit="batch"):
        for uid, error, _ in batch["errors"]:
            print(f"warning: {error}; writing an empty prediction")
            (out / f"{uid}.txt").write_text("\n", encoding="utf-8")
            failed.append(uid)
        if not batch["ids"]:
            continue
        per_utt = utterance_log_probs(model, batch, device)
        if args.tune:
            kept += list(zip(batch["ids"], per_utt))
            continue
        texts = decode_batch(
            per_utt,
            decoder,
            decoding["beam_size"],
            VOCAB,
            decoding["lm"],
            decoding["alpha"],
            decoding["beta"],
        )
        for uid, text in zip(batch["ids"], texts):
            (out / f"{uid}.txt").write_text(text + "\n", encoding="utf-8")
            hyps[uid] = text
    if args.tune:
        return tune(kept, refs, decoding, args)
    print(
        f"wrote {len(hyps) + len(failed)} predictions to {out}"
        + (f" ({len(failed)} failed)" if failed else "")
    )
    result = dict(predictions=len(hyps), failed=len(failed))
    if refs:
        ids = sorted(refs)
        metrics = corpus_error_rates([refs[i] for i in ids], [hyps.get(i, "") for i in ids])  # failed: empty
        print(format_report(metrics))
        result.update(metrics)
    return result


if __name__ == "__main__":
    main()
