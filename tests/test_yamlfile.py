"""Job and pipeline files that are not YAML at all are one error line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from freight.errors import UserError
from freight.yamlfile import load_yaml


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\x00\xff\xfe binary", "job.yaml is not UTF-8 text (give a YAML or JSON file)"),
        (b"name: x\nshell: \x01\n", "job.yaml:2: not valid YAML: special characters are not allowed"),
        (b"command: [echo, hi\n", "job.yaml:2: not valid YAML:"),
    ],
)
def test_a_file_that_is_not_yaml_is_one_error(tmp_path: Path, content: bytes, said: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_yaml(path)
    assert str(err.value).startswith(said.replace("job.yaml", str(path)))
