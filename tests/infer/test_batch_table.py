"""The batch table: a row per film and the summary line."""
from __future__ import annotations

import io

from cxrvlm.infer import batch


def test_rows_and_summary():
    read = {"image": "a.png", "quality": {"assessable": True, "view": "frontal", "reasons": []},
            "verdict": {"label": "abnormal, not tuberculosis", "called": ["pneumonia", "edema"]},
            "tb": {"probability": 0.1, "label": "normal"}}
    refused = {"image": "b.png", "quality": {"assessable": False, "view": "lateral", "reasons": ["a lateral view"]},
               "verdict": None, "tb": None}
    failed = {"image": "c.png", "error": "c.png: not an image"}
    rows = [batch.row(read, 210.4), batch.row(refused, 30), batch.row(failed, 2), batch.row(read, 250)]
    assert rows[0]["findings_called"] == "pneumonia; edema" and rows[0]["ms"] == 210
    assert rows[1]["quality"] == "not assessable: a lateral view" and rows[1]["view"] == "lateral"
    assert rows[2]["error"] and rows[2]["quality"] == ""
    assert batch.row(read, None)["ms"] == ""  # not measured (a reading sent to `cxrvlm serve` without its time)
    assert batch.summary(rows) == "4 film(s): 2 read, 1 not assessable, 1 failed; median 210 ms a film"
    text = io.StringIO()
    batch.write_csv(rows, text)
    assert text.getvalue().splitlines()[0] == ",".join(batch.COLUMNS) and len(text.getvalue().splitlines()) == 5
