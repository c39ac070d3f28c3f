"""``difflinalg reduce MODEL --order R``: balanced truncation, RARL2 and (optionally) pyMOR's IRKA.

Prints a table (method, absolute and relative H2 error, stability margin, wall time); the errors
of every method are recomputed by ``h2_error`` from the error system, and every method is timed
with one thread (``_utils.pinned_threads``). ``--plot`` draws the largest singular value of the
frequency responses and of the errors (matplotlib, the ``plot`` extra).

The arguments and the output paths (``--output``, ``--json``, ``--plot``) are checked before any
work (``_cli_guard.check_output_paths``). Ctrl-C or SIGTERM during RARL2 keeps the best model found
so far: it is saved (``--output``, written first), the table marks it "interrupted", and the exit
status is 130 (Ctrl-C) or 143 (SIGTERM). Interrupted before RARL2 (loading the model, balanced
truncation, IRKA), the command ends with one line saying where, nothing saved, the same status.
Progress goes to stderr when it is a terminal (or with ``--progress``): a ticking status line
during loading, balanced truncation, IRKA and the target's factorization, then RARL2's bar.

A sparse or descriptor model file (``load_model``: a ``SparseSystem`` above ``SPARSE_CROSSOVER``
states) goes through the same table: every reductor and error takes the sparse path
(``control.system._route``), pyMOR's IRKA gets the sparse ``A`` and ``E``, and the plot evaluates
the target by one sparse solve per frequency over the band of the reduced models' poles.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..._errors import DifflinalgError, InputError
from ..._utils import blas_controller, pinned_threads
from ._guard import Interrupt, check_output_paths, interrupt_signals, thread_note
from ..reduction._rarl2._progress import Status
from ..reduction._rarl2._validate import check_rarl2_args
from ..reduction._registry import REDUCTORS
from ..system._sparse import SparseSystem
from ._pymor import pymor_irka, pymor_to_statespace  # noqa: F401 - the benchmarks import them from here

#: the reductors ``--compare`` offers: every one of the registry but RARL2 (always run)
METHODS = tuple(name for name in REDUCTORS if name != "rarl2")
#: table label and description (for the progress line and interruption message) of a compared
#: reductor (default: its registry name)
LABELS = {"bt": ("balanced-trunc", "balanced truncation")}


def add_reduce_parser(subparsers) -> argparse.ArgumentParser:
    from ..system._models import BUILTIN

    names = ", ".join(sorted(BUILTIN))
    p = subparsers.add_parser(
        "reduce",
        help="H2-optimal model reduction (RARL2) compared with balanced truncation and IRKA",
        description=f"Reduce a stable linear system to --order states with RARL2. MODEL is a .mat "
                    f"(SLICOT style) or .npz file, or a built-in model NAME[:SIZE] ({names}). A file "
                    "may hold a mass matrix E; sparse A/E of more than SPARSE_CROSSOVER states are "
                    "reduced by the sparse algorithms (nothing dense N x N).",
        epilog="The output paths are checked before any work. Ctrl-C or SIGTERM during RARL2 keeps "
               "its best model so far (printed, saved to --output) and exits with status 130 or 143; "
               "earlier, the command stops with one line and the same status.",
    )
    p.add_argument("model", metavar="MODEL", help="model file (.mat/.npz) or built-in name")
    p.add_argument("--order", "-r", type=int, required=True, help="reduced order")
    p.add_argument("--starts", type=int, default=None, help="number of RARL2 starts (default: balanced truncation, IRKA from it, from spread shifts and from modal truncation, and perturbation rounds when these reach different minima)")
    p.add_argument("--seed", type=int, default=None, help="seed of the random starts")
    p.add_argument("--compare", default="bt,irka", metavar="LIST",
                   help=f"comma-separated methods to compare with: {', '.join(METHODS)} (irka: "
                        "pyMOR's, continuous time, when installed); empty for none (default: bt,irka)")
    p.add_argument("--json", metavar="PATH|-", help="write the results as JSON (- for stdout)")
    p.add_argument("--plot", metavar="PNG", help="plot frequency responses and errors")
    p.add_argument("--output", "-o", metavar="FILE", help="save the RARL2 model (.npz or .mat)")
    p.add_argument("--discrete", action="store_true", help="treat a model file as discrete time")
    p.add_argument("--max-time", type=float, default=None, help="time budget of RARL2 in seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--progress", action="store_true",
                   help="show the progress even when stderr is not a terminal (e.g. a log file)")
    p.set_defaults(func=_cmd_reduce)
    return p


def _load(spec: str, discrete: bool):
    from ..system._io import load_model
    from ..system._models import BUILTIN, builtin_model

    if Path(spec).suffix.lower() in (".mat", ".npz"):
        return load_model(spec, time="discrete" if discrete else None)
    if spec.partition(":")[0] in BUILTIN:
        return builtin_model(spec)
    if Path(spec).exists():
        raise InputError(f"model: {spec}: unknown file type; use .mat or .npz")
    raise InputError(f"model: {spec!r} is neither a model file nor a built-in model "
                     f"({', '.join(sorted(BUILTIN))})")


#: largest ``_precise.residue_work`` of the extended-precision error in the table (one sum per
#: method, against the several per run that ``rarl2`` allows itself: ``_target.PRECISE_MAX_WORK``)
CLI_PRECISE_MAX_WORK = 2e7


def _row(method, F, H, seconds, note=""):
    from ..analysis._norms import h2_error
    from ..analysis._stability import decay_rate
    from ..analysis._precise import residue_work

    err = float(h2_error(F, H))
    nrm = _norm(F)
    if err < 1e-4 * nrm and residue_work(F.order, H.order, F.n_outputs, F.n_inputs) <= CLI_PRECISE_MAX_WORK:
        # small relative errors keep few digits in double precision: sum the residues in extended
        # precision (the same yardstick for every method)
        try:
            err = float(h2_error(F, H, precise=True))
        except DifflinalgError:
            pass
    return {"method": method, "order": H.order, "h2_error": err, "relative_h2_error": err / nrm,
            "stability_margin": decay_rate(H), "seconds": seconds, "note": note}


def _norm(F) -> float:
    """``||F||_2`` as a float, cached on ``F`` (the table divides every method's error by it)."""
    from ..analysis._modal import cached_modal_form, mirror_sums, modal_h2_norm2
    from ..analysis._norms import h2_norm

    if isinstance(F, SparseSystem):
        if "_norm" not in F.cache:
            F.cache["_norm"] = float(h2_norm(F))
        return F.cache["_norm"]

    def make() -> float:
        lam, Bt, Ct, cond, _ = cached_modal_form(F)
        if lam is not None and cond <= 1e8 and not F.discrete:
            return math.sqrt(max(modal_h2_norm2(Bt, Ct, mirror_sums(lam, Bt, Ct, False)), 0.0))
        return float(h2_norm(F))

    return F.cached("_norm", make, values_only=True)


def _fmt_table(rows) -> str:
    head = f"{'method':<14} {'order':>5} {'H2 error':>14} {'relative':>14} {'margin':>10} {'time [s]':>9}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<14} {r['order']:>5} {_fmt(r['h2_error'], '14.8e')} "
                     f"{_fmt(r['relative_h2_error'], '14.8e')} {_fmt(r['stability_margin'], '10.3e')} "
                     f"{_fmt(r['seconds'], '9.2f')}  {r['note']}")
    lines.append(f"({thread_note()})")
    return "\n".join(lines)


