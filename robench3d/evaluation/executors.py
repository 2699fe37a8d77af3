"""Running the cells of the matrix as Ray tasks: ``robench3d run --executor ray [--address ADDR]``.

The driver (the ``robench3d run`` process) builds nothing. It submits, in the order the local loop works:

1. one chain of *build* tasks: each base backbone (trained or loaded, with its transfer surrogate), then each of its
   defenses (built and measured on clean clouds). The chain runs one build at a time, so a model, a teacher or a
   defense's artifact that two of them share is trained once and the others load it from the cache;
2. one task per *cell* (backbone x defense x attack x setting), started as soon as its defense is built. The cells
   that replay shared clouds (``oblivious`` and ``transfer``: made on the base model or the surrogate, the same for
   every defense) wait for the same cell of the previous defense, so the first one generates and caches the clouds
   and the others replay them;
3. per defense, once its cells are in, the gradient-masking check (:func:`~robench3d.evaluation.matrix._flag`).

Workers share trained models, artifacts and adversarial clouds through the cache directory (so on a cluster it
must be a path every machine sees), rebuild the registries once per process with the ``setup`` callable they are
given, and never write the results folder: a task returns the rows, per-sample outcomes and tracebacks it would
have written, and the driver writes them into the same idempotent :class:`~robench3d.evaluation.results.ResultsStore`
as they arrive. Every task pins torch to its CPU share and seeds the global generators, so a cell computes on a
worker what it computes in the local loop. A task lost with its worker becomes an ``error`` row (retried by a
re-run); Ctrl-C cancels what is still queued or running.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robench3d import pointops
from robench3d.config import RunConfig
from robench3d.errors import ConfigError
from robench3d.evaluation import cells, matrix
from robench3d.evaluation.results import ResultsStore
from robench3d.norms import Setting
from robench3d.schema import cell_id

__all__ = ["RAY_MISSING", "RayExecutor", "import_ray"]

logger = logging.getLogger(__name__)

RAY_MISSING = ('--executor ray needs Ray, which is not installed; install the extra with pip install -e ".[ray]" '
               '(or pip install "robench3d[ray]"), or run with --executor local')

#: Settings whose clouds do not depend on the defense (made once per backbone and attack, replayed on each defense).
SHARED_CLOUDS = (Setting.OBLIVIOUS, Setting.TRANSFER)


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


@dataclass
class RayExecutor:
    """Run the matrix's cells as Ray tasks (see the module docstring); pass it to ``run_matrix(executor=...)``.

    Args:
        setup: a picklable callable, run once in each worker process, returning ``(registries, weights resolver)``
            (the CLI's rebuilds them from the installed plugins and the run's ``-p`` options).
        address: the cluster to join (``ray start --head`` prints it); ``None`` joins the instance this process
            already started, else starts a local one.
        cpus_per_task: Ray's ``num_cpus`` of every task; torch runs that many threads in it.
        gpus_per_task: Ray's ``num_gpus``; ``None``: 1 when the run's device is CUDA, else 0.
        echo: workers print their progress lines (Ray forwards them to the driver's terminal).
        init_options: more keyword arguments of ``ray.init`` when this executor starts Ray.
    """

    setup: Callable[[], tuple[Any, Any]]
    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float | None = None
    echo: bool = True
    init_options: Mapping[str, Any] = field(default_factory=dict)
    _started: bool = field(default=False, init=False, repr=False)

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Connect to ``address``, or start a local Ray instance, unless this process is connected already."""
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, **dict(self.init_options))
            self._started = True

    def stop(self) -> None:
        """Shut Ray down if this executor started it."""
        if self._started:
            import_ray().shutdown()
            self._started = False

    def execute(self, run: Any) -> None:
        """Run every cell of ``run`` (a :class:`~robench3d.evaluation.matrix._Run`) on Ray."""
        self.start()
        _Driver(self, run, import_ray()).execute()


