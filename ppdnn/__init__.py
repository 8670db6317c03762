"""ppdnn: privacy-preserving DNNs with pixel-based image encryption (ICIP 2019 replication).

A small package of one-concept modules (README, "Layout"); ``ppdnn/stages/`` holds one
module per DVC stage. This file imports nothing, so that each stage depends only on the
modules it runs (``dvc.yaml``).
"""

__version__ = "0.3.0"
