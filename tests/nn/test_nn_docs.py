"""The examples in docs/layers.md run as written."""

import pathlib
import re

import pytest
import torch

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "layers.md"


@pytest.mark.skipif(not DOC.exists(), reason="docs/layers.md is not in this checkout")
def test_layers_doc_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 5
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile("\n".join(blocks), str(DOC), "exec"), {})  # noqa: S102 - the docs' own code
    finally:
        torch.set_num_threads(n)
