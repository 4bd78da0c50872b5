import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import CUDA

from config import get_config
from kernels import Dropout, depthwise_conv
from model import QuartzNet, chunked_log_probs, fold_batch_norm, num_params, widen
from tokenizer import Tokenizer
from train import ctc_loss

VOCAB = Tokenizer().vocab


@pytest.mark.parametrize("preset, published", [("base", 6.7e6), ("large", 18.9e6)])
def test_parameter_counts_match_the_paper(preset, published):
    model = QuartzNet(get_config(preset), len(VOCAB))
    assert abs(num_params(model) - published) / published < 0.02


def test_small_fits_its_budget():
    assert 1e6 <= num_params(QuartzNet(get_config("small"), len(VOCAB))) <= 3e6


def test_shapes_and_lengths(device):
    cfg = get_config("tiny")
    model = QuartzNet(cfg, len(VOCAB)).to(device).eval()
    features = torch.randn(3, cfg.n_mels, 101, device=device)
    log_probs, out_lengths = model(features, torch.tensor([101, 60, 7], device=device))
    assert log_probs.shape == (3, 51, len(VOCAB)) and log_probs.device.type == device
    assert out_lengths.tolist() == [51, 30, 4]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 51, device=device), atol=1e-5)


def test_padding_does_not_change_the_output(device):
    """An utterance gives the same log-probs alone and padded inside a longer batch."""
    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = QuartzNet(cfg, len(VOCAB)).to(device).eval()
    short = torch.randn(1, cfg.n_mels, 40, device=device)
    alone, n = model(short, torch.tensor([40], device=device))
    batch = torch.zeros(2, cfg.n_mels, 90, device=device)
    batch[0, :, :40] = short[0]
    batch[1] = torch.randn(cfg.n_mels, 90)
    together, lengths = model(batch, torch.tensor([40, 90], device=device))
    assert lengths[0] == n[0]
    assert torch.allclose(alone[0], together[0, : n[0]], atol=1e-5)


@pytest.mark.parametrize("frames, chunk", [(403, 31), (64, 6000)])
def test_chunked_pass_equals_a_whole_file_pass(frames, chunk, device):
    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = QuartzNet(cfg, len(VOCAB))
    random_batch_norm_statistics(model)  # not the identity
    model.to(device).eval()
    features = torch.randn(cfg.n_mels, frames, device=device)
    with torch.no_grad():
        whole, _ = model(features[None], torch.tensor([frames], device=device))
    chunked = chunked_log_probs(model, features, chunk)
    assert chunked.shape == whole[0].shape
    assert torch.allclose(chunked, whole[0], atol=1e-4)
    assert chunk >= frames or chunk + model.receptive_field < frames  # the context was really cut


