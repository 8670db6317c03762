"""Table 1 of the paper: the six orders of a pixel's three colour channels (step 3 of the
proposed scheme; EtC's colour shuffle uses the same six)."""
import numpy as np

# code -> source channel of the output (R, G, B):
# out[..., c] = in[..., PERMUTATIONS[code, c]]; 0:RGB 1:RBG 2:GRB 3:GBR 4:BRG 5:BGR.
PERMUTATIONS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2],
                         [1, 2, 0], [2, 0, 1], [2, 1, 0]], dtype=np.intp)
PERMUTATIONS.flags.writeable = False
