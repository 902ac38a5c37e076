"""Dual-run through faults: the whole stack (real new core, the legacy
stand-in behind its adapter on its own PostgreSQL, nginx with the module,
cutover-shadowd) under a steady order rate at a 50 % dial, while a side,
a database or shadowd itself goes away.  Clients behave like tills: each
order has its own Idempotency-Key and is sent again under it after a 5xx
or no answer, until the gateway answers 2xx or 4xx.

Afterwards, once shadowd's lag is 0, the books must agree: every order a
client got 2xx for exists on both systems, none a client was refused
exists on either, stock is equal per touched SKU, and shadowd's counters
add up."""

import concurrent.futures
import json
import threading
import time

import pytest

import harness
from stack import Stack

STORES = ["S%03d" % i for i in range(101, 141)]
RATE = 70.0                 # orders per second, over all client threads
THREADS = 6


@pytest.fixture(scope="module")
def stack(pg):
    d = harness.make_tempdir("faults")
    legacy_pg = harness.Pg("faults-legacy-pg").start()
    s = Stack(d, reads="0%", pg=pg, legacy_pg=legacy_pg,
              shadowd={"timeout_ms": 2000, "retry_backoff_ms": 50,
                       "retry_backoff_max_ms": 500, "flush_ms": 50})
    try:
        s.up()
        assert s.ctl("dial", "50", "--reason", "fault probe")[0] == 0
        yield s
    finally:
        bad = s.down()
        legacy_pg.destroy()
        harness.remove_tempdir(d)
    assert not bad, bad


class Load:
    """Tills placing orders at a steady rate.  An order answered 5xx or not
    at all is sent again under its Idempotency-Key, in the background,
    until the answer is 2xx or 4xx; the till meanwhile goes on selling."""

    def __init__(self, stack, tag):
        self.stack = stack
        self.tag = tag
        self.pick = lambda store, n: "SKU%05d" % (300 + n % 1200)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.orders = {}        # oid -> (outcome, store, sku, side, code)
        self.pending = []       # (due, oid, store, sku)
        self.attempts = 0
        self.threads = [threading.Thread(target=self.till, args=(k,))
                        for k in range(THREADS)]
        self.retrier = threading.Thread(target=self.retry)
        self.started = 0.0
        self.ended = 0.0

    def __enter__(self):
        self.started = time.monotonic()
        for t in self.threads + [self.retrier]:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.ended = time.monotonic()
        for t in self.threads + [self.retrier]:
            t.join()

    def rate(self):
        return len(self.orders) / (self.ended - self.started)

    def attempt(self, oid, store, sku):
        """One try: ("ok" | "refused" | "again", side, error code)."""
        body = json.dumps({"order_id": oid, "store_id": store,
                           "channel": "pos", "member_id": None,
                           "lines": [{"sku": sku, "qty": 1}],
                           "payment": {"method": "card"}})
        headers = {"X-Store-Id": store, "X-Channel": "pos",
                   "Content-Type": "application/json",
                   "Idempotency-Key": "till-" + oid}
        with self.lock:
            self.attempts += 1
        try:
            s, h, data = harness.http("POST", self.stack.gateway
                                      + "/api/v1/orders", body, headers,
                                      timeout=10)
        except OSError:
            return "again", None, ""
        if 200 <= s < 300:
            return "ok", h.get("x-cutover-side"), ""
        if 400 <= s < 500:
            try:
                code = json.loads(data)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "?"
            if code != "idempotency_in_progress":
                return "refused", h.get("x-cutover-side"), code
        return "again", None, ""

    def settle(self, oid, store, sku):
        outcome, side, code = self.attempt(oid, store, sku)
        with self.lock:
            if outcome == "again":
                self.pending.append((time.monotonic() + 0.2, oid, store,
                                     sku))
            else:
                self.orders[oid] = (outcome, store, sku, side, code)

    def till(self, k):
        n, period = 0, THREADS / RATE
        next_at = time.monotonic()
        while not self.stop.is_set():
            n += 1
            store = STORES[(k * 7 + n) % len(STORES)]
            sku = self.pick(store, n * THREADS + k)
            self.settle("%s-%d-%d" % (self.tag, k, n), store, sku)
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))

    def retry(self):
        deadline = None
        while True:
            with self.lock:
                now = time.monotonic()
                due = [p for p in self.pending if p[0] <= now]
                self.pending = [p for p in self.pending if p[0] > now]
                idle = not self.pending and not due
            if self.stop.is_set():
                if idle and all(not t.is_alive() for t in self.threads):
                    return
                deadline = deadline or time.monotonic() + 60
                if time.monotonic() > deadline:
                    with self.lock:
                        for _, oid, store, sku in self.pending + due:
                            self.orders[oid] = ("unknown", store, sku, None,
                                                "")
                        self.pending = []
                    return
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                list(ex.map(lambda p: self.settle(*p[1:]), due))
            time.sleep(0.05)

    def of(self, outcome):
        return {o: v for o, v in self.orders.items() if v[0] == outcome}

    def summary(self, m):
        return ("%s: %d orders in %.1f s (%.0f/s), %d attempts, %d ok, "
                "%d refused; shadowd read %d, replayed %d, refused %d, "
                "indeterminate %d, retried %d" % (
                    self.tag, len(self.orders), self.ended - self.started,
                    self.rate(), self.attempts, len(self.of("ok")),
                    len(self.of("refused")),
                    *(m.get("cutover_shadow_%s" % k, -1) for k in (
                        "records_read_total", "replayed_total",
                        "primary_refused_total", "indeterminate_total",
                        "retried_total"))))


