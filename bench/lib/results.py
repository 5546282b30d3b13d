"""Reads the results file bench/run writes: "key value..." lines (a later key wins), "lossy CLIENT DELAY LOSS
MBps bytes seconds ..." lines and *_block_begin/_end text blocks."""


class Results:
    def __init__(self, path):
        self.kv, self.lossy, self.blocks = {}, {}, {}
        block = None
        with open(path) as f:
            for raw in f:
                line = raw.rstrip("\n")
                if block is not None:
                    if line == f"{block}_block_end":
                        block = None
                    else:
                        self.blocks[block].append(line)
                    continue
                if line.endswith("_block_begin"):
                    block = line[: -len("_block_begin")]
                    self.blocks[block] = []
                    continue
                if line.startswith("lossy "):
                    p = line.split()
                    self.lossy[(p[1], float(p[2]), float(p[3]))] = (float(p[4]), " ".join(p[5:]))
                    continue
                key, _, rest = line.partition(" ")
                if key:
                    self.kv[key] = rest

    def get(self, key, default=None):
        return self.kv.get(key, default)

    def num(self, key, index=0):
        """Field `index` of a key's value as a float, or None."""
        v = self.kv.get(key)
        if not v:
            return None
        try:
            return float(v.split()[index])
        except (ValueError, IndexError):
            return None
