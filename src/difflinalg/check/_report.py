"""The report of ``gradcheck``: one record per input, direction and mode, and the error it raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


class GradcheckError(AssertionError):
    """A derivative disagrees with finite differences (names the input, mode and mismatch)."""

    def __init__(self, message: str, report: "GradcheckReport"):
        super().__init__(message)
        self.report = report


@dataclass
class CheckRecord:
    """One comparison of one input, direction and mode.

    ``max_abs_err``: largest ``|ad - fd|``; ``max_rel_err``: that over the scale of the compared
    quantities; ``fd_err``: largest finite-difference error estimate; ``tol``: the allowance
    ``atol + rtol * scale + FD_SAFETY * fd_err_i`` (``FD_SAFETY = 4``) of the component closest
    to failing; ``ratio``: the largest ``|ad - fd|_i / allowance_i`` (the check passes when it is
    <= 1); ``scale``: the size of the compared quantities (the denominator of ``max_rel_err``).
    """

    input: str
    mode: str
    direction: str
    max_abs_err: float
    max_rel_err: float
    fd_err: float
    tol: float
    passed: bool
    ratio: float = 0.0
    scale: float = 0.0


@dataclass
class GradcheckReport:
    records: list[CheckRecord] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.records)

    def __bool__(self) -> bool:
        """The verdict (``passed``), as ``torch.autograd.gradcheck``'s ``True``/``False``."""
        return self.passed

    def max_rel_err(self, mode: str | None = None) -> float:
        errs = [r.max_rel_err for r in self.records if mode is None or r.mode == mode]
        return max(errs, default=0.0)

    def fd_err(self, mode: str | None = None) -> float:
        errs = [r.fd_err for r in self.records if mode is None or r.mode == mode]
        return max(errs, default=0.0)

    def failures(self) -> list[CheckRecord]:
        return [r for r in self.records if not r.passed]

    def to_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.records]

    def __str__(self) -> str:
        lines = [f"{'input':<12} {'mode':<8} {'direction':<10} {'max_abs':>10} {'max_rel':>10} "
                 f"{'fd_err':>10} {'allowed':>10}  ok"]
        for r in self.records:
            lines.append(
                f"{r.input:<12} {r.mode:<8} {r.direction:<10} {r.max_abs_err:10.2e} "
                f"{r.max_rel_err:10.2e} {r.fd_err:10.2e} {r.tol:10.2e}  {'yes' if r.passed else 'NO'}"
            )
        return "\n".join(lines)
