"""`sdd-data <stage>`: one subcommand per stage; each parses its config and calls one function."""

from __future__ import annotations

import argparse
import sys

from .config import add_config_arguments, config_from_sources
from .errors import SddError


def _distill(args: argparse.Namespace, values: dict) -> None:
    import datasets

    from .distill import DistillConfig, distill

    datasets.disable_progress_bars()  # the stage shows its own
    distill(config_from_sources(DistillConfig, args.config, values))


def _publish(args: argparse.Namespace, values: dict) -> None:
    from .publish import PublishConfig, publish

    publish(config_from_sources(PublishConfig, args.config, values))


def _merge(args: argparse.Namespace, values: dict) -> None:
    from .merge import MergeConfig, merge

    merge(config_from_sources(MergeConfig, args.config, values))


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
    from .distill import DistillConfig
    from .merge import MergeConfig
    from .publish import PublishConfig

    parser = argparse.ArgumentParser(prog="sdd-data", description="Self-distilled data for recovering pruned LLMs.")
    stages = parser.add_subparsers(dest="stage", required=True)

    distill_parser = stages.add_parser(
        "distill", help="the teacher rewrites every response; the consistency filter keeps or rejects each rewrite",
        description="Distill an instruction dataset with a teacher. Every option can also be set in a YAML file "
                    "(--config) under the same name with underscores; flags override the file.",
    )
    distill_parser.add_argument("--config", help="YAML file of options")
    add_config_arguments(distill_parser, DistillConfig)
    distill_parser.set_defaults(run=_distill)

    publish_parser = stages.add_parser(
        "publish", help="save a distilled dataset with its card locally, or push it to the Hugging Face Hub",
        description="Publish a distill run as one config of a dataset: Parquet files, a dataset card (README.md) and "
                    "sdd_data.json, saved to --output-dir or pushed to --repo-id in one commit. Every option can also "
                    "be set in a YAML file (--config); flags override the file.",
    )
    publish_parser.add_argument("--config", help="YAML file of options")
    add_config_arguments(publish_parser, PublishConfig)
    publish_parser.set_defaults(run=_publish)

    merge_parser = stages.add_parser(
        "merge", help="SLERP-merge two fine-tuned models of one architecture from a mergekit-style recipe",
        description="Merge two models with SLERP, tensor by tensor, as described by a mergekit-style YAML recipe "
                    "(--merge-config). Every option can also be set in a YAML file (--config) under the same name "
                    "with underscores; flags override the file.",
    )
    merge_parser.add_argument("--config", help="YAML file of options")
    add_config_arguments(merge_parser, MergeConfig)
    merge_parser.set_defaults(run=_merge)

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
