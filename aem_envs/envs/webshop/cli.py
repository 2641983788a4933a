"""``aem-envs serve-web``: browse the WebShop pages the env sees, in a browser."""

from __future__ import annotations

import argparse
import signal


def cmd_serve_web(args: argparse.Namespace) -> int:
    from aem_envs.envs.webshop.app import create_app
    from aem_envs.envs.webshop.server import ShopServer
    from aem_envs.envs.webshop.shop import get_shop

    shop = get_shop(args.catalog_seed, args.n_products)
    server = ShopServer(create_app(shop, index_split=args.split), args.host, args.port)
    try:
        server.start()
    except OSError as e:
        raise SystemExit(f"error: cannot listen on {args.host}:{args.port} ({e}); pick another --port") from None
    first = shop.ids[args.split][0]
    print(f"WebShop serving {len(shop.ids[args.split])} {args.split} tasks at {server.url}/ "
          f"(first task: {server.url}/{first}); Ctrl-C stops it", flush=True)
    # Ctrl-C and SIGTERM stop the server. Installed explicitly: a process started with SIGINT
    # ignored (any background job of a non-interactive shell, e.g. CI) gets no KeyboardInterrupt.
    def _stop(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("serve-web", help="serve the WebShop web pages on localhost")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    sp.add_argument("--split", default="test", choices=("train", "test"), help="tasks listed on the index page")
    sp.add_argument("--catalog-seed", type=int, default=0)
    sp.add_argument("--n-products", type=int, default=4000)
    sp.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    sp.set_defaults(fn=cmd_serve_web)
