"""Catalog as code: ``offerd apply -f catalog.yaml`` upserts sites with their plans, coupons,
offers, experiments and notification channels; ``--dry-run`` shows the difference from what is
stored and changes nothing.

The file::

    sites:
      acme:                      # site id
        name: Acme
        brands: [{id: acme, name: Acme}]
        settings: {personalized_offer_ttl_seconds: 3600}
        plans:    {pro: {name: Pro, price: 4900, currency: USD, period_unit: month}}
        coupons:  {SAVE20: {name: 20% off, discount_type: percentage, discount_percentage: 20,
                            duration_type: forever}}
        offers:   {stay: {...the admin API's offer definition...}}
        experiments: {stay-test: {name: ..., status: running, arms: [...]}}
        notification_channels: {ops: {type: slack, webhook_url: https://hooks.slack.com/...}}
        billing_provider:        # default: the built-in ledger
          type: stripe
          secret_key_env: STRIPE_SECRET_KEY          # names of environment variables: the
          webhook_secret_env: STRIPE_WEBHOOK_SECRET  # credentials never live in the file

Everything is validated before anything is written; each site is applied in one transaction.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from offerd.billing import providers
from offerd.billing import service as billing
from offerd.billing.models import CouponIn, PlanIn
from offerd.billing.provider_models import SECRET_FIELDS, ProviderIn
from offerd.common.secrets import SecretBox
from offerd.db import Conn, transaction
from offerd.edge.errors import APIError
from offerd.edge.wire import client_loc
from offerd.notifications import channel_secrets
from offerd.notifications import service as notifications
from offerd.notifications.models import ChannelIn
from offerd.offers import service as offers
from offerd.offers import targeting
from offerd.offers.models import ExperimentIn, OfferIn
from offerd.sites import service as sites
from offerd.sites.models import SITE_ID_PATTERN, SiteIn


class SiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: SiteIn
    plans: dict[str, PlanIn] = Field(default_factory=dict)
    coupons: dict[str, CouponIn] = Field(default_factory=dict)
    offers: dict[str, OfferIn] = Field(default_factory=dict)
    experiments: dict[str, ExperimentIn] = Field(default_factory=dict)
    notification_channels: dict[str, ChannelIn] = Field(default_factory=dict)
    billing_provider: ProviderIn | None = None


class CatalogError(ValueError):
    pass


_PROVIDER: TypeAdapter[ProviderIn] = TypeAdapter(ProviderIn)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _billing_provider(site_id: str, raw: Any, environ: Mapping[str, str]) -> ProviderIn:
    """The ``billing_provider:`` section, its credentials read from the environment variables it
    names (``secret_key_env: STRIPE_SECRET_KEY``). A credential written in the file is refused:
    catalog files live in git. Errors name the place in the file, never a value."""
    where = f"sites.{site_id}.billing_provider"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected a mapping")
    data = dict(raw)
    secret_fields = SECRET_FIELDS.get(str(data.get("type")), ())
    for name in secret_fields:
        if name in data:
            raise CatalogError(
                f"{where}.{name}: a credential is never written in the file; name the "
                f"environment variable that holds it with {name}_env"
            )
        variable = data.pop(f"{name}_env", None)
        if variable is None:
            continue
        if not isinstance(variable, str) or not _ENV_NAME.match(variable):
            raise CatalogError(f"{where}.{name}_env: must be an environment variable's name")
        value = environ.get(variable)
        if not value:
            raise CatalogError(
                f"{where}.{name}_env: the environment variable {variable} is not set"
            )
        data[name] = value
    try:
        return _PROVIDER.validate_python(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = client_loc(error["loc"], data)
        if loc and loc[0] in secret_fields:
            loc = [f"{loc[0]}_env", *loc[1:]]
        detail = "".join(f".{part}" for part in loc)
        raise CatalogError(f"{where}{detail}: {error['msg']}") from None


def check_destinations(spec: Mapping[str, SiteFile], *, allow_private: bool) -> None:
    """Each billing provider's ``api_base`` through the outbound guard, as the admin API does."""
    for site_id, site in spec.items():
        if site.billing_provider is None:
            continue
        try:
            providers.check_destination(site.billing_provider, allow_private=allow_private)
        except APIError as exc:
            raise CatalogError(
                f"sites.{site_id}.billing_provider.api_base: {exc.message}"
            ) from None


def path(site_id: str, loc: Sequence[int | str]) -> str:
    """Where in the file: ``sites.acme.offers.stay.options[0].label``."""
    out = f"sites.{site_id}"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _check_references(site_id: str, spec: SiteFile) -> None:
    brands = {b.id for b in spec.site.all_brands}
    for offer_id, offer in spec.offers.items():
        if offer.brand_id is not None and offer.brand_id not in brands:
            raise CatalogError(
                f"{path(site_id, ['offers', offer_id, 'brand_id'])}: "
                f"{offer.brand_id!r} is not one of the site's brands"
            )


