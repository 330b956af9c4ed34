"""Config loading: file + key=value overrides, type coercion, and errors that name file and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from graftkit.config import config_help, load_config, parse_override
from graftkit.errors import ConfigError


@dataclass
class Cfg:
    n_layer: int = field(default=4, metadata={"help": "blocks"})
    learning_rate: float = 1e-3
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    max_iters: int | None = None
    out_dir: str = "out"

    def validate(self) -> None:
        if self.n_layer < 1:
            raise ConfigError(f"n_layer must be >= 1, got {self.n_layer}")


def test_defaults_file_and_overrides_layer_in_order(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("n_layer: 2\nlearning_rate: 3e-4\ncompile: true\n")
    cfg = load_config(Cfg, p, ["n_layer=3", "target_modules=[q_proj,k_proj]", "max_iters=null"])
    assert cfg.n_layer == 3
    assert cfg.learning_rate == pytest.approx(3e-4)  # YAML reads bare 3e-4 as a string; coerced
    assert cfg.compile is True
    assert cfg.target_modules == ["q_proj", "k_proj"]
    assert cfg.max_iters is None
    assert cfg.out_dir == "out"


def test_json_config_is_accepted(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"n_layer": 2, "device": "cpu"}')
    cfg = load_config(Cfg, p)
    assert (cfg.n_layer, cfg.device) == (2, "cpu")


def test_unknown_key_names_file_and_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("n_layers: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, p)
    msg = e.value.format()
    assert str(p) in msg and "n_layers" in msg and "did you mean 'n_layer'" in msg


@pytest.mark.parametrize("override,needle", [
    ("n_layer=two", "expected an integer"),
    ("compile=maybe", "expected true or false"),
    ("device=tpu", "must be one of"),
    ("learning_rate=fast", "expected a number"),
    ("n_layer", "key=value"),
])
def test_bad_values_are_config_errors(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(Cfg, None, [override])


def test_a_key_of_several_types_names_every_accepted_form():
    from graftkit.lora.config import LoraTrainConfig

    with pytest.raises(ConfigError, match=r"gradient_checkpointing: expected true or false or 'auto', got 'maybe'"):
        load_config(LoraTrainConfig, None, ["gradient_checkpointing=maybe"])
    assert load_config(LoraTrainConfig, None, ["gradient_checkpointing=auto"]).gradient_checkpointing == "auto"


def test_validate_errors_carry_the_config_path(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("n_layer: 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, p)
    assert e.value.path == str(p) and "n_layer must be >= 1" in e.value.message


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("n_layer: 2\ndevice: [cpu\n")
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, p)
    assert e.value.path == str(p) and e.value.line is not None and "invalid YAML" in e.value.message


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Cfg, p)


def test_parse_override_reads_yaml_values():
    assert parse_override("lr=0.5") == ("lr", 0.5)
    assert parse_override("compile=false") == ("compile", False)
    assert parse_override("--dims=[1, 2]") == ("dims", [1, 2])
    assert parse_override("prompt=a=b") == ("prompt", "a=b")


def test_config_help_lists_every_key():
    text = config_help(Cfg)
    for key in ("n_layer", "learning_rate", "compile", "device", "target_modules", "max_iters", "out_dir"):
        assert key in text
    assert "blocks" in text


def test_overrides_may_come_before_and_after_flags():
    import argparse

    from graftkit.config import add_config_args

    ap = argparse.ArgumentParser()
    add_config_args(ap, "c.yaml")
    ap.add_argument("--chat", action="store_true")
    args = ap.parse_args(["a=1", "--chat", "b=2", "--config", "x.yaml", "c=3"])
    assert args.overrides == ["a=1", "b=2", "c=3"] and args.chat and args.config == "x.yaml"
    assert ap.parse_args([]).overrides == [] and ap.parse_args([]).config == "c.yaml"


# --- ranges (issue 14: `lora_r=100000`, `n_embd=0`, ...) and who is blamed -------------------------

from graftkit.config import check_range, key  # noqa: E402


@dataclass
class Ranged:
    lora_r: int = key(16, "rank", range=(1, 4096))
    dropout: float = key(0.0, "p", range=(0.0, 1.0))
    n_embd: int = key(128, "width", range=(1, None))
    n_head: int = key(4, "heads", range=(1, 64))
    name: str = key("x", "no range on strings")

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


@pytest.mark.parametrize("override,needle", [
    ("lora_r=100000", "lora_r: 100000 is out of range (valid: 1 to 4096)"),
    ("lora_r=0", "lora_r: 0 is out of range (valid: 1 to 4096)"),
    ("dropout=1.5", "dropout: 1.5 is out of range (valid: 0.0 to 1.0)"),
    ("dropout=nan", "dropout: nan is out of range"),
    ("n_embd=0", "n_embd: 0 is out of range (valid: at least 1)"),
])
def test_out_of_range_values_name_the_valid_range_and_the_command_line(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(Ranged, None, [override])
    assert e.value.path == "command line" and needle in e.value.message


def test_out_of_range_in_the_file_names_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lora_r: 100000\n")
    with pytest.raises(ConfigError) as e:
        load_config(Ranged, p)
    assert e.value.path == str(p) and "valid: 1 to 4096" in e.value.message
    assert load_config(Ranged, p, ["lora_r=8"]).lora_r == 8  # the override fixes it
    check_range("x", 5, (1, 10))
    with pytest.raises(ConfigError, match="at most 10"):
        check_range("x", 11, (None, 10))


def test_validation_error_from_an_override_blames_the_command_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("n_embd: 128\nname: y\n")
    with pytest.raises(ConfigError) as e:
        load_config(Ranged, p, ["n_head=3"])
    assert e.value.path in (f"{p} and command line (n_head=3)", f"command line (n_head=3) and {p}")
    p.write_text("name: y\n")  # n_embd is the default; only the override is to blame
    with pytest.raises(ConfigError) as e:
        load_config(Ranged, p, ["n_head=3"])
    assert e.value.format() == "command line (n_head=3): n_embd (128) must be divisible by n_head (3)"
    p.write_text("n_head: 3\n")  # the file alone is to blame
    with pytest.raises(ConfigError) as e:
        load_config(Ranged, p)
    assert e.value.path == str(p)


def test_real_configs_reject_the_issue_values():
    from graftkit.lora.config import LoraTrainConfig
    from graftkit.tiny_gpt.config import TinyGPTConfig

    with pytest.raises(ConfigError, match=r"lora_r: 100000 is out of range \(valid: 1 to 4096\)"):
        load_config(LoraTrainConfig, None, ["lora_r=100000"])
    with pytest.raises(ConfigError, match=r"n_embd: 0 is out of range"):
        load_config(TinyGPTConfig, None, ["n_embd=0"])
    assert "[valid: 1 to 64]" in config_help(TinyGPTConfig)
