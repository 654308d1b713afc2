from dataclasses import dataclass, field

import pytest

from motion_agent.config import ConfigError, config_dir, from_mapping, load_yaml
from motion_agent.motion.export import ExportConfig
from motion_agent.motion.features import FeatureConfig


@dataclass(frozen=True)
class Inner:
    rate: float = 1.0
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    path: str | None = None


def test_shipped_motion_config_loads():
    features = load_yaml(FeatureConfig, config_dir() / "motion.yaml", section="features")
    export = load_yaml(ExportConfig, config_dir() / "motion.yaml", section="export")
    assert features.fps == 20.0 and export.body_model_path is None


def test_nested_values_and_int_to_float():
    cfg = from_mapping(Outer, {"inner": {"rate": 2, "names": ["a"]}, "path": "x"})
    assert cfg.inner.rate == 2.0 and isinstance(cfg.inner.rate, float) and cfg.inner.names == ["a"]


@pytest.mark.parametrize(
    "mapping, key",
    [
        ({"inner": {"rat": 1}}, "config.inner.rat"),
        ({"inner": {"rate": "fast"}}, "config.inner.rate"),
        ({"inner": {"names": [1]}}, r"config.inner.names\[0\]"),
        ({"path": 3}, "config.path"),
        ({"inner": 5}, "config.inner"),
    ],
)
def test_errors_name_the_key(mapping, key):
    with pytest.raises(ConfigError, match=key):
        from_mapping(Outer, mapping)


def test_validation_in_the_dataclass_is_reported_with_the_file(tmp_path):
    path = tmp_path / "motion.yaml"
    path.write_text("features:\n  fps: -1\n")
    with pytest.raises(ConfigError, match="motion.yaml:features.*fps"):
        load_yaml(FeatureConfig, path, section="features")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(FeatureConfig, tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(FeatureConfig, tmp_path / "bad.yaml")
