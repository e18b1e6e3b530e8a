import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# The suite runs under pytest-xdist with one worker per core; tensors in tests are small, so one
# intra-op thread per worker is fastest and avoids oversubscribing the cores.
torch.set_num_threads(1)

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Every test starts seeded and single-threaded; a test that changes the thread count
    (the estimators' ``num_threads``) cannot leak it into the next one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
