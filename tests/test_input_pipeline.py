"""make_distributed_dataset: the batches are exactly BatchOrder's, for any [start, end) across epochs."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from housenum.train import BatchOrder, make_distributed_dataset  # noqa: E402


@pytest.mark.parametrize("start,end", [(0, 25), (7, 31), (9, 10), (30, 30), (95, 104)])
def test_batches_are_batch_orders_rows_for_any_step_range(start, end):
    n, batch, seed = 105, 10, 3  # 10 steps per epoch, 5 rows left out of each
    images = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)  # each image holds its row number
    labels = np.arange(n * 6, dtype=np.int32).reshape(n, 6)
    got = list(make_distributed_dataset(tf.distribute.get_strategy(), images, labels, batch, seed, start, end))
    assert len(got) == end - start
    order = BatchOrder(n, batch, seed)
    for step, (x, y) in zip(range(start, end), got):
        rows = np.sort(order.indices(step))
        np.testing.assert_array_equal(x.numpy().ravel(), rows)
        np.testing.assert_array_equal(y.numpy(), labels[rows])
