"""Load a study: a Python file the user owns, or a built-in one by name, then apply `--set key=value` overrides.

A study file defines `study(**inputs) -> Study` (or `STUDIES`, a dict of such functions, chosen with
`file.py:name`); the inputs it accepts (`data`, `weights`, ...) come from the command line. Built-in studies are
the `SWEEPS` of ablations/sweeps.py, loaded the same way, so harness/ imports no study code.

Overrides address the study: `seeds=[0,1]`, `tuning.trials=4`, `control.values=[0,1]`,
`evaluation.samples_per_prompt=2` (every suite) or `evaluation.geneval.shards=8` (one suite),
`data.annotate_shards=64`, `resources.train.gpus_per_node=8`, and every arm's run config with
`run.optim.steps=100`.
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from harness.study import Study, type_problems
from miro.config import with_overrides
from miro.errors import MiroError, unknown_name_error

BUILTIN = Path(__file__).resolve().parent.parent / "ablations" / "sweeps.py"


def user_code_error(error: BaseException, path: Path) -> MiroError:
    """The error of a user's study file as one line: its file, line and message, not the harness's stack."""
    if isinstance(error, SyntaxError) and error.filename:
        return MiroError(f"{error.filename}, line {error.lineno}: {type(error).__name__}: {error.msg}; fix the study file")
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    where = f"{frames[-1].filename}, line {frames[-1].lineno}, in {frames[-1].name}" if frames else str(path)
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return MiroError(f"{where}: {type(error).__name__}{': ' + message if message else ''}; fix the study file")


def _module(path: Path) -> Any:
    name = f"study_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise MiroError(f"cannot load study file {path}: it must be a Python file defining study() or STUDIES")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses defined in the file need their module registered
    try:
        spec.loader.exec_module(module)
    except MiroError:
        raise
    except Exception as error:  # the user's code: its own line, whatever it raised
        raise user_code_error(error, path) from None
    return module


def builtin_names() -> list[str]:
    """The keys of ablations/sweeps.py's SWEEPS, read from its text: listing them (in --help) runs no study code."""
    for node in ast.parse(BUILTIN.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        if any(getattr(target, "id", None) == "SWEEPS" for target in targets) and isinstance(value, ast.Dict):
            return [str(key.value) for key in value.keys if isinstance(key, ast.Constant)]
    raise MiroError(f"{BUILTIN} defines no SWEEPS dict")


def study_function(spec: str) -> Callable[..., Study]:
    """`name` (built-in), `path/to/file.py` (its study()) or `path/to/file.py:name` (its STUDIES[name])."""
    file, _, name = spec.partition(":") if spec.partition(":")[0].endswith(".py") else ("", "", spec)
    if not file:
        studies = _module(BUILTIN).SWEEPS
        if name not in studies:
            raise MiroError(f"{unknown_name_error('study', name, studies)}, or pass the path of a study file (my_study.py)")
        return studies[name]  # type: ignore[no-any-return]
    path = Path(file).expanduser()
    if not path.is_file():
        raise MiroError(f"study file {path} does not exist; pass a built-in study name ({', '.join(builtin_names())}) or a .py file")
    module = _module(path.resolve())
    if name:
        studies = getattr(module, "STUDIES", {})
        if name not in studies:
            raise unknown_name_error(f"study in {path}", name, studies)
        if not callable(studies[name]):
            raise MiroError(f"{path}: STUDIES[{name!r}] is a {type(studies[name]).__name__}; it must be a function returning a Study")
        return studies[name]  # type: ignore[no-any-return]
    if not callable(getattr(module, "study", None)):
        raise MiroError(f"study file {path} defines no study() function; add `def study() -> Study` (or STUDIES and pass {path}:NAME)")
    return module.study  # type: ignore[no-any-return]


def load_study(spec: str, inputs: Mapping[str, str] | None = None, overrides: Sequence[str] = ()) -> Study:
    """Build the study `spec` with the given inputs (only those it takes may be given) and apply the overrides."""
    function = study_function(spec)
    given = {k: v for k, v in (inputs or {}).items() if v}
    accepted = inspect.signature(function).parameters
    unknown = [k for k in given if k not in accepted]
    if unknown:
        raise MiroError(f"study {spec} takes no --{' --'.join(unknown)}; it takes {', '.join('--' + p for p in accepted) or 'no inputs'}")
    try:
        study = function(**given)
    except MiroError:
        raise
    except Exception as error:  # the user's code (or a preset it calls with a wrong argument)
        raise user_code_error(error, Path(inspect.getfile(function))) from None
    if not isinstance(study, Study):
        raise MiroError(f"study {spec} returned a {type(study).__name__}; a study function must return harness.study.Study")
    problems = type_problems(study, "study")
    if problems:
        raise MiroError(f"study {spec}: {problems[0]}" if len(problems) == 1 else
                        f"study {spec} has {len(problems)} fields of the wrong type:\n  - " + "\n  - ".join(problems))
    for item in overrides:
        study = override(study, item)
    return study


def _value(current: Any, text: str, where: str) -> Any:
    """`text` as the type of the value it replaces (a tuple stays a tuple, a path stays a string)."""
    if isinstance(current, str):
        return text
    wrong = MiroError(f"--set {where}={text}: {where} holds a {type(current).__name__} (now {current!r}), not {text!r}")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise wrong from None
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise wrong
        return tuple(value)
    if current is not None and (isinstance(current, bool) != isinstance(value, bool)
                                or (isinstance(current, (int, float)) and not isinstance(value, (int, float)))):
        raise wrong
    return float(value) if isinstance(current, float) else value


def _set_field(obj: Any, path: list[str], text: str, where: str) -> Any:
    names = [f.name for f in fields(obj)]
    if path[0] not in names:
        raise MiroError(f"--set {where}: {unknown_name_error('study field', path[0], names)}")
    current = getattr(obj, path[0])
    if len(path) == 1:
        return replace(obj, **{path[0]: _value(current, text, where)})
    if is_dataclass(current):
        return replace(obj, **{path[0]: _set_field(current, path[1:], text, where)})
    if isinstance(current, Mapping):  # resources.KIND.FIELD, scorer_options.NAME.OPTION
        inner = dict(current)
        if len(path) == 2:
            inner[path[1]] = _value(inner.get(path[1]), text, where)
        else:
            inner[path[1]] = {**inner.get(path[1], {}), path[2]: _value(inner.get(path[1], {}).get(path[2]), text, where)}
        return replace(obj, **{path[0]: inner})
    if current is None:
        raise MiroError(f"--set {where}: the study has no {path[0]} section; declare it in the study file first")
    raise MiroError(f"--set {where}: {path[0]} is not a section")


def override(study: Study, item: str) -> Study:
    """One `key=value` override of `study` (see the module docstring for the keys)."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise MiroError(f'--set "{item}" is not of the form section.key=value (e.g. tuning.trials=4)')
    path = key.split(".")
    if path[0] == "run":
        if len(path) < 2:
            raise MiroError(f"--set {key}: give a run config field, e.g. run.optim.steps=100 or run.log_every=10")
        setting = f"{'.'.join(path[1:])}={text}"
        return replace(study, arms=tuple(replace(a, config=with_overrides(a.config, [setting])) for a in study.arms))
    if path[0] == "evaluation" and len(path) >= 2:
        suites = {s.name: s for s in study.evaluation}
        if path[1] in suites and len(path) >= 3:
            chosen = [path[1]]
            path = path[2:]
        else:
            chosen, path = list(suites), path[1:]
        return replace(study, evaluation=tuple(_set_field(s, path, text, key) if s.name in chosen else s for s in study.evaluation))
    return _set_field(study, path, text, key)  # type: ignore[no-any-return]
