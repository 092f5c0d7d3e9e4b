"""``covidal bench-service`` through the real entry point: a tiny run's printed figures, and bad options."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "service"))  # the service tests' volume helper
from service_testing import lung_ct, write_volume

FIGURE = r"(\d+(?:\.\d+)?)"


def test_prints_latencies_and_throughput_of_a_tiny_run(cli, tmp_path):
    volume = write_volume(lung_ct(), tmp_path / "lung.nrrd")  # 3 slices x 4 regions = 12 regions
    result = cli(
        "bench-service", "--clients", "2", "--requests", "10", "--volume", volume, "--grid-k", "4", "--batch", "3"
    )
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == (
        "service: 2 clients, 10 annotations on a 8x8x3 (i, j, k) volume, grid 4, 3 suggestions per lease"
    )
    assert re.fullmatch(rf"setup: upload {FIGURE} s, create cycle {FIGURE} s", lines[1])
    lease = re.fullmatch(rf"get suggestions:   p50 {FIGURE} ms, p99 {FIGURE} ms \((\d+) requests\)", lines[2])
    submit = re.fullmatch(rf"submit annotation: p50 {FIGURE} ms, p99 {FIGURE} ms \(10 requests\)", lines[3])
    rate = re.fullmatch(rf"throughput: {FIGURE} requests/s \((\d+) requests in {FIGURE} s\)", lines[4])
    assert lease and submit and rate, result.out
    for match in (lease, submit):
        assert 0 < float(match[1]) <= float(match[2])
    # 10 answers in batches of 3 take at least 4 leases, plus one empty lease per client to learn it is over.
    leases = int(lease[3])
    assert 4 + 2 <= leases <= 10 + 2
    assert int(rate[2]) == leases + 10
    # The seconds are printed to 0.01 s and the rate to 1 request/s: check consistency within that rounding.
    requests, seconds = int(rate[2]), float(rate[3])
    assert requests / (seconds + 0.005) - 0.5 <= float(rate[1]) <= requests / max(seconds - 0.005, 1e-9) + 0.5


def test_bad_options_and_unreadable_volume_are_one_line_errors(cli, tmp_path):
    cli("bench-service", "--clients", "0").assert_user_error("--clients")
    cli("bench-service", "--requests", "20000").assert_user_error("--requests", "10000")
    junk = tmp_path / "junk.nrrd"
    junk.write_bytes(b"not a volume")
    cli("bench-service", "--volume", junk, "--requests", "5").assert_user_error("refused", "422")
