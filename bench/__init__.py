"""Pitwall's benchmarks (``make bench``): real control planes, a real operator, numbers in bench/results/."""
