"""--passes / --tta: the mean over flips and rotations, each turned back."""

import pytest
import torch
from torch import nn

from sr.models import create_model
from sr.models.self_ensemble import DIHEDRAL, SelfEnsemble


def test_the_eight_transforms_are_distinct_and_each_inverse_undoes_its_forward():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    seen = set()
    for forward, inverse in DIHEDRAL:
        assert torch.equal(inverse(forward(x)), x)
        seen.add(tuple(forward(x).flatten().tolist()))
    assert len(seen) == 8


def test_an_orientation_blind_network_is_left_unchanged_and_a_biased_one_is_averaged():
    identity = SelfEnsemble(nn.Identity())
    x = torch.rand(1, 1, 6, 7)
    assert torch.allclose(identity(x), x)
    # A network that sees only its left column: the ensemble averages left, right, top and bottom.
    left = SelfEnsemble(lambda t: t[..., :1].expand_as(t))
    assert not torch.allclose(left(x), x[..., :1].expand_as(x))


def test_a_model_under_self_ensemble_keeps_its_output_shape_and_stays_close():
    torch.manual_seed(0)
    model, _ = create_model("fsrcnn-paper", 3, "y")
    x = torch.rand(1, 1, 10, 12)
    with torch.no_grad():
        single, ensemble = model(x), SelfEnsemble(model)(x)
    assert ensemble.shape == single.shape == (1, 1, 30, 36)
    assert not torch.equal(ensemble, single)


def test_fewer_passes_average_the_first_flips_in_mirror_pairs():
    x = torch.rand(1, 1, 6, 7)
    left = lambda t: t[..., :1].expand_as(t)  # noqa: E731 (a network that sees only its left column)
    two = SelfEnsemble(left, passes=2)(x)
    assert torch.allclose(two, (x[..., :1] + x[..., -1:]).expand_as(x) / 2)  # as it is, and flipped left-right
    four = SelfEnsemble(left, passes=4)(x)
    assert torch.allclose(four, two)  # upside down changes nothing for a column: the pairs agree
    assert not torch.allclose(SelfEnsemble(left, passes=8)(x), two)  # the rotations see rows
    assert torch.equal(SelfEnsemble(left, passes=1)(x), left(x))
    with pytest.raises(ValueError, match="one of"):
        SelfEnsemble(left, passes=3)
