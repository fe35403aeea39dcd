"""params.yaml validation: bad params stop every command before any work, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import SCALES, ConfigError, config_hash, deep_merge, flatten, load_params

ROOT = Path(__file__).resolve().parents[2]


def write_params(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def base() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_validate_at_every_scale() -> None:
    for scale in SCALES:
        params = load_params(ROOT / "params.yaml", scale=scale)
        for paper in params.papers:
            cfg = params.config(paper)
            assert cfg.model_dump()  # resolved and validated


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["noise2score"]["smoke"].update(bogus=1), "noise2score[smoke].bogus"),
        (lambda d: d["noise2score"]["common"].update(seed="abc"), "noise2score[smoke].seed"),
        (lambda d: d["noise2score"]["paper"].update(seed=-3), "noise2score[paper].seed"),
        (lambda d: d["noise2score"].update(tiny={}), "noise2score.tiny: unknown key"),
        (lambda d: d.update(scale="huge"), "scale: must be one of"),
        (lambda d: d.update(papers=["nope"]), "unknown paper 'nope'"),
        (lambda d: d.update(nope={}), "nope: unknown key"),
        (lambda d: d["noise2score"]["default"].update(device="tpu"), "noise2score[default].device"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, mutate, expected: str) -> None:
    data = base()
    for key in ("common", "smoke", "default", "paper"):
        data["noise2score"][key] = data["noise2score"].get(key) or {}
    mutate(data)
    with pytest.raises(ConfigError) as info:
        load_params(write_params(tmp_path, data))
    assert expected in str(info.value)


def test_nested_unknown_key_is_named(tmp_path: Path) -> None:
    data = base()
    cfg = load_params(ROOT / "params.yaml").config("noise2score").model_dump()
    group = next(k for k, v in cfg.items() if isinstance(v, dict))
    data["noise2score"]["default"] = deep_merge(data["noise2score"].get("default") or {}, {group: {"nonsense": 1}})
    with pytest.raises(ConfigError, match=rf"noise2score\[default\]\.{group}\.nonsense"):
        load_params(write_params(tmp_path, data))


def test_cli_refuses_bad_params_and_writes_nothing(tmp_path: Path) -> None:
    data = base()
    data["noise2score"]["smoke"] = {**(data["noise2score"].get("smoke") or {}), "seed": -1}
    write_params(tmp_path, data)
    proc = subprocess.run(
        [sys.executable, "-m", "components", "prepare", "noise2score"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "noise2score[smoke].seed" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no data, no mlflow.db


def test_scale_override_and_helpers(tmp_path: Path) -> None:
    params = load_params(ROOT / "params.yaml", scale="smoke")
    assert params.scale == "smoke"
    cfg = params.config("noise2score")
    flat = flatten(cfg)
    assert "seed" in flat and all("." in k or not isinstance(v, dict) for k, v in flat.items())
    assert config_hash(cfg) == config_hash(params.config("noise2score"))
    assert config_hash(cfg) != config_hash(params.config("noise2score", scale="paper"))
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


# --- the params edge (issue 18, 1b): each bad edit is refused with a message naming the key ----

FIRST = next(iter(yaml.safe_load((ROOT / "params.yaml").read_text())["papers"]))


def _int_field(paper: str) -> str:
    """A dotted path to an int field of ``paper``'s config (the first one, nested or not)."""
    cfg = load_params(ROOT / "params.yaml").config(paper)

    def walk(model, prefix: str) -> str | None:
        for name, value in model:
            if isinstance(value, bool):
                continue
            if isinstance(value, int) and name != "seed":
                return prefix + name
            if hasattr(value, "model_fields"):
                found = walk(value, prefix + name + ".")
                if found:
                    return found
        return None

    found = walk(cfg, "")
    assert found, f"{paper} has an int field"
    return found


