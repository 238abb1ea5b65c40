"""`medqa safety ...`: check one text, classify a JSONL file, list interactions,
train the harmful-request head. Argparse only at import time."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("safety", help="medical safety checks (interactions, emergencies, dosage, harmful requests)")
    cmds = p.add_subparsers(dest="safety_command", metavar="SUBCOMMAND", required=True)

    c = cmds.add_parser("check", help="print the JSON safety report for one text")
    c.add_argument("text")
    _common(c)
    c.set_defaults(func=check)

    c = cmds.add_parser("classify", help="safety-check one text field per JSONL row; write JSONL reports")
    c.add_argument("--input", required=True, help="input .jsonl file")
    c.add_argument("--text-field", required=True, help="field holding the text to check")
    c.add_argument("--output", required=True, help="output .jsonl file (one report per input row)")
    c.add_argument("--batch-size", type=int, default=64)
    _common(c)
    c.set_defaults(func=classify)

    c = cmds.add_parser("interactions", help="JSON list of interacting pairs among the drugs")
    c.add_argument("drugs", nargs="+", metavar="DRUG")
    c.add_argument("--ddinter", default=None, help="also load a DDInter CSV export")
    c.set_defaults(func=interactions)

    c = cmds.add_parser("train-classifier", help="fine-tune the safety encoder and its crisis and harm heads "
                        "(reproducible; about 20 minutes on 2 CPU cores)")
    c.add_argument("--data-dir", default=None, help="folder with medsafetybench_train.jsonl, medmcqa_dev_public.jsonl "
                   "and medquad_questions.jsonl (default: ../shared/data beside the repo)")
    c.add_argument("--output", default=None, help="folder for encoder/, crisis.npz and harm.npz "
                   "(default: the package's medqa/resources/safety)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--epochs", type=float, default=2.0)
    c.set_defaults(func=train_classifier)

def _common(p) -> None:
    p.add_argument("--context", default=None, metavar="JSON",
                   help='patient context, e.g. \'{"age": 4, "weight_kg": 16, "allergies": ["penicillin"], '
                        '"pregnant": false, "conditions": ["asthma"], "medications": ["warfarin"]}\'')
    p.add_argument("--medications", nargs="*", default=None, help="patient's current medications (adds to --context)")
    p.add_argument("--age", type=float, default=None, help="patient age in years (adds to --context)")
    p.add_argument("--no-classifier", action="store_true", help="rules only (skip the learned checks)")


def _context(args):
    """The one PatientContext schema: unknown keys and bad values are a clear error."""
    import json

    from medqa.safety.context import PatientContext

    try:
        ctx = json.loads(args.context) if args.context else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"--context is not valid JSON: {err}") from None
    if not isinstance(ctx, dict):
        raise ValueError("--context must be a JSON object")
    if args.medications:
        ctx["medications"] = [*ctx.get("medications", []), *args.medications]
    if args.age is not None:
        ctx["age"] = args.age
    return PatientContext.from_dict(ctx) if ctx else None


def _validator(args):
    from medqa.safety import MedicalSafetyValidator

    return MedicalSafetyValidator(use_classifier=not args.no_classifier)


def check(args) -> int:
    from medqa.console import emit_json

    emit_json(_validator(args).check_request(args.text, _context(args)))
    return 0


def classify(args) -> int:
    import json
    from pathlib import Path

    from medqa.console import emit_json

    with open(args.input, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    missing = [i for i, r in enumerate(rows) if not isinstance(r.get(args.text_field), str)]
    if missing:
        raise ValueError(f"row {missing[0] + 1} of {args.input} has no text field {args.text_field!r}")
    validator, ctx = _validator(args), _context(args)
    counts = {"rows": len(rows), "blocked": 0, "emergency": 0}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as out:
        for i in range(0, len(rows), args.batch_size):
            batch = rows[i:i + args.batch_size]
            for row, report in zip(batch, validator.check_many([r[args.text_field] for r in batch], ctx), strict=True):
                report = {"id": row.get("id", None), **report}
                counts["blocked"] += report["blocked"]
                counts["emergency"] += "emergency" in report["categories"]
                out.write(json.dumps(report, default=str) + "\n")
            print(f"classified {min(i + args.batch_size, len(rows))}/{len(rows)}", file=sys.stderr)
    emit_json({"output": args.output, **counts})
    return 0


def interactions(args) -> int:
    from medqa.console import emit_json
    from medqa.safety.interactions import InteractionChecker, default_table, load_ddinter

    table = None
    if args.ddinter:
        table = load_ddinter(args.ddinter)
        table.update(default_table())
    checker = InteractionChecker(table)
    emit_json(checker.between(args.drugs))
    return 0


def train_classifier(args) -> int:
    from pathlib import Path

    from medqa.console import emit_json
    from medqa.safety.harm_training import shared_data_dir
    from medqa.safety.learned import packaged_head
    from medqa.safety.training import TrainSettings, train

    data_dir = Path(args.data_dir) if args.data_dir else shared_data_dir()
    for name in ("medsafetybench_train.jsonl", "medmcqa_dev_public.jsonl", "medquad_questions.jsonl"):
        if not (data_dir / name).exists():
            raise FileNotFoundError(f"{data_dir / name} not found (use --data-dir)")
    output = Path(args.output) if args.output else packaged_head("harm").parent
    card = train(data_dir, output, TrainSettings(seed=args.seed, epochs=args.epochs),
                 log=lambda m: print(m, file=sys.stderr))
    emit_json(card)
    return 0
