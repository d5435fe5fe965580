"""Output folders appear whole or not at all."""

import pytest

from sdd_data.errors import SddError
from sdd_data.output_folder import staged_output


def test_the_folder_appears_only_when_the_block_finishes(tmp_path):
    output = tmp_path / "out"
    with staged_output(output) as staging:
        (staging / "weights.bin").write_text("w")
        assert not output.exists()
    assert (output / "weights.bin").read_text() == "w"
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_an_error_leaves_nothing_behind(tmp_path):
    output = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_output(output) as staging:
        (staging / "half.bin").write_text("h")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_output_is_refused_unless_replaced(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "old.txt").write_text("old")
    with pytest.raises(SddError, match="already exists and is not an empty folder"), staged_output(output):
        pass
    with pytest.raises(RuntimeError), staged_output(output, replace=True) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("crash")
    assert [path.name for path in output.iterdir()] == ["old.txt"]
    with staged_output(output, replace=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [path.name for path in output.iterdir()] == ["new.txt"]
    assert [path.name for path in tmp_path.iterdir()] == ["out"]
