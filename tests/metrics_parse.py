#!/usr/bin/env python3
"""tests/metrics_parse.py — parse a Prometheus text exposition with Prometheus's own
Python parser (prometheus_client.parser.text_string_to_metric_families, Debian
python3-prometheus-client) and print what it understood as JSON, for
tests/metrics_test.cc:

    metrics_parse.py FILE   →   {"families": [{"name", "type", "help",
                                               "samples": [{"name", "labels", "value"}]}]}

A text the parser refuses ends with its exception on stderr and exit status 1. Family
names are the parser's: a counter's loses its _total suffix, its samples keep it.
"""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    families = []
    for fam in text_string_to_metric_families(text):
        samples = []
        for s in fam.samples:
            value = s.value
            if math.isinf(value):
                value = "+Inf" if value > 0 else "-Inf"
            elif math.isnan(value):
                value = "NaN"
            samples.append({"name": s.name, "labels": s.labels, "value": value})
        families.append({"name": fam.name, "type": fam.type,
                         "help": fam.documentation, "samples": samples})
    json.dump({"families": families}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
