"""The depth prune methods: `angular` (Gromov et al.) and `block-influence` (ShortGPT), both chosen from one
calibration pass (the maths is in `block_scores`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdd_data.prune.method import DepthMethod

if TYPE_CHECKING:
    from sdd_data.prune.calibration import BlockScores


class AngularMethod(DepthMethod):
    """The n contiguous blocks whose input is closest in angle to the input n blocks later, at the last token."""

    name = "angular"
    help = (
        "the n contiguous blocks ℓ…ℓ+n−1 of smallest angular distance between the inputs of block ℓ and block ℓ+n "
        "at the last token (Gromov et al.)"
    )

    def choose(self, scores: BlockScores, n: int) -> list[int]:
        """The run of n blocks starting where the mean angular distance is smallest."""
        from sdd_data.prune.block_scores import choose_contiguous

        return choose_contiguous(scores.angular_distance, n)

    def print_scores(self, scores: BlockScores, removed: list[int]) -> None:
        """d(ℓ, n) for every start block ℓ, marking the start of the removed run."""
        n = len(removed)
        print(
            f"angular distance d(l, n={n}) between the inputs of block l and block l+{n} at the last token "
            f"(mean of {scores.rows} rows; 0 = same direction)"
        )
        print("start  blocks   distance")
        for start, distance in enumerate(scores.angular_distance):
            mark = "  <- removed" if start == removed[0] else ""
            print(f"{start:>5}  {f'{start}-{start + n - 1}':<7}  {distance:.4f}{mark}")


class BlockInfluenceMethod(DepthMethod):
    """The n blocks that change their input least over all tokens, contiguous or not."""

    name = "block-influence"
    help = (
        "the n blocks of lowest block influence, 1 − cos(input, output) over all tokens, not necessarily "
        "contiguous (ShortGPT)"
    )

    def choose(self, scores: BlockScores, n: int) -> list[int]:
        """The n blocks of lowest block influence."""
        from sdd_data.prune.block_scores import choose_lowest

        return choose_lowest(scores.block_influence, n)

    def print_scores(self, scores: BlockScores, removed: list[int]) -> None:
        """The influence of every block, marking the removed ones."""
        print(f"block influence 1 - mean cos(input, output) over {scores.tokens} tokens of {scores.rows} rows")
        print("block  influence")
        for block, influence in enumerate(scores.block_influence):
            mark = "  <- removed" if block in removed else ""
            print(f"{block:>5}  {influence:.4f}{mark}")


ANGULAR = AngularMethod()
BLOCK_INFLUENCE = BlockInfluenceMethod()
