"""Transcribe a folder of audio with a trained checkpoint: `transcribe(...)` in this process, or
from the command line. `--tune` tunes the LM fusion settings on labelled data instead.

    python inference.py --data_dir X --out preds                       # X/audio/<id>.<ext> -> preds/<id>.txt
    python inference.py --data_dir X --out preds --decoder beam_lm --lm lm.arpa
    python inference.py --data_dir X --out preds --format json srt vtt   # + <id>.json, .srt, .vtt with times
    python inference.py --data_dir data --dataset librispeech --split dev-clean --out preds
    python inference.py --data_dir VAL --tune --lm lm.arpa.gz --out runs/r/tune   # -> runs/r/tune/tune.json
    arecord -f S16_LE -r 16000 -c 1 | python inference.py --live -     # words printed as they settle (live.py)

--data_dir may also be one audio file; audio in subfolders has ids like sub/x (-> preds/sub/x.txt).
Predictions are written batch by batch, each whole or not at all, so an interrupted run (Ctrl-C:
exit 130; kill) keeps what it has done, and a rerun into the same --out with the same weights and
decoding settings resumes it: its predictions newer than their audio are kept (--overwrite to redo
them). After a finished run, a rerun does everything again. A file that cannot be read gets a
warning and an empty prediction; the run goes on. Recordings of any length run in bounded memory.
When transcriptions exist, the corpus WER/CER of every file is printed at the end, paired and warned
about as calc_metrics.py does for the same folders. Exit codes as calc_metrics.py's: 0 every file
used; 3 done, but some file was skipped, missing, extra or empty (a "warning:" line names each); 1
nothing done (one "error:" line); 2 bad command line; 130 interrupted.

--format adds word times and confidences (json) and subtitles (srt, vtt) beside each <id>.txt, which is
always written (scores and resuming read it); see transcript.py and docs/transcripts.md.

A phoneme model (`--tokenizer phone`) writes words through a pronunciation lexicon: --lexicon, else
the one beside its LM (lm.arpa.gz -> lm.lexicon.gz, see lexicon.py), else its training lexicon.
"""

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

import live
from calc_metrics import (
    align_ids,
    corpus_error_rates,
    format_report,
    left_out,
    pair,
    phoneme_error_rate,
    print_warnings,
    read_texts,
)
from cli import EXIT_INTERRUPTED, EXIT_USAGE, EXIT_WARNINGS, DataError, UsageError, atomic_path
from data import CustomDirDataset, DurationBatchSampler, LibriSpeechDataset, collate, make_output_dir
from decode import (
    DecodingOptions,
    add_decoding_args,
    decode_batch,
    decoder_pool,
    follow_parent,
    greedy_decode,
    load_lm,
    read_hotwords,
    unk_score,
)
from download import download, parse_link
from lexicon import lexicon_beside, load_lexicon, spoken
from model import load_checkpoint, load_model, pick_device, utterance_log_probs
from tokenizer import normalize_text
from transcript import FEATURE_SECONDS, FORMATS, render, words_with_times

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "model.pt"
DECODING_FLAGS = tuple(f.name for f in dataclasses.fields(DecodingOptions))
UNFINISHED_FILE = ".unfinished.json"  # in --out while a run writes there: what its predictions are made with


def resolve_checkpoint(source: str | Path, sha256: str | None = None) -> Path:
    """A local path as is; a URL or Google Drive link is downloaded (once, sha256-checked when given)."""
    if Path(source).exists() or parse_link(str(source))[0] == "local":
        return Path(source)
    return download(str(source), checksum=f"sha256:{sha256}" if sha256 else None, expect="checkpoint")


def decoding_options(checkpoint: dict, checkpoint_path: Path, **chosen) -> DecodingOptions:
    """Settings chosen here (those not None) over the checkpoint's tuned ones over the defaults. A
    checkpoint names its LM relative to its own folder, so the shipped model finds the shipped LM."""
    chosen = {k: v for k, v in chosen.items() if v is not None}
    settings = {**checkpoint.get("decoding", {}), **chosen}
    lm, lexicon = settings.get("lm", ""), settings.get("lexicon", "")
    if lm and not Path(lm).exists() and (checkpoint_path.parent / lm).exists():
        lm = str(checkpoint_path.parent / lm)
    if lexicon and not Path(lexicon).exists():
        lexicon = str(checkpoint_path.parent / lexicon)
    if not lexicon and lm and lexicon_beside(lm).exists():
        lexicon = str(lexicon_beside(lm))  # the LM's own, for any decoder
    options = DecodingOptions(**dict(settings, lm=lm, lexicon=lexicon))
    if options.decoder == "beam_lm" and not (options.lm and Path(options.lm).exists()):
        if "decoder" in chosen:
            raise ValueError(f"beam_lm decoding needs --lm PATH to an ARPA file (got {options.lm!r})")
        print(f"warning: the checkpoint's LM {options.lm!r} is missing; decoding with beam search and no LM")
        options = dataclasses.replace(options, decoder="beam")
    if options.decoder != "beam_lm":
        return dataclasses.replace(options, lm="")
    load_lm(options.lm)  # here, once: a damaged file stops the run before any audio is read
    return options


