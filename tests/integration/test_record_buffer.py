"""The dual-run log's shared buffer (cutover_log ... buffer=): records of
all workers reach the file in the order their requests ended, in batches
(fewer writes than records), and nothing is lost when an operator changes
the buffer's size or turns it off and on again by reloads under traffic."""

import os
import signal
import threading

import harness
import test_record
from test_record import Env, post


def reconfigure(env, param):
    """Reloads env's nginx with param added to its cutover_log line."""
    conf = test_record.CONF.format(
        dir=env.dir, up=env.srv.server_address[1], port=env.port,
        segment="1m", max=param)
    env.nginx.reload(conf)


def log_metric(env, name):
    h = harness.sign_headers("GET", "/cutover/metrics", "", "viewer",
                             test_record.SECRETS["viewer"][1])
    s, _, body = harness.http("GET", env.url("/cutover/metrics"), None, h)
    assert s == 200
    for line in body.decode().splitlines():
        if line.startswith(name + "{"):
            return int(line.rsplit(" ", 1)[1])
    return None


def traffic(env, threads=4):
    """Starts POSTs from `threads` clients; returns (stop, sent, joiner)."""
    stop = threading.Event()
    sent = []
    lock = threading.Lock()

    def run(k):
        i = k
        while not stop.is_set():
            body = post(env, i)
            with lock:
                sent.append(body)
            i += threads

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()

    def join():
        stop.set()
        for t in ts:
            t.join()

    return sent, join


def test_batches_fewer_writes_than_records_and_all_recorded():
    env = Env()
    try:
        sent, join = traffic(env, threads=8)
        while len(sent) < 600:
            threading.Event().wait(0.05)
        join()
        recs = env.records(len(sent))
        assert len(recs) == len(sent)
        assert len({r["id"] for r in recs}) == len(sent)
        writes = log_metric(env, "cutover_log_writes_total")
        assert writes is not None and 0 < writes < len(sent), writes
        assert log_metric(env, "cutover_log_buffer_bytes") == 0
    finally:
        env.destroy()


def test_one_clients_requests_in_order_across_workers():
    """A client that sends each request after the answer to the one
    before, on a new connection each time (so both workers serve it): the
    log holds its records in that order."""
    env = Env()
    try:
        n = 150
        for i in range(n):
            post(env, i * 50)            # one store: S000
        recs = [r for r in env.records(n)
                if r.get("store") == "S000"]
        order = [test_record.json.loads(
                     test_record.body_of(r, "req_body"))["n"] for r in recs]
        assert order == [i * 50 for i in range(n)]
    finally:
        env.destroy()


def test_buffer_resized_off_and_on_by_reloads_under_traffic():
    env = Env()
    try:
        sent, join = traffic(env)
        for param in ("buffer=256k", "buffer=off", "buffer=128k", ""):
            reconfigure(env, param)
            threading.Event().wait(0.3)
        join()
        recs = env.records(len(sent))
        assert len(sent) > 50
        assert len(recs) == len(sent)
        assert len({r["id"] for r in recs}) == len(sent)
        m = env.metrics()
        assert m['cutover_records_total{zone="erp"}'] >= 1
        assert sum(v for k, v in m.items() if "dropped" in k) == 0
    finally:
        env.destroy()


def test_buffer_off_writes_each_record_and_shows_no_buffer():
    env = Env(max_="buffer=off")
    try:
        for i in range(20):
            post(env, i)
        assert len(env.records(20)) == 20
        assert log_metric(env, "cutover_log_writes_total") is None
    finally:
        env.destroy()


def test_bad_buffer_sizes_are_refused_by_nginx_t():
    d = harness.make_tempdir("buffer-conf")
    os.makedirs(os.path.join(d, "log"))
    for bad, says in (("buffer=1k", "invalid buffer size"),
                      ("buffer=2g", "invalid buffer size"),
                      ("buffer=lots", "invalid buffer size")):
        conf = test_record.CONF.format(dir=d, up=1, port=harness.free_port(),
                                       segment="1m", max=bad)
        ngx = harness.Nginx(conf, directory=d)
        ok, out = ngx.test_config()
        assert not ok and says in out and bad in out, out


def test_workers_killed_under_traffic_leave_no_lock_held_and_no_torn_frame():
    """Workers killed with kill -9 while both write to the log (one may die
    holding the buffer's lock, or in the middle of a write-out): the other
    and the ones that replace them go on recording, the log reads clean,
    and every request answered after the last kill is recorded."""
    env = Env()
    stop = threading.Event()
    errors = []

    def run(k):
        i = k
        while not stop.is_set():
            try:
                post(env, i)
            except Exception as e:          # killed in flight: expected
                errors.append(e)
            i += 4

    ts = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    try:
        for t in ts:
            t.start()
        for _ in range(6):
            threading.Event().wait(0.25)
            victim = env.nginx.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            env.nginx._wait_workers(exclude=(victim,))
        stop.set()
        for t in ts:
            t.join()
        after = [post(env, 100000 + i) for i in range(60)]
        recs = env.records()
        bodies = {test_record.body_of(r, "req_body") for r in recs}
        assert all(b.encode() in bodies for b in after)
        assert len({r["id"] for r in recs}) == len(recs)
    finally:
        stop.set()
        env.nginx.stop()
        bad = [l for l in env.nginx.bad_log_lines()
               if "exited on signal 9" not in l]
        env.nginx.destroy()
        env.srv.shutdown()
        assert not bad, bad
