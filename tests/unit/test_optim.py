"""Thrust's Adam equals torch.optim.Adam step by step, including across a learning-rate change."""

from __future__ import annotations

import copy

import torch

from thrust_cli.learn.optim import Adam


def test_adam_matches_torch_optim_adam() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    ref_net = copy.deepcopy(net)
    ours = Adam(net.parameters(), lr=3e-3, eps=1e-5)
    ref = torch.optim.Adam(ref_net.parameters(), lr=3e-3, eps=1e-5)
    for step in range(60):
        if step == 30:
            ours.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = 1e-3
        x = torch.randn(32, 5)
        for model, opt in ((net, ours), (ref_net, ref)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(net.parameters(), ref_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_adam_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(1)
    net = torch.nn.Linear(4, 2)
    opt = Adam(net.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(8, 4)).sum().backward()
        opt.step()
    clone = copy.deepcopy(net)
    restored = Adam(clone.parameters(), lr=0.5)
    restored.load_state_dict(opt.state_dict())
    x = torch.randn(8, 4)
    for model, o in ((net, opt), (clone, restored)):
        o.zero_grad()
        model(x).sum().backward()
        o.step()
    torch.testing.assert_close(net.weight, clone.weight)
    assert restored.step_count == opt.step_count == 6
