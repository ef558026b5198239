"""Cache and graph keys come from the config's groups: a new field in a group changes every key that depends
on that group and no other, so no key can miss a new setting."""
import dataclasses
from types import SimpleNamespace

import pytest
import torch

from anyi2v_lab.accel import Runtime
from anyi2v_lab.accel.optimisation_graphs import loss_key, pass_key
from anyi2v_lab.accel.regions import CompileKey, compile_key
from anyi2v_lab.method.config import GROUPS, AnyI2VConfig, ConfigError, setting
from anyi2v_lab.method.inversion import settings_key


def with_extra_field(group: str, kind=int, default=0) -> type:
    """AnyI2VConfig with one more setting, ``extra``, in ``group``."""
    extra = ("extra", kind, setting(default, group, "a setting added to the group"))
    return dataclasses.make_dataclass(f"With{group.title()}", [extra], bases=(AnyI2VConfig,), frozen=True)


def keys(config: AnyI2VConfig) -> dict[str, tuple]:
    """Every config-dependent key, computed as the runtime and the inversion cache compute it."""
    leaf, t, embeds = torch.zeros(1, 4, 2, 8, 8), torch.tensor(1), torch.zeros(1, 7, 32)
    alignment = SimpleNamespace(boxes=torch.zeros(1, 2, 4), queries=[torch.zeros(3, 2)], grid=(8, 8),
                                shapes=[(4, 4)])
    return {
        "inversion": settings_key(config),
        "injection": pass_key(None, config, ["a.query"], leaf, t, embeds, Runtime(), inject=True),
        "loss": loss_key([torch.zeros(1, 2, 16, 8)], [], alignment, config),
    }


@pytest.mark.parametrize("group", list(GROUPS))
def test_a_new_field_changes_exactly_the_keys_of_its_group(group):
    cls = with_extra_field(group)
    before, after = keys(cls()), keys(cls(extra=1))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == ({group} & set(before)), f"a new {group} field changed the keys {changed}"
    assert cls(extra=1).key(group) == (*AnyI2VConfig().key(group), ("extra", 1))


def test_a_new_field_is_typed_and_described_like_the_others():
    cls = with_extra_field("loss", kind=float, default=0.5)
    assert cls.from_dict({"extra": "0.25"}).extra == 0.25
    with pytest.raises(ConfigError, match=r"extra='x' is not a finite number \(default: 0.5; extra: a setting added"):
        cls.from_dict({"extra": "x"})


def test_a_field_without_group_and_help_is_refused():
    cls = dataclasses.make_dataclass("Bare", [("bare", int, 0)], bases=(AnyI2VConfig,), frozen=True)
    with pytest.raises(TypeError, match=r"Bare.bare has no group and help: declare it with setting\(default, group"):
        cls()
    with pytest.raises(ValueError, match=r"group='sizes' is not one of \['size'"):
        setting(0, "sizes", "a typo")


def test_every_field_is_in_one_group_and_keys_name_the_fields():
    config = AnyI2VConfig()
    grouped = [name for group in GROUPS for name, _ in config.key(group)]
    assert sorted(grouped) == sorted(f.name for f in dataclasses.fields(AnyI2VConfig))
    assert dict(config.key("inversion")) == {"inversion_timestep": 201, "inversion_schedule": "reference",
                                             "fast_inversion_steps": 10, "vae_sample": False}
    with pytest.raises(ValueError, match=r"groups \['losses'\] are not config groups"):
        config.key("losses")


@pytest.mark.parametrize("change,dependent", [
    ({"debias": False}, {"injection"}),
    ({"adain_patch": None}, {"injection"}),
    ({"inject_query": False}, {"injection", "inversion"}),  # the bank no longer holds the queries
    ({"res_layers": ("up_blocks.1.resnets.0",)}, {"injection", "inversion"}),
    ({"inversion_schedule": "fast"}, {"inversion"}),
    ({"pca_method": "lowrank"}, {"loss"}),
    ({"mask": "static"}, {"loss"}),
    ({"lr": 0.5, "opt_iters": 2, "load_feature_step": 1, "eta": 0.5, "num_frames": 8}, set()),
])
def test_a_setting_changes_the_keys_that_read_it(change, dependent):
    before, after = keys(AnyI2VConfig()), keys(AnyI2VConfig(**change))
    assert {name for name in before if before[name] != after[name]} == dependent


def test_one_compile_key_for_graphs_and_compiled_blocks():
    assert compile_key(Runtime(), "sampling") is None and compile_key(Runtime(), "inversion") is None
    fast = Runtime.fast(compile_levels=2, compile_mode="max-autotune")
    assert compile_key(fast, "optimisation") == CompileKey(backend="inductor", mode="max-autotune", levels=2)
    assert compile_key(fast, "inversion").levels is None  # the inversion compiles every level
    assert compile_key(Runtime(compile="sampling"), "optimisation") is None
    base = keys(AnyI2VConfig())["injection"]
    leaf, t, embeds = torch.zeros(1, 4, 2, 8, 8), torch.tensor(1), torch.zeros(1, 7, 32)
    compiled = pass_key(None, AnyI2VConfig(), ["a.query"], leaf, t, embeds, fast, inject=True)
    assert compile_key(fast, "optimisation") in compiled and base != compiled
