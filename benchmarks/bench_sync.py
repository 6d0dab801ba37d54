"""How fast the BikeWerk sync fills an empty store: N orders and M status events from the simulator, over HTTP
on localhost (target: 100,000 orders + 1,000,000 events in under 10 s and under 200 MB peak RSS).

    python benchmarks/bench_sync.py [--orders 100000 --events 1000000 --page-size 5000 --repeat 3] [--small]

The simulator runs in a child process, so only the sync's own memory counts; each run times one
`Syncer.sync_once()` into a fresh SQLite file (managers, events, orders with their SLA visits, workspace).
The best and the median of --repeat runs are printed; PASS/FAIL holds the median against the target and exits
1 on FAIL. `--small` (a CI smoke run) checks that everything is stored, not the time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bikewerk.client import BikeWerkClient
from bikewerk.sync import Syncer
from bikewerk.sync_command import TerminalProgress, summary
from bot.clock import SystemClock
from domain.policy import Policy, calendar_for
from storage.db import Database
from testkit.simulator import BikeWerkSimulator

TARGET_SECONDS = 10.0
TARGET_RSS_MB = 200.0


def _serve(orders: int, events: int, seed: int, reply: Connection) -> None:
    """The child process: build the data set, serve it, send back the URL, serve until terminated."""

    async def serve() -> None:
        started = time.perf_counter()
        sim = BikeWerkSimulator(seed=seed, orders=orders, events_per_order=events / max(orders, 1))
        sim.prerender()  # the CRM's own work is not on the cores the sync is measured on
        url = await sim.start()
        reply.send((url, sim.order_count, sim.event_count, time.perf_counter() - started))
        await asyncio.Event().wait()

    asyncio.run(serve())


async def _sync(url: str, page_size: int) -> tuple[float, int, int, bool]:
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "bench.db")
        policy = Policy.default()
        try:
            async with BikeWerkClient(url, timeout=60) as client:
                syncer = Syncer(
                    db,
                    client,
                    policy,
                    calendar_for(policy, "Europe/Berlin"),
                    SystemClock(),
                    page_size=page_size,
                    progress=TerminalProgress(every=2.0),
                )
                started = time.perf_counter()
                report = await syncer.sync_once()
                seconds = time.perf_counter() - started
            print(summary(report))
            orders = (await db.fetchall("SELECT count(*) FROM orders"))[0][0]
            events = (await db.fetchall("SELECT count(*) FROM order_status_events"))[0][0]
        finally:
            await db.close()
    return seconds, orders, events, report.ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="syncs, each into a fresh database")
    parser.add_argument("--small", action="store_true", help="a CI smoke run: 2,000 orders, 20,000 events")
    args = parser.parse_args()
    if args.small:
        args.orders, args.events = 2_000, 20_000

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: none of this process's memory
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_serve, args=(args.orders, args.events, args.seed, send), daemon=True)
    child.start()
    try:
        url, sim_orders, sim_events, built = receive.recv()
        print(f"simulator: {sim_orders:,} orders, {sim_events:,} events at {url} (built in {built:.1f} s)")
        runs = [asyncio.run(_sync(url, args.page_size)) for _ in range(1 if args.small else args.repeat)]
    finally:
        child.terminate()
        child.join()

    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    complete = all(ok and orders == sim_orders and events == sim_events for _, orders, events, ok in runs)
    times = [seconds for seconds, *_ in runs]
    seconds, best = statistics.median(times), min(times)
    _, orders, events, _ = runs[-1]
    print(f"orders/s: {orders / seconds:,.0f}   events/s: {events / seconds:,.0f} (median)")
    print(
        f"wall time: median {seconds:.2f} s, best {best:.2f} s of {len(times)} runs "
        f"(target < {TARGET_SECONDS:.0f} s)"
    )
    print(f"peak RSS of the sync process: {peak_mb:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)")
    print(f"CPU time of the sync process: {usage.ru_utime:.1f} s user, {usage.ru_stime:.1f} s system")
    print(f"stored: {orders:,} of {sim_orders:,} orders, {events:,} of {sim_events:,} events")
    passed = complete and seconds < TARGET_SECONDS and peak_mb < TARGET_RSS_MB
    print("PASS" if passed else "FAIL")
    return 0 if passed or (args.small and complete) else 1


if __name__ == "__main__":
    sys.exit(main())
