"""One package per paper; each imports blocks, never another paper."""
