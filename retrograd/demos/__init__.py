"""Small, complete programs behind the command line (`retrograd xor`, `retrograd train`)."""
