"""The encrypt stage: the cached training and test sets under one configuration's key."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import ciphers, data, encrypted, errors, plan
from ..files import check_writable, replace_dir, scratch_dir


def encrypt(data_dir: str, out: str, configuration: ciphers.Configuration, key_seed: int) -> ciphers.Cipher:
    """Encrypt ``data_dir``'s cache into ``out`` with the key of ``configuration`` for ``key_seed``.

    Everything is written to a scratch folder first and moved into place at the end, so a
    crash never leaves a key without its data; an existing output folder is replaced only
    if ppdnn wrote it (``files.replace_dir``), and never the plain cache itself.
    """
    data_path, out_path = Path(data_dir).resolve(), Path(out).resolve()
    if out_path == data_path or data_path in out_path.parents or out_path in data_path.parents:
        raise ValueError(f"--out {out} would overwrite the plain data in --data {data_dir}; choose a separate folder")
    check_writable(out_path.parent)
    plain = data.load(data_dir)
    cipher = ciphers.make_for_configuration(configuration, key_seed, shape=plain["train_images"].shape[1:3])
    scratch = scratch_dir(out_path)
    encrypted.write(scratch, cipher, plain)
    replace_dir(scratch, out_path, made_by=f"the encrypt stage ({configuration.name})")
    return cipher


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.stages.encrypt", description=__doc__)
    parser.add_argument("--params", default=plan.PARAMS, help="reads key_seed and its ciphers.<name> entry")
    parser.add_argument("--cipher", required=True, help="a configuration under ciphers: in params.yaml")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def stage():
        params = plan.read(args.params)
        entries = plan.cipher_entries(params, args.params, names=[args.cipher])
        configuration = ciphers.configuration(args.cipher, entries)
        cipher = encrypt(args.data, args.out, configuration, plan.key_seed(params, args.params))
        print(f"encrypted {args.data} with {cipher.label} key {cipher.fingerprint} -> {args.out}")

    return errors.run_main("ppdnn.stages.encrypt", stage, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
