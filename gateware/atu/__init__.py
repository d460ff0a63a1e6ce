"""ATU: virtual KV page -> (DRAM slot address, compressed length, flags). See README.md."""
