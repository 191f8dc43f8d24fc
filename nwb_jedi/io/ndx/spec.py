"""Build the YAML spec of the ``ndx-jedi`` NWB extension with `pynwb.spec`.

The generated ``ndx-jedi.namespace.yaml`` and ``ndx-jedi.extensions.yaml`` are shipped in this
folder; regenerate them after editing this file with::

    python nwb_jedi/io/ndx/spec.py

(`tests/io/test_ndx.py` fails when the shipped YAML differs from what this file builds.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NAMESPACE = "ndx-jedi"
#: 0.2.0: the modelled counts are an ndx-binned-spikes ``BinnedAlignedSpikes`` (units region,
#: event timestamps, condition indices) with `JEDIModelledData` beside it; the trials table links
#: each row to ``/intervals/trials`` and to its samples of the rates. 0.1.0 files (counts in a
#: `JEDIBinnedCounts`) still open: the type stays in the spec and the loader reads both.
VERSION = "0.2.0"
#: Authors of the extension and, in the same order, their contact e-mail addresses (NWB asks
#: for an e-mail per author; the project has no mailing list, so a GitHub no-reply address).
AUTHORS = ["nwb_jedi developers"]
CONTACTS = ["nwb-jedi@users.noreply.github.com"]
SPEC_DIR = Path(__file__).resolve().parent

DOC = ("Fitted JEDI models (Jointly Embedded Inference of Neural Dynamics: condition embeddings "
       "-> hypernetwork -> low-rank RNN of the recorded neurons) and their results: "
       "embeddings, per-trial assignments, fitted rates, metrics and connectivity spectra.")


def build_types() -> list:
    """The extension's new types, in dependency order."""
    from pynwb.spec import (
        NWBAttributeSpec,
        NWBDatasetSpec,
        NWBGroupSpec,
    )

    def text_attr(name: str, doc: str, required: bool = True) -> NWBAttributeSpec:
        return NWBAttributeSpec(name=name, doc=doc, dtype="text", required=required)

    parameter = NWBDatasetSpec(
        neurodata_type_def="JEDIParameter",
        neurodata_type_inc="NWBData",
        doc="One parameter tensor of the model's state dict (weights, biases, embeddings, "
            "normalization buffers). Its HDF5 name is the tensor name with '.' replaced by "
            "'__'; the exact tensor name is in the attribute 'tensor_name'.",
        dtype="float",
        # Tensors of rank 1 to 4 (state-dict tensors of the model are matrices and vectors).
        dims=[[f"dim_{i}" for i in range(rank)] for rank in range(1, 5)],
        shape=[[None] * rank for rank in range(1, 5)],
        attributes=[text_attr("tensor_name", "Name of the tensor in the model's state dict, "
                                             "e.g. 'hypernet.layers.0.weight'.")],
    )

    model = NWBGroupSpec(
        neurodata_type_def="JEDIModel",
        neurodata_type_inc="NWBDataInterface",
        default_name="model",
        doc="A fitted JEDI model: hyperparameters and format (attribute 'config'), fitted "
            "non-tensor state (dataset 'fit_state'), provenance, and one JEDIParameter dataset "
            "per parameter tensor. nwb_jedi.load_model rebuilds it without executing anything "
            "from the file.",
        attributes=[
            text_attr("description", "Human-readable description of the model."),
            text_attr("config", "JSON object: model format name and version, hyperparameters "
                                "('params'), number of neurons, bin size (s) and the versions "
                                "of the software that fitted it."),
            text_attr("nwb_jedi_version", "Version of nwb_jedi that wrote the model."),
            text_attr("torch_version", "Version of PyTorch the model was fitted with."),
            text_attr("source_kind", "Where the modelled data came from: 'dandi', 'local' or "
                                     "'arrays' (built from arrays, no NWB source)."),
            text_attr("source_dandiset", "DANDI dandiset id of the source.", required=False),
            text_attr("source_version", "DANDI dandiset version of the source.",
                      required=False),
            text_attr("source_asset_path", "Path of the source asset inside the dandiset.",
                      required=False),
            text_attr("source_url", "Content URL of the source asset (no query string).",
                      required=False),
            text_attr("source_path", "Absolute path of the local source file when written.",
                      required=False),
            text_attr("source_sha256", "SHA-256 of the local source file.", required=False),
            text_attr("source_identifier", "The 'identifier' of the source NWB file.",
                      required=False),
        ],
        datasets=[
            NWBDatasetSpec(
                name="fit_state",
                doc="JSON object with the fitted state that is not a tensor: the modelled "
                    "neurons' ids ('unit_id'), the conditions the model knows ('conditions': "
                    "columns and rows), ids of trials with their own embedding offset "
                    "('trial_offset_ids') and the per-epoch training history ('history'). "
                    "Kept as a dataset because it can exceed the 64 KB attribute limit.",
                dtype="text",
            ),
            NWBDatasetSpec(
                neurodata_type_inc="JEDIParameter",
                doc="The parameter tensors of the model, one dataset each.",
                quantity="+",
            ),
        ],
    )

    condition_table = NWBGroupSpec(
        neurodata_type_def="JEDIConditionTable",
        neurodata_type_inc="DynamicTable",
        default_name="conditions",
        doc="One row per condition of the modelled data. Besides the columns below, the table "
            "has one column per variable that defines a condition (e.g. 'trial_type', "
            "'reach_angle'), in the order of the dataset's conditions table.",
        datasets=[
            NWBDatasetSpec(name="label", neurodata_type_inc="VectorData", dtype="text",
                           doc="Unique string label of the condition."),
            NWBDatasetSpec(name="embedding", neurodata_type_inc="VectorData", dtype="float",
                           dims=["num_conditions", "embed_dim"], shape=[None, None],
                           doc="Learned embedding of the condition (NaN when the model has "
                               "no embedding for it)."),
            NWBDatasetSpec(name="n_trials", neurodata_type_inc="VectorData", dtype="int",
                           doc="Number of modelled trials of the condition."),
        ],
    )

    trial_table = NWBGroupSpec(
        neurodata_type_def="JEDITrialTable",
        neurodata_type_inc="DynamicTable",
        default_name="trials",
        doc="One row per modelled trial, in the order of the modelled dataset (and of the "
            "rows of the 'rates' TimeSeries: trial k holds samples k*T .. (k+1)*T - 1).",
        datasets=[
            NWBDatasetSpec(name="trial_id", neurodata_type_inc="VectorData",
                           doc="Id of the trial in the source trials table."),
            NWBDatasetSpec(name="condition", neurodata_type_inc="DynamicTableRegion",
                           dtype="int",
                           doc="Row of the trial's condition in the JEDIConditionTable."),
            NWBDatasetSpec(name="split", neurodata_type_inc="VectorData", dtype="text",
                           doc="Data split of the trial: 'train', 'val' or 'test'."),
            NWBDatasetSpec(name="align_time", neurodata_type_inc="VectorData",
                           dtype="float64",
                           doc="Session time (s) of the trial's alignment event; NaN when "
                               "unknown."),
            NWBDatasetSpec(name="embedding", neurodata_type_inc="VectorData", dtype="float",
                           dims=["num_trials", "embed_dim"], shape=[None, None],
                           quantity="?",
                           doc="Per-trial embedding (condition embedding plus the trial's "
                               "fitted offset), present when the model was fitted with "
                               "per-trial embeddings."),
            NWBDatasetSpec(name="trial", neurodata_type_inc="DynamicTableRegion",
                           dtype="int", quantity="?",
                           doc="Row of the trial in the file's trials table "
                               "(/intervals/trials), present when the file holds the "
                               "modelled trials (ndx-jedi 0.2)."),
            NWBDatasetSpec(name="event", neurodata_type_inc="VectorData", dtype="int",
                           quantity="?",
                           doc="Index of the trial among the events of the "
                               "BinnedAlignedSpikes 'binned_counts', whose events are sorted "
                               "by time (ndx-jedi 0.2)."),
            NWBDatasetSpec(name="rates", neurodata_type_inc="TimeSeriesReferenceVectorData",
                           quantity="?",
                           doc="The trial's samples in the 'rates' TimeSeries: first sample, "
                               "number of samples (bins) and the series (ndx-jedi 0.2)."),
        ],
    )

    modelled = NWBGroupSpec(
        neurodata_type_def="JEDIModelledData",
        neurodata_type_inc="NWBDataInterface",
        default_name="modelled_data",
        doc="What rebuilding the modelled dataset exactly needs besides its counts, which are "
            "the BinnedAlignedSpikes (ndx-binned-spikes) 'binned_counts' of the same module: "
            "the bin size, the bin centers, the neurons' ids and the settings that built the "
            "dataset (ndx-jedi 0.2).",
        attributes=[
            text_attr("description", "Human-readable description of the modelled data."),
            NWBAttributeSpec(name="bin_size", dtype="float64", doc="Bin width in seconds."),
        ],
        datasets=[
            NWBDatasetSpec(name="bin_centers", dtype="float64", dims=["num_bins"],
                           shape=[None],
                           doc="Bin centers in seconds relative to each trial's alignment "
                               "event, exactly as modelled."),
            NWBDatasetSpec(name="unit_ids", dims=["num_units"], shape=[None],
                           doc="Ids of the modelled neurons (as in the source units "
                               "table), in the order of the units of 'binned_counts' and of "
                               "the columns of 'rates'."),
            NWBDatasetSpec(name="dataset_metadata", dtype="text",
                           doc="JSON object: how the dataset was built (condition mapper "
                               "settings, drop report, source session metadata)."),
        ],
    )

    binned = NWBGroupSpec(
        neurodata_type_def="JEDIBinnedCounts",
        neurodata_type_inc="NWBDataInterface",
        default_name="binned_counts",
        doc="The binned spike counts that were modelled (trials x bins x neurons), with what "
            "is needed to rebuild the dataset exactly: bin centers, neuron ids and the "
            "settings that built it. The layout of ndx-jedi 0.1, kept so that its files open; "
            "0.2 stores the counts in an ndx-binned-spikes BinnedAlignedSpikes and the rest in "
            "JEDIModelledData.",
        attributes=[
            text_attr("description", "Human-readable description of the binned data."),
            NWBAttributeSpec(name="bin_size", dtype="float64", doc="Bin width in seconds."),
        ],
        datasets=[
            NWBDatasetSpec(name="counts", dtype="float32",
                           dims=["num_trials", "num_bins", "num_units"],
                           shape=[None, None, None],
                           doc="Spike counts per bin, trials in the order of the "
                               "JEDITrialTable."),
            NWBDatasetSpec(name="bin_centers", dtype="float64", dims=["num_bins"],
                           shape=[None],
                           doc="Bin centers in seconds relative to each trial's alignment "
                               "event."),
            NWBDatasetSpec(name="unit_ids", dims=["num_units"], shape=[None],
                           doc="Ids of the modelled neurons (as in the source units "
                               "table), in the order of the last axis of 'counts'."),
            NWBDatasetSpec(name="dataset_metadata", dtype="text",
                           doc="JSON object: how the dataset was built (condition mapper "
                               "settings, drop report, source session metadata)."),
        ],
    )

    metrics = NWBGroupSpec(
        neurodata_type_def="JEDIMetricsTable",
        neurodata_type_inc="DynamicTable",
        default_name="metrics",
        doc="Goodness-of-fit metrics of the model, one row per (metric, split).",
        datasets=[
            NWBDatasetSpec(name="metric", neurodata_type_inc="VectorData", dtype="text",
                           doc="Name of the metric, e.g. 'bits_per_spike', 'psth_r2', 'r2'."),
            NWBDatasetSpec(name="value", neurodata_type_inc="VectorData", dtype="float64",
                           doc="Value of the metric."),
            NWBDatasetSpec(name="split", neurodata_type_inc="VectorData", dtype="text",
                           doc="Trials the metric was computed on: 'train', 'val' or 'test'."),
        ],
    )

    eigen = NWBGroupSpec(
        neurodata_type_def="JEDIEigenvalueTable",
        neurodata_type_inc="DynamicTable",
        default_name="eigenvalues",
        doc="Nonzero eigenvalues of each condition's connectivity J = M U^T / N, one row per "
            "eigenvalue, sorted by decreasing modulus within a condition.",
        datasets=[
            NWBDatasetSpec(name="condition", neurodata_type_inc="DynamicTableRegion",
                           dtype="int",
                           doc="Row of the condition in the JEDIConditionTable."),
            NWBDatasetSpec(name="real", neurodata_type_inc="VectorData", dtype="float64",
                           doc="Real part of the eigenvalue."),
            NWBDatasetSpec(name="imag", neurodata_type_inc="VectorData", dtype="float64",
                           doc="Imaginary part of the eigenvalue."),
        ],
    )
    return [parameter, model, condition_table, trial_table, modelled, binned, metrics, eigen]


def namespace_builder():
    """The ``ndx-jedi`` namespace (name, version, authors, contact), including NWB core."""
    from pynwb.spec import NWBNamespaceBuilder

    builder = NWBNamespaceBuilder(
        doc=DOC, name=NAMESPACE, version=VERSION, author=AUTHORS, contact=CONTACTS,
        full_name="NWB extension for JEDI models of population dynamics")
    builder.include_namespace("core")
    return builder


def write_spec(output_dir: str | os.PathLike = SPEC_DIR) -> tuple[Path, Path]:
    """Write ``ndx-jedi.namespace.yaml`` and ``ndx-jedi.extensions.yaml`` into `output_dir`.

    Uses pynwb's `export_spec`, which writes both files into `output_dir` (created if needed;
    the working directory is left alone).
    """
    from pynwb.spec import export_spec

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    export_spec(namespace_builder(), build_types(), os.fspath(output_dir))
    return (output_dir / f"{NAMESPACE}.namespace.yaml",
            output_dir / f"{NAMESPACE}.extensions.yaml")


if __name__ == "__main__":  # pragma: no cover
    written = write_spec(sys.argv[1] if len(sys.argv) > 1 else SPEC_DIR)
    print("\n".join(str(p) for p in written))
