"""The small inference checkpoint of a training run: half-precision weights without the optimiser,
with its decoding settings (DecodingOptions, whole) and its LM copied beside it.

    python train.py export RUN/best.pt checkpoints/model.pt --decoder beam_lm --lm lm.arpa.gz [--tuned tune.json]
    python tools/export.py ...   (the same)
"""

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from decode import DecodingOptions, add_decoding_args  # noqa: E402
from lexicon import lexicon_beside  # noqa: E402
from model import load_checkpoint, save_checkpoint  # noqa: E402


def export_main(argv: list[str]) -> Path:
    """`python train.py export RUN/best.pt checkpoints/model.pt [--lm LM --tuned RUN/tune/tune.json]`: a small
    half-precision checkpoint for inference (no optimizer), with its decoding settings and LM beside it
    (and the LM's pronunciation lexicon, lexicon.lexicon_beside, where it has one)."""
    parser = argparse.ArgumentParser(prog="train.py export", description=export_main.__doc__)
    parser.add_argument("source")
    parser.add_argument("dest")
    add_decoding_args(parser)  # the LM is copied beside dest
    parser.add_argument("--tuned", default="", help="tune.json of `inference.py --tune`: its best settings")
    args = vars(parser.parse_args(argv))
    checkpoint, dest = load_checkpoint(args["source"]), Path(args["dest"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    options = DecodingOptions(**{f.name: args[f.name] for f in dataclasses.fields(DecodingOptions)})
    if args["tuned"]:
        options = dataclasses.replace(options, **json.loads(Path(args["tuned"]).read_text())["best"])
    lm = options.lm
    if lm:
        if not Path(lm).is_file():  # even where it would be its own copy beside dest
            raise FileNotFoundError(f"--lm {lm}: no such file")
        options = dataclasses.replace(options, lm=Path(lm).name)  # relative to the checkpoint's folder
        # the LM's pronunciation lexicon (for phoneme models) goes with it
        for src in [Path(lm)] + [lexicon_beside(lm)] * lexicon_beside(lm).exists():
            if src.resolve() != (dest.parent / src.name).resolve():
                shutil.copyfile(src, dest.parent / src.name)
    state = dict(
        model={  # inference needs no auxiliary output layer
            k: v.half() if v.is_floating_point() else v
            for k, v in checkpoint["model"].items()
            if not k.startswith("aux.")
        },
        **{k: checkpoint[k] for k in ("config", "tokenizer", "step", "epoch", "epoch_batch")},
        val=checkpoint.get("val", {}),
        decoding=dataclasses.asdict(options),
    )
    save_checkpoint(dest, state)
    print(f"{dest}: {dest.stat().st_size / 2**20:.1f} MiB, decoding {state['decoding']}")
    return dest


if __name__ == "__main__":
    export_main(sys.argv[1:])