# -- worker side ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """What every task of one run carries: the run's identity, configuration and the registries' setup."""

    token: str
    config: RunConfig
    setup: Callable[[], tuple[Any, Any]]
    threads: int
    echo: bool


class _Capture(ResultsStore):
    """A results store that records writes (to return them to the driver) and reads the real results folder."""

    def __init__(self, real_root: Path) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="robench3d-cell-")))
        self.real = ResultsStore(real_root)
        self.writes: list[tuple[list[dict[str, Any]], pd.DataFrame | None]] = []

    def load(self) -> pd.DataFrame:
        return self.real.load()

    def find(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.real.find(row)

    def samples(self, row: Mapping[str, Any]) -> pd.DataFrame:
        return self.real.samples(row)

    def put(self, row: Mapping[str, Any], samples: pd.DataFrame | None = None) -> None:
        self.writes.append(([dict(row)], samples))

    def put_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = [dict(r) for r in rows]
        if rows:
            self.writes.append((rows, None))

    def result(self, row: dict[str, Any] | None) -> dict[str, Any]:
        """The task's return value: its row, its writes and its tracebacks (``errors/<cell>.log`` texts)."""
        logs = {str(p.relative_to(self.root)): p.read_text() for p in self.root.glob("errors/*.log")}
        shutil.rmtree(self.root, ignore_errors=True)
        return {"row": row, "writes": self.writes, "logs": logs}


class _Worker:
    """One worker process's view of a run: its registries, plan, and the models it has built so far."""

    def __init__(self, spec: _Spec) -> None:
        registries, resolver = spec.setup()
        say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if spec.echo else (lambda msg: None)
        plan = matrix.plan_run(spec.config, registries, resolver)
        self.run = matrix._Run(spec.config, registries, plan, resolver, say)
        self.run._prepare_attacks()  # the first task (of the chain's head) trains; the others load from the cache
        self._setups: dict[str, Any] = {}
        self._bases: dict[tuple[str, int], Any] = {}

    def setup(self, bref: str) -> matrix.BackboneSetup | str:
        if bref not in self._setups:
            self._setups[bref] = self.run.prepare_backbone(bref)
        return self._setups[bref]

    def base(self, bref: str, index: int, *, measure: bool = False) -> cells.CellBase | str:
        key = (bref, index)
        if key not in self._bases or (measure and not isinstance(self._bases[key], str)
                                      and self._bases[key].clean_pred is None):
            setup = self.setup(bref)
            self._bases[key] = setup if isinstance(setup, str) else self.run.build_defense(
                setup, self.run.plan.defenses[index], measure=measure)
        return self._bases[key]


_WORKERS: dict[str, _Worker] = {}


def _worker(spec: _Spec) -> _Worker:
    """This process's worker for the run, created on its first task; torch pinned and seeded for every task."""
    pointops.pin_threads(spec.threads)
    if spec.token not in _WORKERS:
        _WORKERS.clear()  # one run at a time per process: drop the models of an earlier one
        _WORKERS[spec.token] = _Worker(spec)
    seed = spec.config.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return _WORKERS[spec.token]


def _task_prepare(spec: _Spec) -> dict[str, str]:
    """Prepare the attacks (e.g. train AdvPC's autoencoder) once; the attacks that failed, with their message."""
    return dict(_worker(spec).run.failed_attacks)


def _task_backbone(spec: _Spec, bref: str, *_after: Any) -> str:
    """Train or load a base backbone and its surrogate into the cache; "" or the message of its failure."""
    setup = _worker(spec).setup(bref)
    return setup if isinstance(setup, str) else ""


def _task_defense(spec: _Spec, bref: str, index: int, backbone_error: str, *_after: Any) -> dict[str, Any]:
    """Build one defense and measure it on clean clouds; what its cells need, or the message of its failure."""
    w = _worker(spec)
    defense = w.run.plan.defenses[index]
    if backbone_error:
        return {"error": backbone_error, "backbone": w.run.plan.labels[bref], "randomized": defense.randomized}
    setup = w.setup(bref)
    assert not isinstance(setup, str)
    base = w.base(bref, index, measure=True)
    if isinstance(base, str):
        return {"error": base, "backbone": setup.trained.name, "randomized": defense.randomized}
    return {"error": "", "backbone": setup.trained.name, "randomized": base.defended.randomized,
            "clean_pred": base.clean_pred, "latency": base.latency, "latency_ratio": base.latency_ratio}


def _measured_base(w: _Worker, bref: str, index: int, built: Mapping[str, Any], store: ResultsStore
                   ) -> cells.CellBase | str:
    """The defended model of a cell with the clean measurement of its build task (one per defense, as locally)."""
    base = w.base(bref, index)
    if isinstance(base, str):
        return base
    return dataclasses.replace(base, store=store, clean_pred=built["clean_pred"], latency=built["latency"],
                               latency_ratio=built["latency_ratio"])


def _task_cell(spec: _Spec, bref: str, index: int, aname: str, setting: str, built: Mapping[str, Any],
               *_after: Any) -> dict[str, Any]:
    """Compute (or reuse) one cell; its row and writes (see :meth:`_Capture.result`)."""
    w = _worker(spec)
    run, store = w.run, _Capture(spec.config.output_dir)
    defense, attack, s = run.plan.defenses[index], run.plan.attacks[aname], Setting(setting)
    base = built["error"] or _measured_base(w, bref, index, built, store)
    if isinstance(base, str):
        row = cells.error_row(run._cell_plan(defense, built["backbone"], bref, built["randomized"]), attack, s, base)
        store.put(row)
    elif aname in run.failed_attacks:
        row = cells.error_row(base.plan, attack, s, run.failed_attacks[aname])
        store.put(row)
    else:
        row = cells.run_cell(base, attack, s)
    return store.result(row)


def _task_flag(spec: _Spec, bref: str, index: int, built: Mapping[str, Any], rows: list[dict[str, Any]]
               ) -> dict[str, Any]:
    """The gradient-masking flags of one defended model's rows (only the changed rows are written)."""
    w = _worker(spec)
    store = _Capture(spec.config.output_dir)
    base = _measured_base(w, bref, index, built, store)
    if not isinstance(base, str):
        matrix._flag(base, w.run.registries, spec.config, rows, w.run.say)
    return store.result(None)


# -- driver side ---------------------------------------------------------------------------------------------------


@dataclass
class _Cell:
    index: int
    bref: str
    defense: int
    attack: str
    setting: Setting


class _Driver:
    """Submits the tasks of one run, writes what they return, and reports progress."""

    def __init__(self, executor: RayExecutor, run: Any, ray: Any) -> None:
        self.ex, self.run, self.ray = executor, run, ray
        cfg = run.config
        gpus = executor.gpus_per_task
        if gpus is None:
            gpus = 1.0 if str(cfg.device).startswith("cuda") else 0.0
        self.spec = _Spec(token=uuid.uuid4().hex, config=cfg, setup=executor.setup,
                          threads=max(1, int(executor.cpus_per_task)), echo=executor.echo)
        self.resources = {"num_cpus": executor.cpus_per_task, "num_gpus": gpus}
        self.rows: dict[int, dict[str, Any]] = {}
        self.by_id: dict[str, int] = {}

    def remote(self, fn: Callable[..., Any]) -> Any:
        return self.ray.remote(fn).options(**self.resources)

    def execute(self) -> None:
        run, ray, cfg, plan = self.run, self.ray, self.run.config, self.run.plan
        run.announce()
        run.say(f"ray: {run.cells_total} cells as tasks ({self.resources['num_cpus']:g} CPU, "
                f"{self.resources['num_gpus']:g} GPU each) on {ray.cluster_resources().get('CPU', 0):g} CPUs")
        run.failed_attacks.update(ray.get(self.remote(_task_prepare).remote(self.spec)))
        for message in run.failed_attacks.values():
            run.say(f"error: {message}")
        backbone, defense, cell, flag = (self.remote(f) for f in (_task_backbone, _task_defense, _task_cell,
                                                                  _task_flag))
        pending: dict[Any, tuple[str, Any]] = {}
        groups: dict[tuple[str, int], dict[str, Any]] = {}
        chain: list[Any] = []
        previous: dict[tuple[str, str, Setting], Any] = {}
        index = 0
        for bref in cfg.backbones:
            b = backbone.remote(self.spec, bref, *chain)
            for di in range(len(plan.defenses)):
                built = defense.remote(self.spec, bref, di, b, *chain)
                chain = [built]
                groups[(bref, di)] = {"built": built, "left": len(plan.attacks) * len(cfg.settings), "rows": []}
                for aname in plan.attacks:
                    for setting in cfg.settings:
                        shared = (bref, aname, setting)
                        after = [previous[shared]] if setting in SHARED_CLOUDS and shared in previous else []
                        ref = cell.remote(self.spec, bref, di, aname, setting.value, built, *after)
                        if setting in SHARED_CLOUDS:
                            previous[shared] = ref
                        pending[ref] = ("cell", _Cell(index, bref, di, aname, setting))
                        index += 1
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                kind, what = pending.pop(ready[0])
                if kind == "cell":
                    group = groups[(what.bref, what.defense)]
                    row, lost = self._cell_done(ready[0], what)
                    group["rows"].append(row)
                    group["lost"] = group.get("lost", False) or lost
                    group["left"] -= 1
                    if group["left"] == 0 and not group["lost"]:  # the masking check needs all of them
                        built = ray.get(group["built"])
                        if not built["error"]:
                            ref = flag.remote(self.spec, what.bref, what.defense, built, group["rows"])
                            pending[ref] = ("flag", what)
                else:
                    self._flags_done(ready[0])
        except BaseException:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or gone: nothing left to stop
                    pass
            raise
        finally:
            run.result.rows.extend(self.rows[i] for i in sorted(self.rows))

    def _write(self, out: Mapping[str, Any]) -> None:
        store = self.run.store
        for rel, text in out["logs"].items():
            path = store.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for rows, samples in out["writes"]:
            if samples is not None:
                store.put(rows[0], samples)
            else:
                store.put_many(rows)

    def _cell_done(self, ref: Any, what: _Cell) -> tuple[dict[str, Any], bool]:
        """Write a finished cell's results; its row, and whether its task was lost."""
        run, lost = self.run, False
        try:
            out = self.ray.get(ref)
            self._write(out)
            row = out["row"]
        except self.ray.exceptions.RayError as exc:  # the worker died or the task raised outside the cell's code
            text = " ".join(str(exc).split())[:400]
            defense = run.plan.defenses[what.defense]
            plan = run._cell_plan(defense, run.plan.labels[what.bref], what.bref, defense.randomized)
            row = cells.error_row(plan, run.plan.attacks[what.attack], what.setting,
                                  f"the Ray task of this cell failed ({type(exc).__name__}): {text}")
            run.store.put(row)
            run.say(f"error: {row['reason']}")
            lost = True
        self.rows[what.index] = row
        self.by_id[cell_id(row)] = what.index
        run.tick(row)
        status = row.get("status")
        shown = f"robust {100 * float(row['robust_acc']):.1f}%" if status == "ok" else str(status)
        run.say(f"cell {run.cells_done}/{run.cells_total} done: {row.get('attack')} [{row.get('setting')}] on "
                f"{row.get('defense')} ({row.get('backbone')}): {shown}")
        return row, lost

    def _flags_done(self, ref: Any) -> None:
        try:
            out = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # advisory: the rows stay, unflagged
            self.run.say(f"gradient-masking check failed on Ray: {' '.join(str(exc).split())[:400]}")
            return
        self._write(out)
        for rows, _ in out["writes"]:
            for r in rows:
                if cell_id(r) in self.by_id:
                    self.rows[self.by_id[cell_id(r)]] = r
