"""ppdnn: privacy-preserving DNNs with pixel-based image encryption (ICIP 2019 replication).

Modules, one concept each:
  data         CIFAR-10 from either source into cached uint8 arrays + manifest
  ciphers/     the table engine, the Cipher base class and registry, key files, key
               spaces, and one file per encryption scheme
  augment      batched shift/flip on uint8 tensors; Augmentation: in the client or the cloud
  models       CIFAR ResNet-18 and the two adaptation networks
  train        recipes and the training loop; checkpoints: resumable, checked checkpoints
  experiment   one table row end to end (what notebooks/train.ipynb calls)
  attacks      published attacks on these schemes, SSIM/PSNR scoring; security: their table
  tables       Tables 2 and 3 beside the paper's numbers, their plots, the README's includes
  claims       the paper's claims as contrasts with confidence intervals and verdicts
  figures      the encryption figures; markdown: the one Markdown table writer
  pipeline     glue between params.yaml, the DVC stages and the notebooks
  onepass      every run of a profile in one process (a GPU machine without DVC)
  gpus         one GPU per queued DVC job, by lock files
  files        safe writes; errors: one-line error reporting; cli: the `ppdnn` command
"""

__version__ = "0.2.0"
