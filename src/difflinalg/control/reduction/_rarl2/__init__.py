"""RARL2 (``rarl2``), split by job: ``_api`` (the public function, target parsing, the result),
``_run`` (the state of one run and the optimization of a start; ``RunResult`` records), ``_search``
(the search over starts), ``_policy`` (``SearchPolicy``: the search's tuning constants and their
reasoning), ``_target`` (target normalization and the modal and Schur criterion backends),
``_charts`` (output-normal charts), ``_bfgs`` (the optimizer), ``_starts`` (starting points and the
IRKA engine), ``_selection`` (the choice of the result in the tiny-error regime), ``_progress``,
``_validate`` (argument checks, single precision), ``_criterion`` (``h2_projection``)."""