_SECTIONS = ("plans", "coupons", "offers", "experiments", "notification_channels")


def parse(text: str, environ: Mapping[str, str] = os.environ) -> dict[str, SiteFile]:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("sites"), dict):
        raise CatalogError("the file needs a top-level 'sites:' mapping of site id to site")
    unknown = set(raw) - {"sites"}
    if unknown:
        raise CatalogError(f"unknown top-level keys: {sorted(unknown)}")
    out: dict[str, SiteFile] = {}
    for site_id, body in raw["sites"].items():
        if not isinstance(site_id, str) or not re.match(SITE_ID_PATTERN, site_id):
            raise CatalogError(f"sites.{site_id}: a site id is a lower-case DNS label")
        if not isinstance(body, dict):
            raise CatalogError(f"sites.{site_id}: expected a mapping")
        body = dict(body)
        sections = {k: body.pop(k) for k in _SECTIONS if k in body}
        raw_provider = body.pop("billing_provider", None)
        data = {"site": body, **sections}
        try:
            out[str(site_id)] = SiteFile.model_validate(data)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            loc = client_loc(error["loc"], data)
            if loc and loc[0] == "site":
                loc = loc[1:]
            raise CatalogError(f"{path(str(site_id), loc)}: {error['msg']}") from None
        if raw_provider is not None:
            out[str(site_id)].billing_provider = _billing_provider(
                str(site_id), raw_provider, environ
            )
        _check_references(str(site_id), out[str(site_id)])
        for offer_id, offer in out[str(site_id)].offers.items():
            if offer.eligibility:
                try:
                    targeting.compile_rule(offer.eligibility)
                except targeting.RuleError as exc:
                    raise CatalogError(
                        f"sites.{site_id}.offers.{offer_id}.eligibility: {exc}"
                    ) from None
    return out


@dataclass
class Change:
    kind: str  # site, plan, coupon, offer, experiment, notification_channel
    id: str
    action: str  # create, update, unchanged
    fields: list[str] = field(default_factory=list)

    def line(self) -> str:
        mark = {"create": "+", "update": "~", "unchanged": "="}[self.action]
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{mark} {self.kind} {self.id}{detail}"


def _differs(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))


def _compare(
    kind: str, ident: str, stored: Mapping[str, Any] | None, wanted: Mapping[str, Any]
) -> Change:
    if stored is None:
        return Change(kind, ident, "create")
    fields = _differs(stored, wanted)
    return Change(kind, ident, "update" if fields else "unchanged", fields)


async def diff(conn: Conn, site_id: str, spec: SiteFile, *, box: SecretBox) -> list[Change]:
    changes: list[Change] = []
    stored_row = await sites.get(conn, site_id)
    wanted_site = {
        "name": spec.site.name,
        "brands": [b.model_dump() for b in spec.site.all_brands],
        "settings": spec.site.settings.model_dump(exclude_defaults=True),
    }
    stored_site = (
        {
            "name": stored_row.name,
            "brands": [b.model_dump() for b in stored_row.brands],
            "settings": stored_row.settings.model_dump(exclude_defaults=True),
        }
        if stored_row
        else None
    )
    changes.append(_compare("site", site_id, stored_site, wanted_site))
    for plan_id, plan in spec.plans.items():
        found = await billing.get(conn, "plans", site_id, plan_id)
        stored = {k: found[k] for k in plan.model_dump()} if found else None
        changes.append(_compare("plan", plan_id, stored, plan.model_dump()))
    for coupon_id, coupon in spec.coupons.items():
        found = await billing.get(conn, "coupons", site_id, coupon_id)
        stored = None
        if found:
            stored = {k: found[k] for k in coupon.model_dump()}
            if stored["discount_percentage"] is not None:
                stored["discount_percentage"] = float(stored["discount_percentage"])
        changes.append(_compare("coupon", coupon_id, stored, coupon.model_dump()))
    for offer_id, offer in spec.offers.items():
        found = await offers.get_offer(conn, site_id, offer_id)
        wanted = offer.model_dump(mode="json", exclude_none=True)
        changes.append(_compare("offer", offer_id, found["definition"] if found else None, wanted))
    named = [a.offer_id for e in spec.experiments.values() for a in e.arms if a.offer_id]
    stored_offers = await offers.existing_offers(conn, site_id, named) if named else set()
    for experiment_id, experiment in spec.experiments.items():
        for index, arm in enumerate(experiment.arms):
            if (
                arm.offer_id
                and arm.offer_id not in spec.offers
                and arm.offer_id not in stored_offers
            ):
                where = path(site_id, ["experiments", experiment_id, "arms", index, "offer_id"])
                raise CatalogError(
                    f"{where}: offer {arm.offer_id!r} is neither in the file nor stored"
                )
        found = await offers.get_experiment(conn, site_id, experiment_id)
        stored = (
            {"name": found["name"], "status": found["status"], "arms": found["arms"]}
            if found
            else None
        )
        changes.append(
            _compare("experiment", experiment_id, stored, experiment.model_dump(mode="json"))
        )
    for channel_id, channel in spec.notification_channels.items():
        found = await notifications.get_channel(conn, site_id, channel_id)
        wanted = channel.model_dump(mode="json", exclude_none=True)
        stored = None
        if found:
            config = channel_secrets.reveal_config(box, found["type"], found["config"])
            secret = channel_secrets.reveal_secret(box, found["secret"])
            stored = {"type": found["type"], **config, "event_types": found["event_types"]}
            if found["type"] == "segment":
                stored["write_key"] = secret
            if "secret" in wanted:
                stored["secret"] = secret
        changes.append(_compare("notification_channel", channel_id, stored, wanted))
    if spec.billing_provider is not None:
        row = await providers.get(conn, site_id)
        wanted = spec.billing_provider.model_dump(mode="json", exclude_none=True)
        # no row is the built-in ledger: asking for it changes nothing
        stored_provider = (
            {"type": row["type"], **providers.credentials(row, box)}
            if row
            else ({"type": "ledger"} if wanted["type"] == "ledger" else None)
        )
        changes.append(_compare("billing_provider", site_id, stored_provider, wanted))
    return changes


