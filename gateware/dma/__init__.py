"""DMA engine: descriptor queue, byte-granular copy / codec datapath, completion queue.
See README.md."""
