"""``offerd reports rebuild`` and ``offerd report funnel``, run as real subprocesses against this
test's database."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.reporting.history import History
from tests.support.app import SECRET_KEY, TestApp
from tests.support.cli import run_offerd

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
ENV = {"OFFERD_SECRET_KEY": SECRET_KEY}


async def offerd(db_url: str, cwd: Path, *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_offerd, db_url, cwd, *args, env=ENV)
    return done.returncode, done.stdout, done.stderr


async def test_rebuild_restores_the_rollups_and_report_prints_them(
    app: TestApp, db_url: str, tmp_path: Path
) -> None:
    await app.create_site("acme")
    async with app.services.db.connection() as conn:
        h = History(conn, "acme")
        po = await h.issue(T0)
        await h.event(po, "viewed", T0)
        f = await h.accept(po, T0 + timedelta(seconds=10))
        await h.complete(po, f, T0 + timedelta(seconds=40))
        await h.issue(T0 + timedelta(days=40))
        live = await (await conn.execute("SELECT count(*) AS n FROM report_rollups")).fetchone()
        assert live is not None and live["n"] > 0
        await conn.execute("DELETE FROM report_rollups")

    code, out, err = await offerd(db_url, tmp_path, "reports", "rebuild", "--batch-days", "7")
    assert code == 0, err
    assert "rebuilt the report rollups: 3 rows" in err

    span = ("--from", "2026-03-01", "--to", "2026-05-01")
    code, out, err = await offerd(
        db_url, tmp_path, "report", "funnel", "--site", "acme", *span,
        "--granularity", "month", "--group-by", "option", "--csv",
    )  # fmt: skip
    assert code == 0, err
    rows = [(r["period_start"], r["option_id"], r["decisions"], r["viewed"], r["accepted"],
             r["fulfilled"]) for r in csv.DictReader(io.StringIO(out))]  # fmt: skip
    march, april = (
        int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()),
        int(datetime(2026, 4, 1, tzinfo=UTC).timestamp()),
    )
    assert rows == [
        (str(march), "", "1", "1", "0", "0"),
        (str(march), "talk", "0", "0", "1", "1"),
        (str(april), "", "1", "0", "0", "0"),
    ]

    code, out, err = await offerd(
        db_url, tmp_path, "report", "funnel", "--site", "acme", *span, "--granularity", "all"
    )
    assert code == 0, err
    assert "decisions" in out and "2026-03-01 00:00" in out


async def test_report_refuses_bad_parameters(app: TestApp, db_url: str, tmp_path: Path) -> None:
    await app.create_site("acme")
    code, _, err = await offerd(
        db_url, tmp_path, "report", "funnel", "--site", "acme", "--granularity", "year"
    )
    assert code == 2
    assert "granularity" in err
    code, _, err = await offerd(db_url, tmp_path, "report", "funnel", "--site", "nope")
    assert code == 2
    assert "no site 'nope'" in err


async def test_report_saves_and_experiments(app: TestApp, db_url: str, tmp_path: Path) -> None:
    await app.create_site("acme")
    async with app.services.db.connection() as conn:
        for n, (state, currency, mrr) in enumerate(
            [("saved", "USD", 4900), ("saved", "EUR", 1000), ("lost", None, None)]
        ):
            await conn.execute(
                "INSERT INTO offer_saves (site_id, fulfillment_id, offer_id, option_id, "
                "experiment_arm, subscription_id, accepted_at, window_ends_at, state, currency, "
                "mrr) VALUES ('acme', %s, 'stay', 'discount', '', %s, %s, %s, %s, %s, %s)",
                (f"f{n}", f"sub{n}", T0, T0 + timedelta(days=30), state, currency, mrr),
            )
    window = ("--from", "2026-03-01", "--to", "2026-04-01")
    code, out, err = await offerd(
        db_url, tmp_path, "report", "saves", "--site", "acme", *window, "--group-by", "offer",
        "--csv",
    )  # fmt: skip
    assert code == 0, err
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert (row["offer_id"], row["saved"], row["lost"], row["save_rate"]) == (
        "stay", "2", "1", "0.6667",
    )  # fmt: skip
    assert "USD" in row["revenue_retained"] and "4900" in row["revenue_retained"]
    code, out, err = await offerd(db_url, tmp_path, "report", "experiments", "--site", "acme")
    assert code == 0, err
    assert "assigned" in out and "verdict" in out
    code, out, err = await offerd(
        db_url, tmp_path, "report", "saves", "--site", "acme", *window, "--group-by",
        "processing_type,brand", "--csv",
    )  # fmt: skip
    assert code == 0, err
    (row,) = list(csv.DictReader(io.StringIO(out)))  # saves without either: one group
    assert (row["processing_type"], row["brand_id"], row["saved"]) == ("", "", "2")
