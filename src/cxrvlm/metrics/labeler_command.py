"""`cxrvlm label-reports`: the rule-based CheXpert labeler (cxrvlm.metrics.chexpert_labeler) from the command line.

    cxrvlm label-reports "Mild cardiomegaly. No pleural effusion."      # one JSON line of 14 labels per text
    cxrvlm label-reports --openi PATH/reports.jsonl                     # agreement with the Open-i MeSH tags
"""
from __future__ import annotations

import argparse
import json
import math

from cxrvlm.metrics.chexpert_labeler import format_table, label_report, validate_against_openi


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("text", nargs="*", help="report text(s) to label: 1 positive, 0 negative, -1 uncertain, "
                                                "null not mentioned")
    parser.add_argument("--openi", metavar="REPORTS.jsonl", help="Open-i reports.jsonl: print the per-label agreement "
                                                                 "table of the labeler against the curators' MeSH tags")
    parser.add_argument("--uncertain-as-negative", action="store_true",
                        help="with --openi: count -1 as negative (default: positive)")


def run(args: argparse.Namespace) -> int:
    if not args.openi and not args.text:
        raise ValueError("nothing to label: give report text(s) or --openi REPORTS.jsonl")
    if args.openi:
        print(format_table(validate_against_openi(args.openi, not args.uncertain_as_negative)))
    for text in args.text:
        print(json.dumps({k: (None if math.isnan(v) else v) for k, v in label_report(text).items()}))
    return 0
