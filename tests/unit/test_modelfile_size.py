"""A model file is read only up to a size limit: /dev/zero, a huge file and a file that
grows while read are refused at once, in bounded memory, naming the file and the limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dogesim.errors import ModelError
from dogesim.modelfile import load_model_file
from dogesim.modelfile.source import MAX_MODEL_BYTES


def test_an_endless_device_is_refused_by_its_size() -> None:
    """/dev/zero is refused after reading one byte past the limit (no unbounded read)."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    with pytest.raises(ModelError, match=r"/dev/zero: .*larger than 1 MiB"):
        load_model_file("/dev/zero")


def test_a_file_over_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    """A file one byte over the limit is refused (and names its size), one at the limit is
    parsed (and its own error is the YAML's, not the size's)."""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * MAX_MODEL_BYTES + b"\n")
    with pytest.raises(ModelError, match=r"big\.yaml: .*larger than 1 MiB"):
        load_model_file(big)
    edge = tmp_path / "edge.yaml"
    edge.write_bytes(b"#" * (MAX_MODEL_BYTES - 1) + b"\n")
    with pytest.raises(ModelError) as caught:
        load_model_file(edge)
    assert "larger than" not in str(caught.value)
