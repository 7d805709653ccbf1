"""Health, readiness, metrics, the OpenAPI document, offline docs and the server's heap."""

from __future__ import annotations

import gc

from offerd.app import create_app
from tests.support.app import TestApp
from tests.support.app import test_settings as settings_for
from tests.support.catalog import seed


async def test_health_and_ready(app: TestApp) -> None:
    assert (await app.client.get("/healthz")).json() == {"status": "ok"}
    r = await app.client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


async def test_ready_is_503_when_the_database_is_gone(app: TestApp) -> None:
    await app.services.db.pool.close()
    r = await app.client.get("/readyz")
    assert r.status_code == 503


async def test_metrics_have_latency_by_route_template_and_status(app: TestApp) -> None:
    keys = await seed(app)
    await app.post(
        "/api/v2/personalized_offers", keys["publishable"], json={"customer_id": "cus_1"}
    )
    await app.get("/api/v2/offer_fulfillments/of_whatever", keys["full_access"])
    text = (await app.client.get("/metrics")).text
    assert (
        'offerd_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v2/personalized_offers",status="200"}'
        in text
    )
    assert 'route="/api/v2/offer_fulfillments/{fulfillment_id}",status="404"' in text
    assert "of_whatever" not in text


async def test_methods_clients_invent_do_not_grow_the_metrics(app: TestApp) -> None:
    for method in ("BREW", "WHEN", "BREW"):
        await app.client.request(method, "/api/v2/personalized_offers")
    text = (await app.client.get("/metrics")).text
    assert 'method="other",route="/api/v2/personalized_offers",status="405"' in text
    assert "BREW" not in text and "WHEN" not in text


async def test_openapi_describes_both_encodings_and_every_error(app: TestApp) -> None:
    doc = (await app.client.get("/openapi.json")).json()
    accept = doc["paths"]["/api/v2/offer_fulfillments"]["post"]
    content = accept["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-www-form-urlencoded"}
    assert content["application/json"]["schema"]["required"] == [
        "personalized_offer_id",
        "option_id",
    ]
    assert {"202", "400", "401", "404", "405", "409", "413", "422", "429", "500", "503"} <= set(
        accept["responses"]
    )
    error = accept["responses"]["409"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}
    po = doc["paths"]["/api/v2/personalized_offers"]["post"]["requestBody"]["content"]
    form = po["application/x-www-form-urlencoded"]
    assert form["encoding"]["request_context"] == {"style": "deepObject", "explode": True}
    assert form["encoding"]["custom"] == {"contentType": "application/json"}
    assert "RequestContext" in doc["components"]["schemas"]
    headers = {p["name"] for p in accept["parameters"] if p["in"] == "header"}
    assert {
        "chargebee-idempotency-key",
        "chargebee-event-actions",
        "chargebee-business-entity-id",
    } <= headers
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "basic"


async def test_docs_work_without_internet(app: TestApp) -> None:
    html = (await app.client.get("/docs")).text
    assert "/static/docs/swagger-ui-bundle.js" in html
    assert "cdn." not in html and "https://" not in html.split("<body>")[0].replace(
        "https://fastapi", ""
    )
    js = await app.client.get("/static/docs/swagger-ui-bundle.js")
    assert js.status_code == 200
    assert len(js.content) > 100_000


async def test_a_server_process_keeps_its_startup_heap_out_of_full_collections(
    db_url: str,
) -> None:
    """What `offerd serve` builds (freeze_heap) is frozen once startup is done; apps built
    otherwise (tests) leave the collector alone."""
    assert gc.get_freeze_count() == 0
    plain = create_app(settings_for(db_url))
    async with plain.router.lifespan_context(plain):
        assert gc.get_freeze_count() == 0
    served = create_app(settings_for(db_url), freeze_heap=True)
    try:
        async with served.router.lifespan_context(served):
            assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
