"""The write-up's figure pipeline: deterministic, reproducible, and driven from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rfanalysis import figures
from rfanalysis.cli import main

COMMITTED = Path(__file__).resolve().parents[1] / "figures"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    result = CliRunner().invoke(main, ["figures", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_every_figure_is_built(fresh):
    assert sorted(p.name for p in fresh.iterdir()) == sorted(
        spec.filename for spec in figures.FIGURES.values()
    )
    for path in fresh.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_committed_figures_match_a_fresh_build_byte_for_byte(fresh):
    committed = sorted(p.name for p in COMMITTED.glob("*.png"))
    assert committed == sorted(p.name for p in fresh.iterdir()), (
        "figures/ is out of date: run `rfanalysis figures`"
    )
    for name in committed:
        assert (COMMITTED / name).read_bytes() == (fresh / name).read_bytes(), (
            f"figures/{name} differs from a fresh build: run `rfanalysis figures`"
        )


def test_building_twice_gives_the_same_bytes(fresh, tmp_path):
    name = "01_route_diagram"
    figures.build(tmp_path, [name])
    assert (tmp_path / f"{name}.png").read_bytes() == (fresh / f"{name}.png").read_bytes()


def test_list_and_errors(tmp_path):
    listing = CliRunner().invoke(main, ["figures", "--list"])
    assert listing.exit_code == 0
    assert listing.output.splitlines()[0].startswith("01_route_diagram")
    bad = CliRunner().invoke(main, ["figures", "--only", "route_diagram", "--out", str(tmp_path)])
    assert bad.exit_code == 2
    assert bad.output.strip() == (
        "Error: unknown figure 'route_diagram'; did you mean '01_route_diagram'? (known: "
        + ", ".join(figures.FIGURES)
        + ")"
    )
    assert list(tmp_path.iterdir()) == []


def test_trained_figures_say_where_their_results_are_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "TRAINED", tmp_path)
    figures._trained.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="trained-network results are missing"):
            figures.FIGURES["18_border_psnr"].draw()
    finally:
        figures._trained.cache_clear()
