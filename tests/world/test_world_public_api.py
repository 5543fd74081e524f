import doctest
import importlib
import inspect
from datetime import datetime

import pytest

import yarnit.world
from yarnit.world import Fault, World, WorldConfig

REQUIRED = {"World", "WorldConfig", "Fault", "FAULTS", "popularity_ranker", "random_ranker", "oracle_ranker"}
MODULES = ["", ".config", ".faults", ".rankers", ".scenarios", ".world", ".writer", ".truth", ".slates", ".intents", ".raters"]


def test_public_names_are_exported_and_importable():
    assert REQUIRED <= set(yarnit.world.__all__)
    assert sorted(yarnit.world.__all__) == sorted(set(yarnit.world.__all__))
    for name in yarnit.world.__all__:
        assert getattr(yarnit.world, name) is not None


def test_world_config_signature_matches_the_interface():
    params = inspect.signature(WorldConfig).parameters
    assert list(params)[:6] == ["seed", "sessions_per_day", "start", "n_products", "n_users", "faults"]
    assert params["seed"].default == 0 and params["sessions_per_day"].default == 2000
    assert isinstance(params["start"].default, datetime) and params["faults"].default == ()
    assert list(inspect.signature(World).parameters) == ["config", "ranker"]
    assert list(inspect.signature(Fault).parameters) == ["name", "day", "hours", "params", "hour"]  # hour: added, keyword with a default


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        WorldConfig().seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = importlib.import_module(f"yarnit.world{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_world_never_reads_the_real_clock():
    import pathlib

    root = pathlib.Path(yarnit.world.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "datetime.now" not in text and "time.time(" not in text and "date.today" not in text, path.name
