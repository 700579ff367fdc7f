"""Every CLI command, given malformed arguments, exits 2 with one clear error line, no traceback.

The commands are enumerated from the Typer app, so a command added later is swept too. For each:
an unknown flag, each required parameter missing, a non-number for a number option, a value
outside an option's range, and an empty string for a name.
"""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from kandji_bridge import cli

NAME_PARAMS = frozenset({"name", "username", "mapping", "collection", "source"})


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    what: str

    def __str__(self) -> str:
        return f"{' '.join(self.args)!r} ({self.what})"


def commands() -> Iterator[tuple[list[str], typer.core.TyperCommand]]:
    def walk(command, path: list[str]):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, command

    yield from walk(typer.main.get_command(cli.app), [])


def plausible(param) -> str:
    """A value the parser accepts for a parameter, so another one can be the bad one."""
    annotation = param.type_descriptor.annotation
    if annotation in (int, float):
        return str(param.min if getattr(param, "min", None) is not None else 1)
    if param.name in ("identifier", "field"):
        return "device_id=Device ID"
    return "x"


def invocation(path: list[str], params: list, values: dict[str, str]) -> tuple[str, ...]:
    """The arguments for `path` with the given parameters set (options as `--flag value`)."""
    args = list(path)
    for param in params:
        if param.name not in values:
            continue
        if param.param_type_name == "argument":
            args.append(values[param.name])
        else:
            args += [param.opts[0], values[param.name]]
    return tuple(args)


def cases() -> Iterator[Case]:
    for path, command in commands():
        params = [p for p in command.params if p.expose_value]
        required = {p.name: plausible(p) for p in params if p.required}
        yield Case((*path, "--no-such-flag"), "unknown flag")
        for missing in required:
            values = {k: v for k, v in required.items() if k != missing}
            yield Case(invocation(path, params, values), f"{missing} missing")
        for param in params:
            if param.param_type_name != "option" or getattr(param, "is_flag", False):
                continue
            annotation = param.type_descriptor.annotation
            if annotation in (int, float):
                values = {**required, param.name: "abc"}
                yield Case(invocation(path, params, values), f"{param.name} not a number")
                for bound, step in (("min", -1), ("max", 1)):
                    limit = getattr(param, bound, None)
                    if limit is not None:
                        values = {**required, param.name: str(limit + step)}
                        yield Case(invocation(path, params, values), f"{param.name} beyond {bound}")
        for param in params:
            if param.name in NAME_PARAMS and param.type_descriptor.annotation is str:
                for empty in ("", "  "):
                    values = {**required, param.name: empty}
                    yield Case(invocation(path, params, values), f"{param.name} empty")


CASES = list(cases())


def test_the_sweep_covers_every_command() -> None:
    swept = {case.args[: len(path)] for case in CASES for path, _ in commands()}
    for path, _ in commands():
        assert tuple(path) in swept
    assert len(CASES) > 60


@pytest.mark.parametrize("case", CASES, ids=str)
def test_malformed_arguments_exit_2_with_one_clear_line(
    case: Case, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(SystemExit) as exited:
        cli.main(list(case.args))
    captured = capsys.readouterr()
    assert exited.value.code == 2, f"{case}: exit {exited.value.code}\n{captured.err}"
    errors = [line for line in captured.err.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and len(errors[0]) > 15, f"{case}: {captured.err}"
    assert "Traceback" not in captured.err + captured.out
    assert not captured.out.strip(), f"{case}: printed {captured.out}"
