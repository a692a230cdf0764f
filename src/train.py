"""Train collaborative-filtering models on MovieLens 1M and write the service's artifacts.

Usage (from the repository root)::

    python src/train.py                 # default models, serve the best by RMSE
    python src/train.py --all           # train and compare every model
    python src/train.py --model user_knn --model mf --serve mf
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cfrec import data, pipeline
from cfrec.artifacts import ArtifactError
from cfrec.models import MODELS
from cfrec.progress import set_progress

logger = logging.getLogger("train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="folder with ratings.dat, movies.dat, users.dat (default: $CF_DATA_DIR, else data/ml-1m)",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=None,
        help="folder for artifacts, metrics.json, report.md, figures/ (default: $CF_OUTPUT_DIR, else outputs)",
    )
    parser.add_argument(
        "--data-url", default=None,
        help=f"where to download ml-1m.zip when the data is absent (default: $CF_DATA_URL, else {data.DATA_URL})",
    )

    parser.add_argument(
        "--skip-checksum", action="store_true",
        help="accept data files whose md5 differs from the official release (downloads are always checked)",
    )
    parser.add_argument(
        "--test-size", type=_fraction, default=0.2, help="share of ratings held out for testing (default: 0.2)"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed of the split and of the models (default: 42)")

    parser.add_argument(
        "--model", action="append", choices=sorted(MODELS), metavar="NAME", dest="models",
        help=f"model to train; repeat for several (choices: {', '.join(sorted(MODELS))}; "
        f"default: {', '.join(pipeline.DEFAULT_MODELS)})",
    )
    parser.add_argument("--all", action="store_true", help="train and compare every model")
    parser.add_argument(
        "--download-only", action="store_true", help="get and verify the data, then exit without training"
    )
    parser.add_argument(
        "--serve", choices=sorted(MODELS), metavar="NAME", default=None,
        help="model the service serves (default: the trained model with the lowest test RMSE)",
    )
    parser.add_argument(
        "--rank-with", choices=sorted(MODELS), metavar="NAME", default=None,
        help="model whose scores order /recommend (default: the trained model with the highest NDCG@10)",
    )

    parser.add_argument("--no-ranking", action="store_true", help="skip the top-10 ranking metrics")
    parser.add_argument("--no-figures", action="store_true", help="skip outputs/report.md and the figures")
    parser.add_argument("--quiet", action="store_true", help="log warnings only and hide progress bars")
    return parser


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def config_from_args(args: argparse.Namespace) -> pipeline.TrainConfig:
    if args.all:
        models = tuple(MODELS)
    else:
        models = tuple(dict.fromkeys(args.models or pipeline.DEFAULT_MODELS))
    for name in (args.serve, args.rank_with):
        if name is not None and name not in models:
            models = (*models, name)
    return pipeline.TrainConfig(
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        data_url=args.data_url,
        verify_checksums=not args.skip_checksum,
        test_size=args.test_size,
        seed=args.seed,
        models=models,
        serve=args.serve,
        rank_with=args.rank_with,
        ranking=not args.no_ranking,
        figures=not args.no_figures,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    set_progress(not args.quiet and sys.stderr.isatty())  # no bars in redirected logs

    try:
        if args.download_only:
            config = config_from_args(args)
            data_dir = data.resolve_data_dir(config.data_dir)
            data.ensure_dataset(data_dir, url=config.data_url, verify=config.verify_checksums, progress=True)
            logger.info("data ready in %s", data_dir)
            return 0
        record = pipeline.run_training(config_from_args(args))
    except (data.DataError, ArtifactError, ValueError, OSError) as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; artifacts from the previous run, if any, are unchanged")
        return 130

    _print_table(record)
    return 0


def _print_table(record: dict) -> None:
    columns = ("rmse", "mae", "accuracy", "ndcg@10", "hit@10", "fit_seconds", "predict_seconds")
    header = f"{'model':<13}" + "".join(f"{column.replace('_seconds', ' s'):>11}" for column in columns)
    lines = [header, "-" * len(header)]
    for name, result in record["models"].items():
        cells = [f"{result[column]:>11.4f}" if column in result else f"{'-':>11}" for column in columns]
        lines.append(f"{name:<13}" + "".join(cells))
    lines.append(f"served model: {record['served_model']}; /recommend ranks with: {record['ranker']}")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