class _Stage:
    """What the command is doing (for the message when it is interrupted)."""

    def __init__(self):
        self.what, self.saved = "starting", ""


def _cmd_reduce(args) -> int:
    """Run ``reduce``; Ctrl-C and SIGTERM end it with one line (after saving RARL2's best model so
    far, if it got that far) and the exit status 128 + signal number (module docstring)."""
    stage = _Stage()
    blas_controller()  # its library scan drops a Ctrl-C (``_utils.blas_controller``): done before any stage
    with interrupt_signals() as sig:
        try:
            return _reduce(args, stage, sig)
        except KeyboardInterrupt:
            print(file=sys.stderr)  # end a progress line
            saved = f"; {stage.saved}" if stage.saved else "; nothing saved"
            print(f"difflinalg reduce: interrupted ({sig.name}) during {stage.what}{saved}", file=sys.stderr)
            return sig.exit_status
        except DifflinalgError as exc:
            print(f"difflinalg reduce: {exc}", file=sys.stderr)
            return 2


def _reduce(args, stage: _Stage, sig: Interrupt) -> int:
    # everything that can be checked without the model is checked before any work
    check_output_paths(args.output, args.json, args.plot)
    compare = [m.strip() for m in args.compare.split(",") if m.strip()]
    bad = [m for m in compare if m not in METHODS]
    if bad:
        raise InputError(f"--compare: unknown method(s) {bad}; choose from {list(METHODS)}")
    check_rarl2_args(order=args.order, starts=args.starts, seed=args.seed, max_time=args.max_time)
    show = args.progress or (not args.no_progress and sys.stderr.isatty())
    stage.what = "loading the model"
    with Status(f"loading {args.model}", show):
        try:
            F = _load(args.model, args.discrete)
        except FileNotFoundError as exc:
            raise InputError(str(exc)) from None
    print(f"model {args.model}: {F}", file=sys.stderr)
    rows, models = [], {}
    for name in (m for m in METHODS if m in compare):
        if name in EXTERNAL:
            EXTERNAL[name](F, args.order, show, rows, models, stage)
            continue
        label, what = LABELS.get(name, (name, name))
        stage.what = what
        with Status(what, show), pinned_threads():
            res = REDUCTORS[name](F, args.order)
        stage.what = f"the error of {what}"
        rows.append(_row(label, F, res.model, res.seconds))
        models[label] = res.model
    stage.what = "RARL2"
    with Status("RARL2: factorizing the target, balanced truncation", show):
        t0 = time.perf_counter()
        res = REDUCTORS["rarl2"](F, args.order, starts=args.starts, seed=args.seed, max_time=args.max_time, progress=show)
        sec = time.perf_counter() - t0
    if args.output:  # first: a second interrupt while the table is computed keeps the model
        from ..system._io import save_model

        save_model(res.model, args.output)
        stage.saved = f"the RARL2 model was saved to {args.output}"
        print(f"saved the RARL2 model to {args.output}", file=sys.stderr)
    stage.what = "the error table"
    with Status("computing the errors", show):
        rows.append(_row("rarl2", F, res.model, sec,
                         ("interrupted: best so far; " if res.interrupted else "")
                         + f"best start {res.best_start}, rel. gradient {_fmt(res.rel_grad, '.1e')}"))
    models["rarl2"] = res.model
    if args.json != "-":
        print(_fmt_table(rows))
        print(res.summary())
    if args.json:
        stage.what = "writing the JSON file"
        payload = {"model": args.model, "order": args.order, "interrupted": res.interrupted,
                   "threads": 1, "rows": rows, "starts": [_start_record(s) for s in res.starts]}
        text = json.dumps(_strict(payload), indent=1, default=float)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    if args.plot:
        stage.what = "the plot"
        rel = {r["method"]: r["relative_h2_error"] for r in rows}
        _plot(F, models, args.plot, title=f"{Path(str(args.model)).name}: {F.order} states -> {args.order}",
              errors=rel)
        print(f"saved the plot to {args.plot}", file=sys.stderr)
    if res.interrupted:  # everything is written: say so, and exit with the signal's status
        print(f"difflinalg reduce: RARL2 interrupted ({sig.name}): the table and files hold its best "
              "model so far", file=sys.stderr)
        return sig.exit_status
    return 0


