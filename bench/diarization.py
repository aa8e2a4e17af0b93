"""Diarization benchmark on the AMI excerpts: prints one JSON object.

    .venv/bin/python bench/diarization.py [--data ../shared/data/speech] [--hour]

For every ``ami/trn*.wav`` (30 s of a real meeting, reference in ``ami/reference.rttm``):
diarization error rate (pyannote.metrics) without a collar and with a 0.25 s collar, and the
number of speakers found against the reference. pyannote's ``collar`` is the *total* width
removed around each reference boundary, so ``collar_0.25`` forgives ±0.125 s; the NIST md-eval
convention (±0.25 s) is reported too as ``der_collar_pm_0.25``.

"Two-speaker files" are the excerpts where two people say at least 95% of the reference speech
(the rest being a word or two from a third person): the goal is mean DER <= 20% on them.

Therapist enrolment: the "therapist" voice is enrolled from stretches where that speaker talks
alone, and a *different* stretch is diarized and named with ``assign_roles``; we count the share
of reference speech time (outside overlaps) whose role ("Therapist" or not) is right. Goal >= 95%
on the two-speaker excerpts, enrolling from the first half and scoring the second half; cases
across excerpts of the same meeting (some with four people) are reported too.

Speed: speaker-embedding throughput (x real time, windows over continuous speech) and the whole
``diarize`` call per excerpt. ``--hour`` also diarizes one hour (the excerpts tiled) and
reports wall time and peak RSS (goal: well under 1.5 GB).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyannote.core import Annotation, Segment, Timeline  # noqa: E402
from pyannote.metrics.diarization import (  # noqa: E402
    DiarizationErrorRate,
)

from relisten.lib.asr.audio import decode_audio  # noqa: E402
from relisten.lib.diarize.encoder import SpeakerEncoder  # noqa: E402
from relisten.lib.diarize.pipeline import (  # noqa: E402
    assign_roles,
    diarize,
    speaker_embedding,
)
from relisten.lib.diarize.types import Turn  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech"
# Within one two-speaker excerpt: enrol from the speaker's solo speech in the first half,
# diarize and score only the second half.
HALF_CASES = [("MÉO069", "trn03"), ("FEE078", "trn05"), ("FEE083", "trn09")]
# (enrolled speaker, excerpt to enrol from, excerpt to score): same meeting, different excerpts.
ENROLMENT_CASES = [
    ("FEE083", "trn06", "trn09"),
    ("FEE083", "trn09", "trn06"),
    ("MÉO069", "trn03", "trn00"),
    ("FEE087", "trn07", "trn08"),
    ("FEE087", "trn08", "trn07"),
]
TWO_SPEAKER_SHARE = 0.95
DER_GOAL = 0.20
ROLE_GOAL = 0.95


def read_rttm(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    reference: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            reference[parts[1]].append((start, start + duration, parts[7]))
    return reference


def annotation(spans: list[tuple[float, float, str]]) -> Annotation:
    result = Annotation()
    for i, (start, end, who) in enumerate(spans):
        result[Segment(start, end), str(i)] = who
    return result


def load(path: Path) -> np.ndarray:
    with path.open("rb") as handle:
        return decode_audio(handle)


def two_speaker(spans: list[tuple[float, float, str]]) -> bool:
    totals: dict[str, float] = defaultdict(float)
    for start, end, who in spans:
        totals[who] += end - start
    top = sorted(totals.values(), reverse=True)
    return len(top) >= 2 and sum(top[:2]) >= TWO_SPEAKER_SHARE * sum(top)


def solo_spans(spans: list[tuple[float, float, str]], who: str) -> list[tuple[float, float]]:
    """Stretches where ``who`` speaks and nobody else does (10 ms resolution)."""
    if not spans:
        return []
    end = max(e for _, e, _ in spans)
    n = int(np.ceil(end * 100)) + 1
    mine = np.zeros(n, dtype=bool)
    others = np.zeros(n, dtype=bool)
    for s, e, w in spans:
        (mine if w == who else others)[int(s * 100) : int(e * 100)] = True
    solo = mine & ~others
    out: list[tuple[float, float]] = []
    i = 0
    while i < n:
        if solo[i]:
            j = i
            while j < n and solo[j]:
                j += 1
            out.append((i / 100, j / 100))
            i = j
        else:
            i += 1
    return out


def role_accuracy(
    spans: list[tuple[float, float, str]], therapist: str, turns: list[Turn], roles: dict[str, str]
) -> float:
    """Share of single-speaker reference time whose role (therapist or not) is right."""
    end = max(e for _, e, _ in spans)
    n = int(np.ceil(end * 100)) + 1
    count = np.zeros(n, dtype=np.int64)
    is_therapist = np.zeros(n, dtype=bool)
    for s, e, w in spans:
        count[int(s * 100) : int(e * 100)] += 1
        if w == therapist:
            is_therapist[int(s * 100) : int(e * 100)] = True
    hyp_therapist = np.zeros(n, dtype=bool)
    for turn in turns:
        if roles.get(turn.speaker) == "Therapist":
            hyp_therapist[int(turn.start * 100) : int(turn.end * 100)] = True
    scored = count == 1
    return float(np.mean(hyp_therapist[scored] == is_therapist[scored]))


def embedding_speed(encoder: SpeakerEncoder, audio: np.ndarray) -> float:
    duration = len(audio) / 16000
    started = time.perf_counter()
    encoder.embed_windows(audio, [(0.0, duration)])
    return duration / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description="Diarization benchmark (prints JSON)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--hour", action="store_true", help="also diarize a one-hour file")
    args = parser.parse_args()
    ami = args.data / "ami"
    reference = read_rttm(ami / "reference.rttm")
    encoder = SpeakerEncoder()
    files: dict[str, Any] = {}
    hypotheses: dict[str, list[Turn]] = {}
    audios: dict[str, np.ndarray] = {}
    diarize_seconds = 0.0
    audio_seconds = 0.0
    for wav in sorted(ami.glob("trn*.wav")):
        name = wav.stem
        audio = load(wav)
        audios[name] = audio
        started = time.perf_counter()
        turns = diarize(audio, encoder=encoder)
        diarize_seconds += time.perf_counter() - started
        audio_seconds += len(audio) / 16000
        hypotheses[name] = turns
        ref_spans = reference.get(name, [])
        ref = annotation(ref_spans)
        hyp = annotation([(t.start, t.end, t.speaker) for t in turns])
        uem = Timeline([Segment(0.0, len(audio) / 16000)])
        files[name] = {
            "der": round(float(DiarizationErrorRate(collar=0.0)(ref, hyp, uem=uem)), 4),
            "der_collar_0.25": round(
                float(DiarizationErrorRate(collar=0.25)(ref, hyp, uem=uem)), 4
            ),
            "der_collar_pm_0.25": round(
                float(DiarizationErrorRate(collar=0.5)(ref, hyp, uem=uem)), 4
            ),
            "speakers_reference": len({w for _, _, w in ref_spans}),
            "speakers_found": len({t.speaker for t in turns}),
            "two_speaker": two_speaker(ref_spans),
            "reference_speech_s": round(float(ref.get_timeline().support().duration()), 2),
        }
    two = [f for f in files.values() if f["two_speaker"]]
    mean_two = float(np.mean([f["der"] for f in two])) if two else float("nan")
    mean_two_collar = float(np.mean([f["der_collar_0.25"] for f in two])) if two else float("nan")

    enrolment = []
    for who, source, target in ENROLMENT_CASES:
        if source not in audios or target not in audios:
            continue
        voice = speaker_embedding(audios[source], solo_spans(reference[source], who), encoder)
        turns = hypotheses[target]
        roles = assign_roles(turns, audios[target], voice, encoder)
        enrolment.append(
            {
                "speaker": who,
                "enrolled_from": source,
                "scored_on": target,
                "role_accuracy": round(role_accuracy(reference[target], who, turns, roles), 4),
                "roles": sorted(set(roles.values())),
            }
        )
    mean_cross = float(np.mean([e["role_accuracy"] for e in enrolment])) if enrolment else 0.0
    halves = []
    for who, name in HALF_CASES:
        if name not in audios:
            continue
        half = len(audios[name]) / 16000 / 2
        first = [(s, min(e, half)) for s, e in solo_spans(reference[name], who) if s < half]
        voice = speaker_embedding(audios[name], first, encoder)
        second = audios[name][int(half * 16000) :]
        shifted = [(max(s - half, 0.0), e - half, w) for s, e, w in reference[name] if e > half]
        turns = diarize(second, encoder=encoder)
        roles = assign_roles(turns, second, voice, encoder)
        halves.append(
            {
                "speaker": who,
                "file": name,
                "enrolled_s": round(sum(e - s for s, e in first), 2),
                "role_accuracy": round(role_accuracy(shifted, who, turns, roles), 4),
            }
        )
    mean_role = float(np.mean([h["role_accuracy"] for h in halves])) if halves else 0.0

    speech = np.concatenate([audios[n] for n in ("trn03", "trn06", "trn09") if n in audios])
    speed = embedding_speed(encoder, speech)
    result: dict[str, Any] = {
        "figures": {
            "der_mean_two_speaker": {
                "value": round(mean_two, 4),
                "goal": DER_GOAL,
                "meets_goal": mean_two <= DER_GOAL,
            },
            "role_accuracy_mean": {
                "value": round(mean_role, 4),
                "goal": ROLE_GOAL,
                "meets_goal": mean_role >= ROLE_GOAL,
            },
        },
        "der_mean_two_speaker_collar_0.25": round(mean_two_collar, 4),
        "der_mean_all": round(float(np.mean([f["der"] for f in files.values()])), 4),
        "two_speaker_files": sorted(n for n, f in files.items() if f["two_speaker"]),
        "files": files,
        "enrolment_halves": halves,
        "enrolment_across_excerpts": enrolment,
        "role_accuracy_mean_across_excerpts": round(mean_cross, 4),
        "embedding_x_realtime": round(speed, 1),
        "diarize_x_realtime": round(audio_seconds / max(diarize_seconds, 1e-9), 1),
    }
    if args.hour:
        hour = np.tile(np.concatenate(list(audios.values())), 12)[: 3600 * 16000]
        started = time.perf_counter()
        turns = diarize(hour, encoder=encoder)
        elapsed = time.perf_counter() - started
        result["one_hour"] = {
            "wall_s": round(elapsed, 1),
            "x_realtime": round(3600 / elapsed, 1),
            "turns": len(turns),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    result["all_goals_met"] = all(f["meets_goal"] for f in result["figures"].values())
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
