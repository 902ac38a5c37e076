-- cutover new ERP core: schema version 1, applied by `cutover-newcore
-- --init-schema` (idempotent: every statement may run again).  Everything
-- lives in the PostgreSQL schema "newcore", so the core may share a database
-- with other systems.
--
-- Ledger invariant (checked by the integration tests and by reconcilers):
--   per store/SKU:  sum(ledger.delta where kind = 'stock')  == stock.on_hand
--   per member:     sum(ledger.delta where kind = 'points') == members.points
--   per order:      sum(ledger.delta where kind = 'money')  == total_fen when
--                   paid, 0 when cancelled (== charges - refunds in payments)
-- Only the functions below write orders, lines, payments and the ledger
-- (each in one transaction), so the hot tables carry no foreign keys.
-- The seed writes one 'opening' entry per stock row and per member, so the
-- sums hold from the first row on; every later movement is an entry tied to
-- its order (order_id) or stock adjustment (adjustment_id).

BEGIN;

SET LOCAL client_min_messages = warning;

SELECT pg_advisory_xact_lock(hashtextextended('newcore:schema', 0));

CREATE SCHEMA IF NOT EXISTS newcore;

CREATE TABLE IF NOT EXISTS newcore.schema_version (
    version     int PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS newcore.stores (
    store_id    text PRIMARY KEY,
    name        text NOT NULL,
    channels    text[] NOT NULL
);

CREATE TABLE IF NOT EXISTS newcore.skus (
    sku         text PRIMARY KEY,
    name        text NOT NULL,
    price_fen   bigint NOT NULL CHECK (price_fen >= 0)
);

CREATE TABLE IF NOT EXISTS newcore.stock (
    store_id    text NOT NULL,
    sku         text NOT NULL,
    on_hand     bigint NOT NULL CHECK (on_hand >= 0),
    reserved    bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, sku)
);

CREATE TABLE IF NOT EXISTS newcore.members (
    member_id   text PRIMARY KEY,
    points      bigint NOT NULL CHECK (points >= 0),
    tier        text GENERATED ALWAYS AS (
                    CASE WHEN points >= 3000 THEN 'gold'
                         WHEN points >= 1000 THEN 'silver'
                         ELSE 'standard' END) STORED
);

CREATE SEQUENCE IF NOT EXISTS newcore.order_seq;

CREATE TABLE IF NOT EXISTS newcore.orders (
    order_id        text PRIMARY KEY,
    store_id        text NOT NULL,
    channel         text NOT NULL,
    member_id       text,
    status          text NOT NULL CHECK (status IN ('paid', 'cancelled')),
    total_fen       bigint NOT NULL CHECK (total_fen >= 0),
    points_earned   bigint NOT NULL CHECK (points_earned >= 0),
    payment_method  text NOT NULL,
    created_at      timestamptz NOT NULL,
    cancelled_at    timestamptz
);

