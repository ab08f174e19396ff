"""Search spaces as data: a TOML file of hyperparameters, validated, sampled by an Optuna trial."""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from search.errors import UserError

DEFAULT_SPACE = Path(__file__).resolve().parent.parent / "spaces" / "vgg16.toml"
# Every parameter the model needs, with the values that make sense for it.
LIMITS = {
    "head_units": (1, 16384),
    "dropout": (0.0, 0.95),
    "unfrozen_blocks": (0, 5),
    "learning_rate": (1e-8, 1.0),
    "batch_size": (1, 4096),
    "augment_strength": (0.0, 1.0),
}
INTEGER = {"head_units", "unfrozen_blocks", "batch_size"}
KEYS = {"float": {"type", "low", "high", "log", "step"},
        "int": {"type", "low", "high", "log", "step"},
        "categorical": {"type", "choices"}}


@dataclass(frozen=True)
class Space:
    """Parameter name -> its table from the file (type, low/high/log/step or choices)."""

    params: dict

    @classmethod
    def from_file(cls, path) -> "Space":
        path = Path(path)
        try:
            with open(path, "rb") as f:
                params = tomllib.load(f)
        except FileNotFoundError:
            raise UserError(f"space file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"space file {path}: not valid TOML ({err})") from err
        return cls.from_dict(params, str(path))

    @classmethod
    def from_dict(cls, params: dict, where: str = "space") -> "Space":
        unknown = sorted(set(params) - set(LIMITS))
        if unknown:
            raise UserError(f"{where}: unknown parameter(s) {', '.join(unknown)}; "
                            f"the parameters are {', '.join(LIMITS)}")
        missing = [name for name in LIMITS if name not in params]
        if missing:
            raise UserError(f"{where}: missing parameter(s) {', '.join(missing)}")
        for name, spec in params.items():
            _check(name, spec, f"{where}: {name}")
        return cls({name: dict(params[name]) for name in LIMITS})

    def levels(self, name: str) -> list:
        """The values a parameter can take: its choices, or the ends of its range."""
        spec = self.params[name]
        return list(spec["choices"]) if spec["type"] == "categorical" else [spec["low"], spec["high"]]

    def sample(self, trial) -> dict:
        """One configuration, drawn by an Optuna trial."""
        values = {}
        for name, spec in self.params.items():
            kind = spec["type"]
            if kind == "categorical":
                values[name] = trial.suggest_categorical(name, spec["choices"])
            elif kind == "int":
                values[name] = trial.suggest_int(name, spec["low"], spec["high"],
                                                 step=spec.get("step", 1), log=spec.get("log", False))
            else:
                values[name] = trial.suggest_float(name, spec["low"], spec["high"],
                                                   step=spec.get("step"), log=spec.get("log", False))
        return values

    def distributions(self) -> dict:
        """The same parameters as Optuna distributions (for trials recorded from another engine)."""
        from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                          IntDistribution)

        made = {}
        for name, spec in self.params.items():
            if spec["type"] == "categorical":
                made[name] = CategoricalDistribution(spec["choices"])
            elif spec["type"] == "int":
                made[name] = IntDistribution(spec["low"], spec["high"], step=spec.get("step", 1),
                                             log=spec.get("log", False))
            else:
                made[name] = FloatDistribution(spec["low"], spec["high"], step=spec.get("step"),
                                               log=spec.get("log", False))
        return made

    def declare(self, hp) -> dict:
        """One configuration, drawn by KerasTuner's `HyperParameters` (the same names and ranges)."""
        values = {}
        for name, spec in self.params.items():
            sampling = "log" if spec.get("log") else "linear"
            if spec["type"] == "categorical":
                choices = spec["choices"]
                if any(isinstance(c, float) for c in choices):  # KerasTuner wants one type
                    choices = [float(c) for c in choices]
                values[name] = hp.Choice(name, choices)
            elif spec["type"] == "int":
                # KerasTuner's step is a factor on a log scale; Optuna's log ints have none.
                step = None if spec.get("log") else spec.get("step", 1)
                values[name] = hp.Int(name, spec["low"], spec["high"], step=step,
                                      sampling=sampling)
            else:
                values[name] = hp.Float(name, spec["low"], spec["high"], step=spec.get("step"),
                                        sampling=sampling)
        return values


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(name: str, spec, where: str) -> None:
    if not isinstance(spec, dict):
        raise UserError(f"{where}: must be a table with a type")
    kind = spec.get("type")
    if kind not in KEYS:
        raise UserError(f"{where}: type must be float, int or categorical, got {kind!r}")
    extra = sorted(set(spec) - KEYS[kind])
    if extra:
        raise UserError(f"{where}: unknown key(s) {', '.join(extra)} for type {kind}")
    lo, hi = LIMITS[name]
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: choices must be a non-empty list")
        values = choices
    else:
        if name in INTEGER and kind == "float":
            raise UserError(f"{where}: must be int or categorical, not float")
        if "low" not in spec or "high" not in spec:
            raise UserError(f"{where}: needs low and high")
        values = [spec["low"], spec["high"]]
        if not all(_number(v) for v in values):
            raise UserError(f"{where}: low and high must be numbers")
        if kind == "int" and not all(isinstance(v, int) for v in values):
            raise UserError(f"{where}: low and high must be integers for type int")
        if spec["low"] > spec["high"]:
            raise UserError(f"{where}: low ({spec['low']}) is greater than high ({spec['high']})")
        if spec.get("log") and spec["low"] <= 0:
            raise UserError(f"{where}: a log scale needs low > 0")
        if "log" in spec and not isinstance(spec["log"], bool):
            raise UserError(f"{where}: log must be true or false")
        if spec.get("log") and "step" in spec:
            raise UserError(f"{where}: log and step cannot be combined")
        if "step" in spec and not (_number(spec["step"]) and spec["step"] > 0):
            raise UserError(f"{where}: step must be a positive number")
    for v in values:
        if not _number(v) or (name in INTEGER and not isinstance(v, int)):
            raise UserError(f"{where}: {v!r} is not a valid value")
        if not lo <= v <= hi:
            raise UserError(f"{where}: {v!r} is outside {lo}..{hi}")
