"""Esper's performance benchmarks (issue 8), run by ``tools/bench``: one module per benchmark, a shared
interleaved-timing helper, and the JSON / Markdown report with its regression check."""