def _irka_row(F, r: int, show: bool, rows: list, models: dict, stage: _Stage) -> None:
    """pyMOR's IRKA as a table row (continuous time, when pyMOR is installed)."""
    stage.what = "IRKA (pyMOR)"
    if F.discrete:
        print("difflinalg reduce: IRKA (pyMOR) is continuous-time only: skipped", file=sys.stderr)
        return
    with Status("IRKA (pyMOR)", show), pinned_threads():
        out = pymor_irka(F, r)
    if out is None:
        print("difflinalg reduce: pyMOR is not installed (pip install 'difflinalg[bench]'): IRKA skipped",
              file=sys.stderr)
        return
    Hi, sec, failure = out
    if Hi is None:
        print(f"difflinalg reduce: IRKA (pyMOR) failed after {sec:.2f} s: {failure}", file=sys.stderr)
        return
    try:
        rows.append(_row("irka (pyMOR)", F, Hi, sec))
        models["irka (pyMOR)"] = Hi
    except DifflinalgError as exc:  # IRKA may return an unstable model
        print(f"difflinalg reduce: IRKA result not usable: {exc}", file=sys.stderr)


def _start_record(s) -> dict:
    """A start of the RARL2 run for the JSON file: its fields, and the relative errors also under
    their former names ``start_error`` and ``error`` (readers of earlier files keep working)."""
    return {**vars(s), "start_error": s.start_relative_error, "error": s.relative_error}


