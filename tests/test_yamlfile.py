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


BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    + ["command: [*i]"]
)


def test_an_alias_bomb_is_refused_at_its_line_without_expanding_it(tmp_path: Path) -> None:
    assert len(BOMB) < 400  # 9^9 = 387 million values once expanded
    path = tmp_path / "job.yaml"
    path.write_text(BOMB)
    with pytest.raises(UserError) as err:
        load_yaml(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:6: aliases expand to more than 200,000 values")


def test_deep_nesting_is_one_error_at_the_line_that_goes_too_deep(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: x\ncommand: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UserError) as err:
        load_yaml(path)
    assert str(err.value) == f"{path}:2: nested deeper than 64 levels (flatten the structure)"


def test_block_nesting_names_its_real_line(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("".join(f"{'  ' * i}k{i}:\n" for i in range(70)) + "  " * 70 + "v\n")
    with pytest.raises(UserError) as err:
        load_yaml(path)
    assert str(err.value).startswith(f"{path}:65: nested deeper than 64 levels")


def test_a_self_referencing_alias_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("env: &e\n  x: *e\n")
    with pytest.raises(UserError) as err:
        load_yaml(path)
    assert "alias refers to a node that contains it" in str(err.value)


def test_a_file_over_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"# " + b"x" * (1024 * 1024) + b"\n")
    with pytest.raises(UserError) as err:
        load_yaml(path)
    assert str(err.value).startswith(f"{path} is larger than 1 MiB")


def test_aliases_within_the_cap_still_load(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("base: &b {cpus: 1}\nresources: *b\nlist: &l [1, 2]\nmore: [*l, *l]\n")
    assert load_yaml(path).data == {
        "base": {"cpus": 1},
        "resources": {"cpus": 1},
        "list": [1, 2],
        "more": [[1, 2], [1, 2]],
    }
