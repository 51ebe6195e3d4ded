"""ultramax's benchmarks: each module runs with one command and prints a table (see docs/benchmarks.md)."""
