"""Each script's --help starts with examples to copy and shows its flags in groups."""

import pytest

import prepare_h5
import train_srcnn
import train_srgan


@pytest.mark.parametrize("script", [prepare_h5, train_srcnn, train_srgan], ids=lambda m: m.__name__)
def test_help_opens_with_runnable_examples_and_groups_the_flags(script, capsys):
    with pytest.raises(SystemExit) as stop:
        script.parse_args(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    name = f"python {script.__name__}.py"
    first_lines = text.splitlines()[:2]
    assert first_lines[0].startswith(f"usage: {name} --") and first_lines[1].lstrip().startswith(name)
    groups = [line for line in text.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert len(groups) >= 4, groups  # options (help) and at least three groups of flags
