import pytest
import torch

from config import get_config
from model import QuartzNet, chunked_log_probs, num_params
from tokenizer import Tokenizer

VOCAB = Tokenizer().vocab


@pytest.mark.parametrize("preset, published", [("base", 6.7e6), ("large", 18.9e6)])
def test_parameter_counts_match_the_paper(preset, published):
    model = QuartzNet(get_config(preset), len(VOCAB))
    assert abs(num_params(model) - published) / published < 0.02


def test_small_fits_its_budget():
    assert 1e6 <= num_params(QuartzNet(get_config("small"), len(VOCAB))) <= 3e6


def test_shapes_and_lengths():
    cfg = get_config("tiny")
    model = QuartzNet(cfg, len(VOCAB)).eval()
    features = torch.randn(3, cfg.n_mels, 101)
    log_probs, out_lengths = model(features, torch.tensor([101, 60, 7]))
    assert log_probs.shape == (3, 51, len(VOCAB))
    assert out_lengths.tolist() == [51, 30, 4]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 51), atol=1e-5)


def test_padding_does_not_change_the_output():
    """An utterance gives the same log-probs alone and padded inside a longer batch."""
    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = QuartzNet(cfg, len(VOCAB)).eval()
    short = torch.randn(1, cfg.n_mels, 40)
    alone, n = model(short, torch.tensor([40]))
    batch = torch.zeros(2, cfg.n_mels, 90)
    batch[0, :, :40] = short[0]
    batch[1] = torch.randn(cfg.n_mels, 90)
    together, lengths = model(batch, torch.tensor([40, 90]))
    assert lengths[0] == n[0]
    assert torch.allclose(alone[0], together[0, : n[0]], atol=1e-5)


@pytest.mark.parametrize("frames, chunk", [(403, 31), (64, 6000)])
def test_chunked_pass_equals_a_whole_file_pass(frames, chunk):
    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = QuartzNet(cfg, len(VOCAB))
    for m in model.modules():  # batch norm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    features = torch.randn(cfg.n_mels, frames)
    with torch.no_grad():
        whole, _ = model(features[None], torch.tensor([frames]))
    chunked = chunked_log_probs(model, features, chunk)
    assert chunked.shape == whole[0].shape
    assert torch.allclose(chunked, whole[0], atol=1e-4)
    assert chunk >= frames or chunk + model.receptive_field < frames  # the context was really cut
