"""A transformers ``Trainer`` callback that versions the adapter as it trains.

The two usual patterns are one line each::

    # a version at every epoch, with its step, epoch and latest eval metrics
    Trainer(..., callbacks=[AdapterGitCallback(name="support-bot", every="epoch")])
    # a version at every checkpoint save; the best by eval_loss carries the stage support-bot#best
    Trainer(..., args=TrainingArguments(..., metric_for_best_model="eval_loss"),
            callbacks=[AdapterGitCallback(name="support-bot")])

The callback reads the model the Trainer hands to its events and commits it through
``Repo.commit`` (PEFT's ``save_pretrained`` into a temporary folder of the registry): it never
touches the Trainer's output directory or changes its control flow. On a process other than the
main one of a distributed run it does nothing, not even open the registry.

Each version it records is announced in one line (``adaptergit: recorded support-bot@v0.0.3 ...``)
through the Trainer's logger, ``transformers.trainer``, when that shows INFO (``log_level="info"``),
else on the Trainer's console as its progress and metrics lines are. A run resumed from a
checkpoint starts from the best the Trainer restored (``state.best_metric``), so ``#best`` never
moves to a worse version than one of the interrupted run.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback  # noqa: TID253 -- this module is the Trainer integration

from adaptergit.errors import AdapterGitError, NothingToCommit

if TYPE_CHECKING:
    from adaptergit.manifest import Version
    from adaptergit.repo import Repo

logger = logging.getLogger(__name__)

EVERY = ("save", "epoch")
# Evaluation bookkeeping that is not a result.
_NOISE_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second")


class AdapterGitCallback(TrainerCallback):
    """Commit a version of the adapter at each checkpoint save (``every="save"``) or epoch end.

    Each version records ``step``, ``epoch``, the latest training ``loss`` and the latest
    evaluation metrics. The version that is best so far in this run by the metric (`metric`, else
    the Trainer's ``metric_for_best_model``, else ``eval_loss`` when it is logged; direction from
    `greater_is_better`, else the Trainer's, else lower is better for names ending in "loss") gets
    the GTO stage `stage` (``NAME#best``).

    With `keep_last` = N, the weights of this run's versions older than the last N are removed
    from the local DVC cache once the default DVC remote holds them — never a version with a
    stage, never git history, never weights that exist nowhere else (with no remote, nothing is
    removed). Each version removed, and each kept past the last N with the reason (a stage, no
    default remote, not pushed yet), is said once. Versions stay in the registry;
    ``adaptergit pull`` brings their weights back.

    A resumed run (``trainer.train(resume_from_checkpoint=...)``) takes its best so far from the
    Trainer's restored state: ``state.best_metric`` for the Trainer's own metric, else the best
    value of `metric` in the restored ``state.log_history``.

    Args:
        repo: the registry (a `Repo` or its folder).
        name: the adapter's registry name.
        every: ``"save"`` (a version per checkpoint save) or ``"epoch"``.
        keep_last: how many of this run's newest versions keep their weights in the local cache.
        metric: the metric that picks the best version (default: the Trainer's).
        greater_is_better: its direction (default: the Trainer's, else lower for a loss).
        stage: the stage the best version holds.
        base_model: the base model's folder or hub id to fingerprint (default: the model's own).
        quiet: announce nothing (for callers that print their own lines, like the demo).
    """

    def __init__(
        self,
        repo: Repo | Path | str = ".",
        *,
        name: str,
        every: str = "save",
        keep_last: int | None = None,
        metric: str | None = None,
        greater_is_better: bool | None = None,
        stage: str = "best",
        base_model: Path | str | None = None,
        quiet: bool = False,
    ) -> None:
        from adaptergit.refs import validate_name, validate_stage

        if every not in EVERY:
            raise ValueError(f"every must be one of {', '.join(EVERY)}, got {every!r}")
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.name = validate_name(name)
        self.stage = validate_stage(stage)
        self.every = every
        self.keep_last = keep_last
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.base_model = base_model
        self.versions: list[Version] = []  # committed by this callback, oldest first
        self.best: Version | None = None
        self._best_value: float | None = None
        self._repo_arg = repo
        self._repo: Repo | None = None
        self._pending_epoch = False
        self._said: set[str] = set()  # keep_last messages already given, once each
        self.quiet = quiet

    # --- the registry ---------------------------------------------------------------------------

    @property
    def repo(self) -> Repo:
        """The registry, opened on first use.

        Raises:
            NotARepository: the folder given is not a registry.
        """
        if self._repo is None:
            from adaptergit.repo import Repo

            self._repo = (
                self._repo_arg if isinstance(self._repo_arg, Repo) else Repo(self._repo_arg)
            )
        return self._repo

    # --- Trainer events ---------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open the registry now (on the main process), so that a missing one fails before
        training; on a resumed run, take the best version so far from the restored state.

        Args:
            args, state, control: the Trainer's ``TrainingArguments``, ``TrainerState`` and
                ``TrainerControl``, as every ``TrainerCallback`` event receives them.
            **kwargs: the Trainer's other arguments (``model``, ``metrics``, ...).

        Raises:
            NotARepository: the folder given is not a registry.
        """
        if state.is_world_process_zero:
            _ = self.repo  # a registry that is not there fails now, not after the first epoch
            if state.global_step:
                self._resume(args, state)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """With ``every="epoch"``: mark the epoch's version as due; it is committed on the
        evaluation or save that follows, so that it carries that evaluation's metrics.

        Args:
            args, state, control, **kwargs: as for every ``TrainerCallback`` event.
        """
        # The Trainer evaluates and saves right after this event: wait for its metrics.
        if self.every == "epoch" and state.is_world_process_zero:
            self._pending_epoch = True

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Commit an epoch's due version with this evaluation's metrics.

        Registry errors are warnings, never a stopped training run.

        Args:
            args, state, control: as for every ``TrainerCallback`` event.
            **kwargs: ``model`` (the PeftModel committed) and ``metrics`` (the evaluation's).
        """
        if self._pending_epoch:
            self._commit(args, state, kwargs.get("model"), kwargs.get("metrics"))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """With ``every="save"`` (or an epoch's version due): commit the model as saved now.

        Registry errors are warnings, never a stopped training run.

        Args:
            args, state, control: as for every ``TrainerCallback`` event.
            **kwargs: ``model``, the PeftModel committed.
        """
        if self.every == "save" or self._pending_epoch:
            self._commit(args, state, kwargs.get("model"), None)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Commit the previous epoch's version if it is still due (the epoch ended with neither
        evaluation nor save).

        Args:
            args, state, control: as for every ``TrainerCallback`` event.
            **kwargs: ``model``, the PeftModel committed.
        """
        if self._pending_epoch:  # the last epoch ended with neither evaluation nor save
            self._commit(args, state, kwargs.get("model"), None)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Commit the last epoch's version if it is still due.

        Args:
            args, state, control: as for every ``TrainerCallback`` event.
            **kwargs: ``model``, the PeftModel committed.
        """
        if self._pending_epoch:
            self._commit(args, state, kwargs.get("model"), None)

    # --- committing -------------------------------------------------------------------------------

    def _commit(
        self, args: Any, state: Any, model: Any, eval_metrics: dict[str, Any] | None
    ) -> None:
        self._pending_epoch = False
        if not state.is_world_process_zero or model is None:
            return
        metrics = collect_metrics(state, eval_metrics)
        epoch = f", epoch {state.epoch:g}" if state.epoch is not None else ""
        message = f"step {state.global_step}{epoch}"
        try:
            version = self.repo.commit(
                model, name=self.name, metrics=metrics, message=message, base_model=self.base_model
            )
        except NothingToCommit:
            self._announce(
                f"adaptergit: {self.name} unchanged at step {state.global_step}; no new version"
            )
            return
        except AdapterGitError as exc:  # never stop a training run over the registry
            warnings.warn(f"adaptergit: could not version {self.name}: {exc}", stacklevel=2)
            return
        self.versions.append(version)
        best = self._mark_best(args, version, metrics)
        chosen = self._metric_name(args, metrics)
        shown = ""
        if chosen is not None and chosen[0] in metrics:
            shown = f", {chosen[0]} {_number(metrics[chosen[0]])}"
        self._announce(
            f"adaptergit: recorded {version.ref} ({message}{shown})"
            + (f", now {self.name}#{self.stage}" if best else "")
        )
        if self.keep_last is not None:
            self._evict_old()

    def _metric_name(self, args: Any, metrics: dict[str, Any] | None) -> tuple[str, bool] | None:
        """The metric that picks the best version and whether greater is better; `metrics`
        None means: as far as the configuration alone says (a resumed run, before any metric)."""
        name = self.metric or getattr(args, "metric_for_best_model", None)
        if name is None:
            if metrics is not None and "eval_loss" not in metrics:
                return None
            name = "eval_loss"
        if not name.startswith("eval_") and (metrics is None or f"eval_{name}" in metrics):
            name = f"eval_{name}"
        greater = self.greater_is_better
        if greater is None and self.metric is None:
            greater = getattr(args, "greater_is_better", None)
        if greater is None:
            greater = not name.endswith("loss")
        return name, bool(greater)

    def _resume(self, args: Any, state: Any) -> None:
        """A run resumed from a checkpoint: its best so far is the one the Trainer restored."""
        chosen = self._metric_name(args, None)
        if chosen is None:
            return
        name, greater = chosen
        trainers = getattr(args, "metric_for_best_model", None)
        restored: Any = getattr(state, "best_metric", None)
        value: float | None = None
        if (
            trainers is not None
            and (trainers if trainers.startswith("eval_") else f"eval_{trainers}") == name
            and _finite(restored)
        ):
            value = float(restored)
        else:
            for entry in state.log_history:
                found = entry.get(name)
                if _finite(found) and (
                    value is None or (found > value if greater else found < value)
                ):
                    value = float(found)
        if value is None:
            return
        self._best_value = value
        try:
            self.best = self.repo.resolve(f"{self.name}#{self.stage}")
        except AdapterGitError:
            self.best = None
        holder = f"; {self.best.ref} keeps #{self.stage}" if self.best is not None else ""
        self._announce(
            f"adaptergit: resumed at step {state.global_step}; best {name} so far "
            f"{_number(value)}{holder} until a better version"
        )

    def _mark_best(self, args: Any, version: Version, metrics: dict[str, Any]) -> bool:
        """Give `version` the stage if it is the best so far; whether it did."""
        chosen = self._metric_name(args, metrics)
        if chosen is None or chosen[0] not in metrics:
            return False
        name, greater = chosen
        value = float(metrics[name])
        if self._best_value is not None and not (
            value > self._best_value if greater else value < self._best_value
        ):
            return False
        try:
            self.repo.assign(version.ref, self.stage, message="")
        except AdapterGitError as exc:
            warnings.warn(
                f"adaptergit: could not mark {version.ref} #{self.stage}: {exc}", stacklevel=2
            )
            return False
        self._best_value = value
        self.best = version
        return True

    def _evict_old(self) -> None:
        """Drop old weights from the local cache where the default DVC remote holds them, and
        say once which versions past the last `keep_last` are kept, and why."""
        assert self.keep_last is not None
        repo = self.repo
        old = self.versions[: -self.keep_last]
        if not old:
            return
        staged = {commit for (_n, commit) in repo.registry.index.stages(self.name)}
        keep = {v.weights.md5 for v in self.versions[-self.keep_last :]}
        cached = [v for v in old if v.weights.md5 not in keep and repo.dvc.in_cache(v.weights.md5)]
        self._say_kept([v for v in cached if v.commit in staged], "holds a stage")
        candidates = [v for v in cached if v.commit not in staged]
        if not candidates:
            return
        remote = repo.remotes.default()
        if remote is None:
            self._say_kept(candidates, "there is no default DVC remote to keep its weights")
            return
        try:
            missing = repo.remotes.missing(sorted({v.weights.md5 for v in candidates}), remote)
        except AdapterGitError as exc:
            warnings.warn(
                f"adaptergit: keep_last: cannot ask DVC remote {remote}: {exc}", stacklevel=2
            )
            return
        self._say_kept(
            [v for v in candidates if v.weights.md5 in missing],
            f"DVC remote {remote!r} does not hold its weights yet (adaptergit push)",
        )
        dropped = [v for v in candidates if v.weights.md5 not in missing]
        for md5 in sorted({v.weights.md5 for v in dropped}):
            repo.dvc.drop(md5)
        if dropped:
            self._announce(
                f"adaptergit: keep_last={self.keep_last}: removed the weights of "
                f"{', '.join(v.ref for v in dropped)} from the local cache (safe on DVC remote "
                f"{remote!r}; adaptergit pull brings them back)"
            )

    def _say_kept(self, versions: list[Version], why: str) -> None:
        """Say once per version and reason that keep_last kept its weights."""
        fresh = [v for v in versions if f"{v.ref}:{why}" not in self._said]
        if not fresh:
            return
        self._said.update(f"{v.ref}:{why}" for v in fresh)
        self._announce(
            f"adaptergit: keep_last={self.keep_last}: kept the weights of "
            f"{', '.join(v.ref for v in fresh)} in the local cache: {why}"
        )

    def _announce(self, text: str) -> None:
        if not self.quiet:
            _announce(text)


def _announce(text: str) -> None:
    """One line for the training log: through the Trainer's logger when it shows INFO, else on
    the console the way the Trainer's own progress and metrics lines are written."""
    trainer_logger = logging.getLogger("transformers.trainer")
    if trainer_logger.isEnabledFor(logging.INFO):
        trainer_logger.info(text)
        return
    logger.info(text)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - transformers depends on tqdm
        print(text, flush=True)
    else:
        tqdm.write(text)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def collect_metrics(
    state: Any, eval_metrics: dict[str, Any] | None = None
) -> dict[str, float | int]:
    """step, epoch, the latest training loss and the latest eval metrics, from the Trainer state.

    Args:
        state: the Trainer's ``TrainerState`` (``global_step``, ``epoch``, ``log_history``).
        eval_metrics: the evaluation just made, if any; it wins over ``log_history``.

    Returns:
        ``step``, ``epoch`` (4 decimals), ``train_loss`` and every finite ``eval_*`` metric but
        the timing ones (``*_runtime`` in seconds, ``*_per_second``).
    """
    metrics: dict[str, float | int] = {"step": int(state.global_step)}
    if state.epoch is not None:
        metrics["epoch"] = round(float(state.epoch), 4)
    latest_eval: dict[str, Any] = {}
    for entry in state.log_history:
        if "loss" in entry and _finite(entry["loss"]):
            metrics["train_loss"] = float(entry["loss"])
        if any(k.startswith("eval_") for k in entry):
            latest_eval = entry
    if eval_metrics:
        latest_eval = eval_metrics
    for key, value in latest_eval.items():
        if key.startswith("eval_") and not key.endswith(_NOISE_SUFFIXES) and _finite(value):
            metrics[key] = value if isinstance(value, int) else float(value)
    return metrics


def _finite(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


__all__ = ["AdapterGitCallback", "collect_metrics"]
