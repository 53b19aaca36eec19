"""``nhmm data``: light at import, its choices the sources' own, user errors one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from training.cli import data as cli_data
from training.cli.data import data


def test_choices_match_the_sources() -> None:
    from training.data.sources import binance_public
    from training.data.sources import download
    from training.data.sources import synth
    from training.data.sources import tardis

    assert cli_data.BINANCE_KINDS == binance_public.KINDS
    assert cli_data.TARDIS_KINDS == tardis.KINDS
    assert cli_data.DOWNLOAD_KINDS == download.DOWNLOAD_KINDS
    assert cli_data.BASE_URL == download.BASE_URL
    assert tuple(sorted(synth.PRESETS)) == cli_data.SYNTH_PRESETS


def test_importing_the_commands_loads_no_importer() -> None:
    code = (
        "import sys, training.cli.data; "
        "heavy = [m for m in ('nautilus_trader', 'pyarrow', 'numpy', 'httpx') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_is_listed_and_runs_its_help() -> None:
    names = ["download", "import-binance", "import-tardis", "import-ws", "synth"]
    assert data.list_commands(None) == names  # type: ignore[arg-type]
    for name in names:
        result = CliRunner().invoke(data, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, name


def test_a_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    bad.write_text(
        "1,61837.64,0.5,30918.82,1723075200000,true,true\n2,x,1,1,1723075200001,true,true\n"
    )
    out = str(tmp_path / "c")
    result = CliRunner().invoke(data, ["import-binance", str(bad), "--out", out, "--no-progress"])
    assert result.exit_code == 2
    assert result.output == f"Error: {bad}:2: column 'price': bad value 'x'\n"
    assert not (tmp_path / "c").exists()
