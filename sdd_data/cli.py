"""`sdd-data <stage>`: one subcommand per stage; each parses its config and calls one function."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from sdd_data.config import add_config_arguments, config_from_sources
from sdd_data.errors import SddError, one_line
from sdd_data.registry import load_member
from sdd_data.stages import STAGES, Stage, missing_message

PIPELINE_STAGE = Stage(
    "run",
    "sdd_data.pipeline:PipelineConfig",
    "sdd_data.pipeline:run_pipeline",
    help="run several stages in order from one pipeline YAML file",
    description="Run the steps of a pipeline file (a `steps` list; each step maps a stage name to its options).",
)

POSITIONAL = "positional_argument"
"""Where a stage's first argument is parsed to, before it becomes its option (`Stage.positional`)."""

OPTIONS_NOTE = (
    " Every option can also be set in a YAML file (--config) under the same name with underscores; "
    "flags override the file."
)


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the command and the fix, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_config_stage(stages, stage: Stage) -> None:
    """A subcommand whose flags come from the stage's config dataclass and which calls the stage function on it."""
    config_class = stage.config_class()

    def run(args: argparse.Namespace, values: dict) -> None:
        given = values.pop(POSITIONAL, None)
        if given is not None:
            if values.get(stage.positional) not in (None, given):
                raise SddError(f"{given} and --{stage.positional} name two different inputs; give one")
            values[stage.positional] = given
        config = config_from_sources(config_class, args.config, values)
        missing = stage.missing(config)
        if missing:
            raise SddError(missing_message(stage, missing))
        import datasets

        datasets.disable_progress_bars()  # stages show their own progress
        load_member(stage.function)(config)

    parser = stages.add_parser(stage.name, help=stage.help, description=stage.description + OPTIONS_NOTE)
    parser.add_argument("--config", help="YAML file of options")
    if stage.positional:
        parser.add_argument(
            POSITIONAL, nargs="?", metavar=stage.positional.upper(), help=f"the same as --{stage.positional}"
        )
    add_config_arguments(
        parser, config_class, {option: load_member(function)() for option, function in stage.option_help}
    )
    parser.set_defaults(run=run)


def _templates(args: argparse.Namespace, values: dict) -> None:
    from sdd_data.distill.templates import TEMPLATES, get_template

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
    parser = OneLineErrorParser(prog="sdd-data", description="Self-distilled data for recovering pruned LLMs.")
    stages = parser.add_subparsers(dest="stage", required=True)
    for _, stage in STAGES.items():
        _add_config_stage(stages, stage)
    _add_config_stage(stages, PIPELINE_STAGE)

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
        for problem in getattr(error, "problems", None) or [one_line(error)]:
            print(f"sdd-data {args.stage}: error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sdd-data {args.stage}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
