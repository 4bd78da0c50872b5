import os
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import peak_hz, tone_speech, write_custom_dir, write_librispeech

from audio import audio_seconds, load_audio, log_mel_spectrogram
from cli import DataError
from config import get_config
from data import (
    CustomDirDataset,
    DurationBatchSampler,
    LibriSpeechDataset,
    collate,
    lower_priority,
    read_custom_dir,
    read_data,
)
from tokenizer import Tokenizer, normalize_text

TOKENIZER = Tokenizer()
VOCAB = TOKENIZER.vocab
text_to_ids, ids_to_text = TOKENIZER.encode, TOKENIZER.decode


def test_normalize_text():
    assert normalize_text("  Hello, WORLD!  It's  “fine” — isn't it?") == "hello world it's fine isn't it"
    assert normalize_text("Café naïve") == "cafe naive"
    assert normalize_text("'quoted' rock'n'roll") == "quoted rock'n'roll"


def test_text_ids_roundtrip_and_blank():
    assert VOCAB[0] == "" and len(VOCAB) == 29
    ids = text_to_ids("it's a b")
    assert 0 not in ids
    assert ids_to_text(ids) == "it's a b"
    assert ids_to_text([0, ids[0], 0]) == "i"


def test_unknown_characters_are_named():
    with pytest.raises(ValueError, match=r"\['1', '2'\]"):
        text_to_ids("route 12")


@pytest.mark.parametrize("ext, rate", [("wav", 8000), ("flac", 22050), ("mp3", 44100), ("ogg", 16000)])
def test_load_audio_resamples_any_format(tmp_path, ext, rate):
    seconds = 1.5
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    stereo = np.stack([tone, tone], axis=1)
    path = tmp_path / f"x.{ext}"
    sf.write(path, stereo, rate)
    audio = load_audio(path)
    assert audio.ndim == 1 and audio.dtype == np.float32
    assert abs(len(audio) - seconds * 16000) < 0.02 * 16000  # mp3 adds a few ms of padding
    assert abs(peak_hz(audio) - 440) < 5  # still a 440 Hz tone


def test_load_audio_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="bad.wav"):
        load_audio(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="empty.wav"):
        load_audio(empty)
    with pytest.raises(DataError, match="missing.wav: no such audio file"):
        load_audio(tmp_path / "missing.wav")


