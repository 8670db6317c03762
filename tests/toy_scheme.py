"""A complete new encryption scheme in one file, as a researcher would add it.

The tests write ``TOY_SOURCE`` into ``ppdnn/ciphers/toy.py`` of a copy of the repository
(the smoke pipeline) or execute it in-process (``define_toy_scheme``): defining the class
registers the scheme ``toy`` everywhere (CLI, key files, pipeline, key-space and security
tables, property tests).
"""

TOY_SOURCE = '''"""A toy scheme: rotate each pixel's channels by a key value (0..2), then XOR every
byte with a key stream."""
import numpy as np

from ppdnn import ciphers


class ToyCipher(ciphers.Cipher):
    scheme = "toy"
    key_space_formula = "3^n * 256^(3n)"

    def __init__(self, rotation, stream, shape=(32, 32)):
        super().__init__(shape)
        self.rotation = ciphers.key_array(rotation, "rotation", ndim=2, high=2)
        self.stream = ciphers.key_array(stream, "stream", ndim=3, high=255)
        if self.rotation.shape != self.shape or self.stream.shape != (*self.shape, 3):
            raise ValueError(f"rotation and stream must fit {self.shape} images")

    @classmethod
    def generate(cls, rng, shape):
        return cls(rng.integers(0, 3, shape), rng.integers(0, 256, (*shape, 3)), shape)

    @classmethod
    def key_space(cls, shape):
        n = shape[0] * shape[1]
        return 3 ** n * 256 ** (3 * n)

    def build_table(self):
        pixels = np.arange(self.shape[0] * self.shape[1])[:, None]
        index = pixels * 3 + (np.arange(3) + self.rotation.reshape(-1, 1)) % 3
        return ciphers.Table(index.ravel(), self.stream.ravel())

    def key_material(self):
        return {"rotation": self.rotation, "stream": self.stream}
'''


def define_toy_scheme():
    """Execute the toy scheme's file in-process; returns its class (now registered as ``toy``)."""
    namespace = {"__name__": "toy_scheme_under_test"}
    exec(compile(TOY_SOURCE, "toy.py", "exec"), namespace)
    return namespace["ToyCipher"]
