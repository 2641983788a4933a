"""WebShop: catalog, reward, search, pages, env contract, oracle and random floors, real HTTP."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

import aem_envs
from aem_envs.envs.webshop.catalog import CATEGORIES, Catalog, Goal, Product, score, score_breakdown
from aem_envs.envs.webshop.env import WebShopEnv
from aem_envs.envs.webshop.observe import parse_page
from aem_envs.envs.webshop.server import ShopServer, http_fetch
from aem_envs.envs.webshop.shop import get_shop

ENV_ID = "aem/WebShop-v0"


@pytest.fixture(scope="module")
def shop():
    return get_shop()


def _play(env, policy, task_id=None, seed=0):
    obs, info = env.reset(seed=seed, options={"task_id": task_id} if task_id else None)
    trace = [obs]
    done = False
    while not done:
        obs, r, te, tr, info = env.step(env.format_action(policy(env)))
        trace.append(obs)
        done = te or tr
    return trace, r, info


def _oracle(env):
    return env.oracle_action()


# ---------------------------------------------------------------- catalog
def test_catalog_is_deterministic_and_seed_dependent():
    a, b, c = Catalog(7, 600), Catalog(7, 600), Catalog(8, 600)
    assert a.products == b.products
    assert [a.goal("test", k) for k in range(100_000, 100_020)] == [b.goal("test", k) for k in range(100_000, 100_020)]
    assert [p.title for p in a.products] != [p.title for p in c.products]
    assert len({p.asin for p in a.products}) == 600
    cats = {p.category for p in a.products}
    assert cats == {cat.name for cat in CATEGORIES}


def test_attributes_fit_their_product_type(shop):
    from aem_envs.envs.webshop.catalog import NOT_APPLICABLE

    for p in shop.catalog.products:
        assert not set(p.attributes) & NOT_APPLICABLE.get(p.ptype, frozenset()), p.title
        assert 3 <= len(p.attributes) <= 5


def test_option_values_are_unique_within_a_category():
    # Option values are click labels on one page, so two dimensions must never share one.
    for cat in CATEGORIES:
        values = [v for _, vals in cat.options for v in vals]
        assert len(values) == len(set(values)), cat.name


def test_splits_are_disjoint_in_ids_and_target_products(shop):
    train, test = shop.ids["train"], shop.ids["test"]
    assert len(train) == 6000 and len(test) == 500
    assert not set(test) & set(train[:]), "a task id is in both splits"
    train_targets = {shop.goal(t).target for t in train[:1500]}
    test_targets = {shop.goal(t).target for t in test}
    assert not train_targets & test_targets
    assert len(test_targets) > 200  # goals spread over many products
    for t in test[:50]:  # every goal is satisfiable by its own target
        g = shop.goal(t)
        assert shop.catalog.is_good(g, shop.catalog.by_asin[g.target])
        assert g.ptype in g.instruction and all(a in g.instruction for a in g.attributes)
        assert f"{g.price_upper:.2f}" in g.instruction


# ---------------------------------------------------------------- reward
def _product(ptype="t-shirt", attrs=("machine washable", "100% cotton", "slim fit"), price=19.99):
    return Product(0, "B0TEST0001", "clothing", ptype, "Acme", "Acme Tee", attrs,
                   (("size", ("s", "m", "l")), ("color", ("red", "blue"))), price, 4.5, "d", ("f",))


def _goal(price_upper=25.0):
    return Goal(0, "B0TEST0001", "t-shirt", ("machine washable", "100% cotton"),
                (("size", "m"), ("color", "red")), price_upper, "i need a t-shirt")


def test_reward_full_partial_and_wrong_type():
    g, p = _goal(), _product()
    assert score(g, p, {"size": "m", "color": "red"}) == 1.0
    # 5 requirements: 2 attributes + 2 options + price.
    assert score(g, p, {"size": "m"}) == pytest.approx(4 / 5)
    assert score(g, p, {}) == pytest.approx(3 / 5)
    assert score(g, _product(attrs=("machine washable",)), {"size": "l", "color": "red"}) == pytest.approx(3 / 5)
    assert score(_goal(price_upper=15.0), p, {"size": "m", "color": "red"}) == pytest.approx(4 / 5)
    assert score(g, _product(ptype="hoodie"), {"size": "m", "color": "red"}) == 0.0
    b = score_breakdown(g, p, {"color": "red"})
    assert (b.type_match, b.attributes_matched, b.options_matched, b.price_ok, b.n_requirements) == (True, 2, 1, True, 5)


# ---------------------------------------------------------------- search
def test_search_ranking_sanity(shop):
    for p in shop.catalog.products[::400]:
        assert shop.search(p.title)[0] == p.asin, p.title
    hits = shop.search("waterproof hiking boots")
    top = [shop.catalog.by_asin[a] for a in hits[:10]]
    assert all(p.ptype == "hiking boots" for p in top)
    assert all("waterproof" in p.attributes for p in top[:5])
    assert len(hits) == 50 and len(set(hits)) == 50
    assert shop.search("Hiking  BOOTS") == shop.search("hiking boots")
    assert shop.search("the of and") == () and shop.search("zzqqxx") == ()
    # Plural/singular both find the type.
    assert shop.catalog.by_asin[shop.search("sandal")[0]].ptype == "sandals"


# ---------------------------------------------------------------- pages -> observation
HTML = """<!doctype html><html><head><title>x</title></head>
<body data-page="item" data-asin="B01" data-opt-size="m">
<div id="instruction">Instruction: buy a thing</div>
<div class="nav"><a href="/s">Back to Search</a> <a href="/s/search?q=a&amp;page=2">&lt; Prev</a></div>
<h2>Acme  Red
  Tee</h2><div>size: <a href="/s/i?size=s">s</a> <a href="/s/i?size=m">m</a> (selected: m)</div>
