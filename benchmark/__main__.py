"""``python -m benchmark``: argument parsing only; the work is in :mod:`benchmark.cli`."""

import argparse
import sys

from . import cli

ROOT_HELP = ("for csv:PATH: folder its relative image paths are read from and absolute "
             "ones recorded on another machine are re-rooted to (default: the CSV's folder)")


def _models(text):
    return [m.strip() for m in text.split(",") if m.strip()]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Compare facial-expression classifiers: accuracy, bias, explanations.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run a benchmark and write its report",
        description="Run the stages (data, search, evaluate, ...) and write "
                    "reports/<name>/report.md and results.json. With no options: "
                    "synthetic faces, CNN vs ResNet vs DenseNet, quick profile.")
    run.add_argument("--dataset", help="synthetic (default), fer2013:PATH (fer2013.csv or the "
                     "Kaggle JPEG layout, folder or zip), folder:PATH, csv:PATH (image_path,label)")
    run.add_argument("--dataset-root", dest="dataset_root", metavar="DIR",
                     help=ROOT_HELP)
    run.add_argument("--attributes", help=("CSV of sensitive attributes joined on its `path` "
                                            "column (image paths) or, for the FER2013 CSV, its "
                                            "`row` column (data row numbers, from 0)"))
    run.add_argument("--models", type=_models,
                     help="comma-separated registry names (see `list`), e.g. cnn,resnet18")
    run.add_argument("--profile", help="quick (default), full, fer2013-cpu or seed; see `list`")
    run.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    run.add_argument("--config", dest="config_file", help="TOML file of config keys")
    run.add_argument("--out", help="folder of run folders (default: reports)")
    run.add_argument("--name", help="run folder name (default: <dataset>-<profile>, or the "
                     "profile alone when it starts with the dataset kind: fer2013-cpu)")
    run.add_argument("--seed", type=int, help="seed of split, folds, models, bootstrap (default 0)")
    run.add_argument("--n-jobs", dest="n_jobs", type=int,
                     help="parallel fits in the search on the loky backend (default 1)")
    run.add_argument("--backend", help="loky (default: local processes) or dask")
    run.add_argument("--scheduler",
                     help="Dask scheduler address, tcp://HOST:8786 (default with --backend "
                          "dask: a local cluster, one single-threaded worker per core)")
    run.add_argument("--save-models", dest="save_models", action="store_true", default=None,
                     help="also save the fitted models in RUN_DIR/models/ (joblib and "
                          "skorch save_params), for `evaluate`")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted run of the same configuration")

    report = sub.add_parser("report", help="re-render report.md from a run's results.json")
    report.add_argument("run_dir")

    evaluate = sub.add_parser(
        "evaluate", help="score a run's saved models on another dataset",
        description="Score the models a run saved (run --save-models) on another dataset, "
                    "matching classes by name (classes only one side has are left out and "
                    "said so; at least two must be shared), and add a section to the run's "
                    "report. Image files are decoded at the size the models were trained on.")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--dataset", required=True,
                          help="folder:PATH, csv:PATH, fer2013:PATH or synthetic")
    evaluate.add_argument("--dataset-root", dest="dataset_root", metavar="DIR", help=ROOT_HELP)
    evaluate.add_argument("--attributes", help=("CSV of group attributes of that dataset, "
                                                 "joined as in `run`"))
    evaluate.add_argument("--label", help="section name (default: the dataset's file or folder name; for a "
                               "labels.csv, the name of the folder holding it)")
    evaluate.add_argument("--tta", help="none, flip, crops or affine (default: the run's own)")

    perf = sub.add_parser(
        "perf", help="measure training and inference speed side by side",
        description="Matmul peak, estimator vs plain PyTorch loop, fp32 vs bf16, contiguous "
                    "vs channels-last, model-FLOP utilisation, inference speed, the original "
                    "study's pipeline vs ours and, with FER2013, time to the study's best "
                    "accuracy and loading times. Writes OUT/perf.md and OUT/perf.json.")
    perf.add_argument("--dataset", help="fer2013:PATH for the FER2013 sections "
                                        "(default: synthetic faces, speed only)")
    perf.add_argument("--out", help="default: reports/perf-DEVICE (reports/perf-cpu, reports/perf-cuda)")
    perf.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    perf.add_argument("--models", type=_models, help="default: cnn,resnet18,densenet_bc")
    perf.add_argument("--epochs", type=int, default=6,
                      help="epochs of the time-to-accuracy fits (default 6)")

    sub.add_parser("list", help="list architectures, datasets and profiles")

    faces = sub.add_parser("faces", help="time the synthetic face generator; draw examples",
                           description="Print faces/s of make_synthetic_faces on one CPU "
                                       "core, and optionally save a grid of examples per class.")
    faces.add_argument("--n", type=int,
                       help="faces to time (default 20000), or to draw for export (default "
                            "2000; --drop leaves some out)")
    faces.add_argument("--seed", type=int, default=0)
    what = faces.add_mutually_exclusive_group()
    what.add_argument("--grid", help="write a PNG of 8 example faces per class here")
    what.add_argument("--export", metavar="DIR",
                       help="instead, write --n faces as PNGs with labels.csv (labels spelled "
                            "as synonyms) and attributes.csv: a second dataset for `evaluate`")
    faces.add_argument("--drop", type=_models, metavar="CLASSES",
                       help="with --export: comma-separated classes to leave out")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
