"""Paper-agnostic building blocks: each is used, or meant to be used, by two papers or more."""
