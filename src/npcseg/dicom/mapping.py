"""Naming a DICOM series as a sequence of the cohort (``t1``, ``t2``, ``t1c``) by small, editable rules.

The rules live in a YAML file; the defaults ship with the package (``npcseg/dicom/sequence_mapping.yaml``, read
by :func:`default_mapping`) and a user file given with ``--mapping FILE`` overrides them key by key
(:func:`load_mapping`). For one series, in this order:

1. a modality outside ``modalities`` is not mapped;
2. a description or protocol name matching an ``ignore`` pattern is not mapped (localisers, diffusion, ...);
3. the first sequence in ``order`` with a ``text`` pattern found in ``SeriesDescription`` or ``ProtocolName``;
4. otherwise the first sequence in ``order`` whose ``timing`` rule ``EchoTime``, ``RepetitionTime`` and
   ``ScanningSequence`` fit;
5. a T1 (by 3 or 4) with a non-empty ``ContrastBolusAgent`` becomes ``t1c`` when ``contrast_makes_t1c``.

Several series of one study mapped to one sequence are ranked by :func:`rank_candidates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from npcseg.config import config_from_dict, load_config_over, read_yaml
from npcseg.dicom.series import DicomSeries
from npcseg.io.cohort import SEQUENCES

DEFAULT_MAPPING_RESOURCE = "sequence_mapping.yaml"
"""The packaged default rules (in ``npcseg.dicom``)."""


@dataclass(frozen=True)
class TimingRule:
    """Bounds on echo and repetition time (ms, inclusive; ``None``: unbounded) and a ``ScanningSequence`` pattern."""

    echo_time_min_ms: float | None = None
    echo_time_max_ms: float | None = None
    repetition_time_min_ms: float | None = None
    repetition_time_max_ms: float | None = None
    scanning_sequence: str | None = None
    """Regular expression searched in ``ScanningSequence`` (``None``: any)."""

    def fits(self, series: DicomSeries) -> bool:
        """True when the series' TE, TR and scanning sequence satisfy every bound given (a missing TE/TR fails)."""
        checks = [
            (series.echo_time_ms, self.echo_time_min_ms, self.echo_time_max_ms),
            (series.repetition_time_ms, self.repetition_time_min_ms, self.repetition_time_max_ms),
        ]
        for value, low, high in checks:
            if low is None and high is None:
                continue
            if value is None or (low is not None and value < low) or (high is not None and value > high):
                return False
        return self.scanning_sequence is None or re.search(self.scanning_sequence, series.scanning_sequence) is not None


@dataclass(frozen=True)
class SequenceMapping:
    """Rules naming a series as a sequence (see the module docstring and the packaged YAML for the defaults)."""

    modalities: tuple[str, ...] = ("MR",)
    """Modalities considered at all."""
    ignore: tuple[str, ...] = ()
    """Patterns (searched in description and protocol name) of series never mapped."""
    text: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Sequence -> patterns searched in ``SeriesDescription`` and ``ProtocolName``."""
    order: tuple[str, ...] = ("t2", "t1c", "t1")
    """Order in which sequences' ``text`` and ``timing`` rules are tried."""
    contrast_makes_t1c: bool = True
    """A T1 with a non-empty ``ContrastBolusAgent`` is taken as ``t1c``."""
    timing: dict[str, TimingRule] = field(default_factory=dict)
    """Sequence -> fallback rule on TE / TR / scanning sequence."""
    prefer: tuple[str, ...] = ()
    """Patterns ranking several series mapped to one sequence (earlier pattern first)."""

    def __post_init__(self) -> None:
        for name, sequences in (("text", self.text), ("timing", self.timing), ("order", self.order)):
            unknown = sorted(set(sequences) - set(SEQUENCES))
            if unknown:
                raise ValueError(f"mapping '{name}': unknown sequence(s) {unknown}; sequences are {list(SEQUENCES)}")
        patterns = [*self.ignore, *self.prefer, *(p for ps in self.text.values() for p in ps)]
        patterns += [rule.scanning_sequence for rule in self.timing.values() if rule.scanning_sequence is not None]
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"mapping: invalid regular expression {pattern!r}: {error}") from error