def _load(data_dir, checkpoint=DEFAULT_CHECKPOINT, sha256=None, dataset="custom", split="test-clean",
          device="auto", **decoding):  # fmt: skip
    """-> model, tokenizer, decoding options, the dataset and the device, with 'skipped' warnings printed."""
    if dataset != "librispeech":
        for folder in str(data_dir).split(","):  # several folders (or audio files) joined with commas
            if not Path(folder).expanduser().exists():
                raise DataError(f"{folder}: folder not found")
    path = resolve_checkpoint(checkpoint, sha256)
    state = load_checkpoint(path)
    options = decoding_options(state, path, **decoding)
    device = pick_device(device)
    model, cfg, tokenizer = load_model(state, device)
    if tokenizer.lexicon is not None and options.lexicon:
        tokenizer = tokenizer.with_lexicon(load_lexicon(options.lexicon))
    if tokenizer.lexicon is not None and options.hotwords and options.decoder != "greedy":
        try:
            tokenizer = tokenizer.with_lexicon(tokenizer.lexicon.favouring(read_hotwords(options.hotwords)))
        except ValueError as e:  # a word with no pronunciation
            raise ValueError(f"--hotwords: {e}") from None
    with warnings.catch_warnings(record=True) as caught:  # collect 'skipped' warnings to report once
        warnings.simplefilter("always")
        if dataset == "librispeech":
            data = LibriSpeechDataset(str(data_dir), split, cfg, tokenizer=tokenizer, need_text=False)
        else:
            data = CustomDirDataset(str(data_dir), cfg, tokenizer=tokenizer)
    for w in caught:
        print(f"warning: {w.message}")
    data.warnings = len(caught)
    return model, tokenizer, options, data, device


def _log_probs(model, data, batch_seconds: float, device, num_workers: int):
    """-> per batch: (ids, errors as (id, message), log-probs (T_i, V) per id)."""
    sampler = DurationBatchSampler([u.duration for u in data.utterances], batch_seconds, shuffle=False)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers, worker_init_fn=follow_parent
    )
    for batch in tqdm(loader, desc="inference", unit="batch"):
        yield batch["ids"], batch["errors"], utterance_log_probs(model, batch, device) if batch["ids"] else []


class Interrupted(Exception):
    """Ctrl-C during transcription; the message says how far it got."""


def prediction_path(out: Path, uid: str) -> Path:
    return out / f"{uid}.txt"  # an id "sub/x" (audio/sub/x.wav) -> OUT/sub/x.txt


