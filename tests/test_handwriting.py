"""Digits written by hand (housenum.handwriting): every digit and variant draws, as tall as asked,
reproducibly from a seed, and no two writings are the same."""

import numpy as np
import pytest

from housenum import handwriting as H


def _hand(**kw) -> H.Hand:
    base = dict(pen=0.1, slant=0.1, wobble=0.02, width=0.6, rise=0.0, chalk=0.0, variants=(0,) * 10)
    return H.Hand(**{**base, **kw})


@pytest.mark.parametrize("digit", range(10))
def test_every_variant_draws_a_digit_as_tall_as_asked(digit):
    for variant in range(H.VARIANTS[digit]):
        hand = _hand(variants=tuple(variant if d == digit else 0 for d in range(10)))
        mask, top = H.hand_glyph(digit, hand, 60, np.random.default_rng(variant))
        assert mask.dtype == np.float32 and mask.max() == 1.0
        # the ink spans about the asked height (skeletons fill 0..1, the pen adds its width, jitter a little)
        assert 50 <= mask.shape[0] <= 80, (digit, variant, mask.shape)
        assert -12 <= top <= 8, (digit, variant, top)
        # a stroke, not a blob: a 1 is narrow, every digit leaves most of its box empty
        assert mask.shape[1] >= 6 and (mask > 0.5).mean() < 0.6


def test_variants_differ_and_writings_vary_but_repeat_from_a_seed():
    rng = np.random.default_rng(0)
    hand = H.pick_hand(rng)
    a = H.hand_glyph(4, hand, 60, np.random.default_rng(1))[0]
    b = H.hand_glyph(4, hand, 60, np.random.default_rng(1))[0]
    c = H.hand_glyph(4, hand, 60, np.random.default_rng(2))[0]
    assert np.array_equal(a, b)  # same seed, same writing
    assert a.shape != c.shape or not np.array_equal(a, c)  # the same writer's two 4s differ a little
    closed, open_ = (H.hand_glyph(4, _hand(variants=(0, 0, 0, 0, v, 0, 0, 0, 0, 0)), 60, np.random.default_rng(3))[0]
                     for v in (0, 1))
    assert closed.shape != open_.shape or not np.array_equal(closed, open_)


def test_writers_vary_and_chalk_leaves_gaps():
    rng = np.random.default_rng(5)
    hands = [H.pick_hand(rng) for _ in range(200)]
    assert len({h.variants for h in hands}) > 50
    assert 0.1 < np.mean([h.chalk > 0 for h in hands]) < 0.4
    assert min(h.pen for h in hands) >= 0.06 and max(h.pen for h in hands) <= 0.17
    solid = H.hand_glyph(8, _hand(), 60, np.random.default_rng(0))[0]
    chalk = H.hand_glyph(8, _hand(chalk=0.4), 60, np.random.default_rng(0))[0]
    assert chalk.sum() < 0.8 * solid.sum()


def test_a_non_digit_is_refused():
    with pytest.raises(ValueError, match="a digit 0..9"):
        H.hand_glyph(10, _hand(), 40, np.random.default_rng(0))
