"""WhatsApp header formats of many phone locales (issue 12), built here line by line, and the day/month
order: decided from the whole file, reported, and overridable with --date-order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftkit.parsers import parse_input
from graftkit.prepare.pipeline import PrepareOptions, prepare

RLM = "\u200f"
CASES = {
    "dotted time, iOS": ("[27.03.22, 21.41.35] Ann: hi\n[28.03.22, 09.05.01] Bob: yo\n",
                         ["2022-03-27T21:41:35", "2022-03-28T09:05:01"]),
    "dotted 12-hour time": ("03-06-2018, 01.55 PM - Ann: hi\n13-06-2018, 02.05 AM - Bob: yo\n",
                            ["2018-06-03T13:55:00", "2018-06-13T02:05:00"]),
    "time first, iOS": ("[21:41:35, 3/27/22] Ann: hi\n[9:05:01, 3/28/22] Bob: yo\n",
                        ["2022-03-27T21:41:35", "2022-03-28T09:05:01"]),
    "Eastern Arabic digits": (f"{RLM}٢٧{RLM}/٣{RLM}/٢٠٢٢، ٩:٤١ م - Ann: hi\n"
                              f"{RLM}٢٨{RLM}/٣{RLM}/٢٠٢٢، ١٠:٠٥ ص - Bob: yo\n",
                              ["2022-03-27T21:41:00", "2022-03-28T10:05:00"]),
    "Thai Buddhist era": ("[27/3/2565 21:41:35] Ann: hi\n[28/3/2565 09:05:01] Bob: yo\n",
                          ["2022-03-27T21:41:35", "2022-03-28T09:05:01"]),
    "Japanese era": ("R4/03/27 21:41 - Ann: hi\nR4/03/28 9:05 - Bob: yo\nH31/04/30 9:05 - Bob: old\n",
                     ["2022-03-27T21:41:00", "2022-03-28T09:05:00", "2019-04-30T09:05:00"]),
    "old iOS colon": ("12/07/2017, 22:35: Ann: hi\n13/07/2017, 09:05: Bob: yo\n",
                      ["2017-07-12T22:35:00", "2017-07-13T09:05:00"]),
    "date - time; Name": ("12/07/2017 - 22:35; Ann: hi\n13/07/2017 - 09:05; Bob: yo\n",
                          ["2017-07-12T22:35:00", "2017-07-13T09:05:00"]),
    "French à": ("12/07/2017 à 22:35 - Ann: hi\n13/07/2017 à 09:05 - Bob: yo\n",
                 ["2017-07-12T22:35:00", "2017-07-13T09:05:00"]),
    "Finnish klo": ("12.7.2017 klo 22.35 - Ann: hi\n13.7.2017 klo 9.05 - Bob: yo\n",
                    ["2017-07-12T22:35:00", "2017-07-13T09:05:00"]),
    "spaced dotted date": ("13. 6. 2018. 21:25:15 - Ann: hi\n14. 6. 2018. 09:05:01 - Bob: yo\n",
                           ["2018-06-13T21:25:15", "2018-06-14T09:05:01"]),
    "double space before -": ("12/07/2017, 22:35  - Ann: hi\n13/07/2017, 09:05  - Bob: yo\n",
                              ["2017-07-12T22:35:00", "2017-07-13T09:05:00"]),
    "Spanish p. m.": ("1/2/23, 9:05 p. m. - Ann: hi\n1/2/23, 10:05 a. m. - Bob: yo\n",
                      ["2023-02-01T21:05:00", "2023-02-01T10:05:00"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_header_locale(tmp_path: Path, name: str) -> None:
    text, stamps = CASES[name]
    path = tmp_path / "chat.txt"
    path.write_text(text + "continued line\n", encoding="utf-8")
    msgs = parse_input(path).messages
    assert [m.timestamp for m in msgs] == stamps
    assert [m.sender for m in msgs][:2] == ["Ann", "Bob"]
    assert msgs[-1].text.endswith("\ncontinued line")


def _run(tmp_path: Path, text: str, **kw) -> tuple[dict, list[dict]]:
    src = tmp_path / "chat.txt"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    stats = prepare(PrepareOptions([str(src)], out=str(out), me=["Sam"], progress=False, val_fraction=0, **kw))
    rows = [json.loads(x) for x in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]
    return stats, rows


AMBIGUOUS = "01/02/2023, 10:00 - Ann: hi\n01/02/2023, 10:01 - Sam: hey\n"


def test_ambiguous_dates_are_reported_and_overridable(tmp_path: Path, capsys) -> None:
    stats, rows = _run(tmp_path, AMBIGUOUS)
    assert rows[0]["timestamp"] == "2023-02-01T10:00:00"  # 24-hour clock: day first
    assert stats["date_order"][0]["order"] == "dmy" and "locale hint" in stats["date_order"][0]["why"]
    assert "--date-order" in capsys.readouterr().out
    stats, rows = _run(tmp_path, AMBIGUOUS, date_order="mdy")
    assert rows[0]["timestamp"] == "2023-01-02T10:00:00" and stats["date_order"][0]["why"] == "--date-order"


def test_a_day_over_12_anywhere_decides(tmp_path: Path) -> None:
    text = AMBIGUOUS + "".join(f"01/{d:02d}/2023, 10:02 - Ann: more\n" for d in (3, 5, 13))
    stats, rows = _run(tmp_path, text)
    assert (stats["date_order"][0]["order"], stats["date_order"][0]["why"]) == ("mdy", "a middle field > 12")
    assert rows[0]["timestamp"] == "2023-01-02T10:00:00"


def test_cli_date_order_flag(tmp_path: Path) -> None:
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "chat.txt"
    src.write_text(AMBIGUOUS, encoding="utf-8")
    r = subprocess.run([sys.executable, str(root / "prepare_training_data.py"), str(src), "--me", "Sam",
                        "--out", str(tmp_path / "o"), "--date-order", "mdy", "--val-fraction", "0"],
                       capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr
    assert "MDY (--date-order)" in r.stdout
    first = json.loads((tmp_path / "o" / "messages.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["timestamp"] == "2023-01-02T10:00:00"