def write_whole(path: Path, text: str) -> None:
    """A text file written whole or not at all: a run killed mid-write leaves the old one or none."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_prediction(out: Path, uid: str, text: str) -> None:
    """OUT/<id>.txt, whole or not at all: a run killed mid-write leaves no half prediction."""
    path = prediction_path(out, uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, text + "\n")


def write_transcripts(out: Path, uid: str, text: str, words: list, formats: tuple[str, ...]) -> None:
    """OUT/<id>.<format> for each format, each whole or not at all; the .txt last, so that a rerun
    keeps (is_done) only a recording whose every file was written."""
    for fmt in formats:
        if fmt != "txt":
            path = out / f"{uid}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_whole(path, render(fmt, text, words))
    write_prediction(out, uid, text)


def is_done(out: Path, utterance, since: float) -> bool:
    """A prediction of an unfinished run that a rerun keeps: not empty (a failed or silent file is
    tried again), written since that run began and newer than its audio."""
    path = prediction_path(out, utterance.id)
    try:
        stat = path.stat()
        return stat.st_size > 1 and stat.st_mtime >= max(Path(utterance.path).stat().st_mtime, since)
    except OSError:
        return False


def begin_run(
    out: Path, model, options: DecodingOptions, overwrite: bool, formats: tuple[str, ...] = ("txt",)
) -> float | None:
    """Note in OUT what this run's predictions are made with (a digest of the weights, the decoding
    settings, the formats written) until it finishes. -> when an unfinished run into OUT with the
    same weights and settings began, to resume it; None to transcribe everything (a finished run,
    other settings, or overwrite: another model's or decoder's predictions are never kept)."""
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    settings = dict(weights=digest.hexdigest(), decoding=dataclasses.asdict(options))
    if formats != ("txt",):  # the default leaves the note as it was
        settings["formats"] = list(formats)
    settings = json.dumps(settings, indent=1)
    path = out / UNFINISHED_FILE
    try:
        if not overwrite and path.read_text(encoding="utf-8") == settings:
            return path.stat().st_mtime
    except OSError:
        pass
    write_whole(path, settings)
    return None


def transcribe(
    data_dir, out="preds", checkpoint=DEFAULT_CHECKPOINT, *, batch_seconds=200.0, num_workers=2,
    overwrite=False, formats=("txt",), **kwargs,
) -> dict:  # fmt: skip
    """Transcribe a folder (see the module's docstring) to OUT/<id>.txt with a checkpoint (path, URL
    or Drive link), and OUT/<id>.<format> for each of formats ("json", "srt", "vtt": see
    transcript.py). An unfinished run into OUT with the same weights, decoding settings and formats is
    resumed (its predictions newer than their audio are kept) unless overwrite.
    kwargs: sha256 (of a downloaded checkpoint), dataset ("custom" or "librispeech" with split),
    device, and DecodingOptions fields (decoder, beam_size, lm, alpha, beta, ...) over the
    checkpoint's. -> dict(predictions, failed, warnings) and, with transcriptions, the corpus WER/CER
    of every file (also those kept) as calc_metrics.py would give it for OUT."""
    formats = (formats,) if isinstance(formats, str) else formats
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"--format {' '.join(unknown)}: choose from {', '.join(FORMATS)}")
    formats = tuple(dict.fromkeys(["txt", *formats]))  # in order, once each, the .txt always
    timed = formats != ("txt",)  # word times are asked of the decoders only when written
    model, tokenizer, options, data, device = _load(data_dir, checkpoint, **kwargs)
    out = make_output_dir(out, "--out")
    audio = data.utterances + data.skipped
    failed = [u.id for u in data.skipped]  # unreadable or empty: an empty prediction keeps ids aligned
    best_paths = {}  # phoneme models: id -> the best path's phonemes, for the phoneme error rate
    for uid in failed:
        write_transcripts(out, uid, "", [], formats)
    since = begin_run(out, model, options, overwrite, formats)
    kept = [u for u in data.utterances if since is not None and is_done(out, u, since)]
    if kept:
        print(
            f"resuming the unfinished run into {out}: keeping its {len(kept)} predictions (--overwrite to redo)"
        )
        kept_ids = {u.id for u in kept}
        data.utterances = [u for u in data.utterances if u.id not in kept_ids]
    print(f"transcribing {len(data)} files with {options.decoder} decoding on {device}")
    if options.decoder == "beam_lm":
        print(f"LM {options.lm}, alpha {options.alpha}, beta {options.beta}, beam {options.beam_size}")
    written = len(kept) + len(failed)
    use_pool = options.decoder != "greedy" and num_workers > 1 and len(data) > 1
    frame_seconds = model.stride * FEATURE_SECONDS  # one output frame
    pool = decoder_pool(options.lm, num_workers, tokenizer.lexicon) if use_pool else None
    try:
        for ids, errors, log_probs in _log_probs(model, data, batch_seconds, device, num_workers):
            for uid, error in errors:
                print(f"warning: {error}; writing an empty prediction")
                write_transcripts(out, uid, "", [], formats)
                failed.append(uid)
            decoded = decode_batch(log_probs, tokenizer.vocab, options, pool, tokenizer.lexicon, timed)
            if tokenizer.lexicon is not None:
                best_paths |= {u: tokenizer.phonemes(greedy_decode(lp)) for u, lp in zip(ids, log_probs)}
            for uid, result, lp in zip(ids, decoded, log_probs):
                token_ids, frames = result if timed else (result, None)
                words = words_with_times(token_ids, frames, lp, tokenizer, frame_seconds) if timed else []
                write_transcripts(out, uid, tokenizer.decode(token_ids), words, formats)
            written += len(ids) + len(errors)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: {written} of {len(audio)} files written; rerun to continue"
        ) from None
    finally:
        if pool is not None:
            pool.terminate()
    (out / UNFINISHED_FILE).unlink()  # finished: a rerun starts afresh
    notes = [f"{len(failed)} failed"] * bool(failed) + [f"{len(kept)} kept from before"] * bool(kept)
    print(f"wrote {written - len(kept)} predictions to {out}" + (f" ({', '.join(notes)})" if notes else ""))
    result = dict(predictions=written - len(failed), failed=len(failed), warnings=data.warnings)
    result.update(
        _score(data_dir, kwargs.get("dataset", "custom"), audio, out, result, tokenizer, best_paths)
    )
    return result


def _score(data_dir, dataset: str, audio: list, out: Path, result: dict, tokenizer, best_paths: dict) -> dict:
    """WER/CER of the predictions in OUT for this run's audio against every transcription given,
    paired by calc_metrics.py's rules and with its warnings (each one counted in result); for a
    phoneme model also the PER of the best paths decoded in this run (best_paths: id -> phonemes)."""
    refs = {u.id: u.text for u in audio if u.text is not None}  # LibriSpeech transcripts
    unreadable = []
    for folder in str(data_dir).split(",") if dataset == "custom" else []:
        text_dir = Path(folder).expanduser() / "transcriptions"
        if (text_dir.parent / "audio").is_dir() and text_dir.is_dir():  # also transcriptions without audio
            texts = read_texts(text_dir)
            refs |= align_ids(texts, [u.id for u in audio])
            unreadable += left_out(text_dir, texts)  # named when the data was read
    hyps = {u.id: prediction_path(out, u.id).read_text(encoding="utf-8").strip() for u in audio}
    ids, warnings, refs = pair(refs, hyps, skipped=unreadable)
    if not ids:
        return {}
    print_warnings(warnings)
    result["warnings"] += len(warnings)
    metrics = corpus_error_rates([refs[i] for i in ids], [hyps.get(i, "") for i in ids])
    print(format_report(metrics))
    if scored := [i for i in ids if i in best_paths]:  # the acoustic errors apart from the lexical ones
        refs_spoken = spoken([normalize_text(refs[i]) for i in scored], tokenizer.lexicon)
        metrics["per"] = phoneme_error_rate(refs_spoken, [best_paths[i] for i in scored])
        part = f" of {len(scored)} of the {len(ids)} files (the others kept or unreadable)" * (
            len(scored) < len(ids)
        )
        print(
            f"PER {100 * metrics['per']:.2f}%{part} (the best path's phonemes against the references' pronunciations)"
        )
    return metrics


# ----------------------------------------------------------------------------- live


def pcm_pieces(stream, piece_bytes: int = 8000):
    """A binary stream of raw 16-bit little-endian mono PCM -> float32 pieces (N,), as they come."""
    left = b""
    while chunk := stream.read(piece_bytes):
        data, left = left + chunk, b""
        if len(data) % 2:  # half a sample: kept for the next piece
            data, left = data[:-1], data[-1:]
        yield live.pcm16_to_float(data)


def transcribe_live(source="-", checkpoint=DEFAULT_CHECKPOINT, *, json_lines=False, out=None, device="cpu",
                    hop_seconds=live.HOP_SECONDS, lookahead_seconds=live.LOOKAHEAD_SECONDS) -> list:  # fmt: skip
    """Raw 16 kHz 16-bit mono PCM from stdin ("-") or a file -> its words printed to `out` (stdout) as
    they settle (see live.py): separated by spaces, or one JSON object a line ({"word", "start",
    "end", "confidence"}). Greedy decoding. -> the words (transcript.Word)."""
    out = out or sys.stdout
    model, _, tokenizer = load_model(load_checkpoint(resolve_checkpoint(checkpoint)), pick_device(device))
    options = dict(hop_seconds=hop_seconds, lookahead_seconds=lookahead_seconds)
    words = []
    with open(sys.stdin.fileno() if source == "-" else source, "rb", buffering=0, closefd=source != "-") as f:
        for w in live.transcribe_stream(
            pcm_pieces(f), model, tokenizer, device=model.c4.weight.device, **options
        ):
            if json_lines:
                out.write(json.dumps(dataclasses.asdict(w)) + "\n")
            else:
                out.write((" " if words else "") + w.word)
            out.flush()
            words.append(w)
    if not json_lines and words:
        out.write("\n")
    return words


# ----------------------------------------------------------------------------- tuning


def grid_search_lm(log_probs_list, references, tokenizer, options, grid: list[dict], pool=None) -> list[dict]:
    """WER/CER of LM-fused beam search at each point of grid (dicts of DecodingOptions fields, e.g.
    alpha, beta, unk_score): the point's rows with wer and cer added."""
    points = [dataclasses.replace(options, decoder="beam_lm", **point) for point in grid]
    per_utterance = decode_batch(
        log_probs_list, tokenizer.vocab, points, pool, tokenizer.lexicon
    )  # (N, grid)
    rows = []
    for g, point in enumerate(grid):
        rates = corpus_error_rates(references, [tokenizer.decode(ids[g]) for ids in per_utterance])
        rows.append(dict(point, wer=rates["wer"], cer=rates["cer"]))
    return rows


