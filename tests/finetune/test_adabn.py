"""AdaBN (`finetune.adabn`): the target's own batch-norm statistics, mapping target onto source."""

from __future__ import annotations

import torch
from torch import nn

from transferkit.finetune.adabn import adapt_batchnorm


# -- AdaBN ----------------------------------------------------------------------------------------
def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)


def test_adabn_gives_the_target_its_own_statistics() -> None:
    torch.manual_seed(0)
    source, target = torch.randn(32, 3, 4, 4), torch.randn(32, 3, 4, 4) * 3.0 + 5.0
    bn = nn.BatchNorm2d(3)
    mean_s, var_s = _stats(source)
    bn.running_mean.copy_(mean_s)  # the running statistics are the source's: AdaBN proper
    bn.running_var.copy_(var_s)
    info = adapt_batchnorm(bn, [source[:16], source[16:]], [target[:16], target[16:]], bn)
    mean_t, var_t = _stats(target)
    assert info["layers"] == 1
    assert torch.allclose(bn.running_mean, mean_t, atol=1e-5)
    assert torch.allclose(bn.running_var, var_t, atol=1e-4)


def test_adabn_with_other_running_statistics_maps_target_onto_source() -> None:
    """Running statistics that are nobody's (the pretrained ones): the target comes out as the source did."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    for m in net:
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    net.eval()
    source = torch.randn(64, 3, 6, 6)
    target = torch.randn(64, 3, 6, 6) * 3.0 + torch.tensor([4.0, -3.0, 2.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        before_s, before_t = net(source), net(target)
    gap = [(a - b).abs().max() for a, b in zip(_stats(before_s), _stats(before_t), strict=True)]
    assert max(gap) > 1.0  # the shift is seen at the output
    adapt_batchnorm(net, [source], [target], net)
    with torch.no_grad():
        after_t = net(target)
    for got, want in zip(_stats(after_t), _stats(before_s), strict=True):
        assert torch.allclose(got, want, atol=0.05)


def test_a_layer_that_normalises_and_activates_keeps_its_activation_while_adapted() -> None:
    """timm's `BatchNormAct2d` (EfficientNet, MobileNet…) applies its activation inside the BatchNorm module:
    the pass over the target must run the layer's own forward, so the layers above see activated inputs."""
    from timm.layers import BatchNormAct2d

    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), BatchNormAct2d(4, act_layer=nn.ReLU), nn.Conv2d(4, 4, 1),
                        BatchNormAct2d(4, act_layer=nn.Identity))
    net.eval()
    source = torch.randn(64, 3, 6, 6)
    target = torch.randn(64, 3, 6, 6) * 3.0 + torch.tensor([4.0, -3.0, 2.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        net[1].running_mean.copy_(net[0](source).mean((0, 2, 3)))  # the source's statistics: AdaBN proper
        net[1].running_var.copy_(net[0](source).var((0, 2, 3), unbiased=False))
        hidden = net[:3](source)
        net[3].running_mean.copy_(hidden.mean((0, 2, 3)))
        net[3].running_var.copy_(hidden.var((0, 2, 3), unbiased=False))
        before_s = net(source)
    adapt_batchnorm(net, [source], [target], net)
    with torch.no_grad():
        after_t = net(target)
        # the second layer's statistics are those of the target's *activated* first-layer outputs
        want = net[:3](target)
    assert torch.allclose(net[3].running_mean, want.mean((0, 2, 3)).float(), atol=1e-4)
    for got, expected in zip(_stats(after_t), _stats(before_s), strict=True):
        assert torch.allclose(got, expected, atol=0.05)


def test_adapting_a_timm_network_to_its_own_inputs_changes_little() -> None:
    """A target that is the source: the statistics come back where they were (an EfficientNet, whose
    BatchNorm layers activate; the pass normalises with each batch's statistics, hence not exactly)."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("test_efficientnet", pretrained=False, num_classes=5).eval()
    x = torch.randn(48, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
    info = adapt_batchnorm(net, [x[:16], x[16:32], x[32:]], [x[:16], x[16:32], x[32:]], net)
    with torch.no_grad():
        after = net(x)
    assert info["layers"] > 5
    assert float((after - before).abs().max()) < 0.05 * float(before.abs().max())