def get(port, path):
    """A read as an analyst makes it: a side that answers 503 (a database
    connection not yet back after a restart) is asked again."""
    for _ in range(20):
        s, _, data = harness.http("GET",
                                  "http://127.0.0.1:%d%s" % (port, path))
        if s != 503:
            break
        time.sleep(0.25)
    return s, json.loads(data) if data else None


def sides(stack):
    return stack.ports["newcore"], stack.ports["adapter"]


def assert_books_agree(stack, load, skip_sku=None):
    """What a reconciling analyst checks, order by order and SKU by SKU."""
    assert not load.of("unknown"), load.of("unknown")
    ok, refused = load.of("ok"), load.of("refused")
    assert ok and len({v[3] for v in ok.values()}) == 2, "both sides served"

    def order_on_both(oid):
        return oid, [get(port, "/api/v1/orders/" + oid)[0]
                     for port in sides(stack)]

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        found = dict(ex.map(order_on_both, list(ok) + list(refused)))
    missing = {o: found[o] for o in ok if found[o] != [200, 200]}
    assert not missing, "%d of %d 2xx orders missing on a side: %s" % (
        len(missing), len(ok), missing)
    created = {o: found[o] for o in refused if found[o] != [404, 404]}
    assert not created, "%d of %d refused orders exist: %s" % (
        len(created), len(refused), created)

    def stock(key):
        store, sku = key
        return key, [get(port, "/api/v1/inventory/%s/%s" % (store, sku))
                     [1]["on_hand"] for port in sides(stack)]

    touched = {(v[1], v[2]) for v in load.orders.values()
               if v[2] != skip_sku}
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        differ = {k: v for k, v in ex.map(stock, touched) if v[0] != v[1]}
    assert not differ, "stock differs on %d of %d SKUs (new, legacy): %s" % (
        len(differ), len(touched), differ)


def assert_counters_add_up(m):
    outcomes = sum(m["cutover_shadow_%s_total" % k] for k in
                   ("replayed", "failed", "primary_refused", "indeterminate",
                    "dead_lettered", "corrupt_records"))
    assert m["cutover_shadow_lag_records"] == 0
    assert m["cutover_shadow_records_read_total"] == outcomes, m
    assert m["cutover_shadow_lost_total"] == 0
    assert m["cutover_shadow_retrying"] == 0


