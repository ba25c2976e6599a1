"""Rollout scenarios at 3 replicas on one real PostgreSQL (--store postgres): one queue and one
event stream, so every client learns every outcome whichever pod accepted, ran or streamed it.

Run one by hand from this directory:
    QUIESCE_BIN=../../build/dev/app/quiesce /usr/bin/python3 -m unittest -v test_shared_rollout.SharedSurge
"""
import asyncio
import json
import sys
import unittest

from cluster import scaled
from test_rollout import POD_ARGS, Deployment, Scenario
import postgres  # the integration tests' throwaway cluster (cluster.py put it on the path)

LEASE = postgres.LEASE
PG = None


def setUpModule():
    global PG
    PG = postgres.cluster()


def tearDownModule():
    postgres.close_cluster()


def shared_args(db):
    return POD_ARGS + ["--store", "postgres", "--database-url", PG.url(db), "--lease-seconds", LEASE]


def ended_in(db):
    """The tasks the database says ended: the ground truth for "lost"."""
    return lambda: {r[0] for r in PG.psql(
        "SELECT id FROM quiesce_tasks WHERE status IN ('succeeded', 'failed', 'cancelled')", db)}


def deployment(db, **kw):
    d = Deployment(pod_args=shared_args(db), ended_in_store=ended_in(db), **kw)
    d.db = db
    return d


def running_on(pod, db):
    """Tasks the database says `pod` runs now."""
    return int(PG.psql("SELECT count(*) FROM quiesce_tasks t JOIN quiesce_replicas r ON r.id = t.owner "
                       f"WHERE r.pod = '{pod.name}' AND t.status = 'running'", db)[0][0])


class SharedScenario(Scenario):
    def assertEveryOutcomeLearned(self, r, lost, d):
        self.explain(d)
        self.assertGreater(r["accepted"], 50)
        self.assertEqual(lost, set())
        self.assertEqual(r["not_learned"], 0, "every client learns every outcome, whoever ran it")
        self.assertEqual(r["gave_up"], 0)

    def explain(self, d):
        """For each outcome not learned: the task's events as stored, and the warnings of the pod
        that served the client's last stream."""
        for c in d.clients:
            for t in c.not_learned():
                events = PG.psql(f"SELECT seq, status FROM quiesce_events WHERE id = '{t}' ORDER BY seq", d.db)
                print(f"EVENTS of {t}: {events}", file=sys.stderr)
                for p in d.all:
                    if c.connects and p.name == c.connects[-1][0]:
                        for line in p.logs():
                            if line.get("level") in ("warn", "error"):
                                print(f"  {p.name}: {json.dumps(line)}", file=sys.stderr)


class SharedSurge(SharedScenario):
    async def test_rolling_update_of_three_replicas_under_load(self):
        d = deployment(PG.new_database(), lag=0.2, prestop=0.5)

        await self.run_deployment(d, d.rollouts_under_load(3, clients=4, cycles=1, after=1.0), 120)
        r, lost = d.result("shared-surge-3-replicas")
        self.assertEveryOutcomeLearned(r, lost, d)
        self.assertCleanDrains(r, d, d.all)


class SharedLaggingNoPreStop(SharedScenario):
    async def test_a_lagging_service_without_prestop_loses_no_outcome(self):
        d = deployment(PG.new_database(), lag=1.0, prestop=0)

        await self.run_deployment(d, d.rollouts_under_load(3, clients=4, cycles=1, after=2.0), 120)
        r, lost = d.result("shared-lag-1s-no-prestop")
        self.assertEveryOutcomeLearned(r, lost, d)
        self.assertCleanDrains(r, d, d.all)


class SharedCrashMidRollout(SharedScenario):
    async def test_a_replica_killed_mid_rollout_loses_nothing(self):
        """During a rolling update one old pod is SIGKILLed: no volume is needed, the others
        rescue its tasks when its lease runs out, and its clients resume on another pod."""
        db = PG.new_database()
        d = deployment(db, lag=0.2, prestop=0.5)

        async def scenario(d):
            await d.start(replicas=3)
            d.add_clients(4, period=0.05, body={"kind": "sleep", "seconds": 0.5})
            await d.until_following()
            d.start_load()
            await asyncio.sleep(1.0)
            await d.start_pod()
            d.terminate(d.live[0])  # the rollout's first step
            self.victim = d.live.pop(0)
            async with asyncio.timeout(scaled(10)):
                while running_on(self.victim, db) == 0:  # the kill must catch tasks in flight
                    await asyncio.sleep(0.05)
            await self.victim.crash()
            await d.start_pod()
            await asyncio.sleep(1.0)
            await d.rolling_update()  # the rest of the old pods, the new ones too
            await d.until_following()
            await asyncio.sleep(1.0)
            await d.stop_load_and_settle(scaled(10) + LEASE)

        await self.run_deployment(d, scenario(d), 150)
        r, lost = d.result("shared-sigkill-mid-rollout")
        self.assertEveryOutcomeLearned(r, lost, d)
        self.assertEqual(self.victim.exit_code, -9)
        rescued = [l for p in d.all for l in p.logs()
                   if l.get("msg") == "task rescued from a replica that stopped renewing its lease"]
        self.assertTrue(rescued, "the kill caught tasks in flight, and another pod took them over")
        self.assertCleanDrains(r, d, [p for p in d.all if p is not self.victim])


if __name__ == "__main__":
    unittest.main()
