"""nnlift past one machine: NNN, the bank statistics, search, blending and Qdrant write-back as Ray Data jobs.

Needs the ``ray`` extra (``pip install 'nnlift[ray]'``). Every job runs the
single-machine index and kernel code on its workers; see ``docs/scale.md``
for how each partitions its work and what crosses the network.
"""

from ._ray import start
from .api import (
    blend,
    collect,
    csls_bias,
    dbnorm_bias,
    last_report,
    nnn_bias,
    qbnorm_activation,
    read_output,
    search,
    softmax_bias,
    write_folder,
)
from .jobs import JobReport
from .qdrant import write_qdrant

__all__ = [
    "start",
    "nnn_bias",
    "csls_bias",
    "softmax_bias",
    "dbnorm_bias",
    "qbnorm_activation",
    "search",
    "blend",
    "collect",
    "last_report",
    "read_output",
    "write_folder",
    "JobReport",
    "write_qdrant",
]