<form action="/s/buy/B01?size=m" method="post"><button type="submit">Buy Now</button></form>
<!-- a comment --><script>var x = 1;</script></body></html>"""


def test_parse_page_text_links_and_meta():
    page = parse_page(HTML)
    assert page.kind == "item" and page.meta == {"asin": "B01", "opt-size": "m"}
    assert page.text == "[Back to Search] [< Prev]\nAcme Red Tee\nsize: [s] [m] (selected: m)\n[Buy Now]"
    assert list(page.links) == ["back to search", "< prev", "s", "m", "buy now"]
    assert page.links["< prev"].url == "/s/search?q=a&page=2" and page.links["< prev"].method == "GET"
    assert page.links["buy now"].method == "POST" and page.links["buy now"].url == "/s/buy/B01?size=m"
    assert not page.has_search and "instruction" not in page.text.lower()
    assert page.observation.endswith("Clickable: back to search, < prev, s, m, buy now")
    search = parse_page('<body data-page="search"><h1>Shop</h1><form id="search" action="/s/search">'
                        '<input name="q"> <button>Search</button></form></body>')
    assert search.has_search and search.links == {} and search.observation == "Shop\n[Search box]"


# ---------------------------------------------------------------- env
def test_checker_passes():
    report = aem_envs.check_env(ENV_ID, oracle_episodes=10)
    assert report.ok, str(report)


def test_oracle_solves_sample_of_test_tasks():
    env = aem_envs.make(ENV_ID, split="test")
    ids = env.task_ids("test")
    wins, turns = 0, []
    for k in range(0, 500, 10):  # 50 tasks
        trace, r, info = _play(env, _oracle, ids[k], seed=k)
        wins += info["success"]
        turns.append(info["turn"])
        if info["success"]:
            assert r == 10.0 and info["raw_score"] == 1.0
    assert wins / 50 >= 0.95, f"oracle solved {wins}/50"
    assert max(turns) <= 10
    env.close()


def test_oracle_recovers_from_any_state():
    """Random actions first (up to 6), then the oracle: it must still buy a matching product."""
    env = aem_envs.make(ENV_ID, split="test", max_turns=25)
    ids = env.task_ids("test")
    rng = np.random.default_rng(0)
    wins = kinds = 0
    seen = set()
    for k in range(30):
        env.reset(seed=k, options={"task_id": ids[k * 7]})
        bought = False
        for _ in range(int(rng.integers(1, 7))):
            acts = env.admissible_actions()
            *_, te, _, info = env.step(env.format_action(acts[int(rng.integers(len(acts)))]))
            seen.add(env.page.kind)
            if te:
                bought = True
                break
        if bought:
            continue
        kinds += 1
        done = False
        while not done:
            *_, te, tr, info = env.step(env.oracle_response())
            done = te or tr
        wins += info["success"]
    assert {"results", "item"} <= seen
    assert wins >= 0.95 * kinds, f"oracle from random states solved {wins}/{kinds}"
    env.close()


def test_random_admissible_agent_rarely_succeeds():
    env = aem_envs.make(ENV_ID, split="test")
    ids = env.task_ids("test")
    rng = np.random.default_rng(1)

    def policy(e):
        acts = e.admissible_actions()
        assert acts, "no admissible action on a live page"
        return acts[int(rng.integers(len(acts)))]

    wins, invalid, bought = 0, 0, 0
    n = 200
    for k in range(n):
        env.reset(seed=k, options={"task_id": ids[(k * 500) // n]})
        done = False
        while not done:
            *_, te, tr, info = env.step(env.format_action(policy(env)))
            invalid += not info["action_valid"]
            done = te or tr
        wins += info["success"]
        bought += info["raw_score"] is not None
    assert invalid == 0, "an admissible action was rejected"
    assert wins / n < 0.05, f"random agent solved {wins}/{n}"
    assert bought > 0
    env.close()


def test_invalid_actions_are_reported_and_change_nothing():
    env = aem_envs.make(ENV_ID, split="test", invalid_action="penalize(-0.1)")
    obs0, _ = env.reset(seed=3)
    o, r, te, tr, info = env.step("<action>click[buy now]</action>")
    assert r == -0.1 and not te and not info["action_valid"] and "nothing is clickable" in info["invalid_reason"]
    o, r, *_ , info = env.step("<action>search[]</action>")
    assert "empty query" in info["invalid_reason"]
    o, r, *_, info = env.step("<action>buy the shirt</action>")
    assert "is not search[query] or click[label]" in info["invalid_reason"]
    o, r, *_, info = env.step(env.format_action("search[red t-shirt]"))
    assert info["action_valid"] and env.page.kind == "results"
    results_obs = o
    o, r, *_, info = env.step(env.format_action("search[blue t-shirt]"))
    assert not info["action_valid"] and "no search box" in info["invalid_reason"]
    o, r, *_, info = env.step(env.format_action("click[B0NOSUCHONE]"))
    assert "not clickable here; clickable: back to search" in info["invalid_reason"]
    o, r, *_, info = env.step(env.format_action("click[  NEXT   > ]"))  # case and spaces do not matter
    assert info["action_valid"] and "Page 2 of" in o and o != results_obs
    env.close()


def test_reward_modes_and_raw_score_in_info(shop):
    env = aem_envs.make(ENV_ID, split="test")
    tid = env.task_ids("test")[5]
    env.reset(options={"task_id": tid})
    g = shop.goal(tid)
    # Buy the target without choosing options: partial credit (attributes + price).
    for a in (f"search[{' '.join(g.attributes)} {g.ptype}]",):
        env.step(env.format_action(a))
    url = f"/{tid}/item/{g.target}?q=x&page=1"
    env._open("GET", url)
    _, r, te, _, info = env.step(env.format_action("click[buy now]"))
    expected = (len(g.attributes) + 1) / g.n_requirements
    assert te and not info["success"] and info["raw_score"] == pytest.approx(expected)
    assert r == pytest.approx(10 * expected) and env.last_raw_score == info["raw_score"]
    env2 = aem_envs.make(ENV_ID, split="test", reward="success")
    _, r2, info2 = _play(env2, _oracle, tid)
    assert r2 == 10.0 and info2["raw_score"] == 1.0
    with pytest.raises(ValueError, match="reward="):
        WebShopEnv(reward="dense")
    env.close(), env2.close()


def test_page_cache_does_not_change_trajectories():
    a = aem_envs.make(ENV_ID, split="test", page_cache=False)
    b = aem_envs.make(ENV_ID, split="test", page_cache=True)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    with a.frozen_timing(), b.frozen_timing():
        for k in range(6):
            for env, rng in ((a, rng_a), (b, rng_b)):
                env._trace = _play(env, lambda e, rng=rng: e.admissible_actions()[int(rng.integers(len(e.admissible_actions())))], seed=k)
            assert a._trace == b._trace
    a.close(), b.close()


def test_observations_stay_compact():
    env = aem_envs.make(ENV_ID, split="test")
    longest = 0
    for k in range(10):
        trace, _, _ = _play(env, _oracle, env.task_ids("test")[k * 3], seed=k)
        longest = max(longest, *map(len, trace))
    assert longest < 900, f"an observation has {longest} characters"
    env.close()


# ---------------------------------------------------------------- real HTTP
def test_real_http_pages_parse_to_the_env_observations(shop):
    """The in-process env and a browser-style client over a socket see the same pages."""
    env = aem_envs.make(ENV_ID, split="test")
    with ShopServer(shop.app, "127.0.0.1", 0) as server:
        assert server.port > 0
        for k in range(3):
            obs, info = env.reset(seed=k, options={"task_id": env.task_ids("test")[k]})
            pages = [(env.url, obs)]
            done = False
            while not done:
                obs, r, te, tr, info = env.step(env.oracle_response())
                done = te or tr
                if not done:
                    pages.append((env.url, obs))
            for url, env_obs in pages:
                with urllib.request.urlopen(server.url + url, timeout=10) as resp:
                    assert resp.status == 200 and "max-age" in resp.headers["Cache-Control"]
                    html = resp.read().decode()
                assert parse_page(html).observation == env_obs, url
        status, html = http_fetch(server.url, "GET", "/no-such-task")
        assert status == 404 and "unknown webshop task id" in html
        status, html = http_fetch(server.url, "GET", "/")
        assert status == 200 and "webshop-test-100000" in html
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "/", timeout=2)
    env.close()


def test_server_and_wsgi_modes_match_the_test_client():
    env = aem_envs.make(ENV_ID, split="test", mode="server")
    assert env.base_url.startswith("http://127.0.0.1:")
    ref = aem_envs.make(ENV_ID, split="test", page_cache=False)
    wsgi = aem_envs.make(ENV_ID, split="test", mode="wsgi", page_cache=False)
    for k in (42, 7):
        tid = env.task_ids("test")[k]
        rng = np.random.default_rng(k)
        random_then_oracle = lambda e: (  # noqa: E731 - a few random clicks exercise more routes
            e.admissible_actions()[int(rng.integers(len(e.admissible_actions())))] if e.turn < 4 else e.oracle_action()
        )
        traces = []
        for e in (env, ref, wsgi):
            rng = np.random.default_rng(k)
            traces.append(_play(e, random_then_oracle, tid)[0])
        assert traces[0] == traces[1] == traces[2]
    wsgi.close()
    url = env.base_url
    env.close()
    env.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/", timeout=2)
    ref.close()


def test_serve_web_command_serves_pages():
    # Started with SIGINT ignored, as in any background job of a non-interactive shell (CI):
    # the command must still stop on Ctrl-C (it did not, before it installed its own handler).
    proc = subprocess.Popen(
        [sys.executable, "-m", "aem_envs.cli", "serve-web", "--port", "0", "--split", "train"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert m, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        status, html = http_fetch(m.group(1), "GET", "/")
        assert status == 200 and "webshop-train-000000" in html
        status, html = http_fetch(m.group(1), "GET", "/webshop-train-000000")
        assert status == 200 and parse_page(html).has_search
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the command shuts the server down and exits 0
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"serve-web did not exit 30 s after Ctrl-C; stderr: {proc.communicate()[1][-2000:]}")
        assert rc == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