#: compared reductors whose row is computed by an independent implementation instead of the
#: registry's: IRKA by pyMOR's ``IRKAReductor`` (the reference the table has always shown;
#: ``difflinalg.control.irka`` is ours)
EXTERNAL = {"irka": _irka_row}


def _fmt(x: float, spec: str) -> str:
    """``x`` formatted, ``-`` if it is not finite (tables never print nan)."""
    return format(x, spec) if math.isfinite(x) else "-"


def _strict(x):
    """``x`` with non-finite floats as None (strict JSON has no NaN or Infinity)."""
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_strict(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _plot(F, models: dict, path: str, title: str = "", errors: dict | None = None) -> None:
    """Target and reduced frequency responses (top) and the errors (bottom), largest singular value.

    Values below the target's rounding level (``eps * peak``; a response that decays to 1e-20) are
    clipped to it, and each panel starts at a tenth of its 1st percentile, so that isolated zeros
    (a zero of the target at ``omega = pi`` in discrete time) do not squash the curves; the error
    panel shades the region below the rounding level when it is in view. The title names
    the model, the orders and every method's relative H2 error."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib (pip install 'difflinalg[plot]')") from None
    from ..analysis._frequency import frequency_response
    from ..analysis._modal import cached_modal_form, transfer_at

    sparse = isinstance(F, SparseSystem)
    # a sparse target: no modal form; the frequency band from the reduced models' poles, and
    # fewer frequencies (one sparse LU each)
    lam, Bt, Ct, cond, _ = cached_modal_form(F) if not sparse else (None, None, None, math.inf, None)
    if F.discrete:
        w = torch.linspace(0, math.pi, 800 if not sparse else 200, dtype=torch.float64)
        s = torch.polar(torch.ones_like(w), w)
    else:
        poles = (torch.cat([torch.linalg.eigvals(H.A.detach()) for H in models.values()]) if sparse else
                 lam if lam is not None else torch.linalg.eigvals(F.A))
        mags = poles.abs().clamp_min(1e-12)
        w = torch.logspace(math.log10(float(mags.min()) / 10), math.log10(float(mags.max()) * 10),
                           800 if not sparse else 200, dtype=torch.float64)
        s = 1j * w
    if lam is not None and cond <= 1e8:
        G = transfer_at(lam, Bt, Ct, s.to(lam.dtype)) + F.D.to(lam.dtype)
    else:
        G = frequency_response(F, w)

    def smax(X):
        return torch.linalg.matrix_norm(X, 2).detach().numpy()

    errors = errors or {}
    g = smax(G)
    floor = float(np.finfo(np.float64).eps) * float(np.max(g)) if g.size else 1e-300
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    ax1.loglog(w.numpy(), np.maximum(g, floor), "k", lw=2, label="target")
    for name, H in models.items():
        GH = frequency_response(H, w)
        label = f"{name} (rel. H2 error {errors[name]:.3g})" if name in errors else name
        ax1.loglog(w.numpy(), np.maximum(smax(GH), floor), "--", label=label)
        e = np.maximum(smax(G - GH), floor)
        ax2.loglog(w.numpy(), e, label=label)
    # Axis floors: the 1st percentile of what is plotted over 10 (isolated zeros, e.g. at omega = pi,
    # would otherwise squash the curves), never below the rounding level.
    all_e = np.concatenate([np.maximum(smax(G - frequency_response(H, w)), floor) for H in models.values()]) \
        if models else np.array([floor])
    bottom2 = max(float(np.percentile(all_e, 1)) / 10, floor / 10)
    if bottom2 <= floor:
        ax2.axhspan(bottom2, floor, color="0.9", label="below the rounding level of the target")
    ax2.set_ylim(bottom=bottom2)
    ax1.set_ylim(bottom=max(float(np.percentile(np.maximum(g, floor), 1)) / 10, floor))
    ax1.set_ylabel("largest singular value")
    ax1.legend(fontsize=8)
    order = next(iter(models.values())).order if models else ""
    ax1.set_title(title or f"order {order} approximations", fontsize=10)
    ax2.set_ylabel("error (largest singular value)")
    ax2.set_xlabel("frequency [rad/s]" if not F.discrete else "frequency [rad/sample]")
    ax2.legend(fontsize=8)
    if F.discrete:
        ax1.set_xscale("linear")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