def by_error(row: dict) -> tuple[float, float]:
    """How tuning rows rank: by WER, ties by CER."""
    return row["wer"], row["cer"]


def search_grid(evaluate, axes: dict[str, list], start: dict, rounds: int = 2) -> tuple[dict, list[dict]]:
    """The best point of a grid (axes: name -> values) by evaluate(points) -> rows with wer and cer.
    -> (best point, every row evaluated).

    A grid no bigger than `rounds` line searches is decoded whole. A bigger one is line-searched from
    `start`: one setting at a time over its values, the others at their best so far, `rounds` times
    over the axes; far fewer decodings, but it can stop at a point that is only best along its lines
    (stage 13 with the books LM of titles spelled out: alpha 1.0, beta 0.5 at 25.20 %, where the grid
    had 0.8, 0 at 25.08 %)."""

    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    if len(points) <= rounds * sum(len(values) for values in axes.values()):
        rows = evaluate(points)
        found = min(rows, key=by_error)
        return {name: found[name] for name in axes}, rows
    rows_at: dict[tuple, dict] = {}
    best = dict(start)
    for _ in range(rounds):
        for name, values in axes.items():
            line = [dict(best, **{name: v}) for v in values]
            for row in evaluate([p for p in line if tuple(p.values()) not in rows_at]):
                rows_at[tuple(row[k] for k in best)] = row
            found = min((rows_at[tuple(p.values())] for p in line), key=by_error)
            best = {k: found[k] for k in best}
            print(f"{name} over {values}: best {best} (WER {100 * found['wer']:.2f} %)", flush=True)
    return best, list(rows_at.values())


