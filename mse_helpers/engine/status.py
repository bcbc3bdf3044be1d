"""Fit statuses shared by the existence check, the fit and the stages.

A ``str``-valued Enum: members compare equal to their text (``FitStatus.OK ==
"ok"``) and are written as that text into JSON and CSV files, so the files do
not change; the prose that explains a status travels separately (``reason``).
"""

from __future__ import annotations

import enum


class FitStatus(enum.StrEnum):
    """Outcome of fitting one log-linear model. Only ``OK`` fits carry numbers."""

    #: The MLE exists, is identifiable and Newton converged.
    OK = "ok"
    #: The MLE does not exist (some fitted cells are forced to 0 by the zeros).
    NO_MLE = "mle_does_not_exist"
    #: The design is rank deficient on the observed cells.
    NOT_IDENTIFIABLE = "not_identifiable"
    #: Newton did not converge although the checks passed (should not happen;
    #: reported rather than returning a number that may have drifted).
    NOT_CONVERGED = "not_converged"
