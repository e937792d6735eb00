"""The unmodified `novitus-noviapi` client (0.3.2) against fiscald's NoviAPI facade.

usage: python client.py BASE_URL RESULT_JSON

Runs the client's connection test, token, queue check/clear, receipt send/confirm/check
(with a repeated confirm), a receipt whose confirmation never comes, a non-fiscal printout,
status reads, a refused receipt, an unsupported endpoint, token refresh, the 401 -> PATCH ->
GET path, and a daily report. Writes what the test must check against the emulator (the
receipts' jpkids, the report's) to RESULT_JSON and prints "N passed, N failed".
"""

import datetime
import json
import sys
from decimal import Decimal

from noviapi import NoviApiClient
from noviapi.exceptions import ConflictError, NoviApiResponseError, ValidationErrorResponse
from noviapi.models import (
    Article,
    CashPayment,
    Discount,
    Item,
    NamedPayment,
    Payment,
    Receipt,
    ReceiptBuyer,
    Summary,
    SystemInfo,
    SystemNumber,
    TokenResponse,
)
from noviapi.token_store import InMemoryTokenStore

BASE = sys.argv[1]
RESULT = sys.argv[2]
passed = 0
failed = 0
result = {}


def step(name, fn):
    global passed, failed
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported by name
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
    else:
        passed += 1
        print(f"ok   {name}", flush=True)


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, expected {want!r}")


def wait_done(check, request_id):
    for _ in range(30):
        r = check(request_id, timeout=2000)
        if r.request.status in ("DONE", "ERROR", "UNKNOWN"):
            return r
    raise AssertionError(f"request {request_id} did not end: {r}")


def receipt(system_number):
    return Receipt(
        items=[
            Item(article=Article(name="Chleb razowy", ptu="A", quantity=Decimal("2"),
                                 price=Decimal("4.50"), value=Decimal("9.00"))),
            Item(article=Article(name="Mleko 3.2%", ptu="B", quantity=Decimal("1"),
                                 price=Decimal("3.49"), value=Decimal("3.49"), unit="szt",
                                 discount_markup=Discount(type="value_discount",
                                                          value=Decimal("0.49")))),
        ],
        payments=[Payment(card=NamedPayment(value=Decimal("10.00"))),
                  Payment(cash=CashPayment(value=Decimal("5.00")))],
        summary=Summary(total=Decimal("12.00"), pay_in=Decimal("15.00"),
                        change=Decimal("3.00")),
        buyer=ReceiptBuyer(nip="5260001246"),
        system_info=SystemInfo(system_number=SystemNumber(print_as="text",
                                                          value=system_number)),
    )


store = InMemoryTokenStore()
client = NoviApiClient(BASE, token_store=store, timeout=10.0)


def comm_test():
    expect("comm_test", client.comm_test(), True)


def token():
    t = client.token_get()
    expect("token has a timezone", t.expiration_date.tzinfo is not None, True)
    left = t.expiration_date - datetime.datetime.now(datetime.timezone.utc)
    expect("token lasts about 20 minutes", 19 * 60 < left.total_seconds() <= 20 * 60 + 5, True)
    result["token"] = t.token


def queue_empty():
    expect("requests in queue", client.queue_check().requests_in_queue, 0)


def receipt_printed():
    created = client.receipt_send(receipt("POS-1/1"))
    expect("created", created.request.status, "STORED")
    rid = created.request.id
    stored = client.receipt_check(rid)
    expect("before PUT", stored.request.status, "STORED")
    expect("confirm", client.receipt_confirm(rid).request.status, "CONFIRMED")
    # A repeated confirm (the POS lost the answer) never prints twice.
    expect("confirm again", client.receipt_confirm(rid).request.status, "CONFIRMED")
    done = wait_done(client.receipt_check, rid)
    expect("receipt status", done.request.status, "DONE")
    expect("device", done.device.status, "OK")
    if done.request.jpkid is None:
        raise AssertionError(f"no jpkid: {done}")
    result.setdefault("receipts", []).append(done.request.jpkid)


def second_receipt():
    created = client.receipt_send(receipt("POS-1/2"))
    client.receipt_confirm(created.request.id)
    done = wait_done(client.receipt_check, created.request.id)
    expect("second receipt", done.request.status, "DONE")
    result["receipts"].append(done.request.jpkid)


def unconfirmed_then_cleared():
    lost = client.receipt_send(receipt("POS-1/lost"))
    cancelled = client.receipt_send(receipt("POS-1/cancelled"))
    expect("queue", client.queue_check().requests_in_queue, 2)
    expect("cancel", client.receipt_cancel(cancelled.request.id).request.status, "DELETED")
    expect("queue after cancel", client.queue_check().requests_in_queue, 1)
    expect("clear", client.queue_clear().status, "DELETED")
    expect("queue after clear", client.queue_check().requests_in_queue, 0)
    try:
        client.receipt_confirm(lost.request.id)
    except NoviApiResponseError as e:
        expect("confirming a cleared request", e.status_code, 404)
    else:
        raise AssertionError("a cleared request was confirmed")