def _set(section: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        section = section.setdefault(key, {})
    section[leaf] = value


@pytest.mark.parametrize("value", [True, False, "3", 2.0])
def test_strict_types_no_bool_or_string_for_an_int(tmp_path: Path, value) -> None:
    data = base()
    field = _int_field(FIRST)
    data[FIRST]["smoke"] = data[FIRST].get("smoke") or {}
    _set(data[FIRST]["smoke"], field, value)
    with pytest.raises(ConfigError) as info:
        load_params(write_params(tmp_path, data))
    assert f"{FIRST}[smoke].{field}" in str(info.value)
    assert "valid integer" in str(info.value)


def test_ints_and_yaml12_exponents_are_floats(tmp_path: Path) -> None:
    """An int and ``1e-3`` (a string to PyYAML, a number to DVC) are both valid floats."""
    path = tmp_path / "params.yaml"
    from components.config import PaperConfig, resolve

    class M(PaperConfig):
        lr: float = 0.1

    assert resolve(M, {"smoke": {"lr": 1}}, "smoke", "m").lr == 1.0
    path.write_text("a: 1e-3\nb: -2.5E+2\nc: 1.0e-4\nd: e5\ne: 12\n")
    from components.config import read_yaml

    assert read_yaml(path) == {"a": 1e-3, "b": -250.0, "c": 1e-4, "d": "e5", "e": 12}
    with pytest.raises(ConfigError, match=r"m\[smoke\]\.lr: Input should be a valid number"):
        resolve(M, {"smoke": {"lr": True}}, "smoke", "m")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_empty_or_not_a_mapping(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_params(path)


def test_null_paper_section_is_refused(tmp_path: Path) -> None:
    data = base()
    data[FIRST] = None
    with pytest.raises(ConfigError, match=rf"^{FIRST}: must be a mapping .*got null"):
        load_params(write_params(tmp_path, data))
    data = base()
    data[FIRST]["smoke"] = None
    with pytest.raises(ConfigError, match=rf"{FIRST}\.smoke: must be a mapping \(got null"):
        load_params(write_params(tmp_path, data))


def test_paper_listed_twice_is_refused(tmp_path: Path) -> None:
    data = base()
    data["papers"] = [*data["papers"], FIRST]
    with pytest.raises(ConfigError, match=rf"papers: '{FIRST}' listed 2 times"):
        load_params(write_params(tmp_path, data))


def test_key_given_twice_is_refused_with_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    lines = (ROOT / "params.yaml").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("scale:"))
    lines.insert(at + 1, "scale: smoke")  # the later one would silently win
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert f"key 'scale' given twice in one mapping (lines {at + 1} and {at + 2})" in str(info.value)
    nested = tmp_path / "nested.yaml"
    nested.write_text(f"scale: smoke\npapers: [{FIRST}]\n{FIRST}:\n  smoke: {{seed: 1, seed: 2}}\n")
    with pytest.raises(ConfigError, match="key 'seed' given twice"):
        load_params(nested)


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        f"scale: smoke\npapers: [{FIRST}]\n{FIRST}:\n  common: &c {{seed: 1}}\n  smoke:\n    <<: *c\n    seed: 2\n"
    )
    assert load_params(path).config(FIRST).seed == 2


@pytest.mark.parametrize("key", ["scale", "papers"])
def test_missing_top_level_key_is_refused(tmp_path: Path, key: str) -> None:
    data = base()
    del data[key]
    with pytest.raises(ConfigError, match=rf"^{key}: missing \(required"):
        load_params(write_params(tmp_path, data))


def test_removed_section_is_named(tmp_path: Path) -> None:
    data = base()
    del data[FIRST]
    with pytest.raises(ConfigError, match=rf"{FIRST}: section missing \(papers: lists it\)"):
        load_params(write_params(tmp_path, data))


def test_cli_removed_section_exits_2_without_traceback(tmp_path: Path) -> None:
    data = base()
    del data[FIRST]
    write_params(tmp_path, data)
    proc = subprocess.run(
        [sys.executable, "-m", "components", "prepare", FIRST],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{FIRST}: section missing" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_loading_params_imports_no_paper_beyond_its_config() -> None:
    """Only ``<package>.config`` of each paper: no torch, no paper package ``__init__``."""
    code = (
        "import sys; from components.config import load_params; p = load_params(); "
        "[p.config(x) for x in p.papers]; from components.registry import PAPERS; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'mlflow', 'numpy') "
        "or (m.startswith('components.papers.') and not m.endswith('.config'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_config_model_is_the_papers_own() -> None:
    from components.registry import PAPERS, config_model, get_paper

    for name in PAPERS:
        assert get_paper(name).config is config_model(name)