def test_log_mel_shape_and_normalisation():
    features = log_mel_spectrogram(tone_speech("bad cab"), n_mels=40)
    n = len(tone_speech("bad cab"))
    assert features.shape == (40, n // 160 + 1)
    assert torch.allclose(features.mean(dim=1), torch.zeros(40), atol=1e-4)


def test_custom_dir_dataset(tmp_path):
    root = write_custom_dir(tmp_path / "d", {"u1": "bad cab", "u2": "face"})
    sf.write(root / "audio" / "u3.flac", tone_speech("dad", 22050), 22050)  # no transcription
    (root / "audio" / "notes.txt").write_text("not audio")
    with pytest.warns(UserWarning, match="unknown extensions"):
        utterances = read_custom_dir(root)
    assert [u.id for u in utterances] == ["u1", "u2", "u3"]
    assert utterances[0].text == "bad cab" and utterances[2].text is None
    cfg = get_config("tiny")
    dataset = CustomDirDataset(root, cfg)  # inference: transcriptions optional
    item = dataset[2]
    assert item["features"].shape[0] == cfg.n_mels and len(item["tokens"]) == 0
    assert item.keys() == {"id", "features", "tokens", "text"}  # no waveform travels with the batch
    with pytest.warns(UserWarning, match="1 utterance.*no transcription"):
        training = CustomDirDataset(root, cfg, need_text=True)
    assert len(training) == 2


def test_custom_dir_bad_files_are_skipped_and_counted(tmp_path):
    root = write_custom_dir(tmp_path / "d", {"good": "bad cab"})
    (root / "audio" / "broken.wav").write_bytes(b"RIFF....garbage")
    sf.write(root / "audio" / "silent.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.warns(UserWarning) as record:
        dataset = CustomDirDataset(root, get_config("tiny"))
    messages = " ".join(str(w.message) for w in record)
    assert "unreadable audio" in messages and "broken.wav" in messages
    assert [u.id for u in dataset.utterances] == ["good"]


def test_skipped_transcripts_name_the_characters_no_token_spells(tmp_path):
    root = write_custom_dir(tmp_path / "d", {"good": "bad cab", "greek": "bad cab", "mixed": "face"})
    (root / "transcriptions" / "greek.txt").write_text("bad \u03c9 cab\n")  # ω
    (root / "transcriptions" / "mixed.txt").write_text("face 5 \u5317\n")  # 5 is spelled out; 北 is not
    with pytest.warns(UserWarning) as record:
        dataset = CustomDirDataset(root, get_config("tiny"), need_text=True)
    (message,) = [str(w.message) for w in record]
    assert "skipped 2 utterance(s): characters outside the vocabulary (\u03c9 \u5317): " in message
    assert "greek.wav" in message and "mixed.wav" in message
    assert [u.id for u in dataset.utterances] == ["good"]


def test_custom_dir_clear_errors(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        read_custom_dir(tmp_path / "missing")
    (tmp_path / "noaudio").mkdir()
    with pytest.raises(DataError, match="no audio/ folder"):
        read_custom_dir(tmp_path / "noaudio")
    (tmp_path / "empty" / "audio").mkdir(parents=True)
    with pytest.raises(DataError, match="no audio files"):
        read_custom_dir(tmp_path / "empty")


def test_librispeech_layout(tmp_path):
    split = write_librispeech(tmp_path / "LibriSpeech" / "dev-clean")
    dataset = LibriSpeechDataset(str(tmp_path), "dev-clean", get_config("tiny"), download=False)
    assert [u.id for u in dataset.utterances] == ["19-198-0000", "19-198-0001"]
    assert dataset.utterances[0].text == "bad cab"
    assert ids_to_text(dataset[0]["tokens"].tolist()) == "bad cab"
    assert (split / "manifest.tsv").exists()  # cached for the next run
    assert [u.id for u in read_data(str(split))] == ["19-198-0000", "19-198-0001"]


def test_read_data_rejects_unknown_sources(tmp_path):
    with pytest.raises(DataError, match="not a LibriSpeech split"):
        read_data(str(tmp_path / "nowhere"))


def test_duration_batches_respect_the_budget_and_cover_everything():
    rng = np.random.default_rng(0)
    durations = list(rng.uniform(1, 15, size=200))
    sampler = DurationBatchSampler(durations, batch_seconds=60, seed=3)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(max(durations[i] for i in b) * len(b) <= 60 for b in batches)
    sampler.set_epoch(1)
    assert sampler.batches() != batches  # a new order each epoch
    sampler.set_epoch(0, start_batch=5)
    assert list(sampler) == [[(0, i) for i in b] for b in batches[5:]]  # resuming skips what was done


def test_collate_pads():
    items = [
        dict(id="a", features=torch.ones(4, 10), tokens=torch.tensor([3, 4]), text="ab"),
        dict(id="b", features=torch.ones(4, 6), tokens=torch.tensor([5]), text="c"),
    ]
    batch = collate(items + [dict(id="c", error="c.wav: cannot read audio", text=None)])
    assert batch["ids"] == ["a", "b"] and batch["errors"] == [("c", "c.wav: cannot read audio")]
    assert "audio" not in batch
    assert batch["features"].shape == (2, 4, 10)
    assert batch["feature_lengths"].tolist() == [10, 6]
    assert batch["features"][1, :, 6:].abs().sum() == 0
    assert batch["tokens"].tolist() == [[3, 4], [5, 0]]
    assert batch["token_lengths"].tolist() == [2, 1]


def test_augmentation_only_in_training(tmp_path):
    root = write_custom_dir(tmp_path / "d", {"u1": "bad cab"})
    cfg = get_config("tiny", speed_prob=1.0, freq_masks=2, time_masks=2)
    val = CustomDirDataset(root, cfg, train=False)[0]["features"]
    # the written audio's features: not sped up (its frame count), masked (a masked band or frame breaks
    # unit variance) or noised (within the wav's 16-bit rounding, 0.1; the augmentations move them 1.8+)
    audio = tone_speech("bad cab")
    assert val.shape == (cfg.n_mels, len(audio) // 160 + 1)
    assert torch.allclose(val.std(dim=1), torch.ones(cfg.n_mels), atol=1e-3)
    assert (val - log_mel_spectrogram(audio, cfg.n_mels)).abs().max() < 0.2
    train = CustomDirDataset(root, cfg, train=True, need_text=True)
    augmented = train[0]["features"]
    assert augmented.shape != val.shape or not torch.equal(augmented, val)
    assert torch.equal(train[0]["features"], augmented)  # seeded: reproducible


def test_transcripts_too_long_for_ctc_are_skipped_for_the_stride_and_fastest_speed(tmp_path):
    """face.wav has 36 feature frames: 9 output frames at stride 4 (8 at speed x1.1), 5 at stride 8."""
    root = write_custom_dir(tmp_path / "d", {"u1": "bad cab dad", "face": "face"})
    (root / "transcriptions" / "face.txt").write_text("face beds\n")  # 9 tokens for 4 letters of audio
    still = dict(speed_prob=0.0)
    assert len(CustomDirDataset(root, get_config("tiny", stride=4, **still), train=True, need_text=True)) == 2
    with pytest.warns(
        UserWarning, match=r"skipped 1 utterance\(s\): transcript too long for stride 8 .*face.wav"
    ):
        dataset = CustomDirDataset(root, get_config("tiny", stride=8, **still), train=True, need_text=True)
    assert [u.id for u in dataset.utterances] == ["u1"] and [u.id for u in dataset.skipped] == ["face"]
    # speed perturbation may play it 1.1 times faster in some epoch: too short then, so never used
    fast = get_config("tiny", stride=4, speed_prob=0.5, speed_max=1.1)
    with pytest.warns(UserWarning, match="too long for stride 4 at speed x1.1"):
        assert len(CustomDirDataset(root, fast, train=True, need_text=True)) == 1
    assert len(CustomDirDataset(root, fast, need_text=True)) == 2  # validation plays it as it is


class _Niceness(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, index):
        return os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process priorities")
def test_data_workers_run_at_the_lowest_priority():
    """On a CPU the workers must yield to the model's threads; this process keeps its own priority."""
    before = os.nice(0)
    loader = torch.utils.data.DataLoader(_Niceness(), num_workers=1, worker_init_fn=lower_priority)
    assert [int(n) for n in loader] == [19]
    assert os.nice(0) == before


# phone and browser recordings: (extension, PyAV container, codec, sample rate, channels, tone in Hz)
PHONE_FORMATS = [
    ("m4a", "ipod", "aac", 44100, 2, 440.0),
    ("aac", "adts", "aac", 22050, 1, 660.0),
    ("webm", "webm", "libopus", 48000, 2, 550.0),
    ("opus", "opus", "libopus", 48000, 1, 330.0),
]


def encode_with_av(path, container, codec, rate, channels, tone, seconds=1.5):
    """Write a tone as a real compressed file, as a phone or a browser would (PyAV encodes)."""
    import av  # a requirement (requirements.txt): its absence fails, not skips

    t = np.arange(int(seconds * rate)) / rate
    wave = np.repeat((0.3 * np.sin(2 * np.pi * tone * t)).astype(np.float32)[None], channels, axis=0)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def test_phone_and_web_formats_load_with_their_rate_length_and_content(tmp_path):
    """.m4a, .aac, .webm and .opus, which soundfile cannot read (or, for .opus, not by that name), are
    decoded with PyAV: the duration from the header, 16 kHz mono audio of that length, the tone kept;
    a custom-layout folder lists them like any other audio."""
    (tmp_path / "audio").mkdir()
    for ext, container, codec, rate, channels, tone in PHONE_FORMATS:
        path = tmp_path / "audio" / f"{ext}_clip.{ext}"
        encode_with_av(path, container, codec, rate, channels, tone)
        audio = load_audio(path)
        assert audio.ndim == 1 and audio.dtype == np.float32, ext
        assert abs(len(audio) / 16000 - 1.5) < 0.1, (ext, len(audio))  # codecs pad a few ms
        assert abs(audio_seconds(path) - 1.5) < 0.1, ext
        peak = peak_hz(audio)
        assert abs(peak - tone) < 5, (ext, peak)
        assert np.sqrt(np.mean(audio[4000:-4000] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.1), ext
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "unknown extension"
        utterances = read_custom_dir(tmp_path)
    assert sorted(u.id for u in utterances) == ["aac_clip", "m4a_clip", "opus_clip", "webm_clip"]
    assert all(1.4 < u.duration < 1.6 for u in utterances)
    (tmp_path / "audio" / "broken.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A not really")
    with pytest.raises(DataError, match="broken.m4a: cannot read audio"):
        load_audio(tmp_path / "audio" / "broken.m4a")
    assert audio_seconds(tmp_path / "audio" / "broken.m4a") == -1