def format_table(rows: list[dict]) -> str:
    """Tuning rows as an aligned text table, best WER marked with *."""
    best = min(range(len(rows)), key=lambda i: by_error(rows[i])) if rows else -1
    lines = ["alpha |  beta |   unk |    wer |    cer", "------+-------+-------+--------+-------"]
    for i, r in enumerate(rows):
        mark = " *" if i == best else ""
        lines.append(
            f"{r['alpha']:5.2f} | {r['beta']:5.2f} | {r.get('unk_score', 0):5.1f} | "
            f"{100 * r['wer']:5.2f}% | {100 * r['cer']:5.2f}%{mark}"
        )
    return "\n".join(lines)


def tune(data_dir, out, axes: dict[str, list], *, batch_seconds=200.0, num_workers=2, **kwargs) -> dict:
    """Tune LM fusion (axes: DecodingOptions field -> values, e.g. alpha, beta, unk_score) on labelled
    data by search_grid (the whole grid, or line searches from the checkpoint's settings): prints the
    table, writes it with the best point to OUT/tune.json and returns the best point. kwargs: as
    transcribe's."""
    model, tokenizer, options, data, device = _load(data_dir, **dict(kwargs, decoder="beam_lm"))
    refs = {u.id: u.text for u in data.utterances if u.text}
    kept = [(uid, lp) for ids, _, lps in _log_probs(model, data, batch_seconds, device, num_workers)
            for uid, lp in zip(ids, lps) if uid in refs]  # fmt: skip
    if not kept:
        raise DataError("--tune needs transcriptions")
    print(f"tuning {', '.join(axes)} on {len(kept)} utterances (beam {options.beam_size})")
    log_probs, references = [lp for _, lp in kept], [refs[u] for u, _ in kept]
    with decoder_pool(options.lm, max(num_workers, 1), tokenizer.lexicon) as pool:
        best, rows = search_grid(
            lambda grid: grid_search_lm(log_probs, references, tokenizer, options, grid, pool),
            axes,
            {name: getattr(options, name) for name in axes},
        )
    print(format_table(rows))
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "tune.json").write_text(json.dumps(dict(best=best, rows=rows), indent=1) + "\n")
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Transcribe audio files with a trained QuartzNet model.")
    parser.add_argument(
        "--data_dir", help="DIR with audio/ (+ transcriptions/), or a LibriSpeech folder (or --live)"
    )
    parser.add_argument(
        "--live",
        metavar="-",
        help="transcribe raw 16 kHz 16-bit mono PCM from stdin (-) or a file as it comes (greedy; see live.py)",
    )
    parser.add_argument("--hop", type=float, default=live.HOP_SECONDS, help="--live: seconds between passes")
    parser.add_argument(
        "--lookahead",
        type=float,
        default=live.LOOKAHEAD_SECONDS,
        help="--live: seconds a word waits to settle",
    )
    parser.add_argument(
        "--out", default="preds", help="folder for <id>.txt predictions (with --tune: tune.json)"
    )
    parser.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        choices=FORMATS,
        default=["txt"],
        help="files per recording: txt (always), json (words with times), srt, vtt (subtitles)",
    )
    parser.add_argument(
        "--checkpoint", default=str(DEFAULT_CHECKPOINT), help="path, URL or Google Drive link"
    )
    parser.add_argument("--sha256", default=None, help="expected sha256 of a downloaded checkpoint")
    parser.add_argument("--dataset", choices=["custom", "librispeech"], default="custom")
    parser.add_argument("--split", default="test-clean", help="LibriSpeech split with --dataset librispeech")
    add_decoding_args(parser, defaults=False)  # None: the checkpoint's setting, else the default
    parser.add_argument(
        "--tune", action="store_true", help="tune alpha, beta, unk_score on this (validation!) data"
    )
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    parser.add_argument(
        "--unk_scores", type=unk_score, nargs="+", default=[float("-inf"), -5.0, -3.0, -2.0, -1.0]
    )
    parser.add_argument("--batch_seconds", type=float, default=200.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--num_workers", type=int, default=2, help="processes for loading and for beam search"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="redo every file (by default a rerun resumes an unfinished run into --out)",
    )
    args = vars(parser.parse_args(argv))
    for flag, problem in [
        ("hop", not args["hop"] > 0 and "must be more than 0"),  # the words of config.check_config
        ("lookahead", not args["lookahead"] >= 0 and "must be 0 or more"),
        ("num_workers", not args["num_workers"] >= 0 and "must be 0 or more"),
    ]:
        if problem:  # said before anything is loaded, as a bad decoding setting is below
            print(f"error: --{flag} {args[flag]}: {problem}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
    source, hop, lookahead = args.pop("live"), args.pop("hop"), args.pop("lookahead")
    if source is not None:  # a stream: greedy decoding, words printed as they settle
        if args["formats"] not in (["txt"], ["json"]):
            parser.error("--live prints text or, with --format json, one JSON word a line")
        json_lines = args["formats"] == ["json"]
        try:
            words = transcribe_live(source, args["checkpoint"], json_lines=json_lines, device=args["device"],
                                    hop_seconds=hop, lookahead_seconds=lookahead)  # fmt: skip
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # the reader stopped (| head): done, quietly (as Python's docs advise)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except (FileNotFoundError, ValueError, OSError) as e:
            sys.exit(f"error: {e}")
        return dict(words=len(words))
    if args["data_dir"] is None:
        parser.error("the following arguments are required: --data_dir (or --live -)")
    data_dir, out, run_tune = args.pop("data_dir"), args.pop("out"), args.pop("tune")
    axes = dict(alpha=args.pop("alphas"), beta=args.pop("betas"), unk_score=args.pop("unk_scores"))
    try:  # a bad decoding setting is a bad command line: said before the model and data are loaded
        DecodingOptions(**{k: args[k] for k in DECODING_FLAGS if args[k] is not None})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    try:
        if run_tune:
            del args["overwrite"], args["formats"]
            return tune(data_dir, out, axes, **args)
        return transcribe(data_dir, out, **args)
    except UsageError as e:  # a flag only checkable once known what it asks for (--device mps)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}; train one with train.py, or pass --checkpoint PATH")
    except (ValueError, DataError, RuntimeError, OSError) as e:
        sys.exit(f"error: {e}")
    except Interrupted as e:
        print(f"\n{e}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        print("\ninterrupted; rerun to continue (predictions written are kept)", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    result = main()
    sys.exit(EXIT_WARNINGS if result.get("failed") or result.get("warnings") else 0)
