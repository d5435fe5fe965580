"""`sdd-data <stage>`: one subcommand per stage; each parses its config and calls one function."""

from __future__ import annotations

import argparse
import sys

from .config import add_config_arguments, config_from_sources
from .errors import SddError


OPTIONS_NOTE = " Every option can also be set in a YAML file (--config) under the same name with underscores; " \
               "flags override the file."


def _add_config_stage(stages, name: str, config_class: type, function, help: str, description: str) -> None:
    """A subcommand whose flags come from `config_class` and which calls `function(config)`."""

    def run(args: argparse.Namespace, values: dict) -> None:
        import datasets

        datasets.disable_progress_bars()  # stages show their own progress
        function(config_from_sources(config_class, args.config, values))

    parser = stages.add_parser(name, help=help, description=description + OPTIONS_NOTE)
    parser.add_argument("--config", help="YAML file of options")
    add_config_arguments(parser, config_class)
    parser.set_defaults(run=run)


def _templates(args: argparse.Namespace, values: dict) -> None:
    from .templates import TEMPLATES, get_template

    if args.name:
        template = get_template(args.name, set())
        print(f"# {template.name}: {template.description}\n[system]\n{template.system}\n[user]\n{template.user}")
        if template.assistant_prefix:
            print(f"[assistant prefix, not stored]\n{template.assistant_prefix}")
        return
    width = max(len(name) for name in TEMPLATES)
    for name, template in TEMPLATES.items():
        print(f"{name:<{width}}  {'chat' if template.chat else 'text'}  {template.description}")


def build_parser() -> argparse.ArgumentParser:
    """The `sdd-data` argument parser with one subparser per stage."""
    from .distill import DistillConfig, distill
    from .merge import MergeConfig, merge
    from .publish import PublishConfig, publish

    parser = argparse.ArgumentParser(prog="sdd-data", description="Self-distilled data for recovering pruned LLMs.")
    stages = parser.add_subparsers(dest="stage", required=True)

    _add_config_stage(
        stages, "distill", DistillConfig, distill,
        help="the teacher rewrites every response; the consistency filter keeps or rejects each rewrite",
        description="Distill an instruction dataset with a teacher.",
    )
    _add_config_stage(
        stages, "publish", PublishConfig, publish,
        help="save a distilled dataset with its card locally, or push it to the Hugging Face Hub",
        description="Publish a distill run as one config of a dataset: Parquet files, a dataset card (README.md) and "
                    "sdd_data.json, saved to --output-dir or pushed to --repo-id in one commit.",
    )
    _add_config_stage(
        stages, "merge", MergeConfig, merge,
        help="SLERP-merge two fine-tuned models of one architecture from a mergekit-style recipe",
        description="Merge two models with SLERP, tensor by tensor, as described by a mergekit-style YAML recipe "
                    "(--merge-config).",
    )

    templates_parser = stages.add_parser("templates", help="list the rewrite templates, or show one")
    templates_parser.add_argument("name", nargs="?", help="template name or file to show")
    templates_parser.set_defaults(run=_templates)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sdd-data` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    values = {key: value for key, value in vars(args).items() if key not in ("stage", "run", "config", "name")}
    try:
        args.run(args, values)
    except SddError as error:
        print(f"sdd-data {args.stage}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sdd-data {args.stage}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
