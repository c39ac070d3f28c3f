"""RARL2 (``rarl2``), split by job: ``_api`` (the public function and the run), ``_target`` (target
normalization and the criterion backends), ``_charts`` (output-normal charts), ``_bfgs`` (the
optimizer), ``_starts`` (starting points), ``_selection`` (choice of the result in the tiny-error
regime), ``_progress``, ``_validate`` (argument checks, single precision), ``_criterion``
(``h2_projection``)."""
