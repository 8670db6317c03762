"""ppdnn: privacy-preserving DNNs with pixel-based image encryption (ICIP 2019 replication).

Modules, one concept each:
  data      CIFAR-10 from either source into cached uint8 arrays + manifest
  ciphers   the encryption schemes, their keys and key files, key space
  augment   batched shift/flip on uint8 tensors; augmentation in the client or the cloud
  models    CIFAR ResNet-18 and the two adaptation networks
  train     the training loop, recipes, checkpoints, metrics
  experiment  one table row end to end (what notebooks/train.ipynb calls)
  attacks   published attacks on these schemes, SSIM/PSNR scoring
  tables    Tables 2 and 3 beside the paper's numbers, their plots
  figures   the encryption figures
  pipeline  glue between params.yaml, DVC stages and the notebooks
  files     atomic writes
  cli       the `ppdnn` command
"""

__version__ = "0.1.0"
