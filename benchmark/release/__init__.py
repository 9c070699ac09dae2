"""Frozen releases: parquet shards, manifest, the opened release, data card, loader, build, verify, download."""
from benchmark.release.loader import hf_dataset, load_frozen_sets, load_metamers, resolve_release
from benchmark.records import KINDS, ROLES, FrozenSet, GraphRecord
from benchmark.release.opened import DatasetDims, Release, VerificationMode
from benchmark.release.shards import read_records, write_records

__all__ = ["KINDS", "ROLES", "DatasetDims", "FrozenSet", "GraphRecord", "Release", "VerificationMode", "hf_dataset",
           "load_frozen_sets", "load_metamers", "read_records", "resolve_release", "write_records"]