@dataclass(frozen=True)
class MappingDecision:
    """The sequence a series maps to (``None``: not mapped) and why, in words without patient data."""

    sequence: str | None
    reason: str


def default_mapping() -> SequenceMapping:
    """The packaged default rules."""
    text = resources.files("npcseg.dicom").joinpath(DEFAULT_MAPPING_RESOURCE).read_text()
    return config_from_dict(SequenceMapping, yaml.safe_load(text), where=f"npcseg/dicom/{DEFAULT_MAPPING_RESOURCE}")


def load_mapping(path: Path | None = None) -> SequenceMapping:
    """The default rules, overridden key by key by the YAML file ``path`` when given.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming the file, for unknown keys, wrong types, unknown sequences or invalid patterns.
    """
    base = default_mapping()
    if path is None:
        return base
    path = Path(path)
    read_yaml(path)  # FileNotFoundError / YAML errors naming the file
    try:
        return load_config_over(base, path)
    except ValueError as error:
        message = str(error)
        raise ValueError(message if str(path) in message else f"{path}: {message}") from error


def map_series(series: DicomSeries, mapping: SequenceMapping) -> MappingDecision:
    """Apply the rules to one series (see the module docstring)."""
    if series.modality not in mapping.modalities:
        return MappingDecision(None, f"modality {series.modality or 'unknown'} is not mapped")
    texts = [text for text in (series.series_description, series.protocol_name) if text]
    found = _first_match(mapping.ignore, texts)
    if found is not None:
        return MappingDecision(None, f"ignored ({found!r} in description or protocol)")
    decision = None
    for sequence in mapping.order:
        found = _first_match(mapping.text.get(sequence, ()), texts)
        if found is not None:
            decision = MappingDecision(sequence, f"{found!r} in description or protocol")
            break
    if decision is None:
        for sequence in mapping.order:
            rule = mapping.timing.get(sequence)
            if rule is not None and rule.fits(series):
                decision = MappingDecision(
                    sequence,
                    f"timing fits {sequence}: TE {series.echo_time_ms} ms, TR {series.repetition_time_ms} ms, "
                    f"scanning sequence {series.scanning_sequence or 'unknown'}",
                )
                break
    if decision is None:
        return MappingDecision(
            None,
            f"no rule matched (TE {series.echo_time_ms} ms, TR {series.repetition_time_ms} ms, scanning sequence "
            f"{series.scanning_sequence or 'unknown'})",
        )
    if decision.sequence == "t1" and mapping.contrast_makes_t1c and series.contrast_bolus_agent:
        return MappingDecision("t1c", f"{decision.reason}, with ContrastBolusAgent set")
    return decision


def _first_match(patterns: tuple[str, ...], texts: list[str]) -> str | None:
    """The text matched by the first pattern found in one of ``texts``, or ``None``."""
    for pattern in patterns:
        for text in texts:
            match = re.search(pattern, text)
            if match is not None:
                return match.group(0)
    return None


def rank_candidates(candidates: list[DicomSeries], mapping: SequenceMapping) -> list[DicomSeries]:
    """Series mapped to one sequence, best first: earliest ``prefer`` pattern, more slices, lower series number."""

    def key(series: DicomSeries) -> tuple[int, int, int, str]:
        texts = [text for text in (series.series_description, series.protocol_name) if text]
        preference = next(
            (i for i, p in enumerate(mapping.prefer) if any(re.search(p, text) for text in texts)), len(mapping.prefer)
        )
        number = series.series_number if series.series_number is not None else 1 << 30
        return (preference, -len(series.slices), number, series.series_instance_uid)

    return sorted(candidates, key=key)
