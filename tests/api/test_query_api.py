"""The query endpoints over real HTTP: formats, parameters, errors, limits, gzip and CORS."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import urllib.parse

import pytest

from server.routes_query import QueryAPIConfig
from tests.server.conftest import Client


def test_instant_vector_is_formatted_byte_for_byte_like_prometheus(client: Client) -> None:
    r = client.get(
        "/api/v1/query", [("query", 'http_requests_total{job="api"}'), ("time", "300.5")]
    )
    assert r.status == 200
    assert r.body == (
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":'
        b'{"__name__":"http_requests_total","job":"api"},"value":[300.500,"300"]}]}}'
    )
    assert r.headers["Content-Type"].startswith("application/json")


def test_range_vector_selector_at_instant_returns_a_matrix_of_raw_samples(client: Client) -> None:
    r = client.get("/api/v1/query", [("query", 'temperature{job="db"}[40s]'), ("time", "300")])
    data = r.json()["data"]
    assert data["resultType"] == "matrix"
    assert data["result"][0]["values"] == [[270, "20"], [285, "21"], [300, "22"]]


def test_range_query_returns_points_at_every_step(client: Client) -> None:
    r = client.get(
        "/api/v1/query_range",
        [("query", 'temperature{job="api"}'), ("start", "0"), ("end", "60"), ("step", "30")],
    )
    assert r.status == 200, r.body
    (series,) = r.json()["data"]["result"]
    assert series["metric"] == {"__name__": "temperature", "job": "api"}
    assert series["values"] == [[0, "10"], [30, "12"], [60, "11"]]


def test_rfc3339_times_and_go_durations_are_accepted(client: Client) -> None:
    r = client.get(
        "/api/v1/query_range",
        [
            ("query", 'temperature{job="api"}'),
            ("start", "1970-01-01T00:00:00Z"),
            ("end", "1970-01-01T00:01:00.000Z"),
            ("step", "30s"),
        ],
    )
    assert r.status == 200, r.body
    assert [p[0] for p in r.json()["data"]["result"][0]["values"]] == [0, 30, 60]


def test_string_result_and_post_form_body(client: Client) -> None:
    body = urllib.parse.urlencode({"query": '"hello"', "time": "12.25"}).encode()
    r = client.post("/api/v1/query", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r.body
    assert r.json()["data"] == {"resultType": "string", "result": [12.25, "hello"]}


def test_post_body_values_take_precedence_over_url_values(client: Client) -> None:
    body = urllib.parse.urlencode({"query": '"from-body"'}).encode()
    r = client.request(
        "POST",
        "/api/v1/query",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        params=[("query", '"from-url"'), ("time", "1")],
    )
    assert r.json()["data"]["result"] == [1, "from-body"]


def test_info_annotations_are_returned_next_to_the_data(client: Client) -> None:
    r = client.get("/api/v1/query", [("query", "rate(temperature[5m])"), ("time", "300")])
    assert r.status == 200
    body = r.json()
    assert body["infos"] == [
        "PromQL info: metric might not be a counter, name does not end in "
        '_total/_sum/_count/_bucket: "temperature" (1:6)'
    ]
    assert "warnings" not in body


def test_limit_truncates_series_with_a_warning(client: Client) -> None:
    r = client.get("/api/v1/query", [("query", "temperature"), ("time", "300"), ("limit", "1")])
    body = r.json()
    assert len(body["data"]["result"]) == 1
    assert body["warnings"] == ["results truncated due to limit"]


def test_stats_parameter_adds_timings(client: Client) -> None:
    r = client.get("/api/v1/query", [("query", "temperature"), ("time", "300"), ("stats", "all")])
    timings = r.json()["data"]["stats"]["timings"]
    assert timings["execTotalTime"] >= timings["evalTotalTime"] >= 0


PARAM_ERRORS = [
    (
        "/api/v1/query",
        [("query", "up"), ("time", "abc")],
        'invalid parameter "time": invalid time value for \'time\': cannot parse "abc" to a '
        "valid timestamp",
    ),
    (
        "/api/v1/query",
        [("query", "up"), ("limit", "-1")],
        'invalid parameter "limit": limit must be non-negative',
    ),
    (
        "/api/v1/query",
        [("query", "up"), ("limit", "ten")],
        'invalid parameter "limit": strconv.Atoi: parsing "ten": invalid syntax',
    ),
    (
        "/api/v1/query",
        [("query", "up"), ("timeout", "soon")],
        'invalid parameter "timeout": cannot parse "soon" to a valid duration',
    ),
    (
        "/api/v1/query",
        [("query", "up"), ("lookback_delta", "1x")],
        'error parsing lookback delta duration: cannot parse "1x" to a valid duration',
    ),
    (
        "/api/v1/query_range",
        [("query", "up"), ("end", "10"), ("step", "1")],
        'invalid parameter "start": cannot parse "" to a valid timestamp',
    ),
    (
        "/api/v1/query_range",
        [("query", "up"), ("start", "0"), ("step", "1")],
        'invalid parameter "end": cannot parse "" to a valid timestamp',
    ),
    (
        "/api/v1/query_range",
        [("query", "up"), ("start", "10"), ("end", "5"), ("step", "1")],
        'invalid parameter "end": end timestamp must not be before start time',
    ),
    (
        "/api/v1/query_range",
        [("query", "up"), ("start", "0"), ("end", "5"), ("step", "fast")],
        'invalid parameter "step": cannot parse "fast" to a valid duration',
    ),
    (
        "/api/v1/query_range",
        [("query", "up"), ("start", "0"), ("end", "5"), ("step", "0")],
        'invalid parameter "step": zero or negative query resolution step widths are not '
        "accepted. Try a positive integer",
    ),
    (
        "/api/v1/query_range",
        [("query", "up"), ("start", "0"), ("end", "5"), ("step", "-1s")],
        'invalid parameter "step": cannot parse "-1s" to a valid duration',
    ),
    (
        "/api/v1/query_range",
        [("query", "up"), ("start", "0"), ("end", "5"), ("step", "-1")],
        'invalid parameter "step": zero or negative query resolution step widths are not '
        "accepted. Try a positive integer",
    ),
    (
        "/api/v1/query_range",
        [("query", "up"), ("start", "0"), ("end", "11001"), ("step", "1")],
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
        "query resolution (?step=XX)",
    ),
    (
        "/api/v1/query_range",
        [("query", "up[5m]"), ("start", "0"), ("end", "10"), ("step", "1")],
        'invalid parameter "query": invalid expression type "range vector" for range query, '
        "must be Scalar or instant Vector",
    ),
    (
        "/api/v1/query_exemplars",
        [("query", "up"), ("start", "10"), ("end", "5")],
        "end timestamp must not be before start timestamp",
    ),
]


@pytest.mark.parametrize(("path", "params", "message"), PARAM_ERRORS)
def test_parameter_errors_give_bad_data_with_prometheus_wording(
    client: Client, path: str, params: list[tuple[str, str]], message: str
) -> None:
    r = client.get(path, params)
    assert r.status == 400, r.body
    assert r.json() == {"status": "error", "errorType": "bad_data", "error": message}


def test_exactly_11000_points_is_still_accepted(client: Client) -> None:
    r = client.get(
        "/api/v1/query_range",
        [("query", "vector(1)"), ("start", "0"), ("end", "11000"), ("step", "1")],
    )
    assert r.status != 400 or "maximum resolution" not in r.json()["error"]


BAD_QUERIES = [
    ("", "1:1: parse error: no expression found in input"),
    ("sum(", None),
    ("foo(", "1:5: parse error: unclosed left parenthesis"),
    ("not_a_function(up)", '1:1: parse error: unknown function with name "not_a_function"'),
    ("rate(up)", None),
    ('up{job=~"("}', None),
    ("up[100000000000y]", None),
    ("{}", None),
    ('"a" + 1', None),
    ("up +", None),
    ("1 == 1", None),
    ("up and 1", None),
]


@pytest.mark.parametrize(("query", "message"), BAD_QUERIES)
def test_bad_queries_are_bad_data_never_a_500(
    client: Client, query: str, message: str | None
) -> None:
    for path, extra in (
        ("/api/v1/query", [("time", "10")]),
        ("/api/v1/query_range", [("start", "0"), ("end", "10"), ("step", "5")]),
        ("/api/v1/format_query", []),
        ("/api/v1/parse_query", []),
    ):
        r = client.get(path, [("query", query), *extra])
        assert r.status == 400, (path, query, r.body)
        body = r.json()
        assert body["errorType"] == "bad_data"
        assert body["error"].startswith('invalid parameter "query": ')
        if message is not None:
            assert body["error"] == f'invalid parameter "query": {message}'


def test_format_query_returns_the_canonical_text(client: Client) -> None:
    r = client.get("/api/v1/format_query", [("query", "sum(rate(foo[5m]))by(job)")])
    assert r.json() == {"status": "success", "data": "sum by (job) (rate(foo[5m]))"}


def test_parse_query_returns_prometheus_json_ast(client: Client) -> None:
    r = client.get(
        "/api/v1/parse_query", [("query", 'sum by (job) (rate(foo{a="b"}[5m] offset 1m))')]
    )
    tree = r.json()["data"]
    assert tree["type"] == "aggregation" and tree["op"] == "sum"
    assert tree["grouping"] == ["job"] and tree["without"] is False and tree["param"] is None
    call = tree["expr"]
    assert call["type"] == "call"
    assert call["func"] == {
        "name": "rate",
        "argTypes": ["matrix"],
        "variadic": 0,
        "returnType": "vector",
    }
    (ms,) = call["args"]
    assert ms["type"] == "matrixSelector" and ms["name"] == "foo"
    assert ms["range"] == 300_000 and ms["offset"] == 60_000 and ms["timestamp"] is None
    assert {"name": "a", "value": "b", "type": "="} in ms["matchers"]


def test_parse_query_binary_matching_and_literals(client: Client) -> None:
    r = client.get("/api/v1/parse_query", [("query", "a + on(x) group_left(y) b * 2")])
    tree = r.json()["data"]
    assert tree["type"] == "binaryExpr" and tree["op"] == "+"
    assert tree["matching"]["card"] == "many-to-one"
    assert tree["matching"]["labels"] == ["x"] and tree["matching"]["include"] == ["y"]
    assert tree["matching"]["on"] is True
    assert tree["rhs"]["rhs"] == {"type": "numberLiteral", "val": "2"}


def test_query_exemplars_answers_empty(client: Client) -> None:
    r = client.get("/api/v1/query_exemplars", [("query", "http_requests_total")])
    assert r.json() == {"status": "success", "data": []}
    assert client.get("/api/v1/query_exemplars", [("query", "1")]).status == 204


def test_explain_returns_the_plan_without_executing(client: Client) -> None:
    r = client.get(
        "/api/v1/query_range",
        [
            ("query", "rate(http_requests_total[1m])"),
            ("start", "0"),
            ("end", "60"),
            ("step", "15"),
            ("explain", "true"),
        ],
    )
    assert r.status == 200, r.body
    data = r.json()["data"]
    assert "result" not in data
    assert "SeriesScan" in data["explain"]["text"]
    assert isinstance(data["explain"]["plan"], dict)


def test_analyze_returns_result_and_plan(client: Client) -> None:
    r = client.get(
        "/api/v1/query",
        [
            ("query", 'rate(http_requests_total{job="api"}[1m])'),
            ("time", "300"),
            ("analyze", "true"),
        ],
    )
    assert r.status == 200, r.body
    data = r.json()["data"]
    assert data["resultType"] == "vector"
    t, v = data["result"][0]["value"]
    assert t == 300 and float(v) == pytest.approx(1.0)
    assert "SeriesScan" in data["analyze"]["text"]


def test_gzip_when_the_client_accepts_it(client: Client) -> None:
    r = client.request(
        "GET",
        "/api/v1/query",
        headers={"Accept-Encoding": "gzip"},
        params=[("query", "temperature"), ("time", "300")],
    )
    assert r.headers.get("Content-Encoding") == "gzip"
    assert b'"resultType":"vector"' in gzip.decompress(r.body)


def test_cors_headers_as_prometheus_sends_them(client: Client) -> None:
    r = client.request(
        "GET",
        "/api/v1/query",
        headers={"Origin": "http://grafana.example"},
        params=[("query", "temperature"), ("time", "300")],
    )
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert (
        r.headers["Access-Control-Allow-Headers"] == "Accept, Authorization, Content-Type, Origin"
    )
    assert r.headers["Access-Control-Expose-Headers"] == "Date"
    assert r.headers["Vary"] == "Origin"
    err = client.request("GET", "/api/v1/query", headers={"Origin": "x"}, params=[("query", "(")])
    assert err.status == 400 and err.headers["Access-Control-Allow-Origin"] == "*"
    pre = client.request("OPTIONS", "/api/v1/query_range", headers={"Origin": "x"})
    assert pre.status == 204 and pre.headers["Access-Control-Allow-Origin"] == "*"
    plain = client.get("/api/v1/query", [("query", "temperature"), ("time", "300")])
    assert "Access-Control-Allow-Origin" not in plain.headers and plain.headers["Vary"] == "Origin"


def test_max_samples_gives_the_execution_error(query_server_factory) -> None:
    c, _ = query_server_factory(QueryAPIConfig(max_samples=10))
    r = c.get("/api/v1/query", [("query", "http_requests_total[5m]"), ("time", "600")])
    assert r.status == 422, r.body
    assert r.json() == {
        "status": "error",
        "errorType": "execution",
        "error": "query processing would load too many samples into memory in query execution",
    }
    ok = c.get("/api/v1/query", [("query", "temperature"), ("time", "600")])
    assert ok.status == 200


def test_query_timeout_gives_timeout_error_and_server_keeps_answering(query_server_factory) -> None:
    c, _ = query_server_factory()
    r = c.get(
        "/api/v1/query_range",
        [
            ("query", "http_requests_total"),
            ("start", "0"),
            ("end", "600"),
            ("step", "0.1"),
            ("timeout", "0.000001"),
        ],
    )
    assert r.status == 503, r.body
    body = r.json()
    assert body["errorType"] == "timeout"
    assert body["error"].startswith("query timed out in ")
    assert c.get("/api/v1/query", [("query", "temperature"), ("time", "1")]).status == 200


def test_zero_timeout_times_out_at_once(client: Client) -> None:
    r = client.get("/api/v1/query", [("query", "temperature"), ("timeout", "0")])
    assert r.status == 503
    assert r.json()["error"] == "query timed out in query queue"


def test_queries_beyond_max_concurrency_wait_in_the_queue_until_their_timeout(
    query_server_factory,
) -> None:
    c, srv = query_server_factory(QueryAPIConfig(max_concurrent=1))
    assert c.get("/api/v1/query", [("query", "temperature"), ("time", "1")]).status == 200
    release, running = threading.Event(), threading.Event()

    def hold_the_slot() -> bool:
        running.set()
        return release.wait(20)

    busy = asyncio.run_coroutine_threadsafe(srv.api.run(hold_the_slot, 30), srv.loop)
    try:
        assert running.wait(10)  # the only query slot is now taken
        queued = c.get(
            "/api/v1/query", [("query", "temperature"), ("time", "1"), ("timeout", "0.3")]
        )
        assert queued.status == 503
        assert queued.json()["error"] == "query timed out in query queue"
        # Other endpoints (and the event loop) are not blocked by the busy query slot.
        assert c.get("/api/v1/format_query", [("query", "up")]).status == 200
        assert c.get("/-/healthy").status == 200
        waiting: list[int] = []
        t = threading.Thread(
            target=lambda: waiting.append(
                c.get("/api/v1/query", [("query", "temperature"), ("time", "1")]).status
            )
        )
        t.start()
        time.sleep(0.2)
        assert not waiting  # still queued behind the busy slot
        release.set()
        t.join(10)
        assert waiting == [200]
    finally:
        release.set()
        busy.result(10)