async def apply(
    conn: Conn,
    site_id: str,
    spec: SiteFile,
    *,
    now: datetime,
    box: SecretBox,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, str]:
    """Write one site's catalog in one transaction. Returns webhook secrets offerd generated."""
    secrets: dict[str, str] = {}
    async with transaction(conn):
        await sites.save(conn, site_id, spec.site, now)
        await sites.ensure_webhook_secret(conn, site_id, box)
        site = await sites.get(conn, site_id)
        assert site is not None
        progress(f"site {site_id}")
        for plan_id, plan in spec.plans.items():
            await billing.save_plan(conn, site_id, plan_id, plan, now)
            progress(f"plan {plan_id}")
        for coupon_id, coupon in spec.coupons.items():
            await billing.save_coupon(conn, site_id, coupon_id, coupon, now)
            progress(f"coupon {coupon_id}")
        stored = await providers.get(conn, site_id)
        kind = spec.billing_provider.type if spec.billing_provider else None
        kind = kind or (stored["type"] if stored else "ledger")
        check_ids = kind != "ledger" and await billing.mirror_synced(conn, site_id)
        for offer_id, offer in spec.offers.items():
            await _check_billing(conn, site_id, offer_id, offer, kind, check_ids)
            await offers.save_offer(
                conn, site_id=site_id, offer_id=offer_id, offer=offer, now=now, site=site
            )
            progress(f"offer {offer_id}")
        for experiment_id, experiment in spec.experiments.items():
            await offers.save_experiment(
                conn, site_id=site_id, experiment_id=experiment_id, experiment=experiment, now=now
            )
            progress(f"experiment {experiment_id}")
        for channel_id, channel in spec.notification_channels.items():
            _, secret = await notifications.save_channel(
                conn, site_id=site_id, channel_id=channel_id, channel=channel, now=now, box=box
            )
            if secret:
                secrets[channel_id] = secret
            progress(f"notification channel {channel_id}")
        if spec.billing_provider is not None:
            await providers.save(conn, site_id, spec.billing_provider, now=now, box=box)
            progress("billing provider")
    return secrets


async def _check_billing(
    conn: Conn, site_id: str, offer_id: str, offer: OfferIn, kind: str, check_ids: bool
) -> None:
    """As the admin API checks an offer for a Stripe or Chargebee site: actions the provider can
    do, and (once the site's mirror has been imported: ``offerd billing sync``) plans and
    coupons the provider has. Checked against the mirror only: the file is applied in one
    transaction, with no call to the provider inside it."""
    try:
        billing.check_actions(kind, offers.billing_actions(offer))
    except APIError as exc:
        raise CatalogError(f"offers.{offer_id}: {exc.message}") from None
    if not check_ids:
        return
    for param, what, oid in await billing.missing_in_mirror(
        conn, site_id, offers.billing_references(offer)
    ):
        raise CatalogError(
            f"offers.{offer_id}: {param}: {oid!r} is not a {what} of this site's {kind} "
            "(as last imported; run `offerd billing sync` if it is new)"
        )


def count(spec: SiteFile) -> int:
    provider = 0 if spec.billing_provider is None else 1
    return 1 + provider + sum(len(getattr(spec, section)) for section in _SECTIONS)