CREATE TABLE IF NOT EXISTS newcore.order_lines (
    order_id        text NOT NULL,
    line_no         int NOT NULL,
    sku             text NOT NULL,
    qty             int NOT NULL CHECK (qty > 0),
    unit_price_fen  bigint NOT NULL CHECK (unit_price_fen >= 0),
    amount_fen      bigint NOT NULL CHECK (amount_fen >= 0),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE IF NOT EXISTS newcore.payments (
    payment_id  bigserial PRIMARY KEY,
    order_id    text NOT NULL,
    method      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_fen  bigint NOT NULL CHECK (amount_fen >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS newcore.adjustments (
    adjustment_id  bigserial PRIMARY KEY,
    store_id       text NOT NULL,
    sku            text NOT NULL,
    delta          bigint NOT NULL,
    reason         text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS newcore.ledger (
    entry_id       bigserial PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('stock', 'money', 'points')),
    store_id       text,
    sku            text,
    member_id      text,
    order_id       text,
    adjustment_id  bigint,
    delta          bigint NOT NULL,
    reason         text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Stored answers of writes sent with an Idempotency-Key (successes only: a
-- refused write changed nothing and is simply evaluated again), kept for
-- the core's --idempotency-ttl.
CREATE TABLE IF NOT EXISTS newcore.idempotency (
    idem_key      text PRIMARY KEY,
    request_hash  text NOT NULL,
    status        int NOT NULL,
    body          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The background purge (--idempotency-ttl) deletes by age in batches.
CREATE INDEX IF NOT EXISTS idempotency_created_at
    ON newcore.idempotency (created_at);


-- The deterministic demo data set (../shared seed brief); a no-op once
-- seeded.  Returns true when it loaded the data.
CREATE OR REPLACE FUNCTION newcore.seed() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('newcore:seed', 0));
    IF EXISTS (SELECT 1 FROM newcore.stores) THEN
        RETURN false;
    END IF;

    INSERT INTO newcore.stores (store_id, name, channels)
    SELECT 'S' || lpad(s::text, 3, '0'), 'Store ' || lpad(s::text, 3, '0'),
           ARRAY['pos', 'eshop', 'miniapp', 'marketplace']
    FROM generate_series(1, 200) AS s;

    INSERT INTO newcore.skus (sku, name, price_fen)
    SELECT 'SKU' || lpad(n::text, 5, '0'), 'Item ' || lpad(n::text, 5, '0'),
           100 + (n * 7919) % 49900
    FROM generate_series(1, 2000) AS n;

    INSERT INTO newcore.stock (store_id, sku, on_hand, reserved)
    SELECT 'S' || lpad(s::text, 3, '0'), 'SKU' || lpad(n::text, 5, '0'),
           20 + (s * 31 + n * 17) % 181, 0
    FROM generate_series(1, 200) AS s, generate_series(1, 2000) AS n;

    INSERT INTO newcore.ledger (kind, store_id, sku, delta, reason)
    SELECT 'stock', store_id, sku, on_hand, 'opening' FROM newcore.stock;

    INSERT INTO newcore.members (member_id, points)
    SELECT 'M' || lpad(m::text, 6, '0'), (m * 97) % 5000
    FROM generate_series(1, 10000) AS m;

    INSERT INTO newcore.ledger (kind, member_id, delta, reason)
    SELECT 'points', member_id, points, 'opening' FROM newcore.members;

    RETURN true;
END
$$;


-- Under a transaction-scoped advisory lock on the key: 'in_progress' when
-- another transaction holds it, 'replay' (with the stored answer) or
-- 'mismatch' when the key was used before, NULL when the key is new.
CREATE OR REPLACE FUNCTION newcore.idem_claim(p_key text, p_hash text,
    OUT o_outcome text, OUT o_status int, OUT o_body text)
LANGUAGE plpgsql AS $$
DECLARE
    v_hash text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('idem:' || p_key, 0))
    THEN
        o_outcome := 'in_progress';
        RETURN;
    END IF;

    SELECT i.request_hash, i.status, i.body INTO v_hash, o_status, o_body
    FROM newcore.idempotency i WHERE i.idem_key = p_key;

    IF FOUND THEN
        IF v_hash = p_hash THEN
            o_outcome := 'replay';
        ELSE
            o_outcome := 'mismatch';
            o_status := NULL;
            o_body := NULL;
        END IF;
    END IF;
END
$$;


-- One order, all or nothing.  Prices, totals and points come computed from
-- the caller (the core's rules live in C); this takes the stock rows' locks
-- in SKU order, refuses to sell below zero and writes the order, its lines,
-- the payment, the ledger entries and the stored idempotent answer.
-- Outcomes: ok, replay, mismatch, in_progress, duplicate_order,
-- out_of_stock (o_detail = the SKU).
CREATE OR REPLACE FUNCTION newcore.place_order(
    p_key text, p_hash text, p_body text, p_order_id text, p_store text,
    p_channel text, p_member text, p_created timestamptz, p_method text,
    p_skus text[], p_qtys int[], p_prices bigint[], p_amounts bigint[],
    p_total bigint, p_points bigint,
    OUT o_outcome text, OUT o_detail text, OUT o_status int, OUT o_body text)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT c.o_outcome, c.o_status, c.o_body
        INTO o_outcome, o_status, o_body
        FROM newcore.idem_claim(p_key, p_hash) c;
        IF o_outcome IS NOT NULL THEN
            RETURN;
        END IF;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended('order:' || p_order_id, 0));
    IF EXISTS (SELECT 1 FROM newcore.orders WHERE order_id = p_order_id) THEN
        o_outcome := 'duplicate_order';
        RETURN;
    END IF;

    -- lock the stock rows in SKU order (no deadlock between multi-line
    -- orders), then name the first SKU short of stock, if any
    WITH want AS (
        SELECT u.sku, sum(u.qty) AS qty
        FROM unnest(p_skus, p_qtys) AS u(sku, qty) GROUP BY u.sku
    ), locked AS (
        SELECT s.sku, s.on_hand - s.reserved AS available
        FROM newcore.stock s
        WHERE s.store_id = p_store AND s.sku IN (SELECT sku FROM want)
        ORDER BY s.sku
        FOR UPDATE OF s
    )
    SELECT w.sku INTO o_detail
    FROM want w LEFT JOIN locked l ON l.sku = w.sku
    WHERE l.sku IS NULL OR l.available < w.qty
    ORDER BY w.sku LIMIT 1;

    IF o_detail IS NOT NULL THEN
        o_outcome := 'out_of_stock';
        RETURN;
    END IF;

    -- every write of the order in one statement
    WITH want AS (
        SELECT u.sku, sum(u.qty) AS qty
        FROM unnest(p_skus, p_qtys) AS u(sku, qty) GROUP BY u.sku
    ), stock AS (
        UPDATE newcore.stock s
        SET on_hand = s.on_hand - w.qty, updated_at = p_created
        FROM want w
        WHERE s.store_id = p_store AND s.sku = w.sku
    ), ord AS (
        INSERT INTO newcore.orders (order_id, store_id, channel, member_id,
            status, total_fen, points_earned, payment_method, created_at)
        VALUES (p_order_id, p_store, p_channel, p_member, 'paid', p_total,
            p_points, p_method, p_created)
    ), lines AS (
        INSERT INTO newcore.order_lines (order_id, line_no, sku, qty,
            unit_price_fen, amount_fen)
        SELECT p_order_id, u.i, u.sku, u.qty, u.price, u.amount
        FROM unnest(p_skus, p_qtys, p_prices, p_amounts)
             WITH ORDINALITY AS u(sku, qty, price, amount, i)
    ), pay AS (
        INSERT INTO newcore.payments (order_id, method, kind, amount_fen,
            created_at)
        VALUES (p_order_id, p_method, 'charge', p_total, p_created)
    ), member AS (
        UPDATE newcore.members SET points = points + p_points
        WHERE member_id = p_member AND p_points <> 0
    ), idem AS (
        INSERT INTO newcore.idempotency (idem_key, request_hash, status, body)
        SELECT p_key, p_hash, 201, p_body WHERE p_key IS NOT NULL
    )
    INSERT INTO newcore.ledger (kind, store_id, sku, member_id, order_id,
        delta, reason, created_at)
    SELECT 'stock', p_store, u.sku, NULL, p_order_id, -u.qty, 'sale',
           p_created
    FROM unnest(p_skus, p_qtys) AS u(sku, qty)
    UNION ALL
    SELECT 'money', p_store, NULL, p_member, p_order_id, p_total, 'sale',
           p_created
    UNION ALL
    SELECT 'points', p_store, NULL, p_member, p_order_id, p_points, 'sale',
           p_created
    WHERE p_member IS NOT NULL AND p_points <> 0;

    o_outcome := 'ok';
    o_status := 201;
    o_body := p_body;
END
$$;


-- Cancels a paid order: stock back, payment refunded, points taken back,
-- each with a reversing ledger entry.  Cancelling a cancelled order changes
-- nothing and answers the order.  Outcomes: ok, replay, mismatch,
-- in_progress, not_found.
CREATE OR REPLACE FUNCTION newcore.cancel_order(
    p_key text, p_hash text, p_body text, p_order_id text,
    p_now timestamptz,
    OUT o_outcome text, OUT o_detail text, OUT o_status int, OUT o_body text)
LANGUAGE plpgsql AS $$
DECLARE
    o  record;
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT c.o_outcome, c.o_status, c.o_body
        INTO o_outcome, o_status, o_body
        FROM newcore.idem_claim(p_key, p_hash) c;
        IF o_outcome IS NOT NULL THEN
            RETURN;
        END IF;
    END IF;

    SELECT * INTO o FROM newcore.orders WHERE order_id = p_order_id
    FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
        RETURN;
    END IF;

    IF o.status = 'paid' THEN
        PERFORM 1 FROM newcore.stock s
        WHERE s.store_id = o.store_id
          AND s.sku IN (SELECT l.sku FROM newcore.order_lines l
                        WHERE l.order_id = p_order_id)
        ORDER BY s.sku
        FOR UPDATE;

        UPDATE newcore.stock s
        SET on_hand = s.on_hand + q.qty, updated_at = p_now
        FROM (SELECT l.sku, sum(l.qty) AS qty FROM newcore.order_lines l
              WHERE l.order_id = p_order_id GROUP BY l.sku) q
        WHERE s.store_id = o.store_id AND s.sku = q.sku;

        INSERT INTO newcore.ledger (kind, store_id, sku, member_id, order_id,
            delta, reason, created_at)
        SELECT 'stock', o.store_id, l.sku, NULL, p_order_id, l.qty,
               'cancel', p_now
        FROM newcore.order_lines l WHERE l.order_id = p_order_id
        UNION ALL
        SELECT 'money', o.store_id, NULL, o.member_id, p_order_id,
               -o.total_fen, 'cancel', p_now
        UNION ALL
        SELECT 'points', o.store_id, NULL, o.member_id, p_order_id,
               -o.points_earned, 'cancel', p_now
        WHERE o.member_id IS NOT NULL AND o.points_earned <> 0;

        INSERT INTO newcore.payments (order_id, method, kind, amount_fen,
            created_at)
        VALUES (p_order_id, o.payment_method, 'refund', o.total_fen, p_now);

        IF o.member_id IS NOT NULL AND o.points_earned <> 0 THEN
            UPDATE newcore.members SET points = points - o.points_earned
            WHERE member_id = o.member_id;
        END IF;

        UPDATE newcore.orders SET status = 'cancelled', cancelled_at = p_now
        WHERE order_id = p_order_id;
    END IF;

    IF p_key IS NOT NULL THEN
        INSERT INTO newcore.idempotency (idem_key, request_hash, status, body)
        VALUES (p_key, p_hash, 200, p_body);
    END IF;

    o_outcome := 'ok';
    o_status := 200;
    o_body := p_body;
END
$$;


-- A receipt, stocktake correction or damage write-off.  Outcomes: ok,
-- replay, mismatch, in_progress, not_found, out_of_stock (would go below
-- zero).  The answer is the inventory record, byte for byte as
-- GET /api/v1/inventory/{store}/{sku} writes it.
CREATE OR REPLACE FUNCTION newcore.adjust_stock(
    p_key text, p_hash text, p_store text, p_sku text, p_delta bigint,
    p_reason text, p_now timestamptz,
    OUT o_outcome text, OUT o_detail text, OUT o_status int, OUT o_body text)
LANGUAGE plpgsql AS $$
DECLARE
    v_on   bigint;
    v_res  bigint;
    v_id   bigint;
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT c.o_outcome, c.o_status, c.o_body
        INTO o_outcome, o_status, o_body
        FROM newcore.idem_claim(p_key, p_hash) c;
        IF o_outcome IS NOT NULL THEN
            RETURN;
        END IF;
    END IF;

    SELECT s.on_hand, s.reserved INTO v_on, v_res FROM newcore.stock s
    WHERE s.store_id = p_store AND s.sku = p_sku
    FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
        RETURN;
    END IF;

    IF v_on + p_delta < v_res THEN
        o_outcome := 'out_of_stock';
        o_detail := p_sku;
        RETURN;
    END IF;

    INSERT INTO newcore.adjustments (store_id, sku, delta, reason, created_at)
    VALUES (p_store, p_sku, p_delta, p_reason, p_now)
    RETURNING adjustment_id INTO v_id;

    UPDATE newcore.stock SET on_hand = v_on + p_delta, updated_at = p_now
    WHERE store_id = p_store AND sku = p_sku;

    INSERT INTO newcore.ledger (kind, store_id, sku, adjustment_id, delta,
        reason, created_at)
    VALUES ('stock', p_store, p_sku, v_id, p_delta, p_reason, p_now);

    o_body := format('{"store_id":"%s","sku":"%s","on_hand":%s,'
                     '"reserved":%s,"available":%s}',
                     p_store, p_sku, v_on + p_delta, v_res,
                     v_on + p_delta - v_res);

    IF p_key IS NOT NULL THEN
        INSERT INTO newcore.idempotency (idem_key, request_hash, status, body)
        VALUES (p_key, p_hash, 200, o_body);
    END IF;

    o_outcome := 'ok';
    o_status := 200;
END
$$;

INSERT INTO newcore.schema_version (version) VALUES (1)
ON CONFLICT (version) DO NOTHING;

COMMIT;