def printout():
    created = client.nf_printout_send({"lines": [
        {"textline": {"text": "Zamowienie 42", "masked": False}},
        {"special_line": {"type": "underline"}},
    ]})
    client.nf_printout_confirm(created.request.id)
    done = wait_done(client.nf_printout_check, created.request.id)
    expect("printout", done.request.status, "DONE")


def status_reads():
    for kind in ("device", "fiscal_memory", "protected_memory"):
        created = client.status_send({"type": kind})
        client.status_confirm(created.request.id)
        done = wait_done(client.status_check, created.request.id)
        expect(f"status {kind}", done.request.status, "DONE")
        s = done.request.response.status
        if kind == "device":
            rates = {r.name: r.value for r in s.device.tax_rates}
            expect("VAT A is 23 %", rates.get("A"), "23")
            totals = {t.tax_rate: t.receipt for t in s.device.totals}
            expect("sales in A today", totals.get("A"), Decimal("18.00"))
            result["device"] = s.device.name
        elif kind == "fiscal_memory":
            expect("unique number length", len(s.fiscal_memory.unique_number), 13)
        else:
            expect("last jpkid", s.protected_memory.last_jpkid, str(result["receipts"][-1]))


def refused_receipt():
    bad = receipt("POS-1/bad").model_dump(mode="json", exclude_none=True)
    bad["items"][0]["article"]["ptu"] = "G"
    try:
        client.receipt_send(bad)
    except ValidationErrorResponse as e:
        expect("status", e.status_code, 400)
        d = e.detail.exception
        expect("code", d.code, 8)
        if not d.description.startswith("receipt.items[0].article.ptu:"):
            raise AssertionError(f"description does not name the field: {d.description}")
    else:
        raise AssertionError("a receipt with an inactive VAT letter was stored")


def unsupported():
    for send, body in (
        (client.lock_send, {"operation": "enable"}),
        (client.graphic_send, {"operation": "read_indexes"}),
        (client.configuration_send, {"operation": "read_all"}),
        (client.direct_io_send, {"nov_cmd": {"base64": "AAAA"}}),
    ):
        try:
            send(body)
        except ValidationErrorResponse as e:
            if "not supported" not in e.detail.exception.description:
                raise AssertionError(e.detail.exception.description) from None
        else:
            raise AssertionError(f"{send.__name__} was accepted")


def refresh():
    before = store.load().token
    t = client.token_refresh()
    if t.token == before:
        raise AssertionError("the refreshed token is the same")
    expect("queue with the new token", client.queue_check().requests_in_queue, 0)


def unauthorized_then_recovered():
    # The device no longer honours the cached token (e.g. it restarted): the client gets a
    # 401, PATCHes with the token (also 401), gets a new one and retries.
    store.save(TokenResponse(
        token="eyJhbGciOiJIUzI1NiJ9.e30.c3RhbGU",
        expiration_date=datetime.datetime.now(datetime.timezone.utc)
        + datetime.timedelta(minutes=10),
    ))
    expect("queue after recovery", client.queue_check().requests_in_queue, 0)
    if store.load().token.startswith("eyJhbGciOiJIUzI1NiJ9.e30"):
        raise AssertionError("the stale token was kept")


def daily_report():
    today = datetime.date.today().strftime("%d/%m/%Y")
    created = client.daily_report_send({"date": today})
    # A second report while one waits: 409, naming the waiting one (the POS lost its answer).
    try:
        client.daily_report_send({"date": today})
    except ConflictError as e:
        expect("code", e.detail.exception.code, 11)
        expect("the waiting report", e.detail.daily_report_id, created.request.id)
    else:
        raise AssertionError("a second daily report was stored")
    client.daily_report_confirm(created.request.id)
    done = wait_done(client.daily_report_check, created.request.id)
    expect("daily report", done.request.status, "DONE")
    result["daily_report"] = done.request.jpkid


for name, fn in [
    ("connection test", comm_test),
    ("token", token),
    ("queue check", queue_empty),
    ("receipt send/confirm/check", receipt_printed),
    ("second receipt", second_receipt),
    ("unconfirmed receipt, cancel, queue clear", unconfirmed_then_cleared),
    ("non-fiscal printout", printout),
    ("status", status_reads),
    ("refused receipt", refused_receipt),
    ("unsupported endpoints", unsupported),
    ("token refresh", refresh),
    ("401 -> refresh -> new token", unauthorized_then_recovered),
    ("daily report", daily_report),
]:
    step(name, fn)

with open(RESULT, "w") as f:
    json.dump(result, f)
print(f"noviapi client: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