def settle(stack, load):
    m = stack.wait_shadow(90)
    assert m["cutover_shadow_lag_records"] == 0, m
    assert m["cutover_shadow_lag_bytes"] == 0, m
    print(load.summary(m))
    return m


def served_by(stack, store):
    s, h, _ = harness.http("GET", stack.gateway + "/api/v1/inventory/%s/"
                           "SKU00001" % store, headers={"X-Store-Id": store,
                                                         "X-Channel": "pos"})
    assert s == 200
    return h["x-cutover-side"]


def test_orders_the_new_core_refused_are_not_created_on_legacy(stack):
    """The new core has none of one SKU left (legacy still has some):
    orders it answers 409 out_of_stock must not be executed on legacy."""
    short = "SKU01990"
    on_new = [st for st in STORES if served_by(stack, st) == "new"]
    assert 5 <= len(on_new) <= len(STORES) - 5
    for store in on_new:
        _, inv = get(stack.ports["newcore"],
                     "/api/v1/inventory/%s/%s" % (store, short))
        s, _, data = harness.http(
            "POST", "http://127.0.0.1:%d/api/v1/inventory/adjust"
            % stack.ports["newcore"],
            json.dumps({"store_id": store, "sku": short,
                        "delta": -inv["on_hand"], "reason": "damage"}),
            {"Content-Type": "application/json"})
        assert s == 200, data
    before = stack.shadow_metrics()

    # every fourth order of a store the new core serves asks for it
    load = Load(stack, "OOS")
    plain = load.pick
    load.pick = lambda store, n: short if store in on_new and n % 4 == 0 \
        else plain(store, n)
    with load:
        time.sleep(3)
    assert load.rate() >= 35, load.rate()
    m = settle(stack, load)

    refused = load.of("refused")
    assert len(refused) >= 5
    assert all(v[4] == "out_of_stock" and v[3] == "new" and v[2] == short
               for v in refused.values()), refused
    assert_books_agree(stack, load, skip_sku=short)
    assert m["cutover_shadow_primary_refused_total"] - \
        before["cutover_shadow_primary_refused_total"] == len(refused)
    assert_counters_add_up(m)


def test_new_core_killed_for_5s(stack):
    with Load(stack, "K9") as load:
        time.sleep(2)
        core = stack.procs["newcore"]
        core.kill9()
        time.sleep(5)
        stack.start("newcore", core.argv, stack.ports["newcore"])
        time.sleep(2)
    m = settle(stack, load)
    assert_books_agree(stack, load)
    assert m["cutover_shadow_indeterminate_total"] > 0
    assert m['cutover_shadow_retries_total{reason="connect"}'] > 0
    assert_counters_add_up(m)


def test_legacy_database_stopped_for_10s(stack):
    with Load(stack, "PG") as load:
        time.sleep(2)
        stack.legacy_pg.stop("fast")
        time.sleep(10)
        stack.legacy_pg.start()
        time.sleep(2)
    m = settle(stack, load)
    assert_books_agree(stack, load)
    assert m['cutover_shadow_retries_total{reason="503"}'] > 0
    assert_counters_add_up(m)


def test_shadowd_killed_during_an_outage(stack):
    """shadowd dies while the new core is down and comes back before it:
    what was waiting is replayed once the core is back, and nothing is
    applied twice (stock would differ)."""
    with Load(stack, "SK") as load:
        time.sleep(1.5)
        core = stack.procs["newcore"]
        core.kill9()
        time.sleep(2)
        stack.procs["shadowd"].kill9()
        time.sleep(0.5)
        stack.start_shadowd()
        time.sleep(2.5)
        stack.start("newcore", core.argv, stack.ports["newcore"])
        time.sleep(1.5)
    m = settle(stack, load)
    assert_books_agree(stack, load)
    assert_counters_add_up(m)
