"""Action distributions against torch.distributions (an independent implementation of the same densities)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution
from torch.distributions import Categorical as TorchCategorical

from thrust_cli.learn.distributions import Categorical, Gaussian
from thrust_cli.learn.policies import make_policy
from thrust_cli.run.config import compose_config


def test_categorical_matches_torch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(64, 5)
    actions, logp = Categorical().sample(logits)
    ref = TorchCategorical(logits=logits)
    torch.testing.assert_close(logp, ref.log_prob(actions))
    new_logp, entropy = Categorical().evaluate(logits, actions)
    torch.testing.assert_close(new_logp, ref.log_prob(actions))
    torch.testing.assert_close(entropy, ref.entropy())


def test_gaussian_without_squash_matches_normal_and_clips_env_actions() -> None:
    torch.manual_seed(0)
    dist = Gaussian(2, [-2.0, -1.0], [2.0, 1.0], log_std_init=-0.3)
    mean = torch.randn(128, 2)
    u, logp = dist.sample(mean)
    ref = Normal(mean, dist.log_std.exp().expand_as(mean))
    torch.testing.assert_close(logp, ref.log_prob(u).sum(-1))
    new_logp, entropy = dist.evaluate(mean, u)
    torch.testing.assert_close(new_logp, logp)
    torch.testing.assert_close(entropy, ref.entropy().sum(-1))
    env = dist.to_env(u * 5)
    assert (env[:, 0].abs() <= 2).all() and (env[:, 1].abs() <= 1).all()
    torch.testing.assert_close(env, torch.maximum(torch.minimum(u * 5, dist.high), dist.low))


def test_gaussian_with_tanh_squash_has_the_change_of_variables_log_prob() -> None:
    torch.manual_seed(0)
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    dist = Gaussian(2, low, high, squash=True)
    mean = torch.randn(256, 2)
    u, logp = dist.sample(mean)
    env = dist.to_env(u)
    ref = TransformedDistribution(
        Normal(mean, dist.log_std.exp().expand_as(mean)),
        [TanhTransform(), AffineTransform(loc=(low + high) / 2, scale=(high - low) / 2)],
    )
    keep = u.abs().max(-1).values < 4  # TanhTransform's inverse loses precision near the bounds
    torch.testing.assert_close(logp[keep], ref.log_prob(env).sum(-1)[keep], rtol=1e-4, atol=1e-4)
    assert (env >= low).all() and (env <= high).all()
    # stable far in the tails, where 1 - tanh(u)^2 underflows
    far = torch.tensor([[30.0, -30.0]])
    assert torch.isfinite(dist.evaluate(torch.zeros(1, 2), far)[0]).all()


def test_squash_needs_finite_bounds() -> None:
    with pytest.raises(ValueError, match="finite action bounds"):
        Gaussian(1, [-math.inf], [math.inf], squash=True)


def test_box_action_space_builds_a_gaussian_head_with_a_learned_log_std() -> None:
    cfg = compose_config(["policy.squash=true", "policy.log_std_init=-0.5"], with_hydra=False)
    policy = make_policy((3,), 1, cfg.policy, box=([-2.0], [2.0]))
    assert isinstance(policy.dist, Gaussian) and policy.dist.squash
    assert "dist.log_std" in policy.state_dict()
    torch.testing.assert_close(policy.dist.log_std.detach(), torch.tensor([-0.5]))
    mean, value = policy(torch.zeros(4, 3))
    assert mean.shape == (4, 1) and value.shape == (4,)


def test_squashed_gaussian_builds_on_the_meta_device_and_still_checks_its_bounds() -> None:
    """train's preflight builds the policy under ``torch.device("meta")`` (shapes only): the bound check must not
    read tensor values there (`thrust train env=pendulum policy.squash=true` failed with 'Tensor.item() cannot
    be called on meta tensors')."""
    with torch.device("meta"):
        dist = Gaussian(1, [-2.0], [2.0], squash=True)
        assert dist.low.device.type == "meta"
        with pytest.raises(ValueError, match="finite action bounds"):
            Gaussian(1, [-float("inf")], [2.0], squash=True)
