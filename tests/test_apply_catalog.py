"""Catalog as code: ``offerd apply -f catalog.yaml [--dry-run]``, run as a real subprocess against
this test's database."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from offerd.common.secrets import SecretBox
from tests.support.app import SECRET_KEY
from tests.support.cli import run_offerd as offerd

CATALOG: dict[str, Any] = {
    "sites": {
        "acme": {
            "name": "Acme",
            "brands": [{"id": "acme", "name": "Acme"}],
            "settings": {"personalized_offer_ttl_seconds": 3600},
            "plans": {
                "basic": {
                    "name": "Basic",
                    "price": 1500,
                    "currency": "USD",
                    "period_unit": "month",
                },
                "pro": {"name": "Pro", "price": 4900, "currency": "USD", "period_unit": "month"},
            },
            "coupons": {
                "SAVE20": {
                    "name": "20% off",
                    "discount_type": "percentage",
                    "discount_percentage": 20,
                    "duration_type": "forever",
                }
            },
            "offers": {
                "stay": {
                    "name": "Stay",
                    "status": "active",
                    "priority": 10,
                    "eligibility": "subscription.status == 'active'",
                    "content": {"title": "Before you go", "description": "A gift."},
                    "default_locale": "en",
                    "translations": {
                        "fr": {
                            "content": {"title": "Avant de partir"},
                            "options": {"discount": {"label": "20 % de remise"}},
                        }
                    },
                    "guards": {
                        "dismiss_cooldown_days": 7,
                        "max_views": {"count": 3, "period_days": 30},
                    },
                    "options": [
                        {
                            "id": "discount",
                            "label": "20% off",
                            "processing_type": "billing_update",
                            "billing_action": {"type": "apply_coupon", "coupon_id": "SAVE20"},
                        }
                    ],
                },
                "upgrade": {
                    "name": "Upgrade",
                    "status": "active",
                    "priority": 10,
                    "content": {"title": "Go Pro"},
                    "options": [
                        {
                            "id": "pro",
                            "label": "Go Pro",
                            "processing_type": "checkout",
                            "billing_action": {"type": "change_plan", "plan_id": "pro"},
                        }
                    ],
                },
            },
            "experiments": {
                "stay-test": {
                    "name": "Stay or upgrade",
                    "status": "running",
                    "arms": [
                        {"id": "stay", "offer_id": "stay", "weight": 45},
                        {"id": "upgrade", "offer_id": "upgrade", "weight": 45},
                        {"id": "holdout", "weight": 10},
                    ],
                }
            },
            "notification_channels": {
                "hooks": {
                    "type": "webhook",
                    "url": "https://merchant.example/offerd",
                    "event_types": ["offer_accepted", "offer_fulfillment_completed"],
                },
                "ops": {"type": "slack", "webhook_url": "https://hooks.slack.example/T1/B1"},
            },
        }
    }
}

RESOURCES = [
    "site acme",
    "plan basic",
    "plan pro",
    "coupon SAVE20",
    "offer stay",
    "offer upgrade",
    "experiment stay-test",
    "notification_channel hooks",
    "notification_channel ops",
]


def write(tmp_path: Path, catalog: dict[str, Any] | str, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        catalog if isinstance(catalog, str) else yaml.safe_dump(catalog, sort_keys=False)
    )
    return path


def apply(
    db_url: str, tmp_path: Path, catalog: dict[str, Any] | str, *flags: str
) -> subprocess.CompletedProcess[str]:
    path = write(tmp_path, catalog)
    return offerd(db_url, tmp_path, "apply", "-f", str(path), *flags)


def query(db_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params or None).fetchall()  # type: ignore[arg-type]


def counts(db_url: str) -> dict[str, int]:
    tables = (
        "sites",
        "plans",
        "coupons",
        "offers",
        "offer_versions",
        "experiments",
        "notification_channels",
    )
    return {t: query(db_url, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in tables}  # noqa: S608


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line[:2] in ("+ ", "~ ", "= ")]


def edited(**offer_changes: Any) -> dict[str, Any]:
    catalog = yaml.safe_load(yaml.safe_dump(CATALOG))
    catalog["sites"]["acme"]["offers"]["stay"].update(offer_changes)
    return catalog


def test_dry_run_lists_creations_and_changes_nothing(db_url: str, tmp_path: Path) -> None:
    before = counts(db_url)
    result = apply(db_url, tmp_path, CATALOG, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert lines(result) == [f"+ {r}" for r in RESOURCES]
    assert "9 resources would change" in result.stderr
    # no secret is made or shown in a dry run
    assert "whsec_" not in result.stdout + result.stderr
    assert counts(db_url) == before
    assert query(db_url, "SELECT id FROM sites WHERE id = 'acme'") == []


def test_apply_creates_everything(db_url: str, tmp_path: Path) -> None:
    result = apply(db_url, tmp_path, CATALOG)
    assert result.returncode == 0, result.stderr
    assert lines(result) == [f"+ {r}" for r in RESOURCES]
    assert "9 resources changed" in result.stderr

    (site,) = query(db_url, "SELECT * FROM sites WHERE id = 'acme'")
    assert site["name"] == "Acme"
    assert site["brands"] == [{"id": "acme", "name": "Acme"}]
    assert site["settings"] == {"personalized_offer_ttl_seconds": 3600}
    plans = query(db_url, "SELECT id, price FROM plans WHERE site_id = 'acme' ORDER BY id")
    assert plans == [{"id": "basic", "price": 1500}, {"id": "pro", "price": 4900}]
    assert [c["id"] for c in query(db_url, "SELECT id FROM coupons WHERE site_id = 'acme'")] == [
        "SAVE20"
    ]
    offers = {
        o["id"]: o
        for o in query(
            db_url, "SELECT id, version, status, definition FROM offers WHERE site_id = 'acme'"
        )
    }
    assert set(offers) == {"stay", "upgrade"}
    stay = offers["stay"]["definition"]
    assert stay["translations"]["fr"]["content"]["title"] == "Avant de partir"
    assert stay["guards"] == {
        "dismiss_cooldown_days": 7,
        "max_views": {"count": 3, "period_days": 30},
    }
    assert stay["eligibility"] == "subscription.status == 'active'"
    assert offers["stay"]["version"] == 1
    versions = query(db_url, "SELECT offer_id, version FROM offer_versions ORDER BY offer_id")
    assert versions == [{"offer_id": "stay", "version": 1}, {"offer_id": "upgrade", "version": 1}]
    (experiment,) = query(db_url, "SELECT * FROM experiments WHERE site_id = 'acme'")
    assert (experiment["id"], experiment["status"]) == ("stay-test", "running")
    assert [a["weight"] for a in experiment["arms"]] == [45, 45, 10]
    channels = {
        c["id"]: c
        for c in query(db_url, "SELECT * FROM notification_channels WHERE site_id = 'acme'")
    }
    assert channels["ops"]["type"] == "slack"
    hooks = channels["hooks"]
    assert hooks["type"] == "webhook"
    assert hooks["config"]["url"] == "https://merchant.example/offerd"
    # the webhook secret offerd generated is printed once, and it is the stored one (encrypted)
    shown = re.findall(r"webhook secret of acme/hooks \(shown once\): (whsec_\S+)", result.stdout)
    assert hooks["secret"].startswith("fernet:")
    assert shown == [SecretBox([SECRET_KEY]).decrypt(hooks["secret"])]

    # a second dry run: everything is in place
    again = apply(db_url, tmp_path, CATALOG, "--dry-run")
    assert again.returncode == 0, again.stderr
    assert lines(again) == [f"= {r}" for r in RESOURCES]
    assert "0 resources would change" in again.stderr
    # and a second apply changes nothing and shows no secret again
    before = query(db_url, "SELECT catalog_version FROM sites WHERE id = 'acme'")
    again = apply(db_url, tmp_path, CATALOG)
    assert again.returncode == 0, again.stderr
    assert "0 resources changed" in again.stderr
    assert "whsec_" not in again.stdout
    assert query(db_url, "SELECT catalog_version FROM sites WHERE id = 'acme'") == before


def test_an_edited_offer_shows_as_a_change(db_url: str, tmp_path: Path) -> None:
    assert apply(db_url, tmp_path, CATALOG).returncode == 0
    changed = edited(priority=50)
    result = apply(db_url, tmp_path, changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "~ offer stay (priority)" in lines(result)
    # everything else is unchanged
    assert [line for line in lines(result) if not line.startswith("= ")] == [
        "~ offer stay (priority)"
    ]
    assert "1 resource would change" in result.stderr
    assert query(db_url, "SELECT version, priority FROM offers WHERE id = 'stay'") == [
        {"version": 1, "priority": 10}
    ]

    result = apply(db_url, tmp_path, changed)
    assert result.returncode == 0, result.stderr
    assert "1 resource changed" in result.stderr
    # the webhook channel keeps its secret: it is not shown again
    assert "whsec_" not in result.stdout
    assert query(db_url, "SELECT version, priority FROM offers WHERE id = 'stay'") == [
        {"version": 2, "priority": 50}
    ]
    assert [
        r["version"]
        for r in query(
            db_url, "SELECT version FROM offer_versions WHERE offer_id = 'stay' ORDER BY version"
        )
    ] == [1, 2]

    # two fields at once are both named
    result = apply(db_url, tmp_path, edited(priority=7, status="paused"), "--dry-run")
    assert "~ offer stay (priority, status)" in lines(result)


def test_a_change_made_through_the_admin_api_shows_in_the_diff(db_url: str, tmp_path: Path) -> None:
    """The diff compares with what is stored, not with the last file applied."""
    assert apply(db_url, tmp_path, CATALOG).returncode == 0
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE plans SET price = 1600 WHERE site_id = 'acme' AND id = 'basic'")
    result = apply(db_url, tmp_path, CATALOG, "--dry-run")
    assert "~ plan basic (price)" in lines(result)


def invalid(**changes: Any) -> dict[str, Any]:
    catalog = yaml.safe_load(yaml.safe_dump(CATALOG))
    site = catalog["sites"]["acme"]
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = site
        for part in path:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return catalog


@pytest.mark.parametrize(
    ("catalog", "expected"),
    [
        # a billing_update option without its billing action: the option is named by its index
        (
            invalid(offers__stay__options__0__billing_action=None),
            "sites.acme.offers.stay.options[0]",
        ),
        # a wrong field inside the billing action
        (
            invalid(offers__stay__options__0__billing_action={"type": "apply_coupon"}),
            "sites.acme.offers.stay.options[0].billing_action.coupon_id",
        ),
        # an unknown guard (a typo)
        (
            invalid(offers__stay__guards={"dismis_cooldown_days": 3}),
            "sites.acme.offers.stay.guards.dismis_cooldown_days",
        ),
        # a plan with a bad currency
        (invalid(plans__pro__currency="usd"), "sites.acme.plans.pro.currency"),
        # an experiment arm with a zero weight
        (
            invalid(**{"experiments__stay-test__arms__2__weight": 0}),
            "sites.acme.experiments.stay-test.arms[2].weight",
        ),
        # a setting that does not exist
        (invalid(settings={"ttl": 5}), "sites.acme.settings.ttl"),
    ],
)
def test_invalid_files_exit_2_with_the_path_of_the_problem(
    db_url: str, tmp_path: Path, catalog: dict[str, Any], expected: str
) -> None:
    result = apply(db_url, tmp_path, catalog, "--dry-run")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{expected}:" in result.stderr, result.stderr
    # the file is named
    assert "catalog.yaml" in result.stderr
    assert lines(result) == []


def test_the_printed_path_keeps_every_key(db_url: str, tmp_path: Path) -> None:
    """Whatever the notation, every step of the path reaches the terminal (a bracketed key must
    not be taken for console markup and dropped)."""
    catalog = invalid(offers__stay__options__0__billing_action={"type": "apply_coupon"})
    result = apply(db_url, tmp_path, catalog, "--dry-run")
    assert result.returncode == 2
    message = result.stderr.split("catalog.yaml: ", 1)[1]
    for step in ("sites", "acme", "offers", "stay", "options", "0", "billing_action", "coupon_id"):
        assert step in message, message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # not YAML at all: the parser's position is shown
        ("sites:\n  acme: {name: Acme\n", "not valid YAML"),
        # YAML, but not a catalog
        ("- just\n- a list\n", "top-level 'sites:'"),
        ("sites: {}\nplans: {}\n", "unknown top-level keys"),
        # site ids are DNS labels
        (
            "sites:\n  Acme_Inc: {name: Acme}\n",
            "sites.Acme_Inc: a site id is a lower-case DNS label",
        ),
    ],
)
def test_files_that_are_not_catalogs_exit_2(
    db_url: str, tmp_path: Path, text: str, expected: str
) -> None:
    result = apply(db_url, tmp_path, text)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in result.stderr
    assert query(db_url, "SELECT id FROM sites") == []


def test_bad_yaml_error_has_its_position(db_url: str, tmp_path: Path) -> None:
    result = apply(db_url, tmp_path, "sites:\n  acme:\n    name: Acme\n   plans: {}\n")
    assert result.returncode == 2
    assert "line 4" in result.stderr


def test_bad_eligibility_expression_has_its_position(db_url: str, tmp_path: Path) -> None:
    catalog = invalid(offers__stay__eligibility="subscription.status == 'active' &&")
    result = apply(db_url, tmp_path, catalog, "--dry-run")
    assert result.returncode == 2
    # columns are 1-based: the end of this 34-character expression is column 35
    assert "sites.acme.offers.stay.eligibility:" in result.stderr
    assert "line 1, column 35" in result.stderr
    result = apply(db_url, tmp_path, catalog)
    assert result.returncode == 2
    assert query(db_url, "SELECT id FROM sites") == []


def test_apply_is_all_or_nothing_per_site(db_url: str, tmp_path: Path) -> None:
    """An experiment naming an offer that exists neither in the file nor in the database fails its
    site after the site, plans, coupons and offers were written in the same transaction: none of
    them remains. A site before it in the file is applied."""
    catalog = yaml.safe_load(yaml.safe_dump(CATALOG))
    good = {"name": "Good", "plans": {"basic": catalog["sites"]["acme"]["plans"]["basic"]}}
    acme = catalog["sites"].pop("acme")
    acme["experiments"]["stay-test"]["arms"][1]["offer_id"] = "nope"
    catalog["sites"] = {"good": good, "acme": acme}

    result = apply(db_url, tmp_path, catalog)
    assert result.returncode != 0, result.stdout
    assert "'nope'" in result.stderr
    assert query(db_url, "SELECT id FROM sites") == [{"id": "good"}]
    for table in (
        "plans",
        "coupons",
        "offers",
        "offer_versions",
        "experiments",
        "notification_channels",
    ):
        assert query(db_url, f"SELECT 1 FROM {table} WHERE site_id = 'acme'") == [], table  # noqa: S608
    # no secret was shown for a channel that was never written
    assert "whsec_" not in result.stdout


def test_a_second_site_is_independent(db_url: str, tmp_path: Path) -> None:
    catalog = yaml.safe_load(yaml.safe_dump(CATALOG))
    catalog["sites"]["other"] = {"name": "Other", "coupons": catalog["sites"]["acme"]["coupons"]}
    assert apply(db_url, tmp_path, catalog).returncode == 0
    assert [r["id"] for r in query(db_url, "SELECT id FROM sites ORDER BY id")] == ["acme", "other"]
    assert query(db_url, "SELECT site_id FROM coupons ORDER BY site_id") == [
        {"site_id": "acme"},
        {"site_id": "other"},
    ]


RICH: dict[str, Any] = {
    "sites": {
        "rich": {
            "name": "Rich",
            "brands": [{"id": "r1", "name": "Rich One"}, {"id": "r2", "name": "Rich Two"}],
            "settings": {"fulfillment_timeout_days": 7, "url_redirect_auto_complete": True},
            "plans": {
                "yearly": {
                    "name": "Yearly",
                    "price": 99000,
                    "currency": "EUR",
                    "period_unit": "year",
                }
            },
            "coupons": {
                "TEN": {
                    "name": "10 off",
                    "discount_type": "fixed_amount",
                    "discount_amount": 1000,
                    "currency": "EUR",
                    "duration_type": "limited_period",
                    "duration_months": 3,
                },
                "HALF": {
                    "name": "Half",
                    "discount_type": "percentage",
                    "discount_percentage": 50.5,
                    "duration_type": "one_time",
                },
            },
            "offers": {
                "windowed": {
                    "name": "Windowed",
                    "status": "paused",
                    "priority": -5,
                    "starts_at": 1_900_000_000,
                    "ends_at": 1_900_086_400,
                    "business_entity_id": "be_eu",
                    "brand_id": "r2",
                    "content": {"title": "Later"},
                    "guards": {
                        "accept_cooldown_days": 90,
                        "max_acceptances": {"count": 1, "period_days": 365},
                    },
                    "options": [
                        {
                            "id": "mail",
                            "label": "Mail us",
                            "processing_type": "email",
                            "email_to": ["ops@rich.example"],
                        }
                    ],
                }
            },
            "experiments": {
                "solo": {
                    "name": "Solo",
                    "arms": [
                        {"id": "on", "offer_id": "windowed", "weight": 9},
                        {"id": "off", "weight": 1},
                    ],
                }
            },
            "notification_channels": {
                "signed": {
                    "type": "webhook",
                    "url": "https://rich.example/hook",
                    "secret": "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
                    "basic_auth": {"username": "u", "password": "p"},
                },
                "mail": {
                    "type": "email",
                    "to": ["ops@rich.example"],
                    "event_types": ["offer_accepted"],
                },
                "seg": {"type": "segment", "write_key": "wk_123"},
            },
        }
    }
}


def test_every_kind_of_resource_is_unchanged_after_apply(db_url: str, tmp_path: Path) -> None:
    """Defaults, optional fields, numbers and secrets read back equal to the file: a second dry
    run reports nothing to change (else every apply would rewrite and re-version)."""
    result = apply(db_url, tmp_path, RICH)
    assert result.returncode == 0, result.stderr
    # the webhook's secret came from the file: nothing to show
    assert "whsec_" not in result.stdout
    again = apply(db_url, tmp_path, RICH, "--dry-run")
    assert again.returncode == 0, again.stderr
    assert [line for line in lines(again) if not line.startswith("= ")] == []
    assert len(lines(again)) == 9
    assert "0 resources would change" in again.stderr


@pytest.mark.parametrize(
    ("catalog", "path"),
    [
        # the site's brands are the file's: an offer naming another brand can never be saved
        (invalid(offers__stay__brand_id="nope"), "sites.acme.offers.stay.brand_id"),
        # an arm naming an offer that is neither in the file nor stored
        (
            invalid(**{"experiments__stay-test__arms__1__offer_id": "nope"}),
            "sites.acme.experiments.stay-test.arms[1].offer_id",
        ),
    ],
)
def test_a_dry_run_reports_what_apply_would_refuse(
    db_url: str, tmp_path: Path, catalog: dict[str, Any], path: str
) -> None:
    """A dry run that prints a clean plan for a file apply then refuses is no preview: both
    report the problem, with its path in the file, and write nothing."""
    for flags in (["--dry-run"], []):
        result = apply(db_url, tmp_path, catalog, *flags)
        assert result.returncode != 0, (flags, result.stdout)
        assert path in result.stderr, (flags, result.stderr)
    assert query(db_url, "SELECT id FROM sites") == []