def random_batch_norm_statistics(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()


@pytest.mark.parametrize(
    "stride, dilation, kernel, frames", [(1, 1, 5, 37), (2, 1, 11, 101), (4, 1, 7, 50), (1, 2, 9, 41)]
)
def test_depthwise_conv_and_its_gradients_equal_conv1d(stride, dilation, kernel, frames, device):
    """The time-major conv (on a CPU: oneDNN's fast path, with its hand-written weight gradient)
    against torch's Conv1d on (B, C, T) with autograd, in float64 and float32."""
    for dtype, tol in [(torch.float64, 1e-10), (torch.float32, 1e-4)]:
        torch.manual_seed(0)
        x = torch.randn(3, frames, 6, dtype=dtype, device=device, requires_grad=True)  # (B, T, C)
        w = torch.randn(6, 1, kernel, dtype=dtype, device=device, requires_grad=True)
        y = depthwise_conv(x, w, stride, dilation)
        ref = F.conv1d(x.transpose(1, 2), w, None, stride, dilation * (kernel - 1) // 2, dilation, 6)
        ref = ref.transpose(1, 2)
        assert y.shape == ref.shape == (3, -(-frames // stride), 6)
        grad = torch.randn_like(ref)
        gx, gw = torch.autograd.grad((y * grad).sum(), (x, w))
        rx, rw = torch.autograd.grad((ref * grad).sum(), (x, w))
        for a, b in [(y, ref), (gx, rx), (gw, rw)]:
            assert torch.allclose(a, b, rtol=tol, atol=tol), (a - b).abs().max()


def test_folded_batch_norm_gives_the_same_outputs():
    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = QuartzNet(cfg, len(VOCAB))
    random_batch_norm_statistics(model)
    model.eval()
    features, lengths = torch.randn(2, cfg.n_mels, 120), torch.tensor([120, 77])
    with torch.no_grad():
        before, _ = model(features, lengths)
        after, _ = fold_batch_norm(model)(features, lengths)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4)


def test_a_widened_model_computes_the_same_function():
    """More channels in every layer, copied from the narrower model: the same log-probs in eval mode
    and, without dropout, in training mode (batch norm of batch statistics) and the same loss gradient
    reaching the input; a narrower target is a one-line error."""
    cfg = get_config("tiny", dropout=0.0)
    wide_cfg = get_config("tiny", dropout=0.0, c1_channels=80, block_channels=(64, 128), c3_channels=200)
    torch.manual_seed(0)
    narrow, wide = QuartzNet(cfg, len(VOCAB)), QuartzNet(wide_cfg, len(VOCAB))
    random_batch_norm_statistics(narrow)
    wide.load_state_dict(widen(narrow.state_dict(), wide))
    assert num_params(wide) > 1.2 * num_params(narrow)
    features, lengths = torch.randn(2, cfg.n_mels, 120), torch.tensor([120, 77])
    for train in (False, True):
        outputs = []
        for model in (narrow.train(train), wide.train(train)):
            x = features.clone().requires_grad_()
            log_probs, _ = model(x, lengths)
            (grad,) = torch.autograd.grad(log_probs[:, :, 1].sum(), x)
            outputs.append((log_probs, grad))
        (a, ga), (b, gb) = outputs
        assert torch.allclose(a, b, atol=1e-4), (train, (a - b).abs().max())
        assert torch.allclose(ga, gb, atol=1e-4), (train, (ga - gb).abs().max())
    with pytest.raises(ValueError, match="fewer channels"):
        widen(wide.state_dict(), QuartzNet(cfg, len(VOCAB)))


def test_dropout_drops_at_its_rate_and_keeps_the_mean(device):
    drop = Dropout(0.1).train()
    x = torch.ones(200_000, device=device)
    y = drop(x)
    assert abs((y == 0).float().mean().item() - 0.1) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01
    assert torch.unique(y).tolist() == [0.0, pytest.approx(1 / 0.9)]
    assert not torch.equal(drop(x), y)  # a new mask each call
    assert torch.equal(drop.eval()(x), x)


@pytest.mark.parametrize("device", [CUDA])
def test_training_step_on_the_device_equals_the_cpu_reference(device):
    """The same fp32 forward pass, CTC loss and gradients on the GPU as on the CPU (whose depthwise
    convs and dropout take the hand-written paths, which step aside on CUDA)."""
    cfg = get_config("tiny", dropout=0.0)
    torch.manual_seed(0)
    model = QuartzNet(cfg, len(VOCAB))
    random_batch_norm_statistics(model)
    features, lengths = torch.randn(3, cfg.n_mels, 120), torch.tensor([120, 97, 64])
    tokens, token_lengths = torch.randint(1, len(VOCAB), (3, 20)), torch.tensor([20, 15, 9])
    results = []
    for on in ("cpu", device):
        net = copy.deepcopy(model).to(on).train()
        log_probs, out_lengths = net(features.to(on), lengths.to(on))
        loss = ctc_loss(log_probs, out_lengths, tokens.to(on), token_lengths.to(on))
        loss.backward()
        grads = {name: p.grad.cpu() for name, p in net.named_parameters()}
        results.append((log_probs.detach().cpu(), loss.item(), grads, net.c1.norm.running_var.cpu()))
    (lp, loss, grads, var), (lp_d, loss_d, grads_d, var_d) = results
    assert torch.allclose(lp, lp_d, atol=1e-4), (lp - lp_d).abs().max()
    assert loss == pytest.approx(loss_d, rel=1e-5)
    assert torch.allclose(var, var_d, rtol=1e-5)  # batch norm's running statistics alike
    for name, g in grads.items():
        assert torch.allclose(g, grads_d[name], rtol=1e-3, atol=1e-5 * g.abs().max()), name
