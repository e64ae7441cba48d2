"""`cxrvlm bench`: training throughput, MFU, generation latency and memory of the native model against the HF
PaliGemma backend at the same size (command.py), with analytic FLOP counts and the measured matmul peak (flops.py)."""
